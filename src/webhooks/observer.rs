//! Turns the hub's lifecycle events into webhook events: occupied / vacated and member added /
//! removed as up / down transitions of a key, with every down held back for `delay` and
//! cancelled by an up of the same key within it (a page reload causes no webhook at all);
//! client events and cache misses as they come; subscription counts throttled for large
//! channels.
//!
//! Which hub events count: on a single node, channel occupied / vacated and member changes
//! that are cluster-wide (`cluster`). With a cluster, this node's own transitions only
//! (member changes caused `here`): the cluster-wide decision (first node in, last node out,
//! a dead node's channels and members) is taken in Redis by `cluster.rs`, so one webhook
//! fires however many nodes saw the change.

use super::config::{Kind, WebhookSettings};
use super::event::WebhookEvent;
use crate::hub::{HubEvent, MemberChange, ObserverHandle};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// What goes up and down: a channel's occupancy, or a user's membership of a channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Channel {
        app_id: Arc<str>,
        channel: Arc<str>,
    },
    Member {
        app_id: Arc<str>,
        channel: Arc<str>,
        user_id: Arc<str>,
    },
}

impl Key {
    /// The webhook for this key going up (`true`) or down.
    pub fn event(&self, up: bool) -> WebhookEvent {
        match self {
            Key::Channel { app_id, channel } => {
                let kind = if up {
                    Kind::ChannelOccupied
                } else {
                    Kind::ChannelVacated
                };
                WebhookEvent::channel(app_id, kind, channel)
            }
            Key::Member {
                app_id,
                channel,
                user_id,
            } => {
                let kind = if up {
                    Kind::MemberAdded
                } else {
                    Kind::MemberRemoved
                };
                WebhookEvent::member(app_id, kind, channel, user_id)
            }
        }
    }
}

/// Where the observer's decisions go: straight to the targets (one node) or to Redis.
pub trait Sink: Send + 'static {
    /// The key went up on this node (after any pending down was found and cancelled).
    fn up(&mut self, key: Key);
    /// The key went down on this node and stayed down for the delay.
    fn down(&mut self, key: Key);
    /// An event that needs no cluster decision.
    fn direct(&mut self, event: WebhookEvent);
    /// This node's subscriber count of a channel changed (and passed the throttle). One
    /// node: that is the count. A cluster sums the nodes' counts.
    fn count(&mut self, app_id: Arc<str>, channel: Arc<str>, count: usize) {
        self.direct(WebhookEvent::subscription_count(&app_id, &channel, count));
    }
}

enum Timer {
    Down(Key),
    Count(Arc<str>, Arc<str>),
}

#[derive(Default)]
struct CountState {
    sent: Option<Instant>,
    waiting: Option<usize>,
}

pub struct Observer<S: Sink> {
    settings: WebhookSettings,
    clustered: bool,
    sink: S,
    /// Downs waiting out the delay: key → its timer.
    pending: HashMap<Key, (Instant, u64)>,
    timers: BTreeMap<(Instant, u64), Timer>,
    counts: HashMap<(Arc<str>, Arc<str>), CountState>,
    seq: u64,
}

impl<S: Sink> Observer<S> {
    pub fn new(settings: WebhookSettings, clustered: bool, sink: S) -> Self {
        Observer {
            settings,
            clustered,
            sink,
            pending: HashMap::new(),
            timers: BTreeMap::new(),
            counts: HashMap::new(),
            seq: 0,
        }
    }

    fn schedule(&mut self, at: Instant, timer: Timer) -> (Instant, u64) {
        self.seq += 1;
        let id = (at, self.seq);
        self.timers.insert(id, timer);
        id
    }

    fn up(&mut self, key: Key) {
        match self.pending.remove(&key) {
            // Back within the delay: the down never happened, neither does this up.
            Some(id) => {
                self.timers.remove(&id);
            }
            None => self.sink.up(key),
        }
    }

    fn down(&mut self, key: Key) {
        if self.settings.delay.is_zero() {
            self.sink.down(key);
            return;
        }
        if self.pending.contains_key(&key) {
            return;
        }
        let id = self.schedule(
            Instant::now() + self.settings.delay,
            Timer::Down(key.clone()),
        );
        self.pending.insert(key, id);
    }

    fn member(&mut self, m: MemberChange, up: bool) {
        let counts = if self.clustered { m.here } else { m.cluster };
        if !counts {
            return;
        }
        let key = Key::Member {
            app_id: m.app_id,
            channel: m.channel,
            user_id: m.user_id,
        };
        if up {
            self.up(key)
        } else {
            self.down(key)
        }
    }

    fn count(&mut self, app_id: Arc<str>, channel: Arc<str>, count: usize) {
        if channel.starts_with("presence-") {
            return;
        }
        let interval = self.settings.count_interval;
        let above = self.settings.count_throttle_above;
        let key = (app_id.clone(), channel.clone());
        let state = self.counts.entry(key).or_default();
        let recent = state.sent.filter(|t| t.elapsed() < interval);
        match recent {
            Some(sent) if count > above => {
                if state.waiting.replace(count).is_none() {
                    self.schedule(sent + interval, Timer::Count(app_id, channel));
                }
            }
            _ => {
                state.sent = Some(Instant::now());
                state.waiting = None;
                self.sink.count(app_id, channel, count);
            }
        }
    }

    /// Handle one hub event.
    pub fn handle(&mut self, event: HubEvent) {
        match event {
            HubEvent::ChannelOccupied { app_id, channel } => {
                self.up(Key::Channel { app_id, channel })
            }
            HubEvent::ChannelVacated { app_id, channel } => {
                self.counts.remove(&(app_id.clone(), channel.clone()));
                self.down(Key::Channel { app_id, channel })
            }
            HubEvent::MemberAdded(m) => self.member(m, true),
            HubEvent::MemberRemoved(m) => self.member(m, false),
            HubEvent::ClientEvent {
                app_id,
                channel,
                event,
                data,
                socket_id,
                user_id,
                ..
            } => self.sink.direct(WebhookEvent::client_event(
                &app_id,
                &channel,
                &event,
                &data,
                &socket_id.to_string(),
                user_id.as_deref(),
            )),
            HubEvent::CacheMiss { app_id, channel } => {
                self.sink
                    .direct(WebhookEvent::channel(&app_id, Kind::CacheMiss, &channel))
            }
            HubEvent::SubscriptionCount {
                app_id,
                channel,
                count,
            } => self.count(app_id, channel, count),
            _ => {}
        }
    }

    /// When the next timer is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.timers.keys().next().map(|(t, _)| *t)
    }

    /// Fire every timer due by `now` (all of them with `None`: shutdown).
    pub fn fire(&mut self, now: Option<Instant>) {
        while let Some((&id, _)) = self.timers.iter().next() {
            if now.is_some_and(|n| id.0 > n) {
                break;
            }
            let timer = self.timers.remove(&id).expect("present");
            match timer {
                Timer::Down(key) => {
                    self.pending.remove(&key);
                    self.sink.down(key);
                }
                Timer::Count(app_id, channel) => {
                    let key = (app_id.clone(), channel.clone());
                    if let Some(state) = self.counts.get_mut(&key) {
                        if let Some(count) = state.waiting.take() {
                            state.sent = Some(Instant::now());
                            self.sink.count(app_id, channel, count);
                        }
                    }
                }
            }
        }
    }

    /// The observer task: hub events in, decisions out, until the hub goes away. A flush
    /// request first takes every event already queued, then fires every pending timer.
    pub async fn run(
        mut self,
        mut handle: ObserverHandle,
        mut flush: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
    ) {
        let mut reported_drops = 0;
        loop {
            let due = self.next_due();
            tokio::select! {
                biased;
                ev = handle.events.recv() => match ev {
                    Some(ev) => self.handle(ev),
                    None => {
                        self.fire(None);
                        return;
                    }
                },
                Some(done) = flush.recv() => {
                    while let Ok(ev) = handle.events.try_recv() {
                        self.handle(ev);
                    }
                    self.fire(None);
                    let _ = done.send(());
                }
                _ = async {
                    match due {
                        Some(t) => tokio::time::sleep_until(t.into()).await,
                        None => std::future::pending().await,
                    }
                } => self.fire(Some(Instant::now())),
            }
            let dropped = handle.dropped();
            if dropped > reported_drops {
                tracing::warn!(
                    "webhooks: {} hub events dropped (observer queue full); their webhooks are missing",
                    dropped - reported_drops
                );
                reported_drops = dropped;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[derive(Default)]
    struct Record(Vec<String>);

    impl Sink for Record {
        fn up(&mut self, key: Key) {
            self.0.push(key.event(true).json.to_string());
        }
        fn down(&mut self, key: Key) {
            self.0.push(key.event(false).json.to_string());
        }
        fn direct(&mut self, event: WebhookEvent) {
            self.0.push(event.json.to_string());
        }
    }

    fn settings(delay_ms: u64) -> WebhookSettings {
        WebhookSettings {
            delay: Duration::from_millis(delay_ms),
            ..WebhookSettings::default()
        }
    }

    fn occupied(c: &str) -> HubEvent {
        HubEvent::ChannelOccupied {
            app_id: "a".into(),
            channel: c.into(),
        }
    }
    fn vacated(c: &str) -> HubEvent {
        HubEvent::ChannelVacated {
            app_id: "a".into(),
            channel: c.into(),
        }
    }
    fn member(user: &str, here: bool, cluster: bool) -> MemberChange {
        MemberChange {
            app_id: "a".into(),
            channel: "presence-r".into(),
            user_id: user.into(),
            here,
            cluster,
        }
    }

    #[test]
    fn a_rejoin_within_the_delay_cancels_both() {
        let mut o = Observer::new(settings(1000), false, Record::default());
        o.handle(occupied("c"));
        o.handle(vacated("c"));
        o.handle(occupied("c"));
        o.fire(None);
        assert_eq!(o.sink.0, [r#"{"name":"channel_occupied","channel":"c"}"#]);
        o.handle(vacated("c"));
        assert_eq!(o.sink.0.len(), 1, "vacated waits for the delay");
        o.fire(Some(Instant::now()));
        assert_eq!(o.sink.0.len(), 1);
        o.fire(Some(Instant::now() + Duration::from_secs(2)));
        assert_eq!(o.sink.0[1], r#"{"name":"channel_vacated","channel":"c"}"#);
    }

    #[test]
    fn member_events_by_mode() {
        let mut single = Observer::new(settings(0), false, Record::default());
        single.handle(HubEvent::MemberAdded(member("1", true, true)));
        single.handle(HubEvent::MemberAdded(member("2", false, false)));
        single.handle(HubEvent::MemberRemoved(member("1", true, true)));
        assert_eq!(
            single.sink.0,
            [
                r#"{"name":"member_added","channel":"presence-r","user_id":"1"}"#,
                r#"{"name":"member_removed","channel":"presence-r","user_id":"1"}"#
            ]
        );
        // In a cluster only this node's own transitions go to Redis; the mirror's are ignored.
        let mut clustered = Observer::new(settings(0), true, Record::default());
        clustered.handle(HubEvent::MemberAdded(member("1", true, false)));
        clustered.handle(HubEvent::MemberRemoved(member("2", false, true)));
        assert_eq!(clustered.sink.0.len(), 1);
    }

    #[test]
    fn subscription_counts_are_throttled_above_the_limit() {
        let mut o = Observer::new(settings(0), false, Record::default());
        let count = |n| HubEvent::SubscriptionCount {
            app_id: "a".into(),
            channel: "big".into(),
            count: n,
        };
        o.handle(count(101));
        o.handle(count(102));
        o.handle(count(103));
        assert_eq!(o.sink.0.len(), 1);
        o.fire(Some(Instant::now() + Duration::from_secs(6)));
        assert_eq!(
            o.sink.0[1],
            r#"{"name":"subscription_count","channel":"big","subscription_count":103}"#
        );
        o.handle(HubEvent::SubscriptionCount {
            app_id: "a".into(),
            channel: "presence-x".into(),
            count: 1,
        });
        assert_eq!(o.sink.0.len(), 2, "never for presence channels");
    }
}
