//! Webhooks across a cluster (`--adapter redis`): one webhook per change however many nodes
//! saw it, none lost when a node dies. Uses its own Redis connections, no adapter internals.
//!
//! **Decisions.** Each node reports its own transitions (a channel's first / last subscriber
//! here, a user's first / last connection here) to Redis, where one Lua script per step keeps,
//! for every channel and every (channel, user), the set of nodes that have it:
//! `SADD` that makes the set go 0 → 1 appends `channel_occupied` / `member_added` to the
//! webhook stream, `SREM` that makes it go 1 → 0 appends `channel_vacated` / `member_removed`.
//! The script runs atomically, so exactly one node's step crosses each edge. Each node also
//! keeps a hash of its entries (set key → the event to send if it goes), so its share can be
//! removed without it.
//!
//! **Dead nodes.** Every node writes its expiry time (Redis `TIME` + node expiry) into a
//! sorted set each heartbeat; a reap script, run by every node each heartbeat, takes every
//! node past its expiry out of each set it was in, appends the vacated / removed events for
//! the sets it emptied, and forgets the node, all in one step, so one survivor does it.
//! A node that finds itself reaped (a long Redis outage) reports everything it holds again.
//!
//! **Subscription counts.** Each node's count of a channel is kept in a hash per channel; the
//! webhook carries the sum (a dead node's share is dropped by the reap).
//!
//! **Delivery.** Every webhook (decided above, or a client event or cache miss from this
//! node) is one entry of the stream `{prefix}#wh#stream`, read through the
//! consumer group `wh`. One node at a time delivers (it holds the lease key, renewed every
//! heartbeat), so per channel the stream's order is the order of requests, as on one node.
//! An entry is acknowledged (`XACK` + `XDEL`) once every target delivered or gave it up. When
//! the lease holder dies, the next node to take the lease first claims (`XAUTOCLAIM`) every
//! entry left pending, so what the dead node had read and not delivered is sent by a survivor
//! (at least once: a request that was in flight when the node died may be sent twice).

use super::config::WebhookSettings;
use super::event::WebhookEvent;
use super::observer::{Key, Sink};
use super::Dispatcher;
use crate::adapter::redis::RedisSettings;
use redis::aio::ConnectionManager;
use redis::Script;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Entries read (or claimed) per call.
const READ_COUNT: usize = 100;
/// How long one blocking read waits for new entries.
const READ_BLOCK_MS: usize = 200;
const GROUP: &str = "wh";

const UP: &str = r#"
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[2], KEYS[1], ARGV[4])
  if redis.call('SCARD', KEYS[1]) == 1 then
    if redis.call('XLEN', KEYS[3]) < tonumber(ARGV[5]) then
      redis.call('XADD', KEYS[3], '*', 'a', ARGV[2], 'e', ARGV[3])
    else
      redis.call('INCR', KEYS[4])
    end
    return 1
  end
end
return 0
"#;

const DOWN: &str = r#"
if redis.call('SREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('HDEL', KEYS[2], KEYS[1])
  if redis.call('SCARD', KEYS[1]) == 0 then
    if redis.call('XLEN', KEYS[3]) < tonumber(ARGV[4]) then
      redis.call('XADD', KEYS[3], '*', 'a', ARGV[2], 'e', ARGV[3])
    else
      redis.call('INCR', KEYS[4])
    end
    return 1
  end
end
return 0
"#;

/// This node's subscriber count of a channel: kept per node in a hash, the webhook carries
/// the sum over nodes. ARGV[4] is the event's JSON up to the count.
const COUNT: &str = r#"
if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('HSET', KEYS[2], KEYS[1], '#count')
else
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], KEYS[1])
end
local total = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end
if redis.call('XLEN', KEYS[3]) < tonumber(ARGV[5]) then
  redis.call('XADD', KEYS[3], '*', 'a', ARGV[3], 'e', ARGV[4] .. total .. '}')
else
  redis.call('INCR', KEYS[4])
end
return total
"#;

/// Heartbeat: this node's expiry; returns 1 when the node was not listed (first beat, or
/// it had been reaped and must report its state again).
const BEAT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
"#;

/// Remove every node past its expiry from every set it is in; append the events for the
/// sets that became empty. Returns how many events were appended.
const REAP: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
local n = 0
for _, node in ipairs(dead) do
  local h = ARGV[1] .. node
  local all = redis.call('HGETALL', h)
  for i = 1, #all, 2 do
    if all[i + 1] == '#count' then
      redis.call('HDEL', all[i], node)
    elseif redis.call('SREM', all[i], node) == 1 and redis.call('SCARD', all[i]) == 0 then
      local d = cjson.decode(all[i + 1])
      if redis.call('XLEN', KEYS[2]) < tonumber(ARGV[2]) then
        redis.call('XADD', KEYS[2], '*', 'a', d.a, 'e', d.e)
      else
        redis.call('INCR', KEYS[3])
      end
      n = n + 1
    end
  end
  redis.call('DEL', h)
  redis.call('ZREM', KEYS[1], node)
end
return n
"#;

/// An event that needs no decision (client event, cache miss), appended unless the stream is
/// full (then counted).
const DIRECT: &str = r#"
if redis.call('XLEN', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('XADD', KEYS[1], '*', 'a', ARGV[2], 'e', ARGV[3])
  return 1
end
redis.call('INCR', KEYS[2])
return 0
"#;

/// Take or keep the delivery lease; 1 when this node holds it.
const LEASE: &str = r#"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] or not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"#;

const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

enum Op {
    Up(Key),
    Down(Key),
    Direct(WebhookEvent),
    Count(Arc<str>, Arc<str>, usize),
}

struct Names {
    node: String,
    alive: String,
    stream: String,
    /// Pending events the stream holds at most (`--webhook-cluster-max-pending`; delivered
    /// ones are deleted). Past it a new event is not appended but counted in `overflow`, which
    /// heartbeats turn into the drop counter and a warning.
    max_pending: usize,
    /// Events not appended because the stream was full (read and reset by heartbeats).
    overflow: String,
    lease: String,
    node_hash_prefix: String,
    set_prefix: String,
    count_prefix: String,
}

impl Names {
    fn new(prefix: &str, node: &str, max_pending: usize) -> Self {
        Names {
            max_pending,
            node: node.to_string(),
            alive: format!("{prefix}#wh#alive"),
            stream: format!("{prefix}#wh#stream"),
            overflow: format!("{prefix}#wh#overflow"),
            lease: format!("{prefix}#wh#lease"),
            node_hash_prefix: format!("{prefix}#wh#node#"),
            set_prefix: format!("{prefix}#wh#set#"),
            count_prefix: format!("{prefix}#wh#count#"),
        }
    }

    fn node_hash(&self) -> String {
        format!("{}{}", self.node_hash_prefix, self.node)
    }

    fn count_key(&self, app_id: &str, channel: &str) -> String {
        format!(
            "{}{}",
            self.count_prefix,
            serde_json::json!([app_id, channel])
        )
    }

    fn set_key(&self, key: &Key) -> String {
        let parts = match key {
            Key::Channel { app_id, channel } => serde_json::json!(["c", &**app_id, &**channel]),
            Key::Member {
                app_id,
                channel,
                user_id,
            } => serde_json::json!(["m", &**app_id, &**channel, &**user_id]),
        };
        format!("{}{}", self.set_prefix, parts)
    }
}

/// The node's side of the cluster: counters for the report and the shutdown path.
pub struct Cluster {
    ops: mpsc::UnboundedSender<Op>,
    backlog: Arc<AtomicU64>,
    limit: u64,
    dropped: Arc<AtomicU64>,
    delivering: Arc<AtomicBool>,
    stop: tokio::sync::watch::Sender<bool>,
}

/// The observer's sink in cluster mode: every decision goes to the ordered Redis worker
/// (events that need no decision only when some target of the app wants them).
pub struct ClusterSink(Arc<Cluster>, Arc<Dispatcher>);

impl ClusterSink {
    fn push(&self, op: Op) {
        let c = &self.0;
        if c.backlog.fetch_add(1, Ordering::AcqRel) >= c.limit {
            c.backlog.fetch_sub(1, Ordering::AcqRel);
            let n = c.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    "webhooks: Redis backlog full ({} operations); {n} webhook decisions dropped",
                    c.limit
                );
            }
            return;
        }
        let _ = c.ops.send(op);
    }
}

impl Sink for ClusterSink {
    fn up(&mut self, key: Key) {
        self.push(Op::Up(key));
    }
    fn down(&mut self, key: Key) {
        self.push(Op::Down(key));
    }
    fn direct(&mut self, event: WebhookEvent) {
        if self.1.wanted(&event) {
            self.push(Op::Direct(event));
        }
    }
    fn count(&mut self, app_id: Arc<str>, channel: Arc<str>, count: usize) {
        // Kept in Redis only while some target wants the counts: a target added by a reload
        // sees sums that are exact once each node's count of the channel changed again.
        let probe = WebhookEvent::subscription_count(&app_id, &channel, count);
        if self.1.wanted(&probe) {
            self.push(Op::Count(app_id, channel, count));
        }
    }
}

async fn connect(client: &redis::Client) -> Result<ConnectionManager, String> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(3)));
    client
        .get_connection_manager_with_config(config)
        .await
        .map_err(|e| format!("webhooks: cannot reach Redis: {e}"))
}

impl Cluster {
    /// Connect and start the Redis worker, the heartbeat / reaper and the deliverer.
    pub async fn start(
        redis: &RedisSettings,
        settings: &WebhookSettings,
        dispatcher: Arc<Dispatcher>,
    ) -> Result<(Arc<Cluster>, ClusterSink), String> {
        let client = redis::Client::open(redis.url.as_str())
            .map_err(|e| format!("webhooks: bad Redis URL: {e}"))?;
        let conn = connect(&client).await?;
        let reader = connect(&client).await?;
        let node = format!("{:016x}", rand::random::<u64>());
        let names = Arc::new(Names::new(
            &redis.prefix,
            &node,
            settings.cluster_max_pending.max(1),
        ));
        create_group(&mut conn.clone(), &names)
            .await
            .map_err(|e| format!("webhooks: cannot create the Redis stream group: {e}"))?;
        let sink_dispatcher = dispatcher.clone();
        let (ops_tx, ops_rx) = mpsc::unbounded_channel();
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let cluster = Arc::new(Cluster {
            ops: ops_tx,
            backlog: Arc::new(AtomicU64::new(0)),
            limit: settings.queue.max(1) as u64,
            dropped: Arc::new(AtomicU64::new(0)),
            delivering: Arc::new(AtomicBool::new(false)),
            stop,
        });
        let (replay_tx, replay_rx) = mpsc::unbounded_channel();
        tokio::spawn(worker(
            conn.clone(),
            names.clone(),
            ops_rx,
            replay_rx,
            cluster.backlog.clone(),
        ));
        tokio::spawn(heartbeat(
            conn.clone(),
            names.clone(),
            redis.heartbeat,
            redis.node_expiry,
            replay_tx,
            cluster.dropped.clone(),
            stop_rx.clone(),
        ));
        tokio::spawn(deliverer(
            conn,
            reader,
            names,
            dispatcher,
            redis.heartbeat,
            redis.node_expiry,
            cluster.delivering.clone(),
            stop_rx,
        ));
        Ok((cluster.clone(), ClusterSink(cluster, sink_dispatcher)))
    }

    /// Operations not yet written to Redis.
    pub fn backlog(&self) -> u64 {
        self.backlog.load(Ordering::Acquire)
    }

    /// Decisions dropped because the Redis backlog was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Whether this node currently holds the delivery lease.
    pub fn delivering(&self) -> bool {
        self.delivering.load(Ordering::Relaxed)
    }

    /// Stop reading the stream and give the lease up (shutdown); what is pending stays in
    /// the stream for the next holder.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// Create the stream and its consumer group unless they exist.
async fn create_group(conn: &mut ConnectionManager, names: &Names) -> redis::RedisResult<()> {
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&names.stream)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match created {
        Err(e) if e.code() != Some("BUSYGROUP") => Err(e),
        _ => Ok(()),
    }
}

/// Writes decisions to Redis one at a time, in order; retries each until Redis takes it.
async fn worker(
    mut conn: ConnectionManager,
    names: Arc<Names>,
    mut ops: mpsc::UnboundedReceiver<Op>,
    mut replay: mpsc::UnboundedReceiver<()>,
    backlog: Arc<AtomicU64>,
) {
    let scripts = Scripts {
        up: Script::new(UP),
        down: Script::new(DOWN),
        count: Script::new(COUNT),
        direct: Script::new(DIRECT),
    };
    let node_hash = names.node_hash();
    // What this node holds, to report again if it was reaped.
    let mut held: HashSet<Key> = HashSet::new();
    loop {
        let (op, counted) = tokio::select! {
            biased;
            Some(()) = replay.recv() => {
                if held.is_empty() {
                    continue;
                }
                tracing::warn!("webhooks: this node was expired in Redis; reporting its {} channels and members again", held.len());
                for key in held.iter().cloned().collect::<Vec<_>>() {
                    run_step(&mut conn, &scripts, &names, &node_hash, &Op::Up(key)).await;
                }
                continue;
            }
            op = ops.recv() => match op {
                Some(op) => (op, true),
                None => return,
            },
        };
        match &op {
            Op::Up(k) => {
                held.insert(k.clone());
            }
            Op::Down(k) => {
                held.remove(k);
            }
            Op::Direct(_) | Op::Count(..) => {}
        }
        run_step(&mut conn, &scripts, &names, &node_hash, &op).await;
        if counted {
            backlog.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

struct Scripts {
    up: Script,
    down: Script,
    count: Script,
    direct: Script,
}

async fn run_step(
    conn: &mut ConnectionManager,
    scripts: &Scripts,
    names: &Names,
    node_hash: &str,
    op: &Op,
) {
    let mut wait = Duration::from_millis(100);
    loop {
        let result: redis::RedisResult<i64> = match op {
            Op::Up(key) => {
                let ev = key.event(true);
                let gone = key.event(false);
                let entry = serde_json::json!({"a": &*gone.app_id, "e": &*gone.json}).to_string();
                scripts
                    .up
                    .key(names.set_key(key))
                    .key(node_hash)
                    .key(&names.stream)
                    .key(&names.overflow)
                    .arg(&names.node)
                    .arg(&*ev.app_id)
                    .arg(&*ev.json)
                    .arg(entry)
                    .arg(names.max_pending)
                    .invoke_async(conn)
                    .await
            }
            Op::Down(key) => {
                let ev = key.event(false);
                scripts
                    .down
                    .key(names.set_key(key))
                    .key(node_hash)
                    .key(&names.stream)
                    .key(&names.overflow)
                    .arg(&names.node)
                    .arg(&*ev.app_id)
                    .arg(&*ev.json)
                    .arg(names.max_pending)
                    .invoke_async(conn)
                    .await
            }
            Op::Count(app_id, channel, n) => {
                // The event up to its count, e.g. {"name":"subscription_count","channel":"c","subscription_count":
                let full = WebhookEvent::subscription_count(app_id, channel, 0);
                let head = full
                    .json
                    .strip_suffix("0}")
                    .unwrap_or(&full.json)
                    .to_string();
                scripts
                    .count
                    .key(names.count_key(app_id, channel))
                    .key(node_hash)
                    .key(&names.stream)
                    .key(&names.overflow)
                    .arg(&names.node)
                    .arg(*n)
                    .arg(&**app_id)
                    .arg(head)
                    .arg(names.max_pending)
                    .invoke_async(conn)
                    .await
            }
            Op::Direct(ev) => {
                scripts
                    .direct
                    .key(&names.stream)
                    .key(&names.overflow)
                    .arg(names.max_pending)
                    .arg(&*ev.app_id)
                    .arg(&*ev.json)
                    .invoke_async(conn)
                    .await
            }
        };
        match result {
            Ok(_) => return,
            Err(e) => {
                tracing::warn!("webhooks: Redis step failed ({e}); retrying in {wait:?}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Every heartbeat: say this node lives, and reap the nodes that do not.
async fn heartbeat(
    mut conn: ConnectionManager,
    names: Arc<Names>,
    every: Duration,
    expiry: Duration,
    replay: mpsc::UnboundedSender<()>,
    dropped: Arc<AtomicU64>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let beat = Script::new(BEAT);
    let reap = Script::new(REAP);
    let mut first = true;
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let listed: redis::RedisResult<i64> = beat
            .key(&names.alive)
            .arg(&names.node)
            .arg(expiry.as_millis() as u64)
            .invoke_async(&mut conn)
            .await;
        match listed {
            Ok(1) if !first => {
                let _ = replay.send(());
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!("webhooks: heartbeat failed: {e}");
                continue;
            }
        }
        first = false;
        let reaped: redis::RedisResult<i64> = reap
            .key(&names.alive)
            .key(&names.stream)
            .key(&names.overflow)
            .arg(&names.node_hash_prefix)
            .arg(names.max_pending)
            .invoke_async(&mut conn)
            .await;
        match reaped {
            Ok(n) if n > 0 => tracing::info!(
                "webhooks: expired node(s) reaped, {n} vacated / removed webhooks queued"
            ),
            Ok(_) => {}
            Err(e) => tracing::debug!("webhooks: reap failed: {e}"),
        }
        // Events refused because the stream was full: counted once, by whichever node
        // takes the count.
        let overflowed: redis::RedisResult<Option<u64>> = redis::cmd("GETDEL")
            .arg(&names.overflow)
            .query_async(&mut conn)
            .await;
        if let Ok(Some(n)) = overflowed.map(|n| n.filter(|n| *n > 0)) {
            let total = dropped.fetch_add(n, Ordering::Relaxed) + n;
            tracing::warn!(
                "webhooks: the cluster's webhook stream was full ({} pending); \
                 {n} webhook events dropped ({total} so far on this node's count)",
                names.max_pending
            );
        }
    }
}

type Entries = Vec<(String, Vec<(String, String)>)>;

/// Entries of an XREADGROUP / XAUTOCLAIM answer as (id, [(field, value)]).
fn parse_entries(v: &redis::Value) -> Entries {
    use redis::Value;
    let mut out = Vec::new();
    let items = match v {
        Value::Array(items) => items,
        _ => return out,
    };
    for item in items {
        let Value::Array(pair) = item else { continue };
        if pair.len() != 2 {
            continue;
        }
        let Ok(id) = redis::from_redis_value_ref::<String>(&pair[0]) else {
            continue;
        };
        let fields: Vec<(String, String)> = match &pair[1] {
            Value::Array(kv) => kv
                .chunks(2)
                .filter_map(|c| {
                    Some((
                        redis::from_redis_value_ref::<String>(c.first()?).ok()?,
                        redis::from_redis_value_ref::<String>(c.get(1)?).ok()?,
                    ))
                })
                .collect(),
            // Deleted entries come back as nil fields: acknowledge them with nothing to send.
            _ => Vec::new(),
        };
        out.push((id, fields));
    }
    out
}

/// Hold the lease and deliver the stream; acknowledge what is done.
#[allow(clippy::too_many_arguments)]
async fn deliverer(
    mut conn: ConnectionManager,
    mut reader: ConnectionManager,
    names: Arc<Names>,
    dispatcher: Arc<Dispatcher>,
    every: Duration,
    expiry: Duration,
    delivering: Arc<AtomicBool>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let lease = Script::new(LEASE);
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<String>();
    // Acknowledge in its own task: XACK + XDEL, batched.
    {
        let mut conn = conn.clone();
        let names = names.clone();
        tokio::spawn(async move {
            while let Some(first) = ack_rx.recv().await {
                let mut ids = vec![first];
                while let Ok(id) = ack_rx.try_recv() {
                    ids.push(id);
                    if ids.len() >= 500 {
                        break;
                    }
                }
                let mut pipe = redis::pipe();
                pipe.cmd("XACK")
                    .arg(&names.stream)
                    .arg(GROUP)
                    .arg(&ids)
                    .ignore();
                pipe.cmd("XDEL").arg(&names.stream).arg(&ids).ignore();
                if let Err(e) = pipe.query_async::<()>(&mut conn).await {
                    // Unacknowledged entries are delivered again by the next lease holder.
                    tracing::warn!("webhooks: cannot acknowledge {} entries: {e}", ids.len());
                }
            }
        });
    }
    let lease_ms = expiry.as_millis() as u64;
    let mut renewed = tokio::time::Instant::now() - every * 2;
    let mut held = false;
    loop {
        if *stop.borrow() {
            break;
        }
        if renewed.elapsed() >= every / 2 {
            let got: redis::RedisResult<i64> = lease
                .key(&names.lease)
                .arg(&names.node)
                .arg(lease_ms)
                .invoke_async(&mut conn)
                .await;
            let now_held = matches!(got, Ok(1));
            renewed = tokio::time::Instant::now();
            if now_held && !held {
                tracing::info!("webhooks: this node now delivers the cluster's webhooks");
                claim_orphans(&mut reader, &names, &dispatcher, &ack_tx).await;
            }
            held = now_held;
            delivering.store(held, Ordering::Relaxed);
        }
        if !held {
            tokio::select! {
                _ = tokio::time::sleep(every / 2) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let v: redis::RedisResult<redis::Value> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&names.node)
            .arg("COUNT")
            .arg(READ_COUNT)
            .arg("BLOCK")
            .arg(READ_BLOCK_MS)
            .arg("STREAMS")
            .arg(&names.stream)
            .arg(">")
            .query_async(&mut reader)
            .await;
        match v {
            Ok(redis::Value::Array(streams)) => {
                for s in &streams {
                    if let redis::Value::Array(pair) = s {
                        if let Some(entries) = pair.get(1) {
                            dispatch_entries(parse_entries(entries), &dispatcher, &ack_tx);
                        }
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                if e.code() == Some("NOGROUP") {
                    // The stream was deleted under us (a flushed Redis): make it again.
                    tracing::warn!("webhooks: the Redis stream was gone; recreating it");
                    let _ = create_group(&mut conn, &names).await;
                } else {
                    tracing::debug!("webhooks: stream read failed: {e}");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    delivering.store(false, Ordering::Relaxed);
    let _: redis::RedisResult<i64> = Script::new(RELEASE)
        .key(&names.lease)
        .arg(&names.node)
        .invoke_async(&mut conn)
        .await;
}

/// A new lease holder takes every entry still pending for any consumer (a dead holder's).
async fn claim_orphans(
    reader: &mut ConnectionManager,
    names: &Names,
    dispatcher: &Dispatcher,
    ack: &mpsc::UnboundedSender<String>,
) {
    let mut cursor = "0-0".to_string();
    loop {
        let v: redis::RedisResult<redis::Value> = redis::cmd("XAUTOCLAIM")
            .arg(&names.stream)
            .arg(GROUP)
            .arg(&names.node)
            .arg(0)
            .arg(&cursor)
            .arg("COUNT")
            .arg(READ_COUNT)
            .query_async(reader)
            .await;
        let Ok(redis::Value::Array(parts)) = v else {
            return;
        };
        let next = parts
            .first()
            .and_then(|c| redis::from_redis_value_ref::<String>(c).ok())
            .unwrap_or_else(|| "0-0".into());
        let entries = parts.get(1).map(parse_entries).unwrap_or_default();
        if !entries.is_empty() {
            tracing::info!(
                "webhooks: took over {} pending webhooks of another node",
                entries.len()
            );
        }
        dispatch_entries(entries, dispatcher, ack);
        if next == "0-0" {
            return;
        }
        cursor = next;
    }
}

fn dispatch_entries(
    entries: Entries,
    dispatcher: &Dispatcher,
    ack: &mpsc::UnboundedSender<String>,
) {
    for (id, fields) in entries {
        let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
        match get("a")
            .zip(get("e"))
            .and_then(|(a, e)| WebhookEvent::from_json(a, e))
        {
            Some(ev) => dispatcher.dispatch_acked(ev, id, ack),
            None => {
                tracing::warn!("webhooks: unreadable stream entry {id} skipped");
                let _ = ack.send(id);
            }
        }
    }
}
