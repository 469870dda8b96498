//! One target's waiting events and how they are cut into requests: up to `batch_max` events
//! once the oldest has waited `batch_window`, never two requests in flight for one channel
//! (so per channel, occupied stays before vacated and added before removed, across retries).

use super::event::WebhookEvent;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// Acknowledgement of one stream entry (cluster mode): sent once every target that got the
/// event delivered it or gave it up. An entry whose holder dies unacknowledged is taken over
/// by a surviving node.
pub struct Ack {
    id: String,
    remaining: AtomicUsize,
    tx: mpsc::UnboundedSender<String>,
}

impl Ack {
    pub fn new(id: String, targets: usize, tx: mpsc::UnboundedSender<String>) -> Arc<Ack> {
        let ack = Arc::new(Ack {
            id,
            remaining: AtomicUsize::new(targets),
            tx,
        });
        if targets == 0 {
            let _ = ack.tx.send(ack.id.clone());
        }
        ack
    }

    /// One target is done with the event.
    pub fn done(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _ = self.tx.send(self.id.clone());
        }
    }
}

/// An event waiting for (or in) a request to one target.
pub struct Queued {
    pub event: WebhookEvent,
    pub ack: Option<Arc<Ack>>,
    pub since: Instant,
}

impl Queued {
    /// Delivered or given up: acknowledge it.
    pub fn finish(self) {
        if let Some(ack) = self.ack {
            ack.done();
        }
    }
}

/// The events of one target not yet in a request, and the channels that have one in flight.
#[derive(Default)]
pub struct Pending {
    items: VecDeque<Queued>,
    busy: HashMap<Arc<str>, usize>,
}

impl Pending {
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn push(&mut self, q: Queued) {
        self.items.push_back(q);
    }

    /// When the next request may go (`None`: nothing can go until a request finishes):
    /// the oldest sendable event's time plus the window, or now once `max` are sendable.
    pub fn next_due(&self, window: std::time::Duration, max: usize) -> Option<Instant> {
        let mut blocked: HashSet<&str> = HashSet::new();
        let mut first = None;
        let mut n = 0;
        for q in &self.items {
            if self.busy.contains_key(&q.event.channel) || blocked.contains(&*q.event.channel) {
                blocked.insert(&q.event.channel);
                continue;
            }
            first.get_or_insert(q.since);
            n += 1;
            if n >= max {
                return Some(Instant::now());
            }
        }
        first.map(|t| t + window)
    }

    /// Take up to `max` sendable events in order (skipping channels with a request in flight,
    /// and everything after a skipped event of the same channel) and mark their channels busy.
    pub fn take(&mut self, max: usize) -> Vec<Queued> {
        let mut blocked: HashSet<Arc<str>> = HashSet::new();
        let mut out = Vec::new();
        let mut keep = VecDeque::with_capacity(self.items.len());
        while let Some(q) = self.items.pop_front() {
            let ch = &q.event.channel;
            if out.len() >= max || self.busy.contains_key(ch) || blocked.contains(ch) {
                blocked.insert(ch.clone());
                keep.push_back(q);
            } else {
                out.push(q);
            }
        }
        self.items = keep;
        for q in &out {
            *self.busy.entry(q.event.channel.clone()).or_default() += 1;
        }
        out
    }

    /// A request finished: its channels may go again.
    pub fn release<'a>(&mut self, channels: impl IntoIterator<Item = &'a Arc<str>>) {
        for ch in channels {
            if let Some(n) = self.busy.get_mut(ch) {
                *n -= 1;
                if *n == 0 {
                    self.busy.remove(ch);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::config::Kind;
    use std::time::Duration;

    fn q(channel: &str, kind: Kind) -> Queued {
        Queued {
            event: WebhookEvent::channel(&"a".into(), kind, &channel.into()),
            ack: None,
            since: Instant::now(),
        }
    }

    #[test]
    fn batches_keep_channel_order_while_one_is_in_flight() {
        let mut p = Pending::default();
        p.push(q("a", Kind::ChannelOccupied));
        p.push(q("b", Kind::ChannelOccupied));
        let first = p.take(1);
        assert_eq!(&*first[0].event.channel, "a");
        p.push(q("a", Kind::ChannelVacated));
        p.push(q("c", Kind::ChannelOccupied));
        // "a" is in flight: its vacated must wait; b and c may go.
        let second = p.take(20);
        let names: Vec<&str> = second.iter().map(|q| &*q.event.channel).collect();
        assert_eq!(names, ["b", "c"]);
        assert_eq!(p.len(), 1);
        p.release(first.iter().map(|q| &q.event.channel));
        let third = p.take(20);
        assert_eq!(third[0].event.kind, Kind::ChannelVacated);
    }

    #[test]
    fn due_after_window_or_when_full() {
        let mut p = Pending::default();
        let w = Duration::from_millis(250);
        assert!(p.next_due(w, 2).is_none());
        p.push(q("a", Kind::ChannelOccupied));
        let due = p.next_due(w, 2).unwrap();
        assert!(due > Instant::now() + Duration::from_millis(200));
        p.push(q("b", Kind::ChannelOccupied));
        assert!(p.next_due(w, 2).unwrap() <= Instant::now());
        let taken = p.take(2);
        assert_eq!(taken.len(), 2);
        p.push(q("a", Kind::ChannelVacated));
        assert!(p.next_due(w, 2).is_none(), "a is busy");
    }

    #[test]
    fn ack_fires_once_after_every_target() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let ack = Ack::new("1-0".into(), 2, tx.clone());
        ack.done();
        assert!(rx.try_recv().is_err());
        ack.done();
        assert_eq!(rx.try_recv().unwrap(), "1-0");
        let _none = Ack::new("2-0".into(), 0, tx);
        assert_eq!(rx.try_recv().unwrap(), "2-0");
    }
}
