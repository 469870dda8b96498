//! Gap detection between nodes: each node numbers what it publishes on each Redis channel, and
//! each receiving node counts the numbers that never reached it, so a message is counted where
//! it went missing even when its publish succeeded (Redis accepted it while the receiver's
//! subscription was down, or before the receiver had subscribed to a new primary after a
//! Sentinel failover). See `RedisAdapter::missed` and DESIGN.md ("Gap detection").
//!
//! **Sender** ([`Numbering`], owned by the publishing task, so no lock): every message that
//! carries clients' events (publishes, client events, presence changes, terminations; not the
//! heartbeats, syncs and queries, which the protocol repairs by itself) is numbered when the
//! task takes it from the outgoing queue, in queue order, so a Redis channel's numbers reach
//! Redis in order. A message dropped because the queue was full never gets a number (the sender
//! counts it in `dropped`); a message whose publish fails keeps its number (the sender counts it
//! in `lost`, and the receivers see the hole). The number is `[life, n]`: `n` counts 1, 2, 3…
//! on one Redis channel; a channel's counter is dropped once it has been silent for
//! `numbering_idle`, and the next message on it starts a new `life` (a per-node counter, always
//! larger) at 1. So memory follows the channels used lately, even with one Redis channel per
//! Pusher channel (`--redis-routing channel`).
//!
//! **Receiver** ([`Seen`], one per other node, kept with its heartbeat time and forgotten when it
//! expires): the last number seen per Redis channel. The next one on the same channel counts
//! the skipped numbers as missed (`n - last - 1`; in a newer life, `n - 1`). The first message
//! of a node on a channel only sets the baseline. The adapter forgets a channel's baselines
//! whenever this node stops listening to it (an `UNSUBSCRIBE` confirmed and what arrived before
//! it handled, a subscription lost with the channel not wanted all along), so what was
//! published while nobody here listened is never counted.
//!
//! Not seen: a message missed after the last one a node ever sends on a channel (or before it
//! fell silent there for `numbering_idle`) leaves no hole behind it.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

/// A message's number on its Redis channel: `(life, n)`, a two-number JSON array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Seq(pub u64, pub u64);

/// One Redis channel's counter.
struct Counter {
    life: u64,
    last: u64,
    used: Instant,
}

/// The sending side: per Redis channel, the last number given.
pub(super) struct Numbering {
    counters: HashMap<Box<str>, Counter>,
    lives: u64,
    idle: Duration,
    swept: Instant,
}

impl Numbering {
    pub fn new(idle: Duration) -> Numbering {
        Numbering {
            counters: HashMap::new(),
            lives: 0,
            idle,
            swept: Instant::now(),
        }
    }

    /// The next number on `route` (one map lookup; a new life for a channel unknown or
    /// forgotten).
    pub fn next(&mut self, route: &str, now: Instant) -> Seq {
        if let Some(c) = self.counters.get_mut(route) {
            c.last += 1;
            c.used = now;
            return Seq(c.life, c.last);
        }
        self.lives += 1;
        let c = Counter {
            life: self.lives,
            last: 1,
            used: now,
        };
        self.counters.insert(route.into(), c);
        Seq(self.lives, 1)
    }

    /// Drop the counters of channels silent for `idle` (looked at once per `idle`, so a
    /// counter lives at most twice that after its last message).
    pub fn sweep(&mut self, now: Instant) {
        if now.saturating_duration_since(self.swept) < self.idle {
            return;
        }
        self.swept = now;
        let idle = self.idle;
        self.counters
            .retain(|_, c| now.saturating_duration_since(c.used) < idle);
        if self.counters.capacity() > 64 && self.counters.len() < self.counters.capacity() / 4 {
            self.counters.shrink_to_fit();
        }
    }

    /// Channels with a live counter.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.counters.len()
    }
}

impl Numbering {
    /// Number a serialized envelope for `route`: the next number, written in (see [`stamp`]).
    /// A payload that cannot take one keeps none and uses none.
    pub fn stamp(&mut self, payload: &mut Vec<u8>, route: &str, now: Instant) {
        if stampable(payload) {
            stamp(payload, self.next(route, now));
        }
    }
}

/// A JSON object with a member (every serialized envelope).
fn stampable(payload: &[u8]) -> bool {
    payload.len() > 2 && payload.first() == Some(&b'{') && payload.last() == Some(&b'}')
}

/// Write `seq` into a serialized envelope, a JSON object: `{…}` becomes `{…,"seq":[life,n]}`
/// (no re-serialization). False, and `payload` unchanged, when it is not an object with a
/// member.
pub(super) fn stamp(payload: &mut Vec<u8>, seq: Seq) -> bool {
    if !stampable(payload) {
        return false;
    }
    payload.pop();
    // Writing to a Vec cannot fail.
    let _ = write!(payload, ",\"seq\":[{},{}]}}", seq.0, seq.1);
    true
}

/// The receiving side for one other node: the last number seen per Redis channel.
#[derive(Default)]
pub(super) struct Seen {
    routes: HashMap<Box<str>, Seq>,
}

impl Seen {
    /// `seq` arrived on `route`: how many of the node's numbers before it on that channel never
    /// arrived here since the last one that did. 0 for the first seen (a baseline) and for
    /// anything not after the last (which in-order delivery rules out; never counted).
    pub fn check(&mut self, route: &str, seq: Seq) -> u64 {
        let Some(last) = self.routes.get_mut(route) else {
            self.routes.insert(route.into(), seq);
            return 0;
        };
        let missed = match seq.0.cmp(&last.0) {
            std::cmp::Ordering::Equal if seq.1 > last.1 => seq.1 - last.1 - 1,
            // A newer life starts at 1: whatever came before `n` in it went missing (the end
            // of the old life cannot be known).
            std::cmp::Ordering::Greater => seq.1.saturating_sub(1),
            _ => return 0,
        };
        *last = seq;
        missed
    }

    /// This node no longer listens to `route`: the next message on it is a new baseline.
    pub fn forget(&mut self, route: &str) {
        self.routes.remove(route);
    }

    /// Keep the baselines of the channels `keep` says this node listened to all along.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.routes.retain(|route, _| keep(route));
    }

    /// Channels with a baseline.
    pub fn len(&self) -> usize {
        self.routes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_count_per_channel_and_lives_start_over_when_idle() {
        let idle = Duration::from_secs(60);
        let t0 = Instant::now();
        let mut n = Numbering::new(idle);
        assert_eq!(n.next("a", t0), Seq(1, 1));
        assert_eq!(n.next("a", t0), Seq(1, 2));
        assert_eq!(n.next("b", t0), Seq(2, 1));
        assert_eq!(n.next("a", t0), Seq(1, 3));
        // "b" is used again before the sweep, "a" not: only "a" is forgotten.
        let later = t0 + Duration::from_secs(50);
        assert_eq!(n.next("b", later), Seq(2, 2));
        n.sweep(t0 + Duration::from_secs(70));
        assert_eq!(n.len(), 1);
        assert_eq!(n.next("a", t0 + Duration::from_secs(71)), Seq(3, 1));
        assert_eq!(n.next("b", t0 + Duration::from_secs(71)), Seq(2, 3));
        // Kept while used within `idle`, then dropped.
        n.sweep(t0 + Duration::from_secs(125));
        assert_eq!(n.len(), 2);
        n.sweep(t0 + Duration::from_secs(135));
        assert_eq!(n.len(), 0);
    }

    #[test]
    fn a_stamped_envelope_reads_back_with_its_number() {
        #[derive(Deserialize)]
        struct Env {
            node: String,
            seq: Option<Seq>,
        }
        let mut payload = br#"{"node":"n","msg":{"publish":{"frame":"{\"a\":\"}\"}"}}}"#.to_vec();
        assert!(stamp(&mut payload, Seq(4, 17)));
        let env: Env = serde_json::from_slice(&payload).unwrap();
        assert_eq!((env.node.as_str(), env.seq), ("n", Some(Seq(4, 17))));
        for bad in [&b""[..], b"{}", b"[1]", b"{\"a\":1"] {
            let mut p = bad.to_vec();
            assert!(!stamp(&mut p, Seq(1, 1)));
            assert_eq!(p, bad);
            // Numbering skips it without using a number.
            let mut n = Numbering::new(Duration::from_secs(1));
            n.stamp(&mut p, "r", Instant::now());
            assert_eq!(p, bad);
            assert_eq!(n.next("r", Instant::now()), Seq(1, 1));
        }
    }

    #[test]
    fn holes_are_counted_once_and_nothing_else() {
        let mut s = Seen::default();
        assert_eq!(s.check("r", Seq(1, 40)), 0, "the first seen is a baseline");
        assert_eq!(s.check("r", Seq(1, 41)), 0);
        assert_eq!(s.check("r", Seq(1, 45)), 3);
        // Not after the last: never counted, the baseline stays.
        assert_eq!(s.check("r", Seq(1, 44)), 0);
        assert_eq!(s.check("r", Seq(1, 45)), 0);
        assert_eq!(s.check("r", Seq(1, 46)), 0);
        // Another channel has its own numbers.
        assert_eq!(s.check("q", Seq(1, 7)), 0);
        assert_eq!(s.check("q", Seq(1, 9)), 1);
        // A new life: its numbers before this one went missing.
        assert_eq!(s.check("r", Seq(5, 1)), 0);
        assert_eq!(s.check("r", Seq(5, 2)), 0);
        assert_eq!(s.check("r", Seq(6, 4)), 3);
        // An older life (ruled out by in-order delivery): ignored.
        assert_eq!(s.check("r", Seq(5, 9)), 0);
        assert_eq!(s.check("r", Seq(6, 5)), 0);
        // Forgotten: the next one is a baseline again, however far.
        s.forget("r");
        assert_eq!(s.check("r", Seq(6, 500)), 0);
        assert_eq!(s.check("r", Seq(6, 502)), 1);
        s.retain(|r| r == "q");
        assert_eq!(s.len(), 1);
        assert_eq!(s.check("r", Seq(6, 900)), 0);
        assert_eq!(s.check("q", Seq(1, 12)), 2);
    }

    #[test]
    fn sender_and_receiver_agree_on_what_was_skipped() {
        // Every third message of one channel is withheld from the receiver.
        let mut n = Numbering::new(Duration::from_secs(60));
        let mut s = Seen::default();
        let now = Instant::now();
        let mut missed = 0;
        let mut withheld = 0;
        for i in 0..300u64 {
            let seq = n.next("room", now);
            n.next("elsewhere", now); // a channel the receiver does not listen to
            if i % 3 == 1 {
                withheld += 1;
            } else {
                missed += s.check("room", seq);
            }
        }
        // The last one was delivered (299 % 3 == 2), so every hole is behind one.
        assert_eq!(missed, withheld);
    }
}
