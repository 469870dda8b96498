//! The Redis adapter: many nodes behave as one server by talking over Redis pub/sub.
//!
//! Every node subscribes (on one dedicated connection) to
//! - `{prefix}#{app_id}#{p}` for each app and partition `p` (`p` = FNV-1a of the Pusher
//!   channel name mod `partitions`): publishes, client events and presence changes (with
//!   `routing: channel`, only what every node needs: presence, users, terminate and publishes
//!   to cache channels);
//! - with `routing: channel`, `{prefix}#{app_id}#ch#{channel}` for each Pusher channel it has
//!   local subscribers for, carrying that channel's publishes and client events (`routing.rs`);
//! - `{prefix}#nodes`: heartbeats, state syncs and channel-count questions;
//! - `{prefix}#node#{node_id}`: answers to this node's questions.
//!
//! Each message carries its origin node id; a node ignores its own. Outgoing messages go
//! through one bounded queue (`Adapter::send` never blocks: when it is full the message is
//! dropped and counted) to one publishing task that pipelines them on a multiplexed
//! connection, so the order a node publishes in is the order every other node delivers in.
//! That task numbers the messages carrying clients' events per Redis channel, and receivers
//! count the numbers that never reached them (`gaps.rs`, [`RedisAdapter::missed`]).
//!
//! The pub/sub side keeps no Redis keys (recovery's streams and lineages are `streams.rs`):
//! presence members and signed-in users of every node are mirrored in
//! every other node's hub from `MemberAdded`/`MemberRemoved`/`UserOnline`/`UserOffline`, and a
//! node that (re)connects asks all others for their full state (`Sync` → `State`) and sends
//! its own, which also repairs whatever was lost while Redis was away. A node that misses its
//! heartbeats for `node_expiry` is forgotten: its members leave (each node tells its own
//! subscribers, so every client hears `member_removed` once). See DESIGN.md.

use crate::hub::{Adapter, Checkpoint, ClusterEvent, RecoverAnswer, RecoverRequest, Remote};
use crate::hub::{Hub, Sequence, SocketId};
use crate::protocol::{ChannelInfo, ChannelKind};
use axum::extract::ws::Utf8Bytes;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};

mod gaps;
mod link;
mod metrics;
mod routing;
mod streams;

pub use metrics::RedisCollector;

use link::Target;
use routing::{Interest, InterestSettings};

/// Which Redis channels carry a Pusher channel's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Routing {
    /// The app's partition channels, which every node subscribes to: every node receives every
    /// event of the app. Redis holds a constant, small number of subscriptions.
    #[default]
    Partition,
    /// One Redis channel per Pusher channel, subscribed by the nodes with local subscribers for
    /// it only: a node receives only events it delivers.
    Channel,
}

/// How a node reaches Redis and how it watches the other nodes.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://[:password@]host:port[/db]`.
    pub url: String,
    /// Prefix of every Redis channel, so deployments sharing one Redis never meet.
    pub prefix: String,
    /// Pub/sub channels per app (messages for a Pusher channel go to hash(channel) mod this).
    pub partitions: u32,
    /// How often this node says it is alive.
    pub heartbeat: Duration,
    /// A node silent this long is dead: its members are removed.
    pub node_expiry: Duration,
    /// How long a cluster-wide query waits for the other nodes' answers.
    pub request_timeout: Duration,
    /// Outgoing messages queued while Redis is slow or away; beyond it they are dropped.
    pub queue: usize,
    /// Partition or interest (per-channel) routing of channel events.
    pub routing: Routing,
    /// `routing: channel`: how long a channel stays subscribed after its last local
    /// subscriber left (a client that comes back meanwhile costs Redis nothing).
    pub unsubscribe_linger: Duration,
    /// `routing: channel`: the longest a new subscriber's `subscription_succeeded` is held
    /// while Redis confirms the channel's `SUBSCRIBE`.
    pub subscribe_wait: Duration,
    /// `routing: channel`: channel names per `SUBSCRIBE` / `UNSUBSCRIBE` command.
    pub subscribe_batch: usize,
    /// Seed nodes of a Redis Cluster (sharded pub/sub); when empty, `url` is one server.
    pub cluster_urls: Vec<String>,
    /// A Redis Sentinel master name: `url` names the sentinels (`redis://h1:26379,h2:26379`)
    /// and the node talks to the primary they name, following failovers.
    pub sentinel: Option<String>,
    /// A Redis channel this node has not published on for this long has its message numbering
    /// forgotten (the next message starts a new count; see `gaps.rs`): bounds the numbering
    /// to the channels used lately.
    pub numbering_idle: Duration,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            url: "redis://127.0.0.1:6379".into(),
            prefix: "rf-broadcast".into(),
            partitions: 1,
            heartbeat: Duration::from_secs(5),
            node_expiry: Duration::from_secs(15),
            request_timeout: Duration::from_millis(1_000),
            queue: 16_384,
            routing: Routing::Partition,
            unsubscribe_linger: Duration::from_secs(2),
            subscribe_wait: Duration::from_secs(2),
            subscribe_batch: 512,
            cluster_urls: Vec::new(),
            sentinel: None,
            numbering_idle: Duration::from_secs(60),
        }
    }
}

/// A message between nodes (JSON on the wire).
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    node: String,
    msg: Msg,
    /// Its number on its Redis channel, written by the publishing task after serialization
    /// ([`gaps::stamp`]); messages that carry no client event have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<gaps::Seq>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Msg {
    Publish {
        app: String,
        channel: String,
        frame: String,
        except: Option<u64>,
        cache: bool,
    },
    MemberAdded {
        app: String,
        channel: String,
        user_id: String,
        user_info: String,
    },
    MemberRemoved {
        app: String,
        channel: String,
        user_id: String,
    },
    Terminate {
        app: String,
        user_id: String,
    },
    UserOnline {
        app: String,
        user_id: String,
    },
    UserOffline {
        app: String,
        user_id: String,
    },
    /// A connection of this lineage elsewhere claimed it: close yours (`socket`).
    Supersede {
        app: String,
        socket: u64,
    },
    Heartbeat,
    /// "Send me your full state" (to everyone, or to one node).
    Sync {
        to: Option<String>,
    },
    /// A node's full state for one app: presence members and signed-in users.
    State {
        app: String,
        members: Vec<(String, String, String)>,
        users: Vec<String>,
    },
    /// "Which channels starting with `prefix` have subscribers on your node?"
    Query {
        id: u64,
        app: String,
        prefix: String,
    },
    Reply {
        id: u64,
        channels: Vec<(String, usize)>,
    },
}

impl Msg {
    /// Whether it carries clients' events, so it is numbered and its loss counted by the
    /// receivers; the cluster's own bookkeeping (heartbeats, state, queries) is repaired by
    /// the protocol instead.
    fn numbered(&self) -> bool {
        match self {
            Msg::Publish { .. }
            | Msg::MemberAdded { .. }
            | Msg::MemberRemoved { .. }
            | Msg::Terminate { .. }
            | Msg::UserOnline { .. }
            | Msg::UserOffline { .. }
            | Msg::Supersede { .. } => true,
            Msg::Heartbeat
            | Msg::Sync { .. }
            | Msg::State { .. }
            | Msg::Query { .. }
            | Msg::Reply { .. } => false,
        }
    }
}

/// Channel names with their subscription counts on one node.
type ChannelCounts = Vec<(String, usize)>;

/// Another node, as this one knows it.
struct Peer {
    id: Arc<str>,
    /// When it was last heard from.
    seen: Instant,
    /// The last numbers received from it (`gaps.rs`).
    numbers: gaps::Seen,
}

/// One message for the publishing task: Redis channel and payload, and for a recovered
/// channel's API publish the stream it is numbered in (`streams.rs`).
struct Out {
    channel: String,
    payload: Vec<u8>,
    stream: Option<Box<streams::StreamWrite>>,
    /// Numbered by the publishing task (see [`Msg::numbered`]).
    numbered: bool,
}

struct Shared {
    node: Arc<str>,
    settings: RedisSettings,
    hub: Weak<Hub>,
    /// `host:port` of the Redis server, for messages (never the password).
    target: String,
    /// Rate limit of the "Redis is away" warnings (subscriber and publisher).
    outage: crate::ratelog::RateLog,
    /// The hub's apps changed: subscribe to added apps' channels, leave removed ones'.
    apps_changed: Notify,
    tx: mpsc::Sender<Out>,
    /// Messages dropped because the queue was full or Redis was unreachable.
    dropped: AtomicU64,
    /// Of those, messages whose publish failed (Redis away, a shard down, a failover).
    lost: AtomicU64,
    /// Numbered messages of other nodes that never arrived here (`gaps.rs`).
    missed: AtomicU64,
    /// Rate limit of the "messages from a node never arrived" warnings.
    missed_log: crate::ratelog::RateLog,
    connected: AtomicBool,
    /// Other nodes: when they were last heard from, and what of theirs arrived.
    nodes: Mutex<HashMap<Arc<str>, Peer>>,
    /// When this node last heard its own heartbeat (its subscription is alive).
    own_seen: Mutex<Instant>,
    pending: Mutex<HashMap<u64, mpsc::UnboundedSender<ChannelCounts>>>,
    next_id: AtomicU64,
    resubscribe: Notify,
    /// `routing: channel`: this node's per-channel subscriptions.
    interest: Option<Arc<Interest>>,
    /// Messages received from Redis (other nodes' and its own).
    received: AtomicU64,
    /// Each app's recovery window, as configured at start.
    recovery_windows: HashMap<String, Duration>,
    /// Lineage claims, reads and checkpoints (missed-message recovery across nodes).
    lineages: OnceLock<streams::Lineages>,
}

/// Joins this node to the others over Redis. See the module docs.
pub struct RedisAdapter {
    shared: Arc<Shared>,
}

/// Whether interest routing gives the channel its own Redis channel. Cache channels stay on
/// the partitions (every node keeps their last event for subscribers to come), and so do
/// `#server-to-user-` channels (their listeners are signed-in users, not subscribers).
fn routed_by_interest(channel: &str) -> bool {
    let info = ChannelInfo::of(channel);
    !info.cache && info.kind != ChannelKind::ServerToUser
}

/// FNV-1a, stable across builds and machines (the partition must agree on every node).
fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl RedisAdapter {
    /// Start the adapter's tasks (needs a tokio runtime) and install it in `hub`. Fails only
    /// on a malformed URL: an unreachable Redis is retried in the background while the node
    /// serves its own clients.
    pub fn start(hub: &Arc<Hub>, settings: RedisSettings) -> Result<Arc<RedisAdapter>, String> {
        crate::redis_probe::install_tls_provider();
        let link = Arc::new(Target::open(
            &settings.url,
            settings.sentinel.as_deref(),
            &settings.cluster_urls,
        )?);
        let target = crate::redis_probe::target(&settings.url);
        let (tx, rx) = mpsc::channel(settings.queue.max(16));
        let node: Arc<str> = Arc::from(format!("{:016x}", rand::random::<u64>()));
        let interest = (settings.routing == Routing::Channel).then(|| {
            Interest::new(InterestSettings {
                max_wait: settings.subscribe_wait,
                batch: settings.subscribe_batch.max(1),
            })
        });
        let shared = Arc::new(Shared {
            node,
            target,
            outage: crate::ratelog::RateLog::default(),
            apps_changed: Notify::new(),
            settings,
            hub: Arc::downgrade(hub),
            tx,
            dropped: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            missed: AtomicU64::new(0),
            missed_log: crate::ratelog::RateLog::default(),
            connected: AtomicBool::new(false),
            nodes: Mutex::new(HashMap::new()),
            own_seen: Mutex::new(Instant::now()),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            resubscribe: Notify::new(),
            interest,
            received: AtomicU64::new(0),
            recovery_windows: hub
                .apps()
                .iter()
                .map(|a| (a.id.clone(), Duration::from_secs(a.recovery_window)))
                .collect(),
            lineages: OnceLock::new(),
        });
        let weak = Arc::downgrade(&shared);
        let keys: streams::KeysOf = Arc::new(move |app: &str, channel: &str| {
            let route = weak
                .upgrade()
                .map(|sh| sh.stream_route(app, channel))
                .unwrap_or_default();
            streams::stream_keys(&route, channel)
        });
        let _ = shared.lineages.set(streams::Lineages::start(
            link.clone(),
            shared.settings.prefix.clone(),
            keys,
            shared.settings.queue,
        ));
        tokio::spawn(publisher(shared.clone(), link.clone(), rx));
        tokio::spawn(subscriber(shared.clone(), link));
        tokio::spawn(watchdog(shared.clone()));
        let adapter = Arc::new(RedisAdapter { shared });
        hub.set_adapter(adapter.clone());
        tracing::info!(node = %adapter.node_id(), "cluster adapter: redis");
        Ok(adapter)
    }

    /// This node's id in the cluster.
    pub fn node_id(&self) -> &str {
        &self.shared.node
    }

    /// Whether the subscription to Redis is up.
    pub fn connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }

    /// Messages dropped so far (queue full or Redis unreachable).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Wait (at most `within`) until the outgoing queue is published: call it after the
    /// server closed its connections so their `member_removed` reach the other nodes.
    pub async fn flush(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        let tx = &self.shared.tx;
        while tx.capacity() < tx.max_capacity() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The last batch may still be on the wire.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    /// The hub's apps were reloaded: follow added apps and leave removed ones on Redis now
    /// (the watchdog also checks every heartbeat).
    pub fn apps_changed(&self) {
        self.shared.apps_changed.notify_one();
    }

    /// Other nodes currently considered alive.
    pub fn nodes(&self) -> usize {
        self.shared.nodes.lock().len()
    }

    /// Messages whose publish failed (Redis away, a shard down, a failover): part of
    /// [`dropped`](Self::dropped), never sent twice.
    pub fn lost(&self) -> u64 {
        self.shared.lost.load(Ordering::Relaxed)
    }

    /// Messages of other nodes that never arrived here: holes in their numbering per Redis
    /// channel, counted when the next one arrives (`gaps.rs`). Whatever the cause: the sender's
    /// publish failed (it counted them in its [`lost`](Self::lost) too), or Redis accepted
    /// them while this node's subscription was down, or before it had subscribed to a new
    /// primary. Only clients' events count (publishes, client events, presence changes,
    /// terminations), on channels this node listened to all along.
    pub fn missed(&self) -> u64 {
        self.shared.missed.load(Ordering::Relaxed)
    }

    /// (Origin node, Redis channel) pairs whose last number this node keeps (`testing`).
    pub(crate) fn baselines(&self) -> usize {
        self.shared
            .nodes
            .lock()
            .values()
            .map(|p| p.numbers.len())
            .sum()
    }

    /// Its figures as Prometheus series (`rf_broadcast_redis_*`), read at scrape time:
    /// register it on the metrics registry.
    pub fn collector(self: &Arc<Self>) -> RedisCollector {
        RedisCollector::new(self.clone())
    }

    /// Messages received from Redis so far (this node's inbound traffic).
    pub fn received(&self) -> u64 {
        self.shared.received.load(Ordering::Relaxed)
    }

    /// `routing: channel`: per-channel Redis subscriptions confirmed now (0 otherwise).
    pub fn channel_subscriptions(&self) -> usize {
        self.shared.interest.as_ref().map_or(0, |i| i.subscribed())
    }

    /// `routing: channel`: `SUBSCRIBE`/`UNSUBSCRIBE` commands sent, and subscribers released
    /// because a `SUBSCRIBE` was not confirmed within `subscribe_wait`.
    pub fn routing_stats(&self) -> (u64, u64) {
        self.shared
            .interest
            .as_ref()
            .map_or((0, 0), |i| (i.commands(), i.timeouts()))
    }
}

impl Shared {
    fn ctl_channel(&self) -> String {
        format!("{}#nodes", self.settings.prefix)
    }

    fn node_channel(&self, node: &str) -> String {
        format!("{}#node#{node}", self.settings.prefix)
    }

    fn app_channel(&self, app_id: &str, key: &str) -> String {
        let p = fnv1a(key) % u64::from(self.settings.partitions.max(1));
        format!("{}#{app_id}#{p}", self.settings.prefix)
    }

    /// The ids of the hub's apps now (they change on reload).
    fn app_ids(&self) -> Vec<String> {
        match self.hub.upgrade() {
            Some(hub) => hub.apps().iter().map(|a| a.id.clone()).collect(),
            None => Vec::new(),
        }
    }

    /// `routing: channel`: the Redis channel of one Pusher channel.
    fn channel_route(&self, app_id: &str, channel: &str) -> String {
        format!("{}#{app_id}#ch#{channel}", self.settings.prefix)
    }

    /// The Redis channel that carries a Pusher channel's API publishes.
    fn stream_route(&self, app_id: &str, channel: &str) -> String {
        if self.interest.is_some() && routed_by_interest(channel) {
            self.channel_route(app_id, channel)
        } else {
            self.app_channel(app_id, channel)
        }
    }

    fn all_channels(&self) -> Vec<String> {
        let mut out = vec![self.ctl_channel(), self.node_channel(&self.node)];
        for app in &self.app_ids() {
            for p in 0..self.settings.partitions.max(1) {
                out.push(format!("{}#{app}#{p}", self.settings.prefix));
            }
        }
        out
    }

    fn enqueue(&self, channel: String, msg: Msg) {
        self.enqueue_with(channel, msg, None);
    }

    /// Queue a message; with `stream`, numbered in that stream by the publish script.
    fn enqueue_with(&self, channel: String, msg: Msg, stream: Option<Box<streams::StreamWrite>>) {
        let numbered = msg.numbered();
        let env = Envelope {
            node: self.node.to_string(),
            msg,
            seq: None,
        };
        let payload = match serde_json::to_vec(&env) {
            Ok(p) => p,
            Err(_) => return,
        };
        let out = Out {
            channel,
            payload,
            stream,
            numbered,
        };
        if let Err(e) = self.tx.try_send(out) {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n + 1,
                    "redis adapter: outgoing queue full, dropping"
                );
            }
            self.deliver_here(std::slice::from_ref(&e.into_inner()));
        }
    }

    /// Numbered publishes that surely did not reach Redis were not delivered here yet: this
    /// node's subscribers still get them (as every publish reaches its own node while Redis
    /// is away), though no stream holds them for recovery.
    fn deliver_here(&self, outs: &[Out]) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        for out in outs {
            if let Some(w) = &out.stream {
                let f = &w.fallback;
                hub.deliver_unnumbered(&f.app, &f.channel, &f.frame, f.except);
            }
        }
    }

    /// `n` numbered messages of `node` on `route` never arrived: count and warn (rate-limited).
    fn count_missed(&self, node: &str, route: &str, n: u64) {
        let total = self.missed.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(held) = self.missed_log.allow() {
            tracing::warn!(
                node = %node,
                channel = %route,
                missed = n,
                total,
                "redis adapter: messages from another node never arrived here{}",
                crate::ratelog::held_back(held)
            );
        }
    }

    /// This node no longer listens to `routes` (what arrived on them before is handled): the
    /// next number of each node on them is a new baseline.
    fn forget_routes(&self, routes: &[String]) {
        let mut nodes = self.nodes.lock();
        for peer in nodes.values_mut() {
            for route in routes {
                peer.numbers.forget(route);
            }
        }
    }

    /// A new subscription is up after one lost at `since`: keep the baselines of the channels
    /// listened to all along (`subscribed` now, and, with interest routing, the channels with
    /// local subscribers throughout), so what was published meanwhile counts as missed; forget
    /// the others (nobody here wanted their messages for a while).
    fn resume_numbers(&self, subscribed: &[String], since: Instant) {
        let mut keep: HashSet<String> = subscribed.iter().cloned().collect();
        if let Some(interest) = &self.interest {
            keep.extend(interest.held_since(since));
        }
        for peer in self.nodes.lock().values_mut() {
            peer.numbers.retain(|route| keep.contains(route));
        }
    }

    /// Send this node's full state (every app) to the others.
    fn send_state(&self, hub: &Hub) {
        for app in &self.app_ids() {
            let members = hub
                .local_presence(app)
                .into_iter()
                .map(|(c, u, i)| (c, u, i.get().to_string()))
                .collect();
            let users = hub.signed_in_users(app).into_iter().collect();
            self.enqueue(
                self.ctl_channel(),
                Msg::State {
                    app: app.clone(),
                    members,
                    users,
                },
            );
        }
    }

    /// The subscription is (again) up: nobody is blamed for the silence before, and states
    /// are exchanged so whatever was missed is repaired.
    fn on_connected(&self, hub: &Hub) {
        let now = Instant::now();
        *self.own_seen.lock() = now;
        for peer in self.nodes.lock().values_mut() {
            peer.seen = now;
        }
        self.connected.store(true, Ordering::Relaxed);
        self.enqueue(self.ctl_channel(), Msg::Heartbeat);
        self.enqueue(self.ctl_channel(), Msg::Sync { to: None });
        self.send_state(hub);
    }

    /// One message from Redis, received on `route`.
    fn handle(&self, hub: &Hub, route: &str, payload: &[u8]) {
        let (numbered, payload) = match streams::split_numbered(payload) {
            Some((at, rest)) => (Some(at), rest),
            None => (None, payload),
        };
        let env: Envelope = match serde_json::from_slice(payload) {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!("redis adapter: unreadable message: {e}");
                return;
            }
        };
        if let (
            Some(at),
            Msg::Publish {
                app,
                channel,
                frame,
                except,
                ..
            },
        ) = (numbered, &env.msg)
        {
            // Numbered publishes reach every node this way, the publishing one included.
            let frame = Utf8Bytes::from(frame.clone());
            hub.deliver_at(app, channel, &frame, except.map(SocketId), at);
            if *env.node == *self.node {
                return;
            }
        }
        if *env.node == *self.node {
            if matches!(env.msg, Msg::Heartbeat) {
                *self.own_seen.lock() = Instant::now();
            }
            return;
        }
        let (node, new, missed) = {
            let now = Instant::now();
            let mut nodes = self.nodes.lock();
            if let Some(peer) = nodes.get_mut(env.node.as_str()) {
                peer.seen = now;
                let missed = env.seq.map_or(0, |seq| peer.numbers.check(route, seq));
                (peer.id.clone(), false, missed)
            } else {
                // Unknown (new, restarted under a new id, or expired): its first numbers
                // here are baselines.
                let mut peer = Peer {
                    id: Arc::from(env.node.as_str()),
                    seen: now,
                    numbers: gaps::Seen::default(),
                };
                if let Some(seq) = env.seq {
                    peer.numbers.check(route, seq);
                }
                let id = peer.id.clone();
                nodes.insert(id.clone(), peer);
                (id, true, 0)
            }
        };
        if missed > 0 {
            self.count_missed(&node, route, missed);
        }
        if new {
            tracing::info!(node = %node, "redis adapter: node joined");
            if !matches!(env.msg, Msg::State { .. } | Msg::Sync { .. }) {
                // We may have missed what it has: ask it.
                self.enqueue(
                    self.ctl_channel(),
                    Msg::Sync {
                        to: Some(node.to_string()),
                    },
                );
            }
        }
        match env.msg {
            Msg::Publish { .. } if numbered.is_some() => {}
            Msg::Publish {
                app,
                channel,
                frame,
                except,
                cache,
            } => {
                hub.deliver(
                    &app,
                    &channel,
                    &Utf8Bytes::from(frame),
                    except.map(SocketId),
                    cache,
                );
            }
            Msg::MemberAdded {
                app,
                channel,
                user_id,
                user_info,
            } => {
                let info = RawValue::from_string(user_info)
                    .unwrap_or_else(|_| crate::protocol::null_raw());
                hub.remote_member_added(&app, &channel, &node, &user_id, &info);
            }
            Msg::MemberRemoved {
                app,
                channel,
                user_id,
            } => hub.remote_member_removed(&app, &channel, &node, &user_id),
            Msg::Terminate { app, user_id } => {
                hub.terminate_user(&app, &user_id);
            }
            Msg::UserOnline { app, user_id } => hub.remote_user_online(&app, &node, &user_id),
            Msg::UserOffline { app, user_id } => hub.remote_user_offline(&app, &node, &user_id),
            Msg::Supersede { app, socket } => hub.lineage_superseded(&app, SocketId(socket)),
            Msg::Heartbeat => {}
            Msg::Sync { to } => {
                if to.is_none_or(|t| *t == *self.node) {
                    self.send_state(hub);
                }
            }
            Msg::State {
                app,
                members,
                users,
            } => {
                let members: Vec<(String, String, Box<RawValue>)> = members
                    .into_iter()
                    .map(|(c, u, i)| {
                        let info = RawValue::from_string(i)
                            .unwrap_or_else(|_| crate::protocol::null_raw());
                        (c, u, info)
                    })
                    .collect();
                hub.sync_remote_node(&app, &node, &members, &users);
            }
            Msg::Query { id, app, prefix } => {
                let channels = hub
                    .channels(&app, &prefix)
                    .into_iter()
                    .map(|(name, stats)| (name.to_string(), stats.subscription_count))
                    .collect();
                self.enqueue(self.node_channel(&node), Msg::Reply { id, channels });
            }
            Msg::Reply { id, channels } => {
                if let Some(tx) = self.pending.lock().get(&id) {
                    let _ = tx.send(channels);
                }
            }
        }
    }
}

impl Adapter for RedisAdapter {
    fn send(&self, app_id: &str, event: ClusterEvent) {
        let sh = &self.shared;
        let app = app_id.to_string();
        let event = match event {
            ClusterEvent::Publish {
                channel,
                frame,
                except,
                cache,
                sequence: Some(sequence),
            } => {
                self.send_numbered(app_id, channel, frame, except, cache, sequence);
                return;
            }
            // Interest routing: only the nodes with subscribers for the channel listen on its
            // route.
            ClusterEvent::Publish {
                channel,
                frame,
                except,
                cache,
                ..
            } if sh.interest.is_some() && routed_by_interest(&channel) => {
                let route = sh.channel_route(app_id, &channel);
                let msg = Msg::Publish {
                    app,
                    channel: channel.to_string(),
                    frame: frame.as_str().to_string(),
                    except: except.map(|s| s.0),
                    cache,
                };
                sh.enqueue(route, msg);
                return;
            }
            other => other,
        };
        let (key, msg) = match event {
            ClusterEvent::Publish {
                channel,
                frame,
                except,
                cache,
                ..
            } => (
                channel.to_string(),
                Msg::Publish {
                    app,
                    channel: channel.to_string(),
                    frame: frame.as_str().to_string(),
                    except: except.map(|s| s.0),
                    cache,
                },
            ),
            ClusterEvent::MemberAdded {
                channel,
                user_id,
                user_info,
            } => (
                channel.to_string(),
                Msg::MemberAdded {
                    app,
                    channel: channel.to_string(),
                    user_id,
                    user_info: user_info.get().to_string(),
                },
            ),
            ClusterEvent::MemberRemoved { channel, user_id } => (
                channel.to_string(),
                Msg::MemberRemoved {
                    app,
                    channel: channel.to_string(),
                    user_id,
                },
            ),
            ClusterEvent::Terminate { user_id } => {
                (user_id.clone(), Msg::Terminate { app, user_id })
            }
            ClusterEvent::UserOnline { user_id } => {
                (user_id.clone(), Msg::UserOnline { app, user_id })
            }
            ClusterEvent::UserOffline { user_id } => {
                (user_id.clone(), Msg::UserOffline { app, user_id })
            }
        };
        sh.enqueue(sh.app_channel(app_id, &key), msg);
    }

    fn interest(&self, app_id: &str, channel: &Arc<str>, occupied: bool) {
        let sh = &self.shared;
        if let (Some(interest), true) = (&sh.interest, routed_by_interest(channel)) {
            // An app with recovery keeps receiving a vacated channel's events for its window,
            // so a client that comes back is replayed what it missed.
            let keep = sh.recovery_windows.get(app_id).copied().unwrap_or_default();
            let linger = sh.settings.unsubscribe_linger.max(keep);
            interest.set(sh.channel_route(app_id, channel), occupied, linger);
        }
    }

    fn ready(&self, app_id: &str, channel: &str) -> Option<Remote<()>> {
        let interest = self.shared.interest.as_ref()?;
        interest.ready(&self.shared.channel_route(app_id, channel))
    }

    fn sequences(&self) -> bool {
        true
    }

    fn recover(&self, request: RecoverRequest) -> Remote<RecoverAnswer> {
        let sh = self.shared.clone();
        Box::pin(async move {
            let Some(lineages) = sh.lineages.get() else {
                return RecoverAnswer::default();
            };
            let app = request.app_id.clone();
            let (answer, closing) = lineages.recover(request).await;
            if let Some(socket) = closing {
                // The lineage's previous connection is still open somewhere (this node
                // included): its node closes it.
                if let Some(hub) = sh.hub.upgrade() {
                    hub.lineage_superseded(&app, socket);
                }
                sh.enqueue(
                    sh.app_channel(&app, &socket.to_string()),
                    Msg::Supersede {
                        app: app.to_string(),
                        socket: socket.0,
                    },
                );
            }
            answer
        })
    }

    fn checkpoint(&self, checkpoint: Checkpoint) {
        if let Some(lineages) = self.shared.lineages.get() {
            lineages.checkpoint(checkpoint);
        }
    }

    fn remote_channels(&self, app_id: &str, prefix: &str) -> Remote<Vec<(String, usize)>> {
        let sh = self.shared.clone();
        let expected = sh.nodes.lock().len();
        if expected == 0 || !sh.connected.load(Ordering::Relaxed) {
            return Box::pin(std::future::ready(Vec::new()));
        }
        let id = sh.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::unbounded_channel();
        sh.pending.lock().insert(id, tx);
        sh.enqueue(
            sh.ctl_channel(),
            Msg::Query {
                id,
                app: app_id.to_string(),
                prefix: prefix.to_string(),
            },
        );
        Box::pin(async move {
            let mut sums: HashMap<String, usize> = HashMap::new();
            let deadline = tokio::time::Instant::now() + sh.settings.request_timeout;
            let mut got = 0;
            while got < expected {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(channels)) => {
                        got += 1;
                        for (name, n) in channels {
                            *sums.entry(name).or_default() += n;
                        }
                    }
                    _ => {
                        tracing::debug!(got, expected, "redis adapter: query answered partly");
                        break;
                    }
                }
            }
            sh.pending.lock().remove(&id);
            sums.into_iter().collect()
        })
    }
}

impl RedisAdapter {
    /// A recovered channel's API publish: numbered in its stream and published on its route
    /// by one script (`streams.rs`); every node delivers it from there.
    fn send_numbered(
        &self,
        app_id: &str,
        channel: Arc<str>,
        frame: Utf8Bytes,
        except: Option<SocketId>,
        cache: bool,
        sequence: Sequence,
    ) {
        let sh = &self.shared;
        let route = sh.stream_route(app_id, &channel);
        let (stream, meta) = streams::stream_keys(&route, &channel);
        let msg = Msg::Publish {
            app: app_id.to_string(),
            channel: channel.to_string(),
            frame: frame.as_str().to_string(),
            except: except.map(|s| s.0),
            cache,
        };
        let write = streams::StreamWrite {
            stream,
            meta,
            max_events: sequence.max_events,
            ttl_ms: sequence.window.as_millis() as u64,
            fallback: streams::Fallback {
                app: Arc::from(app_id),
                channel,
                frame,
                except,
            },
        };
        sh.enqueue_with(route, msg, Some(Box::new(write)));
    }
}

/// The frame and excluded socket of an envelope holding a publish (as the recovery streams
/// store it).
fn envelope_publish(payload: &[u8]) -> Option<(Utf8Bytes, Option<SocketId>)> {
    match serde_json::from_slice::<Envelope>(payload).ok()?.msg {
        Msg::Publish { frame, except, .. } => Some((Utf8Bytes::from(frame), except.map(SocketId))),
        _ => None,
    }
}

/// Publish queued messages in order, pipelined; reconnect when the connection breaks.
async fn publisher(sh: Arc<Shared>, target: Arc<Target>, mut rx: mpsc::Receiver<Out>) {
    let mut conn: Option<link::Publisher> = None;
    let mut down = false;
    let mut batch: Vec<Out> = Vec::with_capacity(256);
    let mut numbering = gaps::Numbering::new(sh.settings.numbering_idle);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        // Numbered in queue order, before the publish is tried: a message that fails keeps its
        // number, so the receivers see the hole (and count it missed).
        let now = Instant::now();
        for out in batch.iter_mut().filter(|o| o.numbered) {
            numbering.stamp(&mut out.payload, &out.channel, now);
        }
        numbering.sweep(now);
        if conn.is_none() {
            match target.publisher().await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    if let Some(n) = (!down).then(|| sh.outage.allow()).flatten() {
                        tracing::warn!(
                            "redis adapter: cannot publish to Redis at {}: {e}{}",
                            sh.target,
                            crate::ratelog::held_back(n)
                        );
                    }
                }
            }
        }
        // Sent once: a batch that fails is counted lost, never sent again (it may have been
        // published in part, and a second send would duplicate that part).
        let lost = match conn.as_mut() {
            Some(c) => match c.publish(&batch).await {
                Ok(()) => 0,
                Err((n, e)) => {
                    if let Some(n) = (!down).then(|| sh.outage.allow()).flatten() {
                        tracing::warn!(
                            "redis adapter: publish to Redis at {} failed: {e}{}",
                            sh.target,
                            crate::ratelog::held_back(n)
                        );
                    }
                    conn = None;
                    n
                }
            },
            None => {
                // Nothing of it reached Redis: numbered publishes can still reach this node's
                // subscribers. (After a failed send that is unknown: some may have been
                // published, and delivering them here too could duplicate them.)
                sh.deliver_here(&batch);
                batch.len()
            }
        };
        if lost == 0 {
            if down {
                tracing::info!("redis adapter: publishing to Redis at {} again", sh.target);
            }
            down = false;
        } else {
            let total = sh.lost.fetch_add(lost as u64, Ordering::Relaxed) + lost as u64;
            if !down || total.is_power_of_two() {
                tracing::warn!(lost, total, "redis adapter: messages to other nodes lost");
            }
            down = true;
            sh.dropped.fetch_add(lost as u64, Ordering::Relaxed);
            // Do not spin while Redis is away; the queue absorbs what comes meanwhile.
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        batch.clear();
        if sh.hub.strong_count() == 0 {
            return;
        }
    }
}

/// Keep one subscription up: subscribe, hand every message to the hub, and on loss
/// reconnect with backoff and resynchronise.
async fn subscriber(sh: Arc<Shared>, target: Arc<Target>) {
    let mut backoff = Duration::from_millis(100);
    let mut was_up = false;
    // When the last subscription was lost.
    let mut down_since: Option<Instant> = None;
    loop {
        if sh.hub.strong_count() == 0 {
            return;
        }
        let channels = sh.all_channels();
        let attempt =
            tokio::time::timeout(Duration::from_secs(2), target.subscribe(&channels)).await;
        match attempt {
            Ok(Ok((mut sink, mut stream))) => {
                backoff = Duration::from_millis(100);
                if was_up {
                    tracing::info!(
                        "redis adapter: reconnected to Redis at {}; resynchronising",
                        sh.target
                    );
                } else {
                    tracing::info!("redis adapter: subscribed to Redis at {}", sh.target);
                }
                sh.outage.reset();
                was_up = true;
                if let Some(since) = down_since.take() {
                    sh.resume_numbers(&channels, since);
                }
                let Some(hub) = sh.hub.upgrade() else { return };
                sh.on_connected(&hub);
                drop(hub);
                // Per-channel subscriptions ride on the same connection, so their messages
                // are ordered with the partition channels'.
                let (unsubscribed, mut unsubscribed_rx) = mpsc::unbounded_channel();
                let routes = sh.interest.clone().map(|interest| {
                    let generation = interest.connected();
                    AbortOnDrop(tokio::spawn(routing::reconcile(
                        interest,
                        sink.clone(),
                        generation,
                        unsubscribed.clone(),
                    )))
                });
                let mut subscribed: HashSet<String> = channels.into_iter().collect();
                loop {
                    tokio::select! {
                        msg = stream.next() => match msg {
                            Some(msg) => {
                                if !sh.consume(&msg) {
                                    return;
                                }
                            }
                            None => break,
                        },
                        Some((gone, ack)) = unsubscribed_rx.recv() => {
                            if !sh.consume_queued(&mut stream) {
                                return;
                            }
                            sh.forget_routes(&gone);
                            let _ = ack.send(());
                        }
                        _ = sh.resubscribe.notified() => break,
                        _ = sh.apps_changed.notified() => {
                            let want: HashSet<String> = sh.all_channels().into_iter().collect();
                            let add: Vec<String> = want.difference(&subscribed).cloned().collect();
                            if !add.is_empty() && sink.subscribe(&add).await.is_err() {
                                break;
                            }
                            let gone: Vec<String> = subscribed.difference(&want).cloned().collect();
                            if !gone.is_empty() {
                                if sink.unsubscribe(&gone).await.is_err() {
                                    break;
                                }
                                if !sh.consume_queued(&mut stream) {
                                    return;
                                }
                                sh.forget_routes(&gone);
                            }
                            subscribed = want;
                        }
                    }
                }
                down_since = Some(Instant::now());
                sh.connected.store(false, Ordering::Relaxed);
                drop(routes);
                if let Some(interest) = &sh.interest {
                    interest.disconnected();
                }
                drop(sink);
                tracing::warn!(
                    "redis adapter: lost the Redis subscription at {}; serving local clients, reconnecting",
                    sh.target
                );
            }
            Ok(Err(e)) => {
                if let Some(n) = sh.outage.allow() {
                    tracing::warn!(
                        "redis adapter: cannot subscribe to Redis at {}: {e}; serving local clients, retrying{}",
                        sh.target,
                        crate::ratelog::held_back(n)
                    );
                }
            }
            Err(_) => {
                if let Some(n) = sh.outage.allow() {
                    tracing::warn!(
                        "redis adapter: cannot subscribe to Redis at {}: timed out; serving local clients, retrying{}",
                        sh.target,
                        crate::ratelog::held_back(n)
                    );
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

impl Shared {
    /// Hand one message from Redis to the hub; false when the hub is gone.
    fn consume(&self, msg: &link::Message) -> bool {
        self.received.fetch_add(1, Ordering::Relaxed);
        let Some(hub) = self.hub.upgrade() else {
            return false;
        };
        self.handle(&hub, msg.channel(), msg.payload());
        true
    }

    /// Hand over what the subscription holds already: after an `UNSUBSCRIBE` is confirmed,
    /// every message Redis sent before it (so a channel's baselines go after its last message
    /// of the old subscription). False when the hub is gone.
    fn consume_queued(&self, stream: &mut link::Incoming) -> bool {
        use futures_util::FutureExt;
        // Unconstrained: with the task's cooperative budget spent, the stream would answer
        // "nothing yet" while messages are waiting.
        while let Some(Some(msg)) = tokio::task::unconstrained(stream.next()).now_or_never() {
            if !self.consume(&msg) {
                return false;
            }
        }
        true
    }
}

/// A task that ends with its owner (the subscription it serves).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Say we are alive; forget nodes that stopped saying so; notice a dead subscription.
async fn watchdog(sh: Arc<Shared>) {
    let mut every = tokio::time::interval(sh.settings.heartbeat);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(hub) = sh.hub.upgrade() else { return };
        if !sh.connected.load(Ordering::Relaxed) {
            continue;
        }
        sh.enqueue(sh.ctl_channel(), Msg::Heartbeat);
        // Apps reloaded without telling us (a library caller of `Hub::reload_apps`).
        sh.apps_changed.notify_one();
        if sh.own_seen.lock().elapsed() > sh.settings.node_expiry {
            // Our own heartbeats no longer come back: the subscription is dead.
            tracing::warn!("redis adapter: own heartbeat not seen; resubscribing");
            sh.resubscribe.notify_one();
            continue;
        }
        let expired: Vec<Arc<str>> = {
            // Forgotten with its numbers: if it comes back, its next ones are baselines.
            let mut nodes = sh.nodes.lock();
            let gone: Vec<Arc<str>> = nodes
                .iter()
                .filter(|(_, peer)| peer.seen.elapsed() > sh.settings.node_expiry)
                .map(|(n, _)| n.clone())
                .collect();
            for n in &gone {
                nodes.remove(n);
            }
            gone
        };
        for node in expired {
            tracing::warn!(node = %node, "redis adapter: node missed its heartbeats; removing its members");
            hub.forget_remote_node(&node);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable() {
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn messages_round_trip() {
        let env = Envelope {
            node: "n".into(),
            msg: Msg::Publish {
                app: "a".into(),
                channel: "c".into(),
                frame: r#"{"event":"e"}"#.into(),
                except: Some(7),
                cache: false,
            },
            seq: None,
        };
        let mut text = serde_json::to_vec(&env).unwrap();
        let back: Envelope = serde_json::from_slice(&text).unwrap();
        assert!(matches!(
            back.msg,
            Msg::Publish {
                except: Some(7),
                ..
            }
        ));
        assert_eq!(back.seq, None);
        // Numbered by the publishing task, as it goes on the wire.
        let mut numbering = gaps::Numbering::new(Duration::from_secs(60));
        numbering.stamp(&mut text, "route", Instant::now());
        let back: Envelope = serde_json::from_slice(&text).unwrap();
        assert_eq!(back.seq, Some(gaps::Seq(1, 1)));
        assert!(envelope_publish(&text).is_some());
    }

    #[test]
    fn only_clients_events_are_numbered() {
        assert!(Msg::Terminate {
            app: "a".into(),
            user_id: "u".into()
        }
        .numbered());
        assert!(Msg::Supersede {
            app: "a".into(),
            socket: 1
        }
        .numbered());
        assert!(!Msg::Heartbeat.numbered());
        assert!(!Msg::Sync { to: None }.numbered());
        assert!(!Msg::Reply {
            id: 1,
            channels: vec![]
        }
        .numbered());
    }
}
