//! Interest routing (`--redis-routing channel`): this node's Redis subscriptions follow the
//! Pusher channels it has local subscribers for, one Redis channel per Pusher channel.
//!
//! The hub reports every first-subscriber and last-subscriber change of a channel
//! ([`Adapter::interest`](crate::hub::Adapter::interest), under the channel's shard lock, so
//! losslessly and in order); [`Interest`] keeps the wanted set and one task per Redis
//! connection ([`reconcile`]) makes Redis agree with it:
//! - a channel that gains its first subscriber is subscribed at once; whatever more arrives
//!   while a `SUBSCRIBE` is in flight goes in the next one (at most `batch` names each);
//! - a channel that loses its last subscriber is unsubscribed only after it stayed empty for
//!   `linger`, so a client that leaves and comes back (page reloads, reconnects) costs Redis
//!   nothing;
//! - until Redis confirmed a channel's `SUBSCRIBE`, [`Interest::ready`] hands the hub a future
//!   to hold new subscribers' `subscription_succeeded` on, so no one is told "subscribed"
//!   before what other nodes publish reaches this node (waits are bounded by `max_wait`).
//!
//! While Redis is unreachable nothing is held (local clients are served as ever); on
//! reconnection every wanted channel is subscribed again.

use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Notify};

/// Where a Redis channel stands on the current connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Subscribing,
    Subscribed,
    Unsubscribing,
}

struct Route {
    /// The hub has local subscribers for it.
    local: bool,
    state: State,
    /// When it lost its last local subscriber (or was first wanted).
    vacated: Instant,
    /// How long it stays subscribed after that.
    linger: Duration,
    /// Subscribers held until the `SUBSCRIBE` is confirmed.
    waiters: Vec<oneshot::Sender<()>>,
}

#[derive(Default)]
struct Table {
    routes: HashMap<String, Route>,
    /// Bumped on every new Redis connection: answers for an older one are ignored.
    generation: u64,
    connected: bool,
    /// Channels [`Interest::plan`] dropped without an `UNSUBSCRIBE` (not subscribed on this
    /// connection), for [`Interest::take_dropped`].
    dropped: Vec<String>,
}

/// How interest routing behaves; see the module docs.
#[derive(Debug, Clone, Copy)]
pub(super) struct InterestSettings {
    pub max_wait: Duration,
    pub batch: usize,
}

/// The wanted and the actual Redis subscriptions of this node.
pub(super) struct Interest {
    table: Mutex<Table>,
    wake: Notify,
    settings: InterestSettings,
    /// Subscribers released because their channel's `SUBSCRIBE` took longer than `max_wait`.
    timeouts: AtomicU64,
    /// `SUBSCRIBE` / `UNSUBSCRIBE` commands sent.
    commands: AtomicU64,
}

impl Interest {
    pub fn new(settings: InterestSettings) -> Arc<Interest> {
        Arc::new(Interest {
            table: Mutex::new(Table::default()),
            wake: Notify::new(),
            settings,
            timeouts: AtomicU64::new(0),
            commands: AtomicU64::new(0),
        })
    }

    /// The hub's report: `channel` (its Redis name) has local subscribers or no longer has;
    /// unwanted, it stays subscribed for `linger`.
    pub fn set(&self, channel: String, occupied: bool, linger: Duration) {
        let mut t = self.table.lock();
        let now = Instant::now();
        let route = t.routes.entry(channel).or_insert_with(|| Route {
            local: false,
            state: State::Idle,
            vacated: now,
            linger,
            waiters: Vec::new(),
        });
        route.local = occupied;
        route.linger = linger;
        if !occupied {
            route.vacated = now;
        }
        let idle = route.state == State::Idle;
        drop(t);
        if occupied == idle {
            // Wanted and not subscribed, or unwanted (its linger starts): the task plans.
            self.wake.notify_one();
        }
    }

    /// `None` when `channel`'s messages already reach this node (or Redis is away and there
    /// is nothing to wait for); otherwise a future completing once they do, or after
    /// `max_wait`.
    pub fn ready(self: &Arc<Self>, channel: &str) -> Option<crate::hub::Remote<()>> {
        let rx = {
            let mut t = self.table.lock();
            if !t.connected {
                return None;
            }
            let route = t.routes.get_mut(channel)?;
            if route.state == State::Subscribed {
                return None;
            }
            let (tx, rx) = oneshot::channel();
            route.waiters.push(tx);
            rx
        };
        let me = self.clone();
        Some(Box::pin(async move {
            if tokio::time::timeout(me.settings.max_wait, rx)
                .await
                .is_err()
            {
                let n = me.timeouts.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() {
                    tracing::warn!(
                        timeouts = n + 1,
                        wait = ?me.settings.max_wait,
                        "redis adapter: SUBSCRIBE not confirmed in time; subscriber released"
                    );
                }
            }
        }))
    }

    /// The channels this node has wanted without a break since `since` (local subscribers all
    /// along): what other nodes published on them meanwhile was meant for this node.
    pub fn held_since(&self, since: Instant) -> HashSet<String> {
        let t = self.table.lock();
        t.routes
            .iter()
            .filter(|(_, r)| r.local && r.vacated <= since)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Redis channels subscribed (confirmed) on the current connection.
    pub fn subscribed(&self) -> usize {
        let t = self.table.lock();
        t.routes
            .values()
            .filter(|r| r.state == State::Subscribed)
            .count()
    }

    pub fn timeouts(&self) -> u64 {
        self.timeouts.load(Ordering::Relaxed)
    }

    pub fn commands(&self) -> u64 {
        self.commands.load(Ordering::Relaxed)
    }

    /// A new connection is up: every wanted channel is to be subscribed on it. Returns its
    /// generation for [`reconcile`].
    pub fn connected(&self) -> u64 {
        let mut t = self.table.lock();
        t.generation += 1;
        t.connected = true;
        for r in t.routes.values_mut() {
            r.state = State::Idle;
        }
        let g = t.generation;
        drop(t);
        self.wake.notify_one();
        g
    }

    /// The connection is gone: nothing is subscribed, and nobody waits for it.
    pub fn disconnected(&self) {
        let mut t = self.table.lock();
        t.generation += 1;
        t.connected = false;
        // Their baselines go on reconnection, with every channel not wanted all along.
        t.dropped.clear();
        t.routes.retain(|_, r| {
            r.state = State::Idle;
            r.waiters.clear();
            r.local
        });
    }

    /// What to send now on connection `generation`: channels to subscribe, to unsubscribe,
    /// and when to look again for lingering ones. Marks them in flight.
    fn plan(&self, generation: u64) -> Option<(Vec<String>, Vec<String>, Option<Instant>)> {
        let mut t = self.table.lock();
        if t.generation != generation {
            return None;
        }
        // Channels left before they were (again) subscribed: nothing to undo, nobody to hold.
        let mut dropped = Vec::new();
        t.routes.retain(|name, r| {
            let stale = !r.local && r.state == State::Idle;
            if stale {
                for w in r.waiters.drain(..) {
                    let _ = w.send(());
                }
                dropped.push(name.clone());
            }
            !stale
        });
        t.dropped.extend(dropped);
        let now = Instant::now();
        let (mut subs, mut unsubs, mut next) = (Vec::new(), Vec::new(), None::<Instant>);
        for (name, r) in t.routes.iter_mut() {
            match (r.local, r.state) {
                (true, State::Idle) if subs.len() < self.settings.batch => {
                    r.state = State::Subscribing;
                    subs.push(name.clone());
                }
                (false, State::Subscribed) => {
                    let due = r.vacated + r.linger;
                    if due <= now && unsubs.len() < self.settings.batch {
                        r.state = State::Unsubscribing;
                        unsubs.push(name.clone());
                    } else {
                        next = Some(next.map_or(due, |n| n.min(due)));
                    }
                }
                _ => {}
            }
        }
        if subs.len() >= self.settings.batch || unsubs.len() >= self.settings.batch {
            // More to do right after this batch.
            next = Some(now);
        }
        Some((subs, unsubs, next))
    }

    /// The channels dropped from the wanted set since the last call without being subscribed
    /// on this connection (one kept across a reconnection whose last subscriber left before
    /// it was subscribed again): their gap baselines go too.
    fn take_dropped(&self) -> Vec<String> {
        std::mem::take(&mut self.table.lock().dropped)
    }

    /// Redis confirmed `channels` on connection `generation`.
    fn done(&self, generation: u64, channels: &[String], subscribed: bool) {
        let mut t = self.table.lock();
        if t.generation != generation {
            return;
        }
        let mut again = false;
        for name in channels {
            let Some(r) = t.routes.get_mut(name) else {
                continue;
            };
            if subscribed {
                r.state = State::Subscribed;
                for w in r.waiters.drain(..) {
                    let _ = w.send(());
                }
            } else {
                r.state = State::Idle;
                if r.local {
                    again = true;
                } else if r.waiters.is_empty() {
                    t.routes.remove(name);
                }
            }
        }
        drop(t);
        if again {
            self.wake.notify_one();
        }
    }
}

/// Channels this node stopped listening to (their `UNSUBSCRIBE` confirmed, or dropped before
/// they were subscribed on this connection), for the task reading the subscription: it
/// handles what arrived on them before the confirmation, forgets their gap baselines
/// (`gaps.rs`), then answers.
pub(super) type Unsubscribed = (Vec<String>, oneshot::Sender<()>);

/// Keep connection `generation`'s subscriptions in line with the wanted set until the
/// connection fails (then the caller's subscriber loop reconnects).
pub(super) async fn reconcile(
    interest: Arc<Interest>,
    mut sink: super::link::Subscriptions,
    generation: u64,
    unsubscribed: mpsc::UnboundedSender<Unsubscribed>,
) {
    loop {
        let Some((subs, unsubs, next)) = interest.plan(generation) else {
            return;
        };
        let dropped = interest.take_dropped();
        if !dropped.is_empty() {
            let (ack, acked) = oneshot::channel();
            if unsubscribed.send((dropped, ack)).is_err() || acked.await.is_err() {
                return;
            }
        }
        if !subs.is_empty() {
            interest.commands.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = sink.subscribe(&subs).await {
                tracing::warn!("redis adapter: SUBSCRIBE failed: {e}");
                return;
            }
            interest.done(generation, &subs, true);
        }
        if !unsubs.is_empty() {
            interest.commands.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = sink.unsubscribe(&unsubs).await {
                tracing::warn!("redis adapter: UNSUBSCRIBE failed: {e}");
                return;
            }
            // Before any of them can be subscribed again, so the messages of the old
            // subscription and the new never meet in one baseline.
            let (ack, acked) = oneshot::channel();
            if unsubscribed.send((unsubs.clone(), ack)).is_err() || acked.await.is_err() {
                return;
            }
            interest.done(generation, &unsubs, false);
        }
        if !subs.is_empty() || !unsubs.is_empty() {
            // What arrived while these were in flight goes in the next batch.
            continue;
        }
        match next {
            Some(at) => {
                let at = tokio::time::Instant::from_std(at);
                tokio::select! {
                    _ = interest.wake.notified() => {}
                    _ = tokio::time::sleep_until(at) => {}
                }
            }
            None => interest.wake.notified().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINGER: Duration = Duration::ZERO;

    fn interest() -> Arc<Interest> {
        Interest::new(InterestSettings {
            max_wait: Duration::from_secs(1),
            batch: 2,
        })
    }

    #[test]
    fn plans_follow_the_wanted_set_in_batches() {
        let i = interest();
        let g = i.connected();
        for c in ["a", "b", "c"] {
            i.set(c.into(), true, LINGER);
        }
        let (subs, unsubs, next) = i.plan(g).unwrap();
        assert_eq!((subs.len(), unsubs.len()), (2, 0));
        assert!(next.is_some(), "a third is left for the next batch");
        i.done(g, &subs, true);
        let (rest, _, _) = i.plan(g).unwrap();
        assert_eq!(rest.len(), 1);
        i.done(g, &rest, true);
        assert_eq!(i.subscribed(), 3);
        i.set("a".into(), false, LINGER);
        let (subs, unsubs, _) = i.plan(g).unwrap();
        assert!(subs.is_empty());
        assert_eq!(unsubs, ["a"]);
        // Wanted again while the UNSUBSCRIBE is in flight: subscribed again after it.
        i.set("a".into(), true, LINGER);
        assert!(i.ready("a").is_some());
        i.done(g, &unsubs, false);
        let (subs, _, _) = i.plan(g).unwrap();
        assert_eq!(subs, ["a"]);
    }

    #[test]
    fn answers_of_an_old_connection_are_ignored() {
        let i = interest();
        let g = i.connected();
        i.set("a".into(), true, LINGER);
        let (subs, _, _) = i.plan(g).unwrap();
        let g2 = i.connected();
        i.done(g, &subs, true);
        assert_eq!(i.subscribed(), 0);
        assert!(i.plan(g).is_none());
        assert_eq!(i.plan(g2).unwrap().0, ["a"]);
    }

    #[tokio::test]
    async fn ready_waits_for_the_confirmation_only_while_connected() {
        let i = interest();
        i.set("a".into(), true, LINGER);
        assert!(i.ready("a").is_none(), "not connected: nothing to wait for");
        let g = i.connected();
        let wait = i.ready("a").expect("pending");
        let (subs, _, _) = i.plan(g).unwrap();
        i.done(g, &subs, true);
        tokio::time::timeout(Duration::from_millis(100), wait)
            .await
            .expect("released by the confirmation");
        assert!(i.ready("a").is_none());
        assert_eq!(i.timeouts(), 0);
    }

    #[test]
    fn held_since_names_the_channels_wanted_throughout() {
        let i = interest();
        let g = i.connected();
        for c in ["kept", "left", "back"] {
            i.set(c.into(), true, LINGER);
        }
        let (subs, _, _) = i.plan(g).unwrap();
        i.done(g, &subs, true);
        i.disconnected();
        let since = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        // During the outage: one leaves, one leaves and comes back, one is new.
        i.set("left".into(), false, LINGER);
        i.set("back".into(), false, LINGER);
        i.set("back".into(), true, LINGER);
        i.set("new".into(), true, LINGER);
        let held = i.held_since(since);
        assert_eq!(held, HashSet::from(["kept".to_string()]));
        // Back up, "kept" loses its subscriber before it is subscribed again: dropped without
        // an UNSUBSCRIBE, and reported so its baselines go.
        let g = i.connected();
        i.set("kept".into(), false, LINGER);
        let (subs, unsubs, _) = i.plan(g).unwrap();
        assert!(unsubs.is_empty() && !subs.contains(&"kept".to_string()));
        let mut dropped = i.take_dropped();
        dropped.sort();
        assert_eq!(dropped, ["kept", "left"]);
        assert!(i.take_dropped().is_empty());
    }

    #[tokio::test]
    async fn a_lingering_channel_waits_before_unsubscribing() {
        let i = Interest::new(InterestSettings {
            max_wait: Duration::from_secs(1),
            batch: 10,
        });
        let g = i.connected();
        i.set("a".into(), true, Duration::from_secs(60));
        let (subs, _, _) = i.plan(g).unwrap();
        i.done(g, &subs, true);
        i.set("a".into(), false, Duration::from_secs(60));
        let (subs, unsubs, next) = i.plan(g).unwrap();
        assert!(subs.is_empty() && unsubs.is_empty());
        assert!(next.unwrap() > Instant::now() + Duration::from_secs(50));
        // Back before the linger ran out: nothing to do, nothing to wait for.
        i.set("a".into(), true, Duration::from_secs(60));
        assert!(i.ready("a").is_none());
        assert_eq!(i.plan(g).unwrap().2, None);
    }
}
