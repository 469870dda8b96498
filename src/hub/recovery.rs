//! Missed-message recovery for stock pusher-js / Echo clients: events published while a
//! client was cut off are replayed when it comes back, in order, at least once.
//!
//! - **Identity.** A client opts in with a lineage id in its WebSocket path
//!   (`/l/{lineage}/app/{key}`, set once per tab through `wsPath`). The lineage is trusted for
//!   nothing but recovery: every channel is authorized again on the new connection, and only
//!   channels it subscribes again are replayed.
//! - **Streams.** Each recovered channel keeps its recent API publishes with offsets (1, 2, …)
//!   and an epoch, a random number drawn whenever the buffer starts afresh; bounded by
//!   `recovery_max_events` per channel, `recovery_max_bytes` per app and `recovery_window`.
//! - **Cursors.** Each subscription of a lineage connection remembers the last offset the
//!   client acknowledged. Frames arrive in order, so a `pusher:pong` proves that everything
//!   queued before the `pusher:ping` it answers arrived: each ping records the channels' heads
//!   (an ack point); the matching pong moves the cursors there. While a cursor lags, the tick
//!   sends a ping at most every [`RECOVERY_PING_INTERVAL`].
//! - **Parking.** When a lineage connection ends without a clean close (no Close frame, a ping
//!   timeout, anything but 1000/1001), its cursors are parked for the window. A new
//!   connection of the lineage that subscribes a parked channel gets, under the channel's lock
//!   (so nothing is lost or doubled between replay and live), `subscription_succeeded` with
//!   `recovered` and `missed`, then the events after its cursor (not those its old socket was
//!   excluded from), then live events. A new connection of a lineage whose old connection is
//!   still registered (the server has not noticed the drop yet) takes the cursors over and the
//!   old connection is closed.

use super::channels::{forget, ChannelState};
use super::cluster::{Checkpoint, StreamPosition};
use super::connection::{CloseRequest, Connection, SocketId};
use super::registry::AppHub;
use super::Hub;
use crate::apps::App;
use crate::protocol::{self, ChannelInfo, ChannelKind, ErrorCode};
use axum::extract::ws::Utf8Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a lineage connection whose cursors lag is pinged for an acknowledgement.
pub(super) const RECOVERY_PING_INTERVAL: Duration = Duration::from_secs(3);

/// Is `name` a valid lineage id: 8-64 characters of `[A-Za-z0-9-]`.
pub fn valid_lineage(name: &str) -> bool {
    (8..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `*` matches any run of characters; everything else matches itself.
fn glob_match(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// Whether the app buffers this channel's events for recovery.
pub(super) fn recovers(app: &App, channel: &str) -> bool {
    app.recovery_window > 0
        && !channel.starts_with(protocol::channel::SERVER_TO_USER_PREFIX)
        && (app.recovery_channels.is_empty()
            || app.recovery_channels.iter().any(|p| glob_match(p, channel)))
}

struct Buffered {
    offset: u64,
    frame: Utf8Bytes,
    /// The socket the publisher excluded.
    except: Option<SocketId>,
    at: Instant,
}

/// One channel's recent API publishes.
pub(super) struct Stream {
    epoch: u64,
    head: u64,
    events: VecDeque<Buffered>,
    /// The stream (and so its epoch and offsets) outlives its subscribers until then: a
    /// client that dropped must find the same stream when it comes back within the window.
    keep_until: Instant,
}

impl Stream {
    /// A stream of this node's own (one node: this node numbers the channel's events).
    pub(super) fn new() -> Stream {
        Stream::at_epoch(rand::random::<u64>() | 1)
    }

    /// A stream whose epoch and offsets come from elsewhere (an adapter that
    /// [`sequences`](super::Adapter::sequences)): unknown (0) until the first event arrives.
    pub(super) fn at_epoch(epoch: u64) -> Stream {
        Stream {
            epoch,
            head: 0,
            events: VecDeque::new(),
            keep_until: Instant::now(),
        }
    }

    /// Forget what it holds and its epoch (an event reached subscribers unnumbered: the
    /// stream no longer runs through it). Returns the bytes freed.
    pub(super) fn reset(&mut self) -> usize {
        self.epoch = 0;
        self.head = 0;
        self.events.drain(..).map(|e| e.frame.len()).sum()
    }

    /// The last event this node saw of the channel.
    pub(super) fn position(&self) -> StreamPosition {
        StreamPosition {
            epoch: self.epoch,
            offset: self.head,
        }
    }

    /// The buffered events after `offset` (not those `old` was excluded from), when the
    /// buffer still holds all of them.
    pub(super) fn tail_after(&self, offset: u64, old: Option<SocketId>) -> Option<Vec<Utf8Bytes>> {
        let oldest = self.events.front().map_or(self.head + 1, |e| e.offset);
        if offset + 1 < oldest || offset > self.head {
            return None;
        }
        Some(
            self.events
                .iter()
                .filter(|e| e.offset > offset && (old.is_none() || e.except != old))
                .map(|e| e.frame.clone())
                .collect(),
        )
    }

    /// Nothing buffered and nobody can come back for it any more.
    pub(super) fn is_empty(&self) -> bool {
        self.events.is_empty() && self.keep_until <= Instant::now()
    }

    /// Keep the stream for another `window` (a lineage subscriber left, or an event came).
    pub(super) fn keep(&mut self, window: Duration) {
        self.keep_until = Instant::now() + window;
    }

    fn cursor(&self) -> Cursor {
        Cursor {
            epoch: self.epoch,
            acked: self.head,
        }
    }

    /// The events after `cursor` to replay to a lineage whose old socket was `old`, or `None`
    /// when the cursor cannot be honoured (other epoch, or fell out of the buffer).
    fn after(&self, cursor: Cursor, old: SocketId) -> Option<Vec<Utf8Bytes>> {
        if cursor.epoch != self.epoch {
            return None;
        }
        self.tail_after(cursor.acked, Some(old))
    }
}

#[cfg(test)]
impl Stream {
    pub(super) fn push_for_test(&mut self, offset: u64, text: &str) {
        self.head = offset;
        self.events.push_back(Buffered {
            offset,
            frame: Utf8Bytes::from(text.to_string()),
            except: None,
            at: Instant::now(),
        });
    }

    pub(super) fn drop_oldest_for_test(&mut self, n: usize) {
        self.events.drain(..n);
    }
}

/// Where a subscription's client is known to be: everything up to `acked` arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cursor {
    epoch: u64,
    acked: u64,
}

impl From<StreamPosition> for Cursor {
    fn from(p: StreamPosition) -> Cursor {
        Cursor {
            epoch: p.epoch,
            acked: p.offset,
        }
    }
}

impl From<Cursor> for StreamPosition {
    fn from(c: Cursor) -> StreamPosition {
        StreamPosition {
            epoch: c.epoch,
            offset: c.acked,
        }
    }
}

/// A ping's number and the channel positions its pong acknowledges.
type AckPoint = (u32, Vec<(Arc<str>, Cursor)>);

/// A lineage connection's recovery state (boxed in `ConnState`: other connections pay one
/// pointer for it).
#[derive(Debug, Default)]
pub struct LineageCursors {
    /// Per recovered channel it is subscribed to.
    pub(super) cursors: Vec<(Arc<str>, Cursor)>,
    /// Pings sent with the heads they will acknowledge, oldest first: `(ping number, heads)`.
    ack_points: VecDeque<AckPoint>,
    /// Pongs received.
    pongs: u32,
    last_ping: Option<Instant>,
    /// The cursors changed since they were last checkpointed (across nodes).
    dirty: bool,
}

/// The cursors of a lineage whose connection dropped, kept for the window.
struct Parked {
    old_socket: SocketId,
    cursors: HashMap<Arc<str>, Cursor>,
    expires: Instant,
}

/// An app's lineages: the live connection of each, and the parked ones.
#[derive(Default)]
pub(super) struct Lineages {
    live: HashMap<Arc<str>, Arc<Connection>>,
    parked: HashMap<Arc<str>, Parked>,
    /// Every buffered event of the app in publish order, for the app-wide byte cap:
    /// `(channel, epoch, offset, bytes, when)`; entries of events already gone are skipped.
    fifo: VecDeque<(Arc<str>, u64, u64, usize, Instant)>,
    bytes: usize,
}

/// What a lineage connection's subscription found when it subscribed.
pub(super) struct Replay {
    pub recovered: bool,
    pub frames: Vec<Utf8Bytes>,
}

impl AppHub {
    /// Buffer an API publish on a recovered channel (under the channel's lock), numbered by
    /// this node, or at `at` when an adapter numbered it for the whole cluster.
    pub(super) fn buffer(
        &self,
        app: &App,
        channel: &Arc<str>,
        state: &mut ChannelState,
        frame: &Utf8Bytes,
        except: Option<SocketId>,
        at: Option<StreamPosition>,
    ) {
        let stream = state.recovery.get_or_insert_with(|| {
            Box::new(match at {
                Some(_) => Stream::at_epoch(0),
                None => Stream::new(),
            })
        });
        let mut lineages = self.lineages.lock();
        let offset = match at {
            None => stream.head + 1,
            Some(at) if at.epoch == stream.epoch && at.offset <= stream.head => {
                return; // already here (never expected: each event arrives once)
            }
            Some(at) => {
                if at.epoch != stream.epoch || at.offset != stream.head + 1 {
                    // A new life of the stream, or events this node never got: what it
                    // holds no longer runs up to this event.
                    let freed: usize = stream.events.drain(..).map(|e| e.frame.len()).sum();
                    lineages.bytes = lineages.bytes.saturating_sub(freed);
                    stream.epoch = at.epoch;
                }
                at.offset
            }
        };
        stream.head = offset;
        stream.keep(Duration::from_secs(app.recovery_window));
        let now = Instant::now();
        stream.events.push_back(Buffered {
            offset,
            frame: frame.clone(),
            except,
            at: now,
        });
        while stream.events.len() > app.recovery_max_events.max(1) {
            if let Some(gone) = stream.events.pop_front() {
                lineages.bytes = lineages.bytes.saturating_sub(gone.frame.len());
            }
        }
        lineages.bytes += frame.len();
        lineages
            .fifo
            .push_back((channel.clone(), stream.epoch, offset, frame.len(), now));
    }

    /// The channel's stream lost its thread here (see [`Stream::reset`]).
    pub(super) fn reset_stream(&self, state: &mut ChannelState) {
        if let Some(stream) = state.recovery.as_mut() {
            let freed = stream.reset();
            let mut lineages = self.lineages.lock();
            lineages.bytes = lineages.bytes.saturating_sub(freed);
        }
    }

    /// Enforce the app-wide byte cap, oldest events first (outside any channel lock).
    pub(super) fn trim_recovery(&self, app: &App) {
        loop {
            let next = {
                let mut lineages = self.lineages.lock();
                if lineages.bytes <= app.recovery_max_bytes {
                    return;
                }
                match lineages.fifo.pop_front() {
                    Some(entry) => entry,
                    None => return,
                }
            };
            let (channel, epoch, offset, _, _) = next;
            let mut shard = self.shard(&channel).write();
            let Some(stream) = shard
                .get_mut(&*channel)
                .and_then(|s| s.recovery.as_mut())
                .filter(|s| s.epoch == epoch)
            else {
                continue;
            };
            let mut freed = 0;
            while stream.events.front().is_some_and(|e| e.offset <= offset) {
                freed += stream.events.pop_front().map_or(0, |e| e.frame.len());
            }
            drop(shard);
            let mut lineages = self.lineages.lock();
            lineages.bytes = lineages.bytes.saturating_sub(freed);
        }
    }

    /// Whether lineages live in the cluster (an adapter that numbers events for every node)
    /// rather than in this node's memory.
    pub(super) fn across_nodes(&self) -> bool {
        self.node.adapter().sequences()
    }

    /// A lineage connection arrived: take over the cursors of its predecessor if that one is
    /// still registered (and close it), and remember it as the lineage's live connection.
    pub(super) fn lineage_connected(&self, conn: &Arc<Connection>) {
        let Some(lineage) = conn.lineage() else {
            return;
        };
        let old = self
            .lineages
            .lock()
            .live
            .insert(lineage.clone(), conn.clone());
        if let Some(old) = old {
            old.superseded.store(true, Ordering::Relaxed);
            if self.across_nodes() {
                // Its freshest cursors go where the new connection will claim them.
                self.checkpoint(&old, Some(false));
            } else {
                self.park(&old, lineage);
            }
            old.close(CloseRequest {
                code: ErrorCode::ReconnectImmediately,
                message: "Replaced by a new connection of the same lineage",
                send_error: false,
            });
        }
    }

    /// Another node's connection claimed the lineage of this node's connection `socket`:
    /// close it without keeping its place (the claimer has its cursors).
    pub(super) fn superseded(&self, socket: SocketId) {
        let Some(conn) = self.connections.lock().get(&socket).cloned() else {
            return;
        };
        conn.superseded.store(true, Ordering::Relaxed);
        conn.close(CloseRequest {
            code: ErrorCode::ReconnectImmediately,
            message: "Replaced by a new connection of the same lineage",
            send_error: false,
        });
    }

    /// A lineage connection went away: park its cursors unless it closed cleanly (or was
    /// replaced by a newer connection of its lineage, which took them already).
    pub(super) fn lineage_disconnected(
        &self,
        conn: &Arc<Connection>,
        cursors: Option<Box<LineageCursors>>,
    ) {
        let Some(lineage) = conn.lineage() else {
            return;
        };
        {
            let mut lineages = self.lineages.lock();
            if lineages
                .live
                .get(lineage)
                .is_some_and(|c| c.socket_id == conn.socket_id)
            {
                lineages.live.remove(lineage);
            }
        }
        let cursors = cursors.map(|c| c.cursors).unwrap_or_default();
        if conn.superseded.load(Ordering::Relaxed) {
            return;
        }
        if self.across_nodes() {
            // A drop keeps the lineage's record (even with no cursor of its own, the previous
            // connection's unclaimed ones stay for the next); a clean close forgets it.
            self.send_checkpoint(conn, lineage, cursors, Some(conn.closed_cleanly()));
            return;
        }
        if conn.closed_cleanly() || cursors.is_empty() {
            return;
        }
        self.park_cursors(conn, lineage, cursors);
    }

    /// Hand a lineage connection's cursors to the adapter (`ended`: see [`Checkpoint`]).
    pub(super) fn checkpoint(&self, conn: &Connection, ended: Option<bool>) {
        let Some(lineage) = conn.lineage() else {
            return;
        };
        let cursors = {
            let mut state = conn.state.lock();
            match state.lineage.as_mut() {
                Some(l) => {
                    l.dirty = false;
                    l.cursors.clone()
                }
                None => Vec::new(),
            }
        };
        self.send_checkpoint(conn, lineage, cursors, ended);
    }

    fn send_checkpoint(
        &self,
        conn: &Connection,
        lineage: &Arc<str>,
        cursors: Vec<(Arc<str>, Cursor)>,
        ended: Option<bool>,
    ) {
        self.node.adapter().checkpoint(Checkpoint {
            app_id: self.id.clone(),
            lineage: lineage.clone(),
            socket: conn.socket_id,
            cursors: cursors.into_iter().map(|(c, k)| (c, k.into())).collect(),
            ended,
            window: Duration::from_secs(self.app().recovery_window),
        });
    }

    fn park_cursors(
        &self,
        conn: &Connection,
        lineage: &Arc<str>,
        cursors: Vec<(Arc<str>, Cursor)>,
    ) {
        let window = Duration::from_secs(self.app().recovery_window);
        self.lineages.lock().parked.insert(
            lineage.clone(),
            Parked {
                old_socket: conn.socket_id,
                cursors: cursors.into_iter().collect(),
                expires: Instant::now() + window,
            },
        );
    }

    /// Park the cursors of a live connection that is being replaced.
    fn park(&self, conn: &Arc<Connection>, lineage: &Arc<str>) {
        let cursors = conn
            .state
            .lock()
            .lineage
            .as_ref()
            .map(|l| l.cursors.clone())
            .unwrap_or_default();
        if !cursors.is_empty() {
            self.park_cursors(conn, lineage, cursors);
        }
    }

    /// A lineage connection subscribes a recovered channel (under the channel's lock): its
    /// cursor from now on, and what to replay. `None` when recovery does not apply.
    pub(super) fn recover(
        &self,
        conn: &Connection,
        channel: &Arc<str>,
        state: &mut ChannelState,
    ) -> Option<(Cursor, Replay)> {
        let lineage = conn.lineage()?;
        let stream = state
            .recovery
            .get_or_insert_with(|| Box::new(Stream::new()));
        let mut lineages = self.lineages.lock();
        let found = lineages.parked.get_mut(lineage).and_then(|p| {
            let cursor = p.cursors.remove(channel)?;
            Some((cursor, p.old_socket, p.expires))
        });
        if lineages
            .parked
            .get(lineage)
            .is_some_and(|p| p.cursors.is_empty())
        {
            lineages.parked.remove(lineage);
        }
        drop(lineages);
        let replay = found
            .filter(|(_, _, expires)| *expires > Instant::now())
            .and_then(|(cursor, old, _)| Some((cursor, stream.after(cursor, old)?)));
        Some(match replay {
            // The cursor stays where the old connection was acknowledged: if this one drops
            // before its first pong, the same events are replayed again (never lost).
            Some((cursor, frames)) => (
                cursor,
                Replay {
                    recovered: true,
                    frames,
                },
            ),
            None => (
                stream.cursor(),
                Replay {
                    recovered: false,
                    frames: Vec::new(),
                },
            ),
        })
    }

    /// The tick's recovery work: expire parked lineages and old events, and ping lineage
    /// connections whose cursors lag.
    pub(super) fn recovery_tick(&self) {
        let app = self.app();
        let now = Instant::now();
        let window = Duration::from_secs(app.recovery_window);
        let live: Vec<Arc<Connection>> = {
            let mut lineages = self.lineages.lock();
            lineages.parked.retain(|_, p| p.expires > now);
            lineages.live.values().cloned().collect()
        };
        self.expire_events(now, window);
        let across = self.across_nodes();
        for conn in live {
            self.ping_if_lagging(&conn, now);
            let dirty = conn.state.lock().lineage.as_ref().is_some_and(|l| l.dirty);
            if across && dirty {
                self.checkpoint(&conn, None);
            }
        }
    }

    fn expire_events(&self, now: Instant, window: Duration) {
        let mut expired: Vec<Arc<str>> = Vec::new();
        {
            let mut lineages = self.lineages.lock();
            while lineages
                .fifo
                .front()
                .is_some_and(|(_, _, _, _, at)| now.duration_since(*at) > window)
            {
                if let Some((channel, ..)) = lineages.fifo.pop_front() {
                    if expired.last() != Some(&channel) {
                        expired.push(channel);
                    }
                }
            }
        }
        for channel in expired {
            let mut shard = self.shard(&channel).write();
            let mut freed = 0;
            if let Some(state) = shard.get_mut(&*channel) {
                if let Some(stream) = state.recovery.as_mut() {
                    while stream
                        .events
                        .front()
                        .is_some_and(|e| now.duration_since(e.at) > window)
                    {
                        freed += stream.events.pop_front().map_or(0, |e| e.frame.len());
                    }
                }
                if state.is_empty() {
                    forget(&mut shard, &channel);
                }
            }
            drop(shard);
            let mut lineages = self.lineages.lock();
            lineages.bytes = lineages.bytes.saturating_sub(freed);
        }
    }

    /// Ping a lineage connection whose cursors lag behind their channels' heads, recording
    /// the heads as the ack point the answering pong confirms.
    fn ping_if_lagging(&self, conn: &Arc<Connection>, now: Instant) {
        let channels: Vec<(Arc<str>, Cursor)> = {
            let state = conn.state.lock();
            let Some(lineage) = state.lineage.as_ref() else {
                return;
            };
            if lineage
                .last_ping
                .is_some_and(|t| now.duration_since(t) < RECOVERY_PING_INTERVAL)
            {
                return;
            }
            lineage.cursors.clone()
        };
        let mut heads = Vec::new();
        for (channel, cursor) in channels {
            let shard = self.shard(&channel).read();
            if let Some(stream) = shard.get(&*channel).and_then(|s| s.recovery.as_ref()) {
                // A cursor of another (or an unknown) epoch lags too: the stream started
                // afresh under it, and only an acknowledgement moves it into the new one.
                let lags = stream.epoch != cursor.epoch || stream.head > cursor.acked;
                if stream.epoch != 0 && lags {
                    heads.push((channel.clone(), Cursor::from(stream.position())));
                }
            }
        }
        if heads.is_empty() {
            return;
        }
        let mut state = conn.state.lock();
        let lineage = state.lineage.get_or_insert_with(Box::default);
        lineage.last_ping = Some(now);
        lineage.ack_points.push_back((conn.ping(), heads));
    }
}

impl Hub {
    /// The client answered a `pusher:ping`: move its cursors to the ack point of that ping.
    pub(crate) fn pong(&self, conn: &Connection) {
        if conn.lineage().is_none() {
            return;
        }
        let mut state = conn.state.lock();
        let Some(lineage) = state.lineage.as_mut() else {
            return;
        };
        lineage.pongs = lineage.pongs.wrapping_add(1);
        while lineage
            .ack_points
            .front()
            .is_some_and(|(seq, _)| *seq <= lineage.pongs)
        {
            let Some((_, heads)) = lineage.ack_points.pop_front() else {
                break;
            };
            for (channel, head) in heads {
                if let Some((_, cursor)) = lineage.cursors.iter_mut().find(|(c, _)| *c == channel) {
                    if cursor.epoch != head.epoch || cursor.acked < head.acked {
                        *cursor = head;
                        lineage.dirty = true;
                    }
                }
            }
        }
    }
}

/// Record a subscription's cursor in its connection's lineage state.
pub(super) fn track(lineage: &mut Option<Box<LineageCursors>>, channel: Arc<str>, cursor: Cursor) {
    let lineage = lineage.get_or_insert_with(Box::default);
    lineage.cursors.retain(|(c, _)| *c != channel);
    lineage.cursors.push((channel, cursor));
    lineage.dirty = true;
}

/// Forget a subscription's cursor (it left the channel).
pub(super) fn untrack(lineage: &mut Option<Box<LineageCursors>>, channel: &str) {
    if let Some(l) = lineage.as_mut() {
        l.cursors.retain(|(c, _)| &**c != channel);
        l.dirty = true;
    }
}

/// `subscription_succeeded` data for a lineage subscription of a public or private channel.
pub(super) fn succeeded_data(channel: &str, data: String, replay: &Replay) -> String {
    if ChannelInfo::of(channel).kind == ChannelKind::Presence {
        return data;
    }
    format!(
        r#"{{"recovered":{},"missed":{}}}"#,
        replay.recovered,
        replay.frames.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::Apps;
    use crate::hub::HubSettings;

    #[test]
    fn lineage_ids() {
        assert!(valid_lineage("0123abcd"));
        assert!(valid_lineage(&"a".repeat(64)));
        assert!(valid_lineage("9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"));
        for bad in [
            "short",
            "",
            &"a".repeat(65),
            "has space1",
            "under_score",
            "ümlaut12",
        ] {
            assert!(!valid_lineage(bad), "{bad}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", "anything"));
        assert!(glob_match("orders.*", "orders.1"));
        assert!(glob_match("private-*-feed", "private-user-feed"));
        assert!(!glob_match("private-*-feed", "private-user-feeds"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
    }

    fn recovering_hub(window: u64) -> (Arc<Hub>, App) {
        let app = App {
            recovery_window: window,
            ..App::new("a", "k", "s")
        };
        (
            Hub::new(Apps::new(vec![app.clone()]), HubSettings::default()),
            app,
        )
    }

    fn frames(conn: &Connection) -> Vec<String> {
        std::iter::from_fn(|| conn.pop().ok())
            .map(|f| f.to_string())
            .collect()
    }

    fn events_named(frames: &[String]) -> Vec<String> {
        frames
            .iter()
            .filter_map(|f| {
                let v: serde_json::Value = serde_json::from_str(f).ok()?;
                (v["event"] == "e").then(|| v["data"].as_str().unwrap_or("").to_string())
            })
            .collect()
    }

    #[test]
    fn a_dropped_lineage_gets_what_it_missed_after_its_last_pong() {
        let (hub, app) = recovering_hub(60);
        let lineage: Arc<str> = Arc::from("lineage-0001");
        let c1 = hub.connect_lineage(&app, Some(lineage.clone())).unwrap();
        hub.subscribe(&c1, "news", None).unwrap();
        let first = frames(&c1);
        assert!(first[0].contains(r#"\"recovered\":false"#), "{first:?}");
        hub.publish("a", &["news"], "e", "1", None);
        hub.publish("a", &["news"], "e", "2", None);
        hub.tick(); // pings: the heads (2) are the ack point
        let got = frames(&c1);
        assert_eq!(events_named(&got), ["1", "2"]);
        assert!(got.last().unwrap().contains("pusher:ping"));
        hub.pong(&c1);
        hub.publish("a", &["news"], "e", "3", None);
        hub.publish("a", &["news"], "e", "4", Some(c1.socket_id)); // c1 excluded
        hub.publish("a", &["news"], "e", "5", None);
        hub.disconnect(&c1); // no clean close: parked

        let c2 = hub.connect_lineage(&app, Some(lineage.clone())).unwrap();
        hub.subscribe(&c2, "news", None).unwrap();
        let got = frames(&c2);
        assert!(
            got[0].contains(r#"\"recovered\":true,\"missed\":2"#),
            "{got:?}"
        );
        assert_eq!(events_named(&got), ["3", "5"]);
        hub.publish("a", &["news"], "e", "6", None);
        assert_eq!(events_named(&frames(&c2)), ["6"], "live after replay");
    }

    #[test]
    fn a_clean_close_a_new_lineage_and_an_expired_window_recover_nothing() {
        let (hub, app) = recovering_hub(60);
        let l: Arc<str> = Arc::from("lineage-0002");
        let c1 = hub.connect_lineage(&app, Some(l.clone())).unwrap();
        hub.subscribe(&c1, "news", None).unwrap();
        c1.mark_clean_close();
        hub.disconnect(&c1);
        hub.publish("a", &["news"], "e", "1", None);
        let c2 = hub.connect_lineage(&app, Some(l.clone())).unwrap();
        hub.subscribe(&c2, "news", None).unwrap();
        let got = frames(&c2);
        assert!(
            got[0].contains(r#"\"recovered\":false,\"missed\":0"#),
            "{got:?}"
        );

        let other = hub
            .connect_lineage(&app, Some(Arc::from("lineage-other")))
            .unwrap();
        hub.subscribe(&other, "news", None).unwrap();
        assert!(frames(&other)[0].contains(r#"\"recovered\":false"#));

        let (hub, app) = recovering_hub(1);
        let c1 = hub.connect_lineage(&app, Some(l.clone())).unwrap();
        hub.subscribe(&c1, "news", None).unwrap();
        hub.disconnect(&c1);
        hub.publish("a", &["news"], "e", "1", None);
        std::thread::sleep(Duration::from_millis(1100));
        let c2 = hub.connect_lineage(&app, Some(l)).unwrap();
        hub.subscribe(&c2, "news", None).unwrap();
        assert!(frames(&c2)[0].contains(r#"\"recovered\":false"#));
    }

    #[test]
    fn a_new_connection_takes_over_a_live_one_of_its_lineage() {
        let (hub, app) = recovering_hub(60);
        let l: Arc<str> = Arc::from("lineage-0003");
        let c1 = hub.connect_lineage(&app, Some(l.clone())).unwrap();
        hub.subscribe(&c1, "news", None).unwrap();
        hub.publish("a", &["news"], "e", "1", None);
        let c2 = hub.connect_lineage(&app, Some(l.clone())).unwrap();
        assert!(c1.close_request().is_some(), "the old connection is closed");
        hub.subscribe(&c2, "news", None).unwrap();
        assert_eq!(events_named(&frames(&c2)), ["1"]);
        hub.disconnect(&c1); // the replaced one leaves no stale cursors behind
        assert!(hub.app("a").unwrap().lineages.lock().parked.is_empty());
        // c2 never answered a ping: a third connection replays the same event again.
        let c3 = hub.connect_lineage(&app, Some(l)).unwrap();
        hub.subscribe(&c3, "news", None).unwrap();
        assert_eq!(events_named(&frames(&c3)), ["1"]);
    }

    #[test]
    fn buffers_are_capped_by_count_and_bytes() {
        let app = App {
            recovery_window: 60,
            recovery_max_events: 3,
            recovery_max_bytes: 400,
            recovery_channels: vec!["rec-*".into()],
            ..App::new("a", "k", "s")
        };
        let hub = Hub::new(Apps::new(vec![app.clone()]), HubSettings::default());
        let l: Arc<str> = Arc::from("lineage-0004");
        let c1 = hub.connect_lineage(&app, Some(l.clone())).unwrap();
        hub.subscribe(&c1, "rec-a", None).unwrap();
        hub.subscribe(&c1, "plain", None).unwrap();
        assert!(frames(&c1)[1].contains(r#"{}"#), "plain is not recovered");
        hub.disconnect(&c1);
        for i in 0..5 {
            hub.publish("a", &["rec-a"], "e", &i.to_string(), None);
        }
        let c2 = hub.connect_lineage(&app, Some(l)).unwrap();
        hub.subscribe(&c2, "rec-a", None).unwrap();
        // Five published, three kept: the cursor fell out of the buffer.
        assert!(frames(&c2)[0].contains(r#"\"recovered\":false"#));
        let big = "x".repeat(150);
        for _ in 0..4 {
            hub.publish("a", &["rec-a"], "e", &big, None);
        }
        assert!(hub.app("a").unwrap().lineages.lock().bytes <= 400);
    }
}
