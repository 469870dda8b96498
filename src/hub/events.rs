//! The hub's lifecycle events: the one seam through which later features (webhooks, metrics,
//! the debug console) learn what happens on this node.
//!
//! The hub emits a typed [`HubEvent`] at each transition it makes. Observers register with
//! [`Hub::observe`](super::Hub::observe) (at start, or later: a debug console); each gets its own bounded queue and
//! receives events with `try_send`, so a slow observer never blocks a publish: when its queue
//! is full the event is dropped and counted ([`ObserverHandle::dropped`]). With no observer
//! registered, [`Events::emit`] is one relaxed atomic load: the event is not even built.
//!
//! Order: events the hub emits under a channel's lock (occupied, member added/removed,
//! vacated) reach each observer in the order they happened for that channel.

use super::connection::SocketId;
use parking_lot::RwLock;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Something that happened in the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubEvent {
    /// A WebSocket connection was accepted and registered.
    ConnectionOpened {
        app_id: Arc<str>,
        socket_id: SocketId,
        /// The client's address, when the server that accepted it knows it.
        ip: Option<IpAddr>,
    },
    /// A connection went away. `code` is the close code that ended it: the one the server
    /// sent (its own, like 1009 for an oversized frame or 4100 for a slow consumer, or one
    /// the hub asked for), or, when the client closed first, the client's (`None` when its
    /// close frame had no code, or the socket dropped without a close); `why` a short reason
    /// for logs and counters.
    ConnectionClosed {
        app_id: Arc<str>,
        socket_id: SocketId,
        code: Option<u16>,
        why: &'static str,
    },
    /// A connection joined a channel.
    Subscribed {
        app_id: Arc<str>,
        socket_id: SocketId,
        channel: Arc<str>,
    },
    /// A connection left a channel (unsubscribe or disconnect).
    Unsubscribed {
        app_id: Arc<str>,
        socket_id: SocketId,
        channel: Arc<str>,
    },
    /// The channel got its first subscriber on this node.
    ChannelOccupied { app_id: Arc<str>, channel: Arc<str> },
    /// The channel lost its last subscriber on this node.
    ChannelVacated { app_id: Arc<str>, channel: Arc<str> },
    /// A user became a member of a presence channel.
    MemberAdded(MemberChange),
    /// A user stopped being a member of a presence channel.
    MemberRemoved(MemberChange),
    /// A client event (`client-*`) was relayed.
    ClientEvent {
        app_id: Arc<str>,
        channel: Arc<str>,
        event: Arc<str>,
        /// The event's `data` exactly as the client sent it (a JSON string or value).
        data: Arc<str>,
        socket_id: SocketId,
        /// The sender's presence user id, on presence channels.
        user_id: Option<Arc<str>>,
        /// How many connections on this node it was queued for.
        recipients: usize,
    },
    /// An event published through the HTTP API or the library.
    ApiPublish {
        app_id: Arc<str>,
        channels: Arc<[Arc<str>]>,
        event: Arc<str>,
        /// The event's `data` as published (sent verbatim).
        data: Arc<str>,
        /// Size of the event's `data`.
        bytes: usize,
        /// How many connections on this node it was queued for.
        recipients: usize,
        /// The publisher's own connection, which did not get it (`socket_id`).
        except: Option<SocketId>,
    },
    /// A cache channel was subscribed while it held no cached event.
    CacheMiss { app_id: Arc<str>, channel: Arc<str> },
    /// A channel's subscription count changed (non-presence channels only).
    SubscriptionCount {
        app_id: Arc<str>,
        channel: Arc<str>,
        count: usize,
    },
    /// A subscription was refused. `reason` never holds a secret or a signature.
    SubscriptionRefused {
        app_id: Arc<str>,
        socket_id: SocketId,
        channel: Arc<str>,
        reason: Arc<str>,
    },
    /// A connection's queue overflowed and it is being closed with 4100.
    SlowConsumerClosed {
        app_id: Arc<str>,
        socket_id: SocketId,
    },
}

/// A presence membership change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberChange {
    pub app_id: Arc<str>,
    pub channel: Arc<str>,
    pub user_id: Arc<str>,
    /// Caused by a connection on this node (false: learned from another node's report or
    /// its expiry).
    pub here: bool,
    /// The user's first (added) or last (removed) connection in the whole cluster, as this
    /// node's mirror of the other nodes sees it. On a single node: always true.
    pub cluster: bool,
}

impl HubEvent {
    /// The app the event belongs to.
    pub fn app_id(&self) -> &str {
        match self {
            HubEvent::ConnectionOpened { app_id, .. }
            | HubEvent::ConnectionClosed { app_id, .. }
            | HubEvent::Subscribed { app_id, .. }
            | HubEvent::Unsubscribed { app_id, .. }
            | HubEvent::ChannelOccupied { app_id, .. }
            | HubEvent::ChannelVacated { app_id, .. }
            | HubEvent::ClientEvent { app_id, .. }
            | HubEvent::ApiPublish { app_id, .. }
            | HubEvent::CacheMiss { app_id, .. }
            | HubEvent::SubscriptionCount { app_id, .. }
            | HubEvent::SubscriptionRefused { app_id, .. }
            | HubEvent::SlowConsumerClosed { app_id, .. } => app_id,
            HubEvent::MemberAdded(m) | HubEvent::MemberRemoved(m) => &m.app_id,
        }
    }
}

/// An observer's end of the seam: its queue of events and how many it missed.
pub struct ObserverHandle {
    pub events: mpsc::Receiver<HubEvent>,
    dropped: Arc<AtomicU64>,
}

impl ObserverHandle {
    /// Events dropped because this observer's queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// A counter shared with the hub side, for observers that report it (metrics).
    pub fn dropped_counter(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }
}

struct Sink {
    tx: mpsc::Sender<HubEvent>,
    dropped: Arc<AtomicU64>,
}

impl Sink {
    fn offer(&self, event: HubEvent) {
        if self.tx.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The hub's side of the seam: every registered observer's queue.
///
/// Observers may come and go while serving (a debug console opens and closes); an observer
/// whose receiver was dropped is forgotten at the next registration.
#[derive(Default)]
pub struct Events {
    /// Whether any observer is registered: the one load the hot path pays when none is.
    active: AtomicBool,
    /// The observers' queues; written only when one registers.
    sinks: RwLock<Vec<Sink>>,
}

impl Events {
    /// Register an observer with a queue of `capacity` events.
    pub fn register(&self, capacity: usize) -> ObserverHandle {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let mut sinks = self.sinks.write();
        sinks.retain(|s| !s.tx.is_closed());
        sinks.push(Sink {
            tx,
            dropped: dropped.clone(),
        });
        self.active.store(true, Ordering::Release);
        ObserverHandle {
            events: rx,
            dropped,
        }
    }

    /// Whether anyone listens (callers skip building what only an event would need).
    #[inline]
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Hand an event to every observer without waiting; built only when there are any.
    #[inline]
    pub fn emit(&self, event: impl FnOnce() -> HubEvent) {
        if self.active() {
            self.send(event());
        }
    }

    #[cold]
    fn send(&self, event: HubEvent) {
        let sinks = self.sinks.read();
        if let Some((last, rest)) = sinks.split_last() {
            for sink in rest {
                sink.offer(event.clone());
            }
            last.offer(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opened(n: u64) -> HubEvent {
        HubEvent::ConnectionOpened {
            app_id: "a".into(),
            socket_id: SocketId(n),
            ip: None,
        }
    }

    #[test]
    fn no_observer_builds_nothing() {
        let events = Events::default();
        events.emit(|| panic!("built an event nobody listens to"));
        assert!(!events.active());
    }

    #[test]
    fn each_observer_gets_every_event_in_order() {
        let events = Events::default();
        let mut a = events.register(8);
        let mut b = events.register(8);
        events.emit(|| opened(1));
        events.emit(|| opened(2));
        for h in [&mut a, &mut b] {
            assert_eq!(h.events.try_recv().unwrap(), opened(1));
            assert_eq!(h.events.try_recv().unwrap(), opened(2));
            assert!(h.events.try_recv().is_err());
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let events = Events::default();
        let mut slow = events.register(2);
        for n in 0..5 {
            events.emit(|| opened(n));
        }
        assert_eq!(slow.dropped(), 3);
        assert_eq!(slow.events.try_recv().unwrap(), opened(0));
        assert_eq!(slow.events.try_recv().unwrap(), opened(1));
    }
}
