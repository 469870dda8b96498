//! One connection as the hub sees it: its socket id, its app, its bounded outbound queue and
//! what it is subscribed to.
//!
//! Publishers push shared, already-encoded frames into the queue and wake the connection's task
//! (in `ws/`), which writes them out in one batch. The queue allocates nothing until the first
//! frame arrives. When it holds more than its limit the client is not keeping up: the queue is
//! dropped and the connection is marked to close with 4100, so a slow client never slows the
//! publisher or the others.

use super::events::HubEvent;
use super::recovery::LineageCursors;
use super::registry::AppHub;
use super::sparse::shrink_if_sparse;
use crate::apps::App;
use crate::protocol::ErrorCode;
use axum::extract::ws::Utf8Bytes;
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::OnceLock;
use std::task::Waker;
use std::time::Instant;

/// A socket id as a number: `hi.lo` on the wire (`^\d+\.\d+$`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(pub u64);

impl SocketId {
    /// A fresh id: a random high half and a process-wide counter as the low half.
    pub fn generate() -> SocketId {
        static COUNTER: AtomicU32 = AtomicU32::new(1);
        let hi = rand::random::<u32>() % 1_000_000_000 + 1;
        let lo = COUNTER.fetch_add(1, Ordering::Relaxed);
        SocketId((u64::from(hi) << 32) | u64::from(lo))
    }

    /// Parse the wire form `digits.digits` (each part fitting in 32 bits).
    pub fn parse(s: &str) -> Option<SocketId> {
        let (hi, lo) = s.split_once('.')?;
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(hi) || !digits(lo) {
            return None;
        }
        let hi: u32 = hi.parse().ok()?;
        let lo: u32 = lo.parse().ok()?;
        Some(SocketId((u64::from(hi) << 32) | u64::from(lo)))
    }
}

impl std::fmt::Display for SocketId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

/// The instant the heartbeat clock counts from.
fn clock_origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Milliseconds since the heartbeat clock's origin.
pub(crate) fn now_ms() -> u64 {
    clock_origin().elapsed().as_millis() as u64
}

/// What the heartbeat sweep decided for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Heartbeat {
    Alive,
    /// Silent for the activity timeout: send `pusher:ping`.
    Ping,
    /// Still silent after the ping: close with 4201.
    Dead,
}

/// Why the hub wants a connection closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseRequest {
    pub code: ErrorCode,
    pub message: &'static str,
    /// Also send a `pusher:error` frame before closing.
    pub send_error: bool,
}

/// How a connection ended, as its task recorded it: the close code it sent (or the client
/// sent, for a client's close) and why. Observers get it in `HubEvent::ConnectionClosed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending {
    /// `None`: the client's close frame carried no code.
    pub code: Option<u16>,
    pub why: &'static str,
}

#[derive(Default)]
struct Outbox {
    queue: VecDeque<Utf8Bytes>,
    close: Option<CloseRequest>,
    /// How the connection's task ended it (first record wins).
    ended: Option<Ending>,
    /// Holds on the queue (`hold_until`): while any, frames queue up but are not written.
    holds: u32,
}

/// One subscription as the connection remembers it (for clean-up and client events).
#[derive(Debug, Clone)]
pub struct Subscription {
    pub channel: Arc<str>,
    /// The presence user id this socket joined as.
    pub user_id: Option<Arc<str>>,
}

/// What a connection is: subscribed channels and its signed-in user.
#[derive(Debug, Default)]
pub struct ConnState {
    pub subscriptions: Vec<Subscription>,
    /// The user this connection signed in as (`pusher:signin`).
    pub user: Option<Arc<str>>,
    /// Users this connection watches (after sign-in with a watchlist).
    pub watchlist: Vec<Arc<str>>,
    /// Recovery cursors, for a connection with a lineage that joined recovered channels.
    pub(crate) lineage: Option<Box<LineageCursors>>,
}

impl ConnState {
    pub fn subscription(&self, channel: &str) -> Option<&Subscription> {
        self.subscriptions.iter().find(|s| &*s.channel == channel)
    }
}

/// The hub's handle on one live connection.
pub struct Connection {
    pub socket_id: SocketId,
    /// The app's share of the hub: its settings, channels and users.
    app_hub: Arc<AppHub>,
    max_queue: usize,
    /// The lineage id from the path (`/l/{lineage}/app/{key}`): missed-message recovery.
    lineage: Option<Arc<str>>,
    /// The client closed with 1000/1001: its lineage's place is not kept.
    clean_close: AtomicBool,
    /// A newer connection of the same lineage took over its recovery cursors.
    pub(super) superseded: AtomicBool,
    /// `pusher:ping`s sent (recovery matches each pong to its ping by count).
    pings: AtomicU32,
    outbox: Mutex<Outbox>,
    /// Milliseconds since [`clock_origin`] when the client last sent anything.
    last_seen_ms: AtomicU64,
    /// Milliseconds since [`clock_origin`] when the connection was registered.
    opened_ms: u64,
    /// When the server pinged the client since it was last heard from (0: not pinged).
    pinged_at_ms: AtomicU64,
    /// The connection task's waker: woken when the queue goes from empty to non-empty or a
    /// close is requested.
    waker: AtomicWaker,
    pub(crate) state: Mutex<ConnState>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("socket_id", &self.socket_id)
            .field("app", &self.app_hub.id)
            .finish()
    }
}

impl Connection {
    pub(crate) fn new(
        app_hub: Arc<AppHub>,
        max_queue: usize,
        lineage: Option<Arc<str>>,
    ) -> Connection {
        Connection {
            socket_id: SocketId::generate(),
            app_hub,
            max_queue: max_queue.max(1),
            lineage,
            clean_close: AtomicBool::new(false),
            superseded: AtomicBool::new(false),
            pings: AtomicU32::new(0),
            outbox: Mutex::new(Outbox::default()),
            last_seen_ms: AtomicU64::new(now_ms()),
            opened_ms: now_ms(),
            pinged_at_ms: AtomicU64::new(0),
            waker: AtomicWaker::new(),
            state: Mutex::new(ConnState::default()),
        }
    }

    /// The app's current settings (a reload changes them for the next request).
    pub fn app(&self) -> Arc<App> {
        self.app_hub.app()
    }

    /// The app's share of the hub.
    pub fn app_hub(&self) -> &Arc<AppHub> {
        &self.app_hub
    }

    /// Queue a frame. Never blocks; on overflow the queue is dropped and the connection is
    /// marked to close with 4100.
    pub fn push(&self, frame: Utf8Bytes) {
        let mut ob = self.outbox.lock();
        if ob.close.is_some() {
            return;
        }
        if ob.queue.len() >= self.max_queue {
            drop(ob);
            self.overflow();
            return;
        }
        let was_empty = ob.queue.is_empty();
        if ob.queue.capacity() == 0 {
            // Most connections hold at most one frame at a time: start with one slot.
            ob.queue.reserve_exact(1);
        }
        ob.queue.push_back(frame);
        drop(ob);
        if was_empty {
            self.waker.wake();
        }
    }

    /// The client is not keeping up: drop what is queued and close it with 4100.
    pub(super) fn overflow(&self) {
        let mut ob = self.outbox.lock();
        if ob.close.is_some() {
            return;
        }
        ob.queue = VecDeque::new();
        ob.close = Some(CloseRequest {
            code: ErrorCode::OverCapacity,
            message: "Over capacity: the client is not reading its messages fast enough",
            send_error: false,
        });
        drop(ob);
        self.waker.wake();
        self.app_hub.node.emit(|| HubEvent::SlowConsumerClosed {
            app_id: self.app_hub.id.clone(),
            socket_id: self.socket_id,
        });
    }

    /// Frames it may have queued before it counts as a slow consumer.
    pub(super) fn max_queue(&self) -> usize {
        self.max_queue
    }

    /// Ask the connection's task to close it (first request wins).
    pub fn close(&self, request: CloseRequest) {
        let mut ob = self.outbox.lock();
        if ob.close.is_none() {
            ob.close = Some(request);
        }
        drop(ob);
        self.waker.wake();
    }

    /// The next queued frame; when the queue is empty, the pending close request (if any),
    /// read under the same lock.
    pub(crate) fn pop(&self) -> Result<Utf8Bytes, Option<CloseRequest>> {
        let mut ob = self.outbox.lock();
        if ob.holds > 0 && ob.close.is_none() {
            return Err(None);
        }
        match ob.queue.pop_front() {
            Some(frame) => {
                // A burst (a thousand subscriptions confirmed at once) leaves no big queue.
                shrink_if_sparse(&mut ob.queue);
                Ok(frame)
            }
            None => Err(ob.close.clone()),
        }
    }

    /// Write nothing more to the client until `ready` completes (the adapter's
    /// [`Adapter::ready`](super::Adapter::ready)); frames keep queueing meanwhile. Outside a
    /// tokio runtime nothing could release it, so nothing is held.
    pub(crate) fn hold_until(self: &Arc<Self>, ready: super::Remote<()>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.outbox.lock().holds += 1;
        let conn = self.clone();
        runtime.spawn(async move {
            ready.await;
            let mut ob = conn.outbox.lock();
            ob.holds -= 1;
            let wake = ob.holds == 0 && !ob.queue.is_empty();
            drop(ob);
            if wake {
                conn.waker.wake();
            }
        });
    }

    /// The pending close request, if any.
    pub(crate) fn close_request(&self) -> Option<CloseRequest> {
        self.outbox.lock().close.clone()
    }

    /// Record how the connection ends, where its task decides it: the close it sends (its
    /// own, like 1009 for an oversized frame, or the hub's request) or the client's close.
    /// The first record wins.
    pub(crate) fn record_ending(&self, code: Option<u16>, why: &'static str) {
        self.outbox.lock().ended.get_or_insert(Ending { code, why });
    }

    /// How the connection ended: what its task recorded; else the close the hub asked for
    /// (a connection with no socket task, or one whose socket failed before the close went
    /// out); else `None` (the client or the network went away without a close).
    pub(crate) fn ending(&self) -> Option<Ending> {
        let ob = self.outbox.lock();
        ob.ended.or_else(|| {
            ob.close.as_ref().map(|req| Ending {
                code: Some(req.code.code()),
                why: req.message,
            })
        })
    }

    /// Register the task to wake on new frames or a close request. Register before looking at
    /// the queue, so no push can be missed.
    pub(crate) fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    /// When the client last sent anything and when the connection opened, in ms of the
    /// heartbeat clock ([`now_ms`]).
    pub(crate) fn activity_ms(&self) -> (u64, u64) {
        (self.last_seen_ms.load(Ordering::Relaxed), self.opened_ms)
    }

    /// The client sent something: it is alive.
    pub(crate) fn seen(&self) {
        self.last_seen_ms.store(now_ms(), Ordering::Relaxed);
        self.pinged_at_ms.store(0, Ordering::Relaxed);
    }

    /// Heartbeat check at `now` (ms): ping after `activity_ms` of silence, give up
    /// `pong_ms` after the ping.
    pub(crate) fn heartbeat(&self, now: u64, activity_ms: u64, pong_ms: u64) -> Heartbeat {
        let pinged_at = self.pinged_at_ms.load(Ordering::Relaxed);
        if pinged_at != 0 {
            if now.saturating_sub(pinged_at) >= pong_ms {
                return Heartbeat::Dead;
            }
            Heartbeat::Alive
        } else if now.saturating_sub(self.last_seen_ms.load(Ordering::Relaxed)) >= activity_ms {
            self.pinged_at_ms.store(now.max(1), Ordering::Relaxed);
            Heartbeat::Ping
        } else {
            Heartbeat::Alive
        }
    }

    /// Queue a `pusher:ping`; its number (the pong answering it is the same one).
    pub(crate) fn ping(&self) -> u32 {
        self.push(crate::protocol::ping());
        self.pings.fetch_add(1, Ordering::Relaxed).wrapping_add(1)
    }

    /// The lineage id this connection came with, if any.
    pub fn lineage(&self) -> Option<&Arc<str>> {
        self.lineage.as_ref()
    }

    /// The client sent a Close frame with 1000 or 1001: a deliberate goodbye.
    pub(crate) fn mark_clean_close(&self) {
        self.clean_close.store(true, Ordering::Relaxed);
    }

    pub(crate) fn closed_cleanly(&self) -> bool {
        self.clean_close.load(Ordering::Relaxed)
    }

    pub fn is_subscribed(&self, channel: &str) -> bool {
        self.state.lock().subscription(channel).is_some()
    }

    pub fn user_id(&self) -> Option<Arc<str>> {
        self.state.lock().user.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::Apps;
    use crate::hub::{Hub, HubSettings};

    fn test_connection(max_queue: usize) -> Connection {
        let hub = Hub::new(Apps::new(vec![App::default()]), HubSettings::default());
        Connection::new(hub.app("app-id").unwrap(), max_queue, None)
    }

    #[test]
    fn socket_ids_round_trip() {
        let id = SocketId::generate();
        let s = id.to_string();
        assert!(s.split_once('.').is_some());
        assert_eq!(SocketId::parse(&s), Some(id));
        assert_eq!(
            SocketId::parse("1234.1234"),
            Some(SocketId((1234 << 32) | 1234))
        );
        for bad in ["", "1", "1.", ".1", "a.b", "1.2.3", "-1.2", "99999999999.1"] {
            assert_eq!(SocketId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn heartbeat_pings_after_silence_then_gives_up() {
        let c = test_connection(2);
        let t0 = now_ms();
        assert_eq!(c.heartbeat(t0 + 500, 1000, 1000), Heartbeat::Alive);
        assert_eq!(c.heartbeat(t0 + 1000, 1000, 1000), Heartbeat::Ping);
        assert_eq!(c.heartbeat(t0 + 1500, 1000, 1000), Heartbeat::Alive);
        assert_eq!(c.heartbeat(t0 + 2000, 1000, 1000), Heartbeat::Dead);
        c.seen();
        let t1 = now_ms();
        assert_eq!(c.heartbeat(t1 + 999, 1000, 1000), Heartbeat::Alive);
    }

    #[tokio::test]
    async fn a_held_queue_is_written_once_released() {
        let c = Arc::new(test_connection(8));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        c.hold_until(Box::pin(async move {
            let _ = rx.await;
        }));
        c.push(Utf8Bytes::from_static("succeeded"));
        assert!(matches!(c.pop(), Err(None)), "held");
        tx.send(()).unwrap();
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert_eq!(c.pop().unwrap().as_str(), "succeeded");
    }

    #[test]
    fn overflow_marks_close_and_drops_queue() {
        let c = test_connection(2);
        c.push(Utf8Bytes::from_static("a"));
        c.push(Utf8Bytes::from_static("b"));
        c.push(Utf8Bytes::from_static("c"));
        assert_eq!(c.pop().unwrap_err().unwrap().code, ErrorCode::OverCapacity);
        assert_eq!(c.close_request().unwrap().code, ErrorCode::OverCapacity);
    }
}
