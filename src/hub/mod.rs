//! The hub: every channel, subscriber, presence member, cached event and signed-in user of
//! this node, and the fan-out from a publish to each subscriber's queue.
//!
//! State is split per app and, within an app, into shards keyed by channel-name hash, each
//! behind its own `RwLock`: a publish takes one shard's read lock, encodes nothing (the frame
//! arrives encoded once) and pushes a reference-counted clone of the same buffer into each
//! subscriber's queue. No lock is held across an `.await`; nothing here awaits.
//!
//! The hub knows nothing of how other nodes are reached: everything that must reach them is
//! handed to the adapter (`adapter/`), and what other nodes send comes back in through
//! `deliver` and the `remote_*` methods. It keeps a mirror of the presence members and
//! signed-in users other nodes reported (by node id), so `member_added` / `member_removed`,
//! watchlist events and member lists are cluster-wide; subscription counts of other nodes are
//! asked for on demand (`cluster_channels`).

pub mod connection;
pub mod events;
mod presence;

pub use connection::{CloseRequest, ConnState, Connection, SocketId, Subscription};
pub use events::{HubEvent, MemberChange, ObserverHandle};
pub use presence::PresenceSnapshot;

use crate::adapter::{Adapter, ClusterEvent, LocalAdapter};
use crate::apps::{App, Apps};
use crate::protocol::{self, channel::SERVER_TO_USER_PREFIX, ChannelKind, ErrorCode, MemberData};
use axum::extract::ws::Utf8Bytes;
use indexmap::IndexMap;
use parking_lot::{Mutex, RwLock};
use presence::Presence;
use serde_json::value::RawValue;
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

const SHARDS: usize = 32;

/// Channels above this many subscribers get `subscription_count` at most every 5 s (Pusher).
const SUBSCRIPTION_COUNT_THROTTLE_ABOVE: usize = 100;
const SUBSCRIPTION_COUNT_INTERVAL: Duration = Duration::from_secs(5);

/// When a cache entry stored now expires (a huge TTL means "never", not an overflow).
fn cache_expiry(ttl_secs: u64) -> Instant {
    let now = Instant::now();
    now.checked_add(Duration::from_secs(ttl_secs))
        .unwrap_or(now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// Node-wide settings of the hub.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// Frames a connection may have queued before it is closed with 4100 (slow consumer).
    pub max_queued_frames: usize,
}

impl Default for HubSettings {
    fn default() -> Self {
        HubSettings {
            max_queued_frames: 1_000,
        }
    }
}

struct ChannelState {
    subscribers: IndexMap<SocketId, Arc<Connection>>,
    presence: Option<Presence>,
    /// Cache channels: the last published frame and when it expires.
    cache: Option<(Utf8Bytes, Instant)>,
    /// `subscription_count` throttling for large channels: when it was last sent.
    count_sent: Option<Instant>,
    count_dirty: bool,
}

impl ChannelState {
    fn new(kind: ChannelKind) -> Self {
        ChannelState {
            subscribers: IndexMap::new(),
            presence: (kind == ChannelKind::Presence).then(Presence::default),
            cache: None,
            count_sent: None,
            count_dirty: false,
        }
    }

    fn live_cache(&self) -> Option<&Utf8Bytes> {
        self.cache
            .as_ref()
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(frame, _)| frame)
    }

    fn is_empty(&self) -> bool {
        self.subscribers.is_empty()
            && self.live_cache().is_none()
            && self.presence.as_ref().is_none_or(Presence::is_empty)
    }
}

type Shard = RwLock<HashMap<Arc<str>, ChannelState>>;

/// One app's share of the hub.
pub struct AppHub {
    pub app: Arc<App>,
    shards: Box<[Shard]>,
    /// Connections signed in (`pusher:signin`), by user id.
    users: Mutex<HashMap<Arc<str>, Vec<Arc<Connection>>>>,
    /// Users signed in on other nodes: user id → the nodes that reported them.
    remote_users: Mutex<HashMap<Arc<str>, Vec<Arc<str>>>>,
    /// Who watches whom: watched user id → watcher connections.
    watchers: Mutex<HashMap<Arc<str>, Vec<Arc<Connection>>>>,
    /// Every live connection of this app, by socket id.
    connections: Mutex<HashMap<SocketId, Arc<Connection>>>,
    connection_count: AtomicUsize,
}

impl AppHub {
    fn new(app: Arc<App>) -> Self {
        AppHub {
            app,
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            users: Mutex::new(HashMap::new()),
            remote_users: Mutex::new(HashMap::new()),
            watchers: Mutex::new(HashMap::new()),
            connections: Mutex::new(HashMap::new()),
            connection_count: AtomicUsize::new(0),
        }
    }

    fn shard(&self, channel: &str) -> &Shard {
        let mut h = DefaultHasher::new();
        channel.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    pub fn connection_count(&self) -> usize {
        self.connection_count.load(Ordering::Relaxed)
    }
}

/// Why a subscription was refused (turned into `pusher:subscription_error` at the edge).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    #[error("The presence channel has reached its limit of {0} members")]
    PresenceFull(usize),
    #[error("The connection is subscribed to too many channels (limit {0})")]
    TooManyChannels(usize),
    #[error("Unknown connection")]
    UnknownConnection,
}

/// Channel figures for the HTTP API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelStats {
    pub subscription_count: usize,
    pub user_count: Option<usize>,
    pub cache: Option<(Utf8Bytes, u64)>,
}

/// The state of one node.
pub struct Hub {
    apps: Apps,
    by_id: HashMap<String, Arc<AppHub>>,
    settings: HubSettings,
    adapter: OnceLock<Arc<dyn Adapter>>,
    connections_total: AtomicUsize,
    /// Lifecycle events for observers (webhooks, metrics, the debug console).
    events: events::Events,
}

impl Hub {
    pub fn new(apps: Apps, settings: HubSettings) -> Arc<Hub> {
        let by_id = apps
            .iter()
            .map(|app| (app.id.clone(), Arc::new(AppHub::new(app.clone()))))
            .collect();
        Arc::new(Hub {
            apps,
            by_id,
            settings,
            adapter: OnceLock::new(),
            connections_total: AtomicUsize::new(0),
            events: events::Events::default(),
        })
    }

    /// Set the adapter (once, before serving). Without one the hub is a single node.
    pub fn set_adapter(&self, adapter: Arc<dyn Adapter>) {
        let _ = self.adapter.set(adapter);
    }

    /// Hand an event to the adapter for the other nodes; built only when there are any.
    pub fn tell_cluster(&self, app_id: &str, event: impl FnOnce() -> ClusterEvent) {
        let adapter = self.adapter();
        if adapter.is_cluster() {
            adapter.send(app_id, event());
        }
    }

    /// Register an observer of the hub's lifecycle events, with a queue of `capacity`
    /// events (see [`events`]).
    pub fn observe(&self, capacity: usize) -> ObserverHandle {
        self.events.register(capacity)
    }

    /// Emit a lifecycle event to the observers; `event` is only called when there are any.
    #[inline]
    pub(crate) fn emit(&self, event: impl FnOnce() -> HubEvent) {
        self.events.emit(event);
    }

    pub fn adapter(&self) -> &Arc<dyn Adapter> {
        self.adapter.get_or_init(|| Arc::new(LocalAdapter))
    }

    pub fn apps(&self) -> &Apps {
        &self.apps
    }

    pub fn settings(&self) -> &HubSettings {
        &self.settings
    }

    pub fn app(&self, app_id: &str) -> Option<&Arc<AppHub>> {
        self.by_id.get(app_id)
    }

    /// Live connections on this node, all apps.
    pub fn connection_count(&self) -> usize {
        self.connections_total.load(Ordering::Relaxed)
    }

    /// Every live connection on this node (for shutdown).
    pub fn all_connections(&self) -> Vec<Arc<Connection>> {
        self.by_id
            .values()
            .flat_map(|a| a.connections.lock().values().cloned().collect::<Vec<_>>())
            .collect()
    }

    // -----------------------------------------------------------------------------------------
    // Connections

    /// Register a new connection; `Err` when the app is over its connection quota.
    pub fn connect(&self, app: &Arc<App>) -> Result<Arc<Connection>, ErrorCode> {
        let ah = self.app(&app.id).ok_or(ErrorCode::AppDoesNotExist)?;
        let count = ah.connection_count.fetch_add(1, Ordering::Relaxed);
        if let Some(max) = app.max_connections {
            if count >= max {
                ah.connection_count.fetch_sub(1, Ordering::Relaxed);
                return Err(ErrorCode::OverConnectionQuota);
            }
        }
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Connection::new(
            app.clone(),
            self.settings.max_queued_frames,
        ));
        ah.connections.lock().insert(conn.socket_id, conn.clone());
        self.emit(|| HubEvent::ConnectionOpened {
            app_id: app.id.as_str().into(),
            socket_id: conn.socket_id,
        });
        Ok(conn)
    }

    /// Forget a connection: leave every channel (with `member_removed` where it was a user's
    /// last connection), sign it out, drop it from the counts.
    pub fn disconnect(&self, conn: &Arc<Connection>) {
        let Some(ah) = self.app(&conn.app.id) else {
            return;
        };
        if ah.connections.lock().remove(&conn.socket_id).is_none() {
            return;
        }
        let state = std::mem::take(&mut *conn.state.lock());
        for sub in &state.subscriptions {
            self.leave(ah, conn, &sub.channel, sub.user_id.as_deref());
        }
        if let Some(user) = &state.user {
            self.sign_out(ah, conn, user, &state.watchlist);
        }
        ah.connection_count.fetch_sub(1, Ordering::Relaxed);
        self.connections_total.fetch_sub(1, Ordering::Relaxed);
    }

    /// A connection of this app by socket id.
    pub fn connection(&self, app_id: &str, socket_id: SocketId) -> Option<Arc<Connection>> {
        self.app(app_id)?
            .connections
            .lock()
            .get(&socket_id)
            .cloned()
    }

    // -----------------------------------------------------------------------------------------
    // Subscriptions

    /// Subscribe a connection (already authorized) to a channel and queue its
    /// `subscription_succeeded` (then, on cache channels, the cached event or `cache_miss`).
    /// Frames are queued under the channel's lock, so no event of the channel can overtake them.
    /// Re-subscribing a channel it is in answers again without counting twice.
    pub fn subscribe(
        &self,
        conn: &Arc<Connection>,
        channel: &str,
        member: Option<MemberData>,
    ) -> Result<(), SubscribeError> {
        let ah = self
            .app(&conn.app.id)
            .ok_or(SubscribeError::UnknownConnection)?;
        let info = ChannelKind::of(channel);
        {
            let state = conn.state.lock();
            if let Some(existing) = state.subscription(channel) {
                // Already in: answer again, count nothing.
                let data = match &existing.user_id {
                    Some(_) => {
                        let shard = ah.shard(channel).read();
                        shard
                            .get(channel)
                            .and_then(|c| c.presence.as_ref())
                            .map(|p| p.snapshot_json())
                            .unwrap_or_else(|| "{}".into())
                    }
                    None => "{}".into(),
                };
                conn.push(protocol::subscription_succeeded(channel, &data));
                return Ok(());
            }
            if state.subscriptions.len() >= conn.app.max_channels_per_connection {
                return Err(SubscribeError::TooManyChannels(
                    conn.app.max_channels_per_connection,
                ));
            }
        }

        let name: Arc<str>;
        let data;
        let mut member_added = None;
        let mut first_here = false;
        let user_id = member
            .as_ref()
            .map(|m| Arc::<str>::from(m.user_id.as_str()));
        {
            let mut shard = ah.shard(channel).write();
            let (key, state) = match shard.get_key_value(channel) {
                Some((k, _)) => {
                    let k = k.clone();
                    let s = shard.get_mut(channel).expect("present");
                    (k, s)
                }
                None => {
                    let k: Arc<str> = Arc::from(channel);
                    let s = shard
                        .entry(k.clone())
                        .or_insert_with(|| ChannelState::new(info.kind));
                    (k, s)
                }
            };
            name = key;
            if let (Some(presence), Some(member)) = (state.presence.as_mut(), member.as_ref()) {
                match presence.join(member, conn.app.max_presence_members) {
                    Ok(change) => {
                        first_here = change.local;
                        if change.cluster {
                            member_added = Some(protocol::member_added(
                                channel,
                                &member.user_id,
                                &member.user_info,
                            ));
                        }
                    }
                    Err(()) => {
                        let max = conn.app.max_presence_members;
                        if state.is_empty() {
                            shard.remove(channel);
                        }
                        return Err(SubscribeError::PresenceFull(max));
                    }
                }
                data = presence.snapshot_json();
            } else {
                data = "{}".to_string();
            }
            if let Some(frame) = &member_added {
                for (id, other) in &state.subscribers {
                    if *id != conn.socket_id {
                        other.push(frame.clone());
                    }
                }
            }
            state.subscribers.insert(conn.socket_id, conn.clone());
            conn.push(protocol::subscription_succeeded(channel, &data));
            if info.cache {
                match state.live_cache() {
                    Some(frame) => conn.push(frame.clone()),
                    None => conn.push(protocol::cache_miss(channel)),
                }
            }
            self.subscription_count_changed(&conn.app, &name, state);
        }
        let mut state = conn.state.lock();
        if state.subscriptions.capacity() == 0 {
            // Most connections join one or two channels: no room for four up front.
            state.subscriptions.reserve_exact(1);
        }
        state.subscriptions.push(Subscription {
            channel: name.clone(),
            user_id: user_id.clone(),
        });
        drop(state);
        if let (Some(member), true) = (member, first_here) {
            self.tell_cluster(&conn.app.id, || ClusterEvent::MemberAdded {
                channel: name,
                user_id: member.user_id,
                user_info: member.user_info,
            });
        }
        Ok(())
    }

    /// Unsubscribe a connection from a channel; unknown channels are ignored.
    pub fn unsubscribe(&self, conn: &Arc<Connection>, channel: &str) {
        let Some(ah) = self.app(&conn.app.id) else {
            return;
        };
        let sub = {
            let mut state = conn.state.lock();
            match state
                .subscriptions
                .iter()
                .position(|s| &*s.channel == channel)
            {
                Some(i) => state.subscriptions.swap_remove(i),
                None => return,
            }
        };
        self.leave(ah, conn, &sub.channel, sub.user_id.as_deref());
    }

    fn leave(&self, ah: &AppHub, conn: &Arc<Connection>, channel: &str, user_id: Option<&str>) {
        let mut last_here = false;
        {
            let mut shard = ah.shard(channel).write();
            let Some(state) = shard.get_mut(channel) else {
                return;
            };
            state.subscribers.swap_remove(&conn.socket_id);
            if let (Some(presence), Some(user_id)) = (state.presence.as_mut(), user_id) {
                let change = presence.leave(user_id);
                last_here = change.local;
                if change.cluster {
                    let frame = protocol::member_removed(channel, user_id);
                    for other in state.subscribers.values() {
                        other.push(frame.clone());
                    }
                }
            }
            self.subscription_count_changed(&conn.app, channel, state);
            if state.is_empty() {
                shard.remove(channel);
            }
        }
        if last_here {
            if let Some(user_id) = user_id {
                self.tell_cluster(&conn.app.id, || ClusterEvent::MemberRemoved {
                    channel: channel.into(),
                    user_id: user_id.to_string(),
                });
            }
        }
    }

    /// Send `pusher_internal:subscription_count` to a non-presence channel's subscribers when
    /// the app wants it; channels over 100 subscribers at most every 5 s (see `tick`).
    fn subscription_count_changed(&self, app: &App, channel: &str, state: &mut ChannelState) {
        if !app.subscription_count || state.presence.is_some() || state.subscribers.is_empty() {
            return;
        }
        let n = state.subscribers.len();
        let recent = state
            .count_sent
            .is_some_and(|t| t.elapsed() < SUBSCRIPTION_COUNT_INTERVAL);
        if n > SUBSCRIPTION_COUNT_THROTTLE_ABOVE && recent {
            state.count_dirty = true;
            return;
        }
        Self::send_subscription_count(channel, state);
    }

    fn send_subscription_count(channel: &str, state: &mut ChannelState) {
        let frame = protocol::subscription_count(channel, state.subscribers.len());
        for c in state.subscribers.values() {
            c.push(frame.clone());
        }
        state.count_sent = Some(Instant::now());
        state.count_dirty = false;
    }

    /// Periodic work: throttled subscription counts, expired cache entries. Call every second.
    pub fn tick(&self) {
        self.sweep_heartbeats();
        for ah in self.by_id.values() {
            for shard in ah.shards.iter() {
                let mut shard = shard.write();
                shard.retain(|name, state| {
                    if state.count_dirty
                        && state
                            .count_sent
                            .is_none_or(|t| t.elapsed() >= SUBSCRIPTION_COUNT_INTERVAL)
                    {
                        Self::send_subscription_count(name, state);
                    }
                    if state
                        .cache
                        .as_ref()
                        .is_some_and(|(_, e)| *e <= Instant::now())
                    {
                        state.cache = None;
                    }
                    !state.is_empty()
                });
            }
        }
    }

    /// The heartbeat for every connection, in one sweep instead of a timer per connection:
    /// `pusher:ping` to a client silent for its app's `activity_timeout`, close 4201 when it
    /// stays silent for `pong_timeout` after that.
    fn sweep_heartbeats(&self) {
        let now = connection::now_ms();
        for ah in self.by_id.values() {
            let activity = ah.app.activity_timeout.max(1).saturating_mul(1000);
            let pong = ah.app.pong_timeout.max(1).saturating_mul(1000);
            let conns = ah.connections.lock();
            for conn in conns.values() {
                match conn.heartbeat(now, activity, pong) {
                    connection::Heartbeat::Alive => {}
                    connection::Heartbeat::Ping => conn.push(protocol::ping()),
                    connection::Heartbeat::Dead => conn.close(CloseRequest {
                        code: ErrorCode::PongNotReceived,
                        message: "Pong reply not received",
                        send_error: false,
                    }),
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Publishing

    /// Publish an event to channels: encode once per channel, deliver here, hand to the
    /// adapter for other nodes. `data` is the publisher's string, sent verbatim.
    pub fn publish(
        &self,
        app_id: &str,
        channels: &[impl AsRef<str>],
        event: &str,
        data: &str,
        except: Option<SocketId>,
    ) {
        for channel in channels {
            let channel = channel.as_ref();
            let frame = protocol::channel_event(event, channel, data);
            self.deliver(app_id, channel, &frame, except, true);
            self.tell_cluster(app_id, || ClusterEvent::Publish {
                channel: channel.into(),
                frame,
                except,
                cache: true,
            });
        }
    }

    /// Deliver an encoded frame to this node's subscribers of a channel (and store it on cache
    /// channels when `cache`). `#server-to-user-{id}` goes to every connection signed in as
    /// `{id}`. Returns how many connections got it.
    pub fn deliver(
        &self,
        app_id: &str,
        channel: &str,
        frame: &Utf8Bytes,
        except: Option<SocketId>,
        cache: bool,
    ) -> usize {
        let Some(ah) = self.app(app_id) else {
            return 0;
        };
        if let Some(user_id) = channel.strip_prefix(SERVER_TO_USER_PREFIX) {
            let users = ah.users.lock();
            let conns = users.get(user_id).map(|v| v.as_slice()).unwrap_or(&[]);
            let mut n = 0;
            for c in conns {
                if Some(c.socket_id) != except {
                    c.push(frame.clone());
                    n += 1;
                }
            }
            return n;
        }
        let is_cache = cache && ChannelKind::of(channel).cache;
        if is_cache {
            let mut shard = ah.shard(channel).write();
            let state = match shard.get_mut(channel) {
                Some(s) => s,
                None => shard
                    .entry(Arc::from(channel))
                    .or_insert_with(|| ChannelState::new(ChannelKind::of(channel).kind)),
            };
            state.cache = Some((frame.clone(), cache_expiry(ah.app.cache_ttl)));
            return Self::fan_out(state, frame, except);
        }
        let shard = ah.shard(channel).read();
        match shard.get(channel) {
            Some(state) => Self::fan_out(state, frame, except),
            None => 0,
        }
    }

    fn fan_out(state: &ChannelState, frame: &Utf8Bytes, except: Option<SocketId>) -> usize {
        let mut n = 0;
        for (id, conn) in &state.subscribers {
            if Some(*id) != except {
                conn.push(frame.clone());
                n += 1;
            }
        }
        n
    }

    /// Relay a client event from `conn` to the channel's other subscribers, here and on
    /// other nodes. The caller has checked the channel kind, membership and rate.
    pub fn client_event(&self, conn: &Connection, channel: &str, frame: Utf8Bytes) {
        self.deliver(&conn.app.id, channel, &frame, Some(conn.socket_id), false);
        self.tell_cluster(&conn.app.id, || ClusterEvent::Publish {
            channel: channel.into(),
            frame,
            except: Some(conn.socket_id),
            cache: false,
        });
    }

    // -----------------------------------------------------------------------------------------
    // Users: sign-in, watchlist, terminate

    /// Record a successful sign-in. Returns false if the connection is already signed in as
    /// someone else. Sends the watchlist's current status to this connection and `online` to
    /// watchers of this user when it is the user's first connection.
    pub fn sign_in(&self, conn: &Arc<Connection>, user_id: &str, watchlist: &[String]) -> bool {
        let Some(ah) = self.app(&conn.app.id) else {
            return false;
        };
        let user: Arc<str> = Arc::from(user_id);
        let watch: Vec<Arc<str>> = watchlist
            .iter()
            .take(conn.app.max_watchlist)
            .map(|s| Arc::from(s.as_str()))
            .collect();
        {
            let mut state = conn.state.lock();
            match &state.user {
                Some(existing) if **existing == *user_id => return true,
                Some(_) => return false,
                None => {}
            }
            state.user = Some(user.clone());
            state.watchlist = watch.clone();
        }
        let first = {
            let mut users = ah.users.lock();
            let conns = users.entry(user.clone()).or_default();
            conns.push(conn.clone());
            conns.len() == 1
        };
        if !watch.is_empty() {
            let mut watchers = ah.watchers.lock();
            for w in &watch {
                watchers.entry(w.clone()).or_default().push(conn.clone());
            }
            drop(watchers);
            let users = ah.users.lock();
            let remote = ah.remote_users.lock();
            let (online, offline): (Vec<&str>, Vec<&str>) = watch
                .iter()
                .map(|w| &**w)
                .partition(|w| users.contains_key(*w) || remote.contains_key(*w));
            conn.push(protocol::watchlist_events(&online, &offline));
        }
        if first {
            if !ah.remote_users.lock().contains_key(user_id) {
                self.notify_watchers(ah, user_id, true);
            }
            self.tell_cluster(&conn.app.id, || ClusterEvent::UserOnline {
                user_id: user_id.to_string(),
            });
        }
        true
    }

    fn sign_out(&self, ah: &AppHub, conn: &Arc<Connection>, user: &Arc<str>, watch: &[Arc<str>]) {
        let last = {
            let mut users = ah.users.lock();
            match users.get_mut(user) {
                Some(conns) => {
                    conns.retain(|c| c.socket_id != conn.socket_id);
                    if conns.is_empty() {
                        users.remove(user);
                        true
                    } else {
                        false
                    }
                }
                None => false,
            }
        };
        if !watch.is_empty() {
            let mut watchers = ah.watchers.lock();
            for w in watch {
                if let Some(list) = watchers.get_mut(w) {
                    list.retain(|c| c.socket_id != conn.socket_id);
                    if list.is_empty() {
                        watchers.remove(w);
                    }
                }
            }
        }
        if last {
            if !ah.remote_users.lock().contains_key(user) {
                self.notify_watchers(ah, user, false);
            }
            self.tell_cluster(&conn.app.id, || ClusterEvent::UserOffline {
                user_id: user.to_string(),
            });
        }
    }

    fn notify_watchers(&self, ah: &AppHub, user_id: &str, online: bool) {
        let watchers = ah.watchers.lock();
        if let Some(list) = watchers.get(user_id) {
            let frame = if online {
                protocol::watchlist_events(&[user_id], &[])
            } else {
                protocol::watchlist_events(&[], &[user_id])
            };
            for c in list {
                c.push(frame.clone());
            }
        }
    }

    /// Close every connection of this node signed in as `user_id` (4009). Returns how many.
    pub fn terminate_user(&self, app_id: &str, user_id: &str) -> usize {
        let Some(ah) = self.app(app_id) else {
            return 0;
        };
        let conns: Vec<Arc<Connection>> = ah.users.lock().get(user_id).cloned().unwrap_or_default();
        for c in &conns {
            c.close(CloseRequest {
                code: ErrorCode::Unauthorized,
                message: "You got disconnected by the app.",
                send_error: true,
            });
        }
        conns.len()
    }

    // -----------------------------------------------------------------------------------------
    // Queries (this node's view; the adapter merges other nodes')

    /// Occupied channels whose names start with `prefix`, with their figures.
    pub fn channels(&self, app_id: &str, prefix: &str) -> Vec<(Arc<str>, ChannelStats)> {
        let Some(ah) = self.app(app_id) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for shard in ah.shards.iter() {
            let shard = shard.read();
            for (name, state) in shard.iter() {
                if !state.subscribers.is_empty() && name.starts_with(prefix) {
                    out.push((name.clone(), Self::stats_of(state, &ah.app)));
                }
            }
        }
        out
    }

    fn stats_of(state: &ChannelState, app: &App) -> ChannelStats {
        ChannelStats {
            subscription_count: state.subscribers.len(),
            user_count: state.presence.as_ref().map(|p| p.len()),
            cache: state.live_cache().map(|f| {
                let ttl = state
                    .cache
                    .as_ref()
                    .map(|(_, e)| e.saturating_duration_since(Instant::now()).as_secs())
                    .unwrap_or(app.cache_ttl);
                (f.clone(), ttl)
            }),
        }
    }

    /// One channel's figures (zero when nobody is subscribed).
    pub fn channel(&self, app_id: &str, channel: &str) -> ChannelStats {
        let Some(ah) = self.app(app_id) else {
            return ChannelStats::default();
        };
        let shard = ah.shard(channel).read();
        shard
            .get(channel)
            .map(|s| Self::stats_of(s, &ah.app))
            .unwrap_or_default()
    }

    /// Distinct user ids in a presence channel, in join order.
    pub fn presence_users(&self, app_id: &str, channel: &str) -> Vec<String> {
        let Some(ah) = self.app(app_id) else {
            return Vec::new();
        };
        let shard = ah.shard(channel).read();
        shard
            .get(channel)
            .and_then(|s| s.presence.as_ref())
            .map(|p| p.user_ids())
            .unwrap_or_default()
    }

    /// The members of a presence channel with their info.
    pub fn presence_snapshot(&self, app_id: &str, channel: &str) -> PresenceSnapshot {
        let Some(ah) = self.app(app_id) else {
            return PresenceSnapshot::default();
        };
        let shard = ah.shard(channel).read();
        shard
            .get(channel)
            .and_then(|s| s.presence.as_ref())
            .map(|p| p.snapshot())
            .unwrap_or_default()
    }

    /// Signed-in user ids of this app on this node.
    pub fn signed_in_users(&self, app_id: &str) -> HashSet<String> {
        self.app(app_id)
            .map(|ah| ah.users.lock().keys().map(|k| k.to_string()).collect())
            .unwrap_or_default()
    }
    // -----------------------------------------------------------------------------------------
    // Other nodes (fed by the adapter)

    /// Another node has `user_id` in a presence channel: remember it, and tell this node's
    /// subscribers `member_added` when the user is new to the whole cluster.
    pub fn remote_member_added(
        &self,
        app_id: &str,
        channel: &str,
        node: &Arc<str>,
        user_id: &str,
        user_info: &RawValue,
    ) {
        let Some(ah) = self.app(app_id) else {
            return;
        };
        let kind = ChannelKind::of(channel).kind;
        if kind != ChannelKind::Presence {
            return;
        }
        let mut shard = ah.shard(channel).write();
        let state = match shard.get_mut(channel) {
            Some(s) => s,
            None => shard
                .entry(Arc::from(channel))
                .or_insert_with(|| ChannelState::new(kind)),
        };
        let Some(presence) = state.presence.as_mut() else {
            return;
        };
        if presence.remote_join(node, user_id, user_info) {
            let frame = protocol::member_added(channel, user_id, user_info);
            for c in state.subscribers.values() {
                c.push(frame.clone());
            }
        }
    }

    /// Another node no longer has `user_id` in a presence channel; `member_removed` to this
    /// node's subscribers when it was the user's last connection in the cluster.
    pub fn remote_member_removed(&self, app_id: &str, channel: &str, node: &str, user_id: &str) {
        let Some(ah) = self.app(app_id) else {
            return;
        };
        let mut shard = ah.shard(channel).write();
        let Some(state) = shard.get_mut(channel) else {
            return;
        };
        Self::remote_leave_locked(channel, state, node, user_id);
        if state.is_empty() {
            shard.remove(channel);
        }
    }

    fn remote_leave_locked(channel: &str, state: &mut ChannelState, node: &str, user_id: &str) {
        let Some(presence) = state.presence.as_mut() else {
            return;
        };
        if presence.remote_leave(node, user_id) {
            let frame = protocol::member_removed(channel, user_id);
            for c in state.subscribers.values() {
                c.push(frame.clone());
            }
        }
    }

    /// Another node signed `user_id` in (its first connection there).
    pub fn remote_user_online(&self, app_id: &str, node: &Arc<str>, user_id: &str) {
        let Some(ah) = self.app(app_id) else {
            return;
        };
        let notify = {
            let users = ah.users.lock();
            let mut remote = ah.remote_users.lock();
            let nodes = remote.entry(Arc::from(user_id)).or_default();
            if nodes.iter().any(|n| n == node) {
                return;
            }
            nodes.push(node.clone());
            nodes.len() == 1 && !users.contains_key(user_id)
        };
        if notify {
            self.notify_watchers(ah, user_id, true);
        }
    }

    /// Another node signed out `user_id`'s last connection there.
    pub fn remote_user_offline(&self, app_id: &str, node: &str, user_id: &str) {
        let Some(ah) = self.app(app_id) else {
            return;
        };
        let notify = {
            let users = ah.users.lock();
            let mut remote = ah.remote_users.lock();
            let Some(nodes) = remote.get_mut(user_id) else {
                return;
            };
            let before = nodes.len();
            nodes.retain(|n| &**n != node);
            if nodes.len() == before {
                return;
            }
            let gone = nodes.is_empty();
            if gone {
                remote.remove(user_id);
            }
            gone && !users.contains_key(user_id)
        };
        if notify {
            self.notify_watchers(ah, user_id, false);
        }
    }

    /// Replace what `node` reported for an app with its full state: presence members
    /// `(channel, user_id, user_info)` and signed-in users. Only the differences produce
    /// events. An empty state forgets the node (it died).
    pub fn sync_remote_node(
        &self,
        app_id: &str,
        node: &Arc<str>,
        members: &[(String, String, Box<RawValue>)],
        users: &[String],
    ) {
        let Some(ah) = self.app(app_id) else {
            return;
        };
        let keep: HashSet<(&str, &str)> = members
            .iter()
            .map(|(c, u, _)| (c.as_str(), u.as_str()))
            .collect();
        for shard in ah.shards.iter() {
            let mut shard = shard.write();
            shard.retain(|name, state| {
                let stale: Vec<Arc<str>> = match &state.presence {
                    Some(p) => p
                        .users_on(node)
                        .into_iter()
                        .filter(|u| !keep.contains(&(&**name, &**u)))
                        .collect(),
                    None => Vec::new(),
                };
                for u in stale {
                    Self::remote_leave_locked(name, state, node, &u);
                }
                !state.is_empty()
            });
        }
        for (channel, user_id, info) in members {
            self.remote_member_added(app_id, channel, node, user_id, info);
        }
        let online: HashSet<&str> = users.iter().map(String::as_str).collect();
        let stale: Vec<Arc<str>> = ah
            .remote_users
            .lock()
            .iter()
            .filter(|(u, nodes)| nodes.iter().any(|n| n == node) && !online.contains(&***u))
            .map(|(u, _)| u.clone())
            .collect();
        for u in stale {
            self.remote_user_offline(app_id, node, &u);
        }
        for u in users {
            self.remote_user_online(app_id, node, u);
        }
    }

    /// Forget everything `node` reported, in every app (the node is gone).
    pub fn forget_remote_node(&self, node: &Arc<str>) {
        for app_id in self.by_id.keys() {
            self.sync_remote_node(app_id, node, &[], &[]);
        }
    }

    /// This node's presence members of an app: `(channel, user_id, user_info)`.
    pub fn local_presence(&self, app_id: &str) -> Vec<(String, String, Box<RawValue>)> {
        let Some(ah) = self.app(app_id) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for shard in ah.shards.iter() {
            for (name, state) in shard.read().iter() {
                if let Some(p) = &state.presence {
                    for (u, info) in p.local_members() {
                        out.push((name.to_string(), u, info));
                    }
                }
            }
        }
        out
    }

    /// Every channel occupied anywhere in the cluster whose name starts with `prefix`:
    /// this node's figures plus the subscription counts other nodes report (user counts come
    /// from the presence mirror, which is already cluster-wide).
    pub async fn cluster_channels(
        &self,
        app_id: &str,
        prefix: &str,
    ) -> Vec<(Arc<str>, ChannelStats)> {
        let mut all: IndexMap<Arc<str>, ChannelStats> =
            self.channels(app_id, prefix).into_iter().collect();
        for (name, subs) in self.adapter().remote_channels(app_id, prefix).await {
            if !name.starts_with(prefix) || subs == 0 {
                continue;
            }
            let name: Arc<str> = Arc::from(name);
            let stats = all
                .entry(name.clone())
                .or_insert_with(|| self.channel(app_id, &name));
            stats.subscription_count += subs;
        }
        all.into_iter().collect()
    }

    /// One channel's figures across the cluster.
    pub async fn cluster_channel(&self, app_id: &str, channel: &str) -> ChannelStats {
        let mut stats = self.channel(app_id, channel);
        for (name, subs) in self.adapter().remote_channels(app_id, channel).await {
            if name == channel {
                stats.subscription_count += subs;
            }
        }
        stats
    }
}
