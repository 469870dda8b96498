//! Missed-message recovery across nodes: a lineage subscription whose missed events live in
//! the cluster (an adapter that [`sequences`](super::Adapter::sequences)), not in this node's
//! memory.
//!
//! On such an adapter every API publish to a recovered channel gets the channel's next global
//! offset and reaches every node (the publishing one included) in that order, so each node's
//! [`Stream`](super::recovery) of the channel tracks the same offsets. A lineage connection's
//! subscription then cannot be answered at once: the adapter must claim the lineage and read
//! what its previous connection (on any node) missed. Meanwhile the subscriber is *pending*:
//! it counts as subscribed (presence, counts, occupancy), but what the channel fans out to it
//! is held aside. When the answer comes, under the channel's lock:
//!
//! 1. `subscription_succeeded` (with `recovered` and `missed`), then the missed events the
//!    adapter read (up to its head `R`), then those this node received after `R` (from its own
//!    buffer), then what was held aside and is newer still; then it is live;
//! 2. events up to `R` that had not reached this node yet will arrive later: the subscriber
//!    skips them (it was replayed them), until the node has passed `R`.
//!
//! So replay and live neither overlap nor leave a gap.

use super::channels::{existing, ChannelState};
use super::cluster::{RecoverAnswer, RecoverRequest, StreamPosition};
use super::connection::{Connection, SocketId};
use super::recovery::{self, Cursor, Stream};
use super::registry::AppHub;
use crate::protocol::{self, ChannelInfo};
use axum::extract::ws::Utf8Bytes;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A channel's subscribers that are waiting for their replay, or skipping what they were
/// replayed. Boxed behind a lock in [`ChannelState`] (a publish holds only the shard's read
/// lock); channels without any pay one pointer.
#[derive(Default)]
pub(super) struct Replaying {
    pending: Vec<Pending>,
    /// `(subscriber, offset)`: skip events up to `offset`, they were replayed to it.
    skips: Vec<(SocketId, u64)>,
}

struct Pending {
    socket: SocketId,
    /// Which subscription of this socket (an unsubscribe and a new subscribe make another).
    generation: u64,
    /// `subscription_succeeded` data as of joining (a presence channel's members).
    data: String,
    /// What the channel sent it meanwhile, with the offset of sequenced events.
    held: Vec<(Option<u64>, Utf8Bytes)>,
}

impl Replaying {
    fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.skips.is_empty()
    }
}

impl ChannelState {
    /// Fan-out when some subscribers are pending or skipping (see [`ChannelState::fan_out`]).
    pub(super) fn fan_out_replaying(
        &self,
        replaying: &Mutex<Replaying>,
        frame: &Utf8Bytes,
        except: Option<SocketId>,
        offset: Option<u64>,
    ) -> usize {
        let mut r = replaying.lock();
        let mut n = 0;
        for (id, conn) in &self.subscribers {
            if Some(*id) == except {
                continue;
            }
            if let Some(p) = r.pending.iter_mut().find(|p| p.socket == *id) {
                if p.held.len() >= conn.max_queue() {
                    conn.overflow();
                } else {
                    p.held.push((offset, frame.clone()));
                }
                n += 1;
                continue;
            }
            if let Some(o) = offset {
                if r.skips.iter().any(|(s, upto)| s == id && o <= *upto) {
                    continue;
                }
            }
            conn.push(frame.clone());
            n += 1;
        }
        if let Some(o) = offset {
            r.skips.retain(|(_, upto)| *upto > o);
        }
        n
    }

    /// Forget `socket`'s pending replay or skip (it left the channel).
    pub(super) fn stop_replaying(&mut self, socket: SocketId) {
        if let Some(r) = self.replaying.as_mut() {
            let r = r.get_mut();
            r.pending.retain(|p| p.socket != socket);
            r.skips.retain(|(s, _)| *s != socket);
            if r.is_empty() {
                self.replaying = None;
            }
        }
    }
}

/// Numbers each pending subscription, so a late answer never completes a newer one.
static GENERATION: AtomicU64 = AtomicU64::new(1);

impl AppHub {
    /// Whether `conn`'s subscription to `channel` is answered by the cluster (see the module
    /// docs) rather than at once.
    pub(super) fn replays_across_nodes(&self, conn: &Connection, channel: &str) -> bool {
        conn.lineage().is_some() && recovery::recovers(&self.app(), channel) && self.across_nodes()
    }

    /// Make the (already registered) subscriber pending, under the channel's lock; `data` is
    /// its `subscription_succeeded` data. Returns the subscription's generation.
    pub(super) fn begin_replay(
        &self,
        conn: &Connection,
        state: &mut ChannelState,
        data: String,
    ) -> u64 {
        let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
        let r = state
            .replaying
            .get_or_insert_with(|| Box::new(Mutex::new(Replaying::default())))
            .get_mut();
        r.skips.retain(|(s, _)| *s != conn.socket_id);
        r.pending.push(Pending {
            socket: conn.socket_id,
            generation,
            data,
            held: Vec::new(),
        });
        generation
    }

    /// Ask the adapter (once what other nodes publish to the channel reaches this node) and
    /// complete the subscription with its answer. Outside a runtime it completes at once,
    /// with nothing recovered.
    pub(super) fn request_replay(
        self: &Arc<Self>,
        conn: &Arc<Connection>,
        channel: Arc<str>,
        generation: u64,
    ) {
        let Some(lineage) = conn.lineage().cloned() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.finish_replay(conn, &channel, generation, RecoverAnswer::default());
            return;
        };
        let app = self.app();
        let adapter = self.node.adapter().clone();
        let request = RecoverRequest {
            app_id: self.id.clone(),
            lineage,
            socket: conn.socket_id,
            channel: channel.clone(),
            max_events: app.recovery_max_events.max(1),
            window: Duration::from_secs(app.recovery_window),
        };
        let ready = adapter.ready(&self.id, &channel);
        let (this, conn) = (self.clone(), conn.clone());
        runtime.spawn(async move {
            if let Some(ready) = ready {
                ready.await;
            }
            let answer = adapter.recover(request).await;
            this.finish_replay(&conn, &channel, generation, answer);
        });
    }

    /// The adapter answered: replay and go live (see the module docs).
    pub(super) fn finish_replay(
        &self,
        conn: &Arc<Connection>,
        channel: &Arc<str>,
        generation: u64,
        answer: RecoverAnswer,
    ) {
        let app = self.app();
        let cursor = {
            let mut shard = self.shard(channel).write();
            let Some((name, state)) = existing(&mut shard, channel) else {
                return;
            };
            let Some(pending) = take_pending(state, conn.socket_id, generation) else {
                return;
            };
            let stream = state
                .recovery
                .get_or_insert_with(|| Box::new(Stream::at_epoch(0)));
            let plan = plan(stream, &answer);
            let missed = plan.frames.len();
            let data = if ChannelInfo::of(channel).kind == protocol::ChannelKind::Presence {
                pending.data
            } else {
                format!(r#"{{"recovered":{},"missed":{missed}}}"#, plan.recovered)
            };
            conn.push(protocol::subscription_succeeded(channel, &data));
            for frame in plan.frames {
                conn.push(frame);
            }
            for (offset, frame) in pending.held {
                if offset.is_none_or(|o| o > plan.cursor.offset) {
                    conn.push(frame);
                }
            }
            if let Some(upto) = plan.skip {
                let r = state
                    .replaying
                    .get_or_insert_with(|| Box::new(Mutex::new(Replaying::default())))
                    .get_mut();
                r.skips.push((conn.socket_id, upto));
            }
            if state
                .replaying
                .as_mut()
                .is_some_and(|r| r.get_mut().is_empty())
            {
                state.replaying = None;
            }
            if ChannelInfo::of(channel).cache {
                self.push_cache(conn, &name, state);
            }
            stream_keep(state, app.recovery_window);
            Cursor::from(plan.cursor)
        };
        let mut state = conn.state.lock();
        if state.subscription(channel).is_some() {
            recovery::track(&mut state.lineage, channel.clone(), cursor);
        }
        drop(state);
        // The first cursor is stored at once: a drop right after this is recovered too.
        self.checkpoint(conn, None);
    }
}

fn stream_keep(state: &mut ChannelState, window: u64) {
    if let Some(stream) = state.recovery.as_mut() {
        stream.keep(Duration::from_secs(window));
    }
}

fn take_pending(state: &mut ChannelState, socket: SocketId, generation: u64) -> Option<Pending> {
    let r = state.replaying.as_mut()?.get_mut();
    let i = r
        .pending
        .iter()
        .position(|p| p.socket == socket && p.generation == generation)?;
    Some(r.pending.swap_remove(i))
}

/// What a pending subscriber is sent, where its cursor starts, and what it skips.
struct Plan {
    recovered: bool,
    frames: Vec<Utf8Bytes>,
    cursor: StreamPosition,
    /// Events up to this offset may still arrive here live: the subscriber has them.
    skip: Option<u64>,
}

/// Merge the adapter's answer with what this node's buffer holds (`stream`).
fn plan(stream: &Stream, answer: &RecoverAnswer) -> Plan {
    let local = stream.position();
    // Where a subscription that recovers nothing starts: everything after it is live here.
    let fresh = match answer.head {
        Some(head) if head.epoch == local.epoch || local.epoch == 0 => StreamPosition {
            epoch: head.epoch,
            offset: if head.epoch == local.epoch {
                head.offset.max(local.offset)
            } else {
                head.offset
            },
        },
        Some(head) => head,
        // The cluster could not be asked: only this node's view, if it has one; otherwise an
        // epoch no stream has, so a later drop recovers nothing rather than something stale.
        None if local.epoch != 0 => local,
        None => StreamPosition {
            epoch: u64::MAX,
            offset: 0,
        },
    };
    let nothing = Plan {
        recovered: false,
        frames: Vec::new(),
        cursor: fresh,
        skip: None,
    };
    let (Some(events), Some(head)) = (&answer.missed, answer.head) else {
        return nothing;
    };
    let mut frames: Vec<Utf8Bytes> = events
        .iter()
        .filter(|e| answer.old_socket.is_none() || e.except != answer.old_socket)
        .map(|e| e.frame.clone())
        .collect();
    if local.epoch == head.epoch && local.offset >= head.offset {
        // This node is at or past what was read: the rest comes from its own buffer.
        match stream.tail_after(head.offset, answer.old_socket) {
            Some(tail) => frames.extend(tail),
            None => return nothing,
        }
        Plan {
            recovered: true,
            frames,
            cursor: local,
            skip: None,
        }
    } else {
        Plan {
            recovered: true,
            frames,
            cursor: head,
            skip: Some(head.offset),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::cluster::StoredEvent;

    fn stream_with(epoch: u64, offsets: std::ops::RangeInclusive<u64>) -> Stream {
        let mut s = Stream::at_epoch(epoch);
        for o in offsets {
            s.push_for_test(o, &format!("local-{o}"));
        }
        s
    }

    fn answer(epoch: u64, from: u64, to: u64) -> RecoverAnswer {
        RecoverAnswer {
            old_socket: Some(SocketId(9)),
            missed: Some(
                (from..=to)
                    .map(|o| StoredEvent {
                        offset: o,
                        frame: Utf8Bytes::from(format!("read-{o}")),
                        except: (o == from + 1).then_some(SocketId(9)),
                    })
                    .collect(),
            ),
            head: Some(StreamPosition { epoch, offset: to }),
        }
    }

    fn texts(p: &Plan) -> Vec<String> {
        p.frames.iter().map(|f| f.to_string()).collect()
    }

    #[test]
    fn a_node_behind_the_read_skips_what_was_replayed() {
        let p = plan(&stream_with(7, 1..=3), &answer(7, 4, 6));
        assert!(p.recovered);
        // 5 was published excluding the old socket: not replayed.
        assert_eq!(texts(&p), ["read-4", "read-6"]);
        assert_eq!(
            p.cursor,
            StreamPosition {
                epoch: 7,
                offset: 6
            }
        );
        assert_eq!(p.skip, Some(6));
    }

    #[test]
    fn a_node_past_the_read_adds_its_own_tail() {
        let p = plan(&stream_with(7, 1..=8), &answer(7, 4, 6));
        assert_eq!(texts(&p), ["read-4", "read-6", "local-7", "local-8"]);
        assert_eq!(
            p.cursor,
            StreamPosition {
                epoch: 7,
                offset: 8
            }
        );
        assert_eq!(p.skip, None);
    }

    #[test]
    fn a_tail_the_buffer_lost_recovers_nothing() {
        let mut s = stream_with(7, 1..=8);
        s.drop_oldest_for_test(7); // holds only 8
        let p = plan(&s, &answer(7, 4, 6));
        assert!(!p.recovered);
        assert!(p.frames.is_empty());
        assert_eq!(
            p.cursor,
            StreamPosition {
                epoch: 7,
                offset: 8
            }
        );
    }

    #[test]
    fn nothing_to_recover_starts_at_the_newest_known_position() {
        let none = |head| RecoverAnswer {
            old_socket: None,
            missed: None,
            head,
        };
        let at = |epoch, offset| StreamPosition { epoch, offset };
        // Same epoch: the further of the two.
        let p = plan(&stream_with(7, 1..=3), &none(Some(at(7, 5))));
        assert_eq!((p.recovered, p.cursor), (false, at(7, 5)));
        let p = plan(&stream_with(7, 1..=9), &none(Some(at(7, 5))));
        assert_eq!(p.cursor, at(7, 9));
        // This node knows nothing yet: the cluster's head.
        let p = plan(&Stream::at_epoch(0), &none(Some(at(7, 5))));
        assert_eq!(p.cursor, at(7, 5));
        // No stream anywhere: from its first event, whichever epoch it gets.
        let p = plan(&Stream::at_epoch(0), &none(Some(at(0, 0))));
        assert_eq!(p.cursor, at(0, 0));
        // The cluster did not answer: this node's view, or nothing recoverable.
        let p = plan(&stream_with(7, 1..=2), &none(None));
        assert_eq!(p.cursor, at(7, 2));
        let p = plan(&Stream::at_epoch(0), &none(None));
        assert_eq!(p.cursor.epoch, u64::MAX);
    }
}
