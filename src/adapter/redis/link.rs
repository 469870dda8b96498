//! How this node reaches Redis: one server (`PUBLISH` / `SUBSCRIBE` on one connection each
//! way), the primary a Redis Sentinel names (asked again on every reconnection, so the node
//! follows a failover: Sentinel drops the clients of a demoted primary), or a Redis Cluster (sharded pub/sub, Redis 7: `SPUBLISH` / `SSUBSCRIBE`, so each
//! channel's traffic stays on the shard that owns its slot and the cluster's pub/sub capacity
//! grows with its shards).
//!
//! The rest of the adapter sees one [`Target`], a [`Publisher`] for outgoing batches, and a
//! subscription made of [`Subscriptions`] (to add or drop channels) and [`Incoming`] (what
//! arrives). On a cluster every channel is a shard channel, subscribed one by one (a sharded
//! `SSUBSCRIBE` must not span slots). When the cluster connection loses its link to any shard,
//! [`Incoming::next`] ends the subscription: the adapter builds a new one (every channel
//! subscribed again, state resynchronised), as after losing a single server, rather than
//! trusting what the crate resubscribed by itself.

use super::Out;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use redis::{PushInfo, PushKind, RedisResult, Value};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// One Redis server or the seed nodes of a Redis Cluster.
pub(super) enum Target {
    Single(redis::Client),
    /// The sentinels, asked for the current primary of the named master.
    Sentinel(tokio::sync::Mutex<redis::sentinel::SentinelClient>),
    Cluster(Vec<String>),
}

impl Target {
    /// `cluster` seed URLs when not empty; else, with a `sentinel` master name, the sentinels
    /// at `url` (comma-separated `host:port`s after the scheme); else the single server at `url`.
    pub fn open(url: &str, sentinel: Option<&str>, cluster: &[String]) -> Result<Target, String> {
        if let (Some(master), true) = (sentinel, cluster.is_empty()) {
            return Self::sentinel(url, master);
        }
        if cluster.is_empty() {
            let client = redis::Client::open(url).map_err(|e| format!("invalid Redis URL: {e}"))?;
            return Ok(Target::Single(client));
        }
        // Checked here so that a bad seed fails at start, not in the background.
        ClusterClient::builder(cluster.to_vec())
            .build()
            .map_err(|e| format!("invalid Redis Cluster URL: {e}"))?;
        Ok(Target::Cluster(cluster.to_vec()))
    }

    fn sentinel(url: &str, master: &str) -> Result<Target, String> {
        use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
        use redis::IntoConnectionInfo;
        let invalid = |e: redis::RedisError| format!("invalid Redis Sentinel URL: {e}");
        let (scheme, rest) = url.split_once("://").unwrap_or(("redis", url));
        let (auth, hosts) = match rest.rsplit_once('@') {
            Some((auth, hosts)) => (format!("{auth}@"), hosts),
            None => (String::new(), rest),
        };
        let hosts = hosts.split('/').next().unwrap_or_default();
        let mut sentinels = Vec::new();
        for host in hosts.split(',').filter(|h| !h.is_empty()) {
            let one = format!("{scheme}://{auth}{host}");
            sentinels.push(one.as_str().into_connection_info().map_err(invalid)?);
        }
        if sentinels.is_empty() {
            return Err(format!("invalid Redis Sentinel URL: no sentinel in {url}"));
        }
        // The primary takes the same credentials as the sentinels.
        let node = SentinelNodeConnectionInfo::default()
            .set_redis_connection_info(sentinels[0].redis_settings().clone());
        let client =
            SentinelClient::build(sentinels, master, Some(node), SentinelServerType::Master)
                .map_err(invalid)?;
        Ok(Target::Sentinel(tokio::sync::Mutex::new(client)))
    }

    /// The server to talk to now: the one server, or the primary the sentinels name.
    async fn server(&self) -> RedisResult<redis::Client> {
        match self {
            Target::Single(client) => Ok(client.clone()),
            Target::Sentinel(s) => {
                let client = s.lock().await.async_get_client().await?;
                // The sentinels may lag behind a failover: only a primary will do.
                let mut c = client.get_multiplexed_async_connection().await?;
                let role: Vec<Value> = redis::cmd("ROLE").query_async(&mut c).await?;
                match role.first() {
                    Some(Value::BulkString(r)) if r == b"master" => Ok(client),
                    _ => Err(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "the server Sentinel named is not a primary (yet)",
                    ))),
                }
            }
            Target::Cluster(_) => Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "a Redis Cluster has no one server",
            ))),
        }
    }

    fn cluster_client(
        seeds: &[String],
        push: Option<mpsc::UnboundedSender<PushInfo>>,
    ) -> RedisResult<ClusterClient> {
        let mut b = ClusterClient::builder(seeds.to_vec())
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT);
        if let Some(tx) = push {
            b = b
                .use_protocol(redis::ProtocolVersion::RESP3)
                .push_sender(tx);
        }
        b.build()
    }

    pub async fn publisher(&self) -> RedisResult<Publisher> {
        match self {
            Target::Single(_) | Target::Sentinel(_) => {
                let client = self.server().await?;
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT));
                let c = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok(Publisher::Single(c))
            }
            Target::Cluster(seeds) => {
                let c = Self::cluster_client(seeds, None)?
                    .get_async_connection()
                    .await?;
                Ok(Publisher::Cluster(c))
            }
        }
    }

    /// A subscription to `channels`, confirmed.
    pub async fn subscribe(&self, channels: &[String]) -> RedisResult<(Subscriptions, Incoming)> {
        match self {
            Target::Single(_) | Target::Sentinel(_) => {
                let client = self.server().await?;
                let (mut sink, stream) = client.get_async_pubsub().await?.split();
                sink.subscribe(channels).await?;
                Ok((Subscriptions::Single(sink), Incoming::Single(stream)))
            }
            Target::Cluster(seeds) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let mut conn = Self::cluster_client(seeds, Some(tx))?
                    .get_async_connection()
                    .await?;
                // Every primary answers, and sees the cluster whole, before anything is
                // subscribed: a shard still coming back fails this attempt (retried) instead of
                // leaving its channels behind.
                let all = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                let info = conn
                    .route_command(redis::cmd("CLUSTER").arg("INFO").take(), all)
                    .await?;
                if !all_ok(&info) {
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "a Redis Cluster shard is not ready",
                    )));
                }
                let mut subs = Subscriptions::Cluster(conn);
                subs.subscribe(channels).await?;
                Ok((subs, Incoming::Cluster { rx, ended: false }))
            }
        }
    }
}

/// Whether every `CLUSTER INFO` answer in `v` (one per primary) says `cluster_state:ok`.
fn all_ok(v: &Value) -> bool {
    fn texts<'a>(v: &'a Value, out: &mut Vec<&'a [u8]>) {
        match v {
            Value::BulkString(b) => out.push(b),
            Value::SimpleString(s) => out.push(s.as_bytes()),
            Value::VerbatimString { text, .. } => out.push(text.as_bytes()),
            Value::Array(a) | Value::Set(a) => a.iter().for_each(|x| texts(x, out)),
            Value::Map(m) => m.iter().for_each(|(_, x)| texts(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    texts(v, &mut out);
    let ok = |t: &[u8]| t.windows(16).any(|w| w == b"cluster_state:ok");
    !out.is_empty()
        && out
            .iter()
            .filter(|t| t.starts_with(b"cluster_"))
            .all(|t| ok(t))
}

/// Sends outgoing batches, in order (and the recovery worker's commands).
#[derive(Clone)]
pub(super) enum Publisher {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl Publisher {
    /// Run one command (routed by its first key on a cluster).
    pub async fn query(&mut self, cmd: &redis::Cmd) -> RedisResult<Value> {
        match self {
            Publisher::Single(c) => cmd.query_async(c).await,
            Publisher::Cluster(c) => cmd.query_async(c).await,
        }
    }

    /// Run a pipeline whose keys share one slot.
    pub async fn query_pipe(&mut self, pipe: &redis::Pipeline) -> RedisResult<()> {
        match self {
            Publisher::Single(c) => pipe.query_async(c).await,
            Publisher::Cluster(c) => pipe.query_async(c).await,
        }
    }

    /// Send a batch. On failure: how many of its messages may not have been published (none
    /// is sent twice: the caller counts them lost rather than retrying) and the error.
    pub async fn publish(&mut self, batch: &[Out]) -> Result<(), (usize, redis::RedisError)> {
        match self {
            Publisher::Single(c) => {
                let mut pipe = redis::pipe();
                for out in batch {
                    match &out.stream {
                        None => pipe.cmd("PUBLISH").arg(&out.channel).arg(&out.payload),
                        Some(w) => {
                            pipe.add_command(w.command(&out.channel, &out.payload, "PUBLISH"))
                        }
                    }
                    .ignore();
                }
                pipe.query_async::<()>(c)
                    .await
                    .map_err(|e| (batch.len(), e))
            }
            Publisher::Cluster(c) => {
                // One pipeline per channel (one slot), so each channel keeps its order; the
                // channels go to their shards concurrently.
                let mut per_channel: Vec<(&str, redis::Pipeline)> = Vec::new();
                let mut index: HashMap<&str, usize> = HashMap::new();
                for out in batch {
                    let channel = out.channel.as_str();
                    let i = *index.entry(channel).or_insert_with(|| {
                        per_channel.push((channel, redis::pipe()));
                        per_channel.len() - 1
                    });
                    let pipe = &mut per_channel[i].1;
                    match &out.stream {
                        None => pipe.cmd("SPUBLISH").arg(channel).arg(&out.payload),
                        Some(w) => pipe.add_command(w.command(channel, &out.payload, "SPUBLISH")),
                    }
                    .ignore();
                }
                let sends = per_channel.into_iter().map(|(_, pipe)| {
                    let mut c = c.clone();
                    async move {
                        let n = pipe.len();
                        pipe.query_async::<()>(&mut c).await.map_err(|e| (n, e))
                    }
                });
                let mut failed = 0;
                let mut error = None;
                for r in futures_util::future::join_all(sends).await {
                    if let Err((n, e)) = r {
                        failed += n;
                        error.get_or_insert(e);
                    }
                }
                match error {
                    None => Ok(()),
                    Some(e) => Err((failed, e)),
                }
            }
        }
    }
}

/// Adds and drops channels of a live subscription.
#[derive(Clone)]
pub(super) enum Subscriptions {
    Single(PubSubSink),
    Cluster(ClusterConnection),
}

impl Subscriptions {
    pub async fn subscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        match self {
            Subscriptions::Single(sink) => sink.subscribe(channels).await,
            Subscriptions::Cluster(c) => each(c, channels, true).await,
        }
    }

    pub async fn unsubscribe(&mut self, channels: &[String]) -> RedisResult<()> {
        match self {
            Subscriptions::Single(sink) => sink.unsubscribe(channels).await,
            Subscriptions::Cluster(c) => each(c, channels, false).await,
        }
    }
}

/// `SSUBSCRIBE` / `SUNSUBSCRIBE` each channel (they may live on different slots), one after
/// the other: each waits for its confirmation before the next is sent.
async fn each(c: &mut ClusterConnection, channels: &[String], subscribe: bool) -> RedisResult<()> {
    for ch in channels {
        if subscribe {
            c.ssubscribe(ch).await?;
        } else {
            c.sunsubscribe(ch).await?;
        }
    }
    Ok(())
}

/// What a subscription delivers.
pub(super) enum Incoming {
    Single(PubSubStream),
    Cluster {
        rx: mpsc::UnboundedReceiver<PushInfo>,
        /// The link to a shard broke: the subscription is over.
        ended: bool,
    },
}

/// One message from Redis: the channel it came on and its payload (not copied).
pub(super) enum Message {
    Single(redis::Msg),
    Cluster { channel: Vec<u8>, payload: Vec<u8> },
}

impl Message {
    /// The Redis channel (`"?"` if it is not UTF-8, which this adapter's channels always are).
    pub fn channel(&self) -> &str {
        match self {
            Message::Single(m) => m.get_channel_name(),
            Message::Cluster { channel, .. } => std::str::from_utf8(channel).unwrap_or("?"),
        }
    }

    pub fn payload(&self) -> &[u8] {
        match self {
            Message::Single(m) => m.get_payload_bytes(),
            Message::Cluster { payload, .. } => payload,
        }
    }
}

impl Incoming {
    /// The next message; `None` when the subscription is gone (on a cluster: when the link to
    /// any shard broke), and ever after.
    pub async fn next(&mut self) -> Option<Message> {
        use futures_util::StreamExt;
        match self {
            Incoming::Single(stream) => stream.next().await.map(Message::Single),
            Incoming::Cluster { rx, ended } => loop {
                if *ended {
                    return None;
                }
                let push = rx.recv().await?;
                match push.kind {
                    PushKind::SMessage | PushKind::Message => {
                        let mut data = push.data.into_iter();
                        if let (
                            Some(Value::BulkString(channel)),
                            Some(Value::BulkString(payload)),
                        ) = (data.next(), data.next())
                        {
                            return Some(Message::Cluster { channel, payload });
                        }
                    }
                    PushKind::Disconnection => *ended = true,
                    _ => {}
                }
            },
        }
    }
}
