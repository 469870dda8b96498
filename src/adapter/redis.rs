//! The Redis adapter: many nodes behave as one server by talking over Redis pub/sub.
//!
//! Every node subscribes (on one dedicated connection) to
//! - `{prefix}#{app_id}#{p}` for each app and partition `p` (`p` = FNV-1a of the Pusher
//!   channel name mod `partitions`): publishes, client events and presence changes;
//! - `{prefix}#nodes`: heartbeats, state syncs and channel-count questions;
//! - `{prefix}#node#{node_id}`: answers to this node's questions.
//!
//! Each message carries its origin node id; a node ignores its own. Outgoing messages go
//! through one bounded queue (`Adapter::send` never blocks: when it is full the message is
//! dropped and counted) to one publishing task that pipelines them on a multiplexed
//! connection, so the order a node publishes in is the order every other node delivers in.
//!
//! No Redis keys are used: presence members and signed-in users of every node are mirrored in
//! every other node's hub from `MemberAdded`/`MemberRemoved`/`UserOnline`/`UserOffline`, and a
//! node that (re)connects asks all others for their full state (`Sync` → `State`) and sends
//! its own, which also repairs whatever was lost while Redis was away. A node that misses its
//! heartbeats for `node_expiry` is forgotten: its members leave (each node tells its own
//! subscribers, so every client hears `member_removed` once). See DESIGN.md.

use crate::hub::{Adapter, ClusterEvent, Remote};
use crate::hub::{Hub, SocketId};
use axum::extract::ws::Utf8Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};

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
        }
    }
}

/// A message between nodes (JSON on the wire).
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    node: String,
    msg: Msg,
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

/// Channel names with their subscription counts on one node.
type ChannelCounts = Vec<(String, usize)>;

/// One message for the publishing task: Redis channel and payload.
type Out = (String, Vec<u8>);

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
    connected: AtomicBool,
    /// Other nodes and when they were last heard from.
    nodes: Mutex<HashMap<Arc<str>, Instant>>,
    /// When this node last heard its own heartbeat (its subscription is alive).
    own_seen: Mutex<Instant>,
    pending: Mutex<HashMap<u64, mpsc::UnboundedSender<ChannelCounts>>>,
    next_id: AtomicU64,
    resubscribe: Notify,
}

/// Joins this node to the others over Redis. See the module docs.
pub struct RedisAdapter {
    shared: Arc<Shared>,
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
        let client = redis::Client::open(settings.url.as_str())
            .map_err(|e| format!("invalid Redis URL: {e}"))?;
        let target = crate::redis_probe::target(&settings.url);
        let (tx, rx) = mpsc::channel(settings.queue.max(16));
        let node: Arc<str> = Arc::from(format!("{:016x}", rand::random::<u64>()));
        let shared = Arc::new(Shared {
            node,
            target,
            outage: crate::ratelog::RateLog::default(),
            apps_changed: Notify::new(),
            settings,
            hub: Arc::downgrade(hub),
            tx,
            dropped: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            nodes: Mutex::new(HashMap::new()),
            own_seen: Mutex::new(Instant::now()),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            resubscribe: Notify::new(),
        });
        tokio::spawn(publisher(shared.clone(), client.clone(), rx));
        tokio::spawn(subscriber(shared.clone(), client));
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
        let env = Envelope {
            node: self.node.to_string(),
            msg,
        };
        let payload = match serde_json::to_vec(&env) {
            Ok(p) => p,
            Err(_) => return,
        };
        if self.tx.try_send((channel, payload)).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n + 1,
                    "redis adapter: outgoing queue full, dropping"
                );
            }
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
        for seen in self.nodes.lock().values_mut() {
            *seen = now;
        }
        self.connected.store(true, Ordering::Relaxed);
        self.enqueue(self.ctl_channel(), Msg::Heartbeat);
        self.enqueue(self.ctl_channel(), Msg::Sync { to: None });
        self.send_state(hub);
    }

    fn handle(&self, hub: &Hub, payload: &[u8]) {
        let env: Envelope = match serde_json::from_slice(payload) {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!("redis adapter: unreadable message: {e}");
                return;
            }
        };
        if *env.node == *self.node {
            if matches!(env.msg, Msg::Heartbeat) {
                *self.own_seen.lock() = Instant::now();
            }
            return;
        }
        let (node, new) = {
            let mut nodes = self.nodes.lock();
            match nodes.get_key_value(env.node.as_str()) {
                Some((k, _)) => {
                    let k = k.clone();
                    nodes.insert(k.clone(), Instant::now());
                    (k, false)
                }
                None => {
                    let k: Arc<str> = Arc::from(env.node.as_str());
                    nodes.insert(k.clone(), Instant::now());
                    (k, true)
                }
            }
        };
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
        let (key, msg) = match event {
            ClusterEvent::Publish {
                channel,
                frame,
                except,
                cache,
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

/// Publish queued messages in order, pipelined; reconnect when the connection breaks.
async fn publisher(sh: Arc<Shared>, client: redis::Client, mut rx: mpsc::Receiver<Out>) {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    let mut down = false;
    let mut batch: Vec<Out> = Vec::with_capacity(256);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let mut pipe = redis::pipe();
        for (channel, payload) in &batch {
            pipe.cmd("PUBLISH").arg(channel).arg(payload).ignore();
        }
        let mut sent = false;
        for _ in 0..2 {
            if conn.is_none() {
                match client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        if let Some(n) = (!down).then(|| sh.outage.allow()).flatten() {
                            tracing::warn!(
                                "redis adapter: cannot publish to Redis at {}: {e}{}",
                                sh.target,
                                crate::ratelog::held_back(n)
                            );
                        }
                        down = true;
                        break;
                    }
                }
            }
            let Some(c) = conn.as_mut() else { break };
            match pipe.query_async::<()>(c).await {
                Ok(()) => {
                    sent = true;
                    break;
                }
                Err(e) => {
                    if let Some(n) = (!down).then(|| sh.outage.allow()).flatten() {
                        tracing::warn!(
                            "redis adapter: publish to Redis at {} failed: {e}{}",
                            sh.target,
                            crate::ratelog::held_back(n)
                        );
                    }
                    conn = None;
                }
            }
        }
        if sent {
            if down {
                tracing::info!("redis adapter: publishing to Redis at {} again", sh.target);
            }
            down = false;
        } else {
            down = true;
            sh.dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
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
async fn subscriber(sh: Arc<Shared>, client: redis::Client) {
    let mut backoff = Duration::from_millis(100);
    let mut was_up = false;
    loop {
        if sh.hub.strong_count() == 0 {
            return;
        }
        let channels = sh.all_channels();
        let attempt = tokio::time::timeout(Duration::from_secs(2), async {
            let mut ps = client.get_async_pubsub().await?;
            ps.subscribe(&channels).await?;
            Ok::<_, redis::RedisError>(ps)
        })
        .await;
        match attempt {
            Ok(Ok(ps)) => {
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
                let Some(hub) = sh.hub.upgrade() else { return };
                sh.on_connected(&hub);
                drop(hub);
                let (mut sink, mut stream) = ps.split();
                let mut subscribed: HashSet<String> = channels.into_iter().collect();
                loop {
                    tokio::select! {
                        msg = stream.next() => match msg {
                            Some(msg) => {
                                let Some(hub) = sh.hub.upgrade() else { return };
                                sh.handle(&hub, msg.get_payload_bytes());
                            }
                            None => break,
                        },
                        _ = sh.resubscribe.notified() => break,
                        _ = sh.apps_changed.notified() => {
                            let want: HashSet<String> = sh.all_channels().into_iter().collect();
                            let add: Vec<&String> = want.difference(&subscribed).collect();
                            if !add.is_empty() && sink.subscribe(&add).await.is_err() {
                                break;
                            }
                            let gone: Vec<&String> = subscribed.difference(&want).collect();
                            if !gone.is_empty() && sink.unsubscribe(&gone).await.is_err() {
                                break;
                            }
                            subscribed = want;
                        }
                    }
                }
                sh.connected.store(false, Ordering::Relaxed);
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
            let mut nodes = sh.nodes.lock();
            let gone: Vec<Arc<str>> = nodes
                .iter()
                .filter(|(_, seen)| seen.elapsed() > sh.settings.node_expiry)
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
        };
        let text = serde_json::to_string(&env).unwrap();
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert!(matches!(
            back.msg,
            Msg::Publish {
                except: Some(7),
                ..
            }
        ));
    }
}
