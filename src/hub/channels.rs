//! Channels: subscribe, leave, publish, and the one fan-out every frame to subscribers goes
//! through.
//!
//! A channel exists while it has subscribers, a live cached event, or presence members some
//! node reports. Frames a subscriber must see in order (`subscription_succeeded`, a cache
//! channel's replay, `member_added`) are queued under the channel's shard lock, so no event
//! of the channel can overtake them; the lifecycle events of a channel are emitted under the
//! same lock, so observers see them in the order they happened.

use super::cluster::{ClusterEvent, Sequence, StreamPosition};
use super::connection::{Connection, SocketId, Subscription};
use super::events::{HubEvent, MemberChange};
use super::presence::Presence;
use super::recovery::{self, Stream};
use super::registry::AppHub;
use super::replay::Replaying;
use super::sparse::shrink_if_sparse;
use super::Hub;
use crate::apps::App;
use crate::protocol::{self, channel::SERVER_TO_USER_PREFIX, ChannelInfo, ChannelKind, MemberData};
use axum::extract::ws::Utf8Bytes;
use indexmap::IndexMap;
use parking_lot::{Mutex, RwLock};
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Channels above this many subscribers get `subscription_count` at most every 5 s (Pusher).
const SUBSCRIPTION_COUNT_THROTTLE_ABOVE: usize = 100;
pub(super) const SUBSCRIPTION_COUNT_INTERVAL: Duration = Duration::from_secs(5);

pub(super) type Shard = RwLock<HashMap<Arc<str>, ChannelState>>;

/// One channel of one app on this node.
pub(super) struct ChannelState {
    pub(super) subscribers: IndexMap<SocketId, Arc<Connection>>,
    pub(super) presence: Option<Presence>,
    /// Cache channels: the last published frame and when it expires.
    pub(super) cache: Option<(Utf8Bytes, Instant)>,
    /// `subscription_count` throttling for large channels: when it was last sent.
    pub(super) count_sent: Option<Instant>,
    pub(super) count_dirty: bool,
    /// Recovered channels: recent API publishes with their offsets.
    pub(super) recovery: Option<Box<Stream>>,
    /// Lineage subscribers waiting for (or just past) a replay from the cluster
    /// (`replay.rs`); `None` nearly always.
    pub(super) replaying: Option<Box<Mutex<Replaying>>>,
}

impl ChannelState {
    fn new(kind: ChannelKind) -> Self {
        ChannelState {
            subscribers: IndexMap::new(),
            presence: (kind == ChannelKind::Presence).then(Presence::default),
            cache: None,
            count_sent: None,
            count_dirty: false,
            recovery: None,
            replaying: None,
        }
    }

    pub(super) fn live_cache(&self) -> Option<&Utf8Bytes> {
        self.cache
            .as_ref()
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(frame, _)| frame)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.subscribers.is_empty()
            && self.live_cache().is_none()
            && self.presence.as_ref().is_none_or(Presence::is_empty)
            && self.recovery.as_ref().is_none_or(|s| s.is_empty())
    }

    /// Queue `frame` for every subscriber but `except`; how many got it. Every frame that
    /// reaches a channel's subscribers goes through here.
    pub(super) fn fan_out(&self, frame: &Utf8Bytes, except: Option<SocketId>) -> usize {
        self.fan_out_at(frame, except, None)
    }

    /// [`fan_out`](Self::fan_out) of an event at `offset` of the channel's stream (an
    /// event numbered for the whole cluster).
    pub(super) fn fan_out_at(
        &self,
        frame: &Utf8Bytes,
        except: Option<SocketId>,
        offset: Option<u64>,
    ) -> usize {
        if let Some(replaying) = &self.replaying {
            return self.fan_out_replaying(replaying, frame, except, offset);
        }
        let mut n = 0;
        for (id, conn) in &self.subscribers {
            if Some(*id) != except {
                conn.push(frame.clone());
                n += 1;
            }
        }
        n
    }

    /// Send `pusher_internal:subscription_count` to every subscriber now.
    pub(super) fn send_subscription_count(&mut self, channel: &str) {
        self.fan_out(
            &protocol::subscription_count(channel, self.subscribers.len()),
            None,
        );
        self.count_sent = Some(Instant::now());
        self.count_dirty = false;
    }
}

/// The channel's state and its shared name, created when missing.
pub(super) fn entry<'a>(
    shard: &'a mut HashMap<Arc<str>, ChannelState>,
    channel: &str,
) -> (Arc<str>, &'a mut ChannelState) {
    if !shard.contains_key(channel) {
        let kind = ChannelInfo::of(channel).kind;
        shard.insert(Arc::from(channel), ChannelState::new(kind));
    }
    let (name, _) = shard.get_key_value(channel).expect("just inserted");
    let name = name.clone();
    (name, shard.get_mut(channel).expect("just inserted"))
}

/// Remove a channel that no longer holds anything (see [`ChannelState::is_empty`]), and give
/// the shard's memory back when it is mostly empty (after a flood of channels).
pub(super) fn forget(shard: &mut HashMap<Arc<str>, ChannelState>, channel: &str) {
    shard.remove(channel);
    shrink_if_sparse(shard);
}

/// The channel's state and its shared name, if the channel exists.
pub(super) fn existing<'a>(
    shard: &'a mut HashMap<Arc<str>, ChannelState>,
    channel: &str,
) -> Option<(Arc<str>, &'a mut ChannelState)> {
    let name = shard.get_key_value(channel)?.0.clone();
    Some((name, shard.get_mut(channel)?))
}

/// When a cache entry stored now expires (a huge TTL means "never", not an overflow).
fn cache_expiry(ttl_secs: u64) -> Instant {
    let now = Instant::now();
    now.checked_add(Duration::from_secs(ttl_secs))
        .unwrap_or(now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// Why a subscription was refused (turned into `pusher:subscription_error` at the edge).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    #[error("The presence channel has reached its limit of {0} members")]
    PresenceFull(usize),
    #[error("The connection is subscribed to too many channels (limit {0})")]
    TooManyChannels(usize),
}

impl AppHub {
    pub(super) fn shard(&self, channel: &str) -> &Shard {
        let mut h = DefaultHasher::new();
        channel.hash(&mut h);
        &self.shards[(h.finish() as usize) % self.shards.len()]
    }

    /// Subscribe `conn` (already authorized) and queue its `subscription_succeeded`.
    fn subscribe(
        &self,
        conn: &Arc<Connection>,
        channel: &str,
        member: Option<MemberData>,
    ) -> Result<(), SubscribeError> {
        let app = self.app();
        let (already_in, count) = {
            let state = conn.state.lock();
            (
                state.subscription(channel).map(|s| s.user_id.is_some()),
                state.subscriptions.len(),
            )
        };
        if let Some(presence) = already_in {
            // Already in: answer again, count nothing.
            let data = presence
                .then(|| {
                    let shard = self.shard(channel).read();
                    shard
                        .get(channel)
                        .and_then(|c| c.presence.as_ref())
                        .map(|p| p.snapshot_json())
                })
                .flatten()
                .unwrap_or_else(|| "{}".into());
            conn.push(protocol::subscription_succeeded(channel, &data));
            return Ok(());
        }
        if count >= app.max_channels_per_connection {
            return Err(SubscribeError::TooManyChannels(
                app.max_channels_per_connection,
            ));
        }

        let cache = ChannelInfo::of(channel).cache;
        let mut first_here = false;
        let mut cursor_for = None;
        let mut replay_generation = None;
        let user_id = member
            .as_ref()
            .map(|m| Arc::<str>::from(m.user_id.as_str()));
        let name = {
            let mut shard = self.shard(channel).write();
            let (name, state) = entry(&mut shard, channel);
            let mut added = None;
            let mut added_frame = None;
            let data = match (state.presence.as_mut(), member.as_ref()) {
                (Some(presence), Some(member)) => {
                    match presence.join(member, app.max_presence_members) {
                        Ok(change) => {
                            first_here = change.local;
                            added = change.local.then_some(change.cluster);
                            if change.cluster {
                                added_frame = Some(protocol::member_added(
                                    channel,
                                    &member.user_id,
                                    &member.user_info,
                                ));
                            }
                        }
                        Err(()) => {
                            if state.is_empty() {
                                forget(&mut shard, channel);
                            }
                            return Err(SubscribeError::PresenceFull(app.max_presence_members));
                        }
                    }
                    presence.snapshot_json()
                }
                _ => "{}".to_string(),
            };
            if let Some(frame) = &added_frame {
                state.fan_out(frame, None);
            }
            if state.subscribers.is_empty() {
                self.node.adapter().interest(&self.id, &name, true);
                self.node.emit(|| HubEvent::ChannelOccupied {
                    app_id: self.id.clone(),
                    channel: name.clone(),
                });
            }
            if let (Some(cluster), Some(user_id)) = (added, &user_id) {
                self.node.emit(|| {
                    HubEvent::MemberAdded(MemberChange {
                        app_id: self.id.clone(),
                        channel: name.clone(),
                        user_id: user_id.clone(),
                        here: true,
                        cluster,
                    })
                });
            }
            state.subscribers.insert(conn.socket_id, conn.clone());
            if let Some(ready) = self.node.adapter().ready(&self.id, &name) {
                conn.hold_until(ready);
            }
            self.node.emit(|| HubEvent::Subscribed {
                app_id: self.id.clone(),
                socket_id: conn.socket_id,
                channel: name.clone(),
            });
            if self.replays_across_nodes(conn, channel) {
                // Answered once the cluster says what it missed (`replay.rs`).
                replay_generation = Some(self.begin_replay(conn, state, data));
            } else {
                let recovered = recovery::recovers(&app, channel)
                    .then(|| self.recover(conn, &name, state))
                    .flatten();
                match recovered {
                    Some((cursor, replay)) => {
                        let data = recovery::succeeded_data(channel, data, &replay);
                        conn.push(protocol::subscription_succeeded(channel, &data));
                        for frame in replay.frames {
                            conn.push(frame);
                        }
                        cursor_for = Some(cursor);
                    }
                    None => conn.push(protocol::subscription_succeeded(channel, &data)),
                }
                if cache {
                    self.push_cache(conn, &name, state);
                }
            }
            self.subscription_count_changed(&app, &name, state);
            name
        };
        let mut state = conn.state.lock();
        if state.subscriptions.capacity() == 0 {
            // Most connections join one or two channels: no room for four up front.
            state.subscriptions.reserve_exact(1);
        }
        state.subscriptions.push(Subscription {
            channel: name.clone(),
            user_id,
        });
        if let Some(cursor) = cursor_for {
            recovery::track(&mut state.lineage, name.clone(), cursor);
        }
        drop(state);
        if let Some(generation) = replay_generation {
            conn.app_hub()
                .request_replay(conn, name.clone(), generation);
        }
        if let (Some(member), true) = (member, first_here) {
            self.node
                .tell_cluster(&self.id, || ClusterEvent::MemberAdded {
                    channel: name,
                    user_id: member.user_id,
                    user_info: member.user_info,
                });
        }
        Ok(())
    }

    /// Queue a cache channel's last event for a new subscriber, or `pusher:cache_miss`.
    pub(super) fn push_cache(&self, conn: &Connection, name: &Arc<str>, state: &ChannelState) {
        match state.live_cache() {
            Some(frame) => conn.push(frame.clone()),
            None => {
                conn.push(protocol::cache_miss(name));
                self.node.emit(|| HubEvent::CacheMiss {
                    app_id: self.id.clone(),
                    channel: name.clone(),
                });
            }
        }
    }

    /// Take `conn` out of a channel it was in (unsubscribe or disconnect).
    pub(super) fn leave(&self, conn: &Arc<Connection>, channel: &str, user_id: Option<&str>) {
        let mut last_here = false;
        {
            let app = self.app();
            let mut shard = self.shard(channel).write();
            let Some((name, state)) = existing(&mut shard, channel) else {
                return;
            };
            if state.subscribers.swap_remove(&conn.socket_id).is_none() {
                return;
            }
            state.stop_replaying(conn.socket_id);
            shrink_if_sparse(&mut state.subscribers);
            if let (Some(stream), Some(_)) = (state.recovery.as_mut(), conn.lineage()) {
                stream.keep(Duration::from_secs(app.recovery_window));
            }
            self.node.emit(|| HubEvent::Unsubscribed {
                app_id: self.id.clone(),
                socket_id: conn.socket_id,
                channel: name.clone(),
            });
            if let (Some(presence), Some(user_id)) = (state.presence.as_mut(), user_id) {
                let change = presence.leave(user_id);
                last_here = change.local;
                if change.cluster {
                    state.fan_out(&protocol::member_removed(channel, user_id), None);
                }
                if change.local {
                    self.node.emit(|| {
                        HubEvent::MemberRemoved(MemberChange {
                            app_id: self.id.clone(),
                            channel: name.clone(),
                            user_id: Arc::from(user_id),
                            here: true,
                            cluster: change.cluster,
                        })
                    });
                }
            }
            if state.subscribers.is_empty() {
                self.node.adapter().interest(&self.id, &name, false);
                self.node.emit(|| HubEvent::ChannelVacated {
                    app_id: self.id.clone(),
                    channel: name.clone(),
                });
            }
            self.subscription_count_changed(&app, &name, state);
            if state.is_empty() {
                forget(&mut shard, channel);
            }
        }
        if let (true, Some(user_id)) = (last_here, user_id) {
            self.node
                .tell_cluster(&self.id, || ClusterEvent::MemberRemoved {
                    channel: channel.into(),
                    user_id: user_id.to_string(),
                });
        }
    }

    /// Send `pusher_internal:subscription_count` to a non-presence channel's subscribers when
    /// the app wants it; channels over 100 subscribers at most every 5 s (see `tick`).
    fn subscription_count_changed(&self, app: &App, channel: &Arc<str>, state: &mut ChannelState) {
        if state.presence.is_some() {
            return;
        }
        let n = state.subscribers.len();
        self.node.emit(|| HubEvent::SubscriptionCount {
            app_id: self.id.clone(),
            channel: channel.clone(),
            count: n,
        });
        if !app.subscription_count || n == 0 {
            return;
        }
        let recent = state
            .count_sent
            .is_some_and(|t| t.elapsed() < SUBSCRIPTION_COUNT_INTERVAL);
        if n > SUBSCRIPTION_COUNT_THROTTLE_ABOVE && recent {
            state.count_dirty = true;
            return;
        }
        state.send_subscription_count(channel);
    }

    /// How many of this node's subscribers of `channel` an event excluding `except` reaches.
    pub(super) fn subscriber_count(&self, channel: &str, except: Option<SocketId>) -> usize {
        let shard = self.shard(channel).read();
        shard.get(channel).map_or(0, |state| {
            let excluded = except.is_some_and(|e| state.subscribers.contains_key(&e));
            state.subscribers.len() - usize::from(excluded)
        })
    }

    /// Deliver an encoded frame to this node's subscribers of a channel (and store it on
    /// cache channels when `cache`). `#server-to-user-{id}` goes to every connection signed
    /// in as `{id}`. Returns how many connections got it.
    pub(super) fn deliver(
        &self,
        channel: &str,
        frame: &Utf8Bytes,
        except: Option<SocketId>,
        cache: bool,
        at: Option<StreamPosition>,
    ) -> usize {
        if let Some(user_id) = channel.strip_prefix(SERVER_TO_USER_PREFIX) {
            let users = self.users.lock();
            let conns = users.get(user_id).map(|v| v.as_slice()).unwrap_or(&[]);
            let mut n = 0;
            for c in conns.iter().filter(|c| Some(c.socket_id) != except) {
                c.push(frame.clone());
                n += 1;
            }
            return n;
        }
        if cache {
            let app = self.app.load();
            let cached = ChannelInfo::of(channel).cache;
            let recovered = recovery::recovers(&app, channel);
            if cached || recovered {
                let mut shard = self.shard(channel).write();
                let (name, state) = entry(&mut shard, channel);
                if cached {
                    state.cache = Some((frame.clone(), cache_expiry(app.cache_ttl)));
                }
                if recovered {
                    self.buffer(&app, &name, state, frame, except, at);
                }
                let n = state.fan_out_at(frame, except, at.map(|p| p.offset));
                drop(shard);
                if recovered {
                    self.trim_recovery(&app);
                }
                return n;
            }
        }
        let shard = self.shard(channel).read();
        match shard.get(channel) {
            Some(state) => state.fan_out(frame, except),
            None => 0,
        }
    }
}

impl Hub {
    /// Subscribe a connection (already authorized) to a channel and queue its
    /// `subscription_succeeded` (then, on cache channels, the cached event or `cache_miss`).
    /// Re-subscribing a channel it is in answers again without counting twice.
    pub(crate) fn subscribe(
        &self,
        conn: &Arc<Connection>,
        channel: &str,
        member: Option<MemberData>,
    ) -> Result<(), SubscribeError> {
        conn.app_hub().subscribe(conn, channel, member)
    }

    /// Tell observers a subscription was refused (`reason` must not hold a secret). The
    /// WebSocket layer calls it for every refusal it sends, the hub's own included.
    pub(crate) fn refused(&self, conn: &Connection, channel: &str, reason: &str) {
        self.node.emit(|| HubEvent::SubscriptionRefused {
            app_id: conn.app_hub().id.clone(),
            socket_id: conn.socket_id,
            channel: Arc::from(channel),
            reason: Arc::from(reason),
        });
    }

    /// Unsubscribe a connection from a channel; channels it is not in are ignored.
    pub(crate) fn unsubscribe(&self, conn: &Arc<Connection>, channel: &str) {
        let sub = {
            let mut state = conn.state.lock();
            match state
                .subscriptions
                .iter()
                .position(|s| &*s.channel == channel)
            {
                Some(i) => {
                    recovery::untrack(&mut state.lineage, channel);
                    let sub = state.subscriptions.swap_remove(i);
                    shrink_if_sparse(&mut state.subscriptions);
                    sub
                }
                None => return,
            }
        };
        conn.app_hub()
            .leave(conn, &sub.channel, sub.user_id.as_deref());
    }

    /// Publish an event to channels: encode once per channel, deliver here, hand to the
    /// adapter for other nodes. `data` is the publisher's string, sent verbatim. Returns how
    /// many connections on this node got it.
    pub(crate) fn publish(
        &self,
        app_id: &str,
        channels: &[impl AsRef<str>],
        event: &str,
        data: &str,
        except: Option<SocketId>,
    ) -> usize {
        let Some(ah) = self.app(app_id) else {
            return 0;
        };
        let mut recipients = 0;
        let app = ah.app();
        let sequences = self.node.adapter().sequences();
        for channel in channels {
            let channel = channel.as_ref();
            let frame = protocol::channel_event(event, channel, data);
            if sequences && recovery::recovers(&app, channel) {
                // Numbered for the whole cluster and delivered to every node, this one
                // included, in that order (`replay.rs`); its subscribers here get it then.
                recipients += ah.subscriber_count(channel, except);
                self.node.adapter().send(
                    app_id,
                    ClusterEvent::Publish {
                        channel: channel.into(),
                        frame,
                        except,
                        cache: true,
                        sequence: Some(Sequence {
                            max_events: app.recovery_max_events.max(1),
                            window: Duration::from_secs(app.recovery_window),
                        }),
                    },
                );
                continue;
            }
            recipients += ah.deliver(channel, &frame, except, true, None);
            self.node.tell_cluster(app_id, || ClusterEvent::Publish {
                channel: channel.into(),
                frame,
                except,
                cache: true,
                sequence: None,
            });
        }
        self.node.emit(|| HubEvent::ApiPublish {
            app_id: ah.id.clone(),
            channels: channels.iter().map(|c| Arc::from(c.as_ref())).collect(),
            event: Arc::from(event),
            data: Arc::from(data),
            bytes: data.len(),
            recipients,
            except,
        });
        recipients
    }

    /// Deliver an encoded frame to this node's subscribers of a channel (see
    /// [`AppHub::deliver`]); what other nodes send arrives here.
    pub(crate) fn deliver(
        &self,
        app_id: &str,
        channel: &str,
        frame: &Utf8Bytes,
        except: Option<SocketId>,
        cache: bool,
    ) -> usize {
        self.with_app(app_id, |ah| ah.deliver(channel, frame, except, cache, None))
    }

    /// Deliver an API publish to a recovered channel that the adapter numbered `at` for the
    /// whole cluster (every node gets it this way, the publishing one included).
    pub(crate) fn deliver_at(
        &self,
        app_id: &str,
        channel: &str,
        frame: &Utf8Bytes,
        except: Option<SocketId>,
        at: StreamPosition,
    ) -> usize {
        self.with_app(app_id, |ah| {
            ah.deliver(channel, frame, except, true, Some(at))
        })
    }

    /// Deliver, to this node's subscribers only, an API publish to a recovered channel that
    /// the adapter could not number (Redis away): it reaches them, but no stream holds it.
    pub(crate) fn deliver_unnumbered(
        &self,
        app_id: &str,
        channel: &str,
        frame: &Utf8Bytes,
        except: Option<SocketId>,
    ) -> usize {
        self.with_app(app_id, |ah| {
            let app = ah.app();
            let mut shard = ah.shard(channel).write();
            let cached = ChannelInfo::of(channel).cache;
            let state = if cached {
                Some(entry(&mut shard, channel).1)
            } else {
                existing(&mut shard, channel).map(|(_, state)| state)
            };
            let Some(state) = state else {
                return 0;
            };
            if cached {
                state.cache = Some((frame.clone(), cache_expiry(app.cache_ttl)));
            }
            ah.reset_stream(state);
            state.fan_out(frame, except)
        })
    }

    /// Another node's connection claimed the lineage of this node's connection `socket`.
    pub(crate) fn lineage_superseded(&self, app_id: &str, socket: SocketId) {
        if let Some(ah) = self.app(app_id) {
            ah.superseded(socket);
        }
    }

    /// Relay a client event from `conn` to the channel's other subscribers, here and on
    /// other nodes. The caller has checked the channel kind, membership and rate; `event` and
    /// `data` are the parsed parts of `frame`, for observers.
    pub(crate) fn client_event(
        &self,
        conn: &Connection,
        channel: &str,
        event: &str,
        data: &str,
        frame: Utf8Bytes,
    ) {
        let ah = conn.app_hub();
        let recipients = ah.deliver(channel, &frame, Some(conn.socket_id), false, None);
        self.node.emit(|| HubEvent::ClientEvent {
            recipients,
            app_id: ah.id.clone(),
            channel: Arc::from(channel),
            event: Arc::from(event),
            data: Arc::from(data),
            socket_id: conn.socket_id,
            user_id: conn
                .state
                .lock()
                .subscription(channel)
                .and_then(|s| s.user_id.clone()),
        });
        self.node.tell_cluster(&ah.id, || ClusterEvent::Publish {
            channel: channel.into(),
            frame,
            except: Some(conn.socket_id),
            cache: false,
            sequence: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::apps::{App, Apps};
    use crate::hub::{Hub, HubEvent, HubSettings, SubscribeError};
    use crate::protocol::MemberData;
    use serde_json::value::RawValue;
    use std::sync::Arc;

    fn hub(app: App) -> Arc<Hub> {
        Hub::new(Apps::new(vec![app]), HubSettings::default())
    }

    fn drain(conn: &crate::hub::Connection) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(f) = conn.pop() {
            out.push(f.to_string());
        }
        out
    }

    fn member(id: &str) -> MemberData {
        MemberData {
            user_id: id.into(),
            user_info: RawValue::from_string("{}".into()).unwrap(),
        }
    }

    #[test]
    fn publish_reaches_subscribers_but_not_the_excluded_one() {
        let app = App::new("a", "k", "s");
        let hub = hub(app.clone());
        let c1 = hub.connect(&app).unwrap();
        let c2 = hub.connect(&app).unwrap();
        hub.subscribe(&c1, "news", None).unwrap();
        hub.subscribe(&c2, "news", None).unwrap();
        drain(&c1);
        drain(&c2);
        assert_eq!(
            hub.publish("a", &["news"], "e", "{}", Some(c2.socket_id)),
            1
        );
        assert_eq!(drain(&c1).len(), 1);
        assert!(drain(&c2).is_empty());
        hub.unsubscribe(&c1, "news");
        assert_eq!(hub.publish("a", &["news"], "e", "{}", None), 1);
    }

    #[test]
    fn resubscribe_answers_again_and_counts_once() {
        let app = App {
            max_channels_per_connection: 1,
            ..App::new("a", "k", "s")
        };
        let hub = hub(app.clone());
        let c = hub.connect(&app).unwrap();
        hub.subscribe(&c, "news", None).unwrap();
        hub.subscribe(&c, "news", None).unwrap();
        assert_eq!(drain(&c).len(), 2);
        assert_eq!(
            hub.subscribe(&c, "other", None),
            Err(SubscribeError::TooManyChannels(1))
        );
        assert_eq!(hub.channel("a", "news").subscription_count, 1);
    }

    #[test]
    fn presence_full_refuses_and_leaves_no_channel_behind() {
        let app = App {
            max_presence_members: 1,
            ..App::new("a", "k", "s")
        };
        let hub = hub(app.clone());
        let c1 = hub.connect(&app).unwrap();
        let c2 = hub.connect(&app).unwrap();
        hub.subscribe(&c1, "presence-x", Some(member("u1")))
            .unwrap();
        assert_eq!(
            hub.subscribe(&c2, "presence-x", Some(member("u2"))),
            Err(SubscribeError::PresenceFull(1))
        );
        // The same user again is no new member.
        hub.subscribe(&c2, "presence-x", Some(member("u1")))
            .unwrap();
        assert_eq!(
            hub.presence_users("a", "presence-x"),
            vec!["u1".to_string()]
        );
    }

    #[test]
    fn lifecycle_events_in_order() {
        let app = App::new("a", "k", "s");
        let hub = hub(app.clone());
        let mut obs = hub.observe(64);
        let c1 = hub.connect(&app).unwrap();
        let c2 = hub.connect(&app).unwrap();
        hub.subscribe(&c1, "presence-r", Some(member("u"))).unwrap();
        hub.subscribe(&c2, "presence-r", Some(member("u"))).unwrap();
        hub.disconnect(&c1);
        hub.disconnect(&c2);
        let mut kinds = Vec::new();
        while let Ok(e) = obs.events.try_recv() {
            kinds.push(match e {
                HubEvent::ConnectionOpened { .. } => "open".to_string(),
                HubEvent::ConnectionClosed { .. } => "close".into(),
                HubEvent::Subscribed { .. } => "sub".into(),
                HubEvent::Unsubscribed { .. } => "unsub".into(),
                HubEvent::ChannelOccupied { .. } => "occupied".into(),
                HubEvent::ChannelVacated { .. } => "vacated".into(),
                HubEvent::MemberAdded(m) => format!("added:{}", m.cluster),
                HubEvent::MemberRemoved(m) => format!("removed:{}", m.cluster),
                other => format!("{other:?}"),
            });
        }
        assert_eq!(
            kinds,
            [
                "open",
                "open",
                "occupied",
                "added:true",
                "sub",
                "sub",
                "unsub",
                "close",
                "unsub",
                "removed:true",
                "vacated",
                "close"
            ]
        );
    }
}
