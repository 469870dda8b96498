//! Missed-message recovery across nodes, on Redis: each recovered channel's API publishes in a
//! Redis Stream with global offsets, and each lineage's cursors in a Redis hash, so a client
//! that comes back on any node recovers what it missed.
//!
//! - **Publish** ([`PUBLISH_SCRIPT`]): one script numbers the event (`HINCRBY` on the channel's
//!   meta hash; a new stream draws a new epoch), appends it to the stream (`XADD` with
//!   `MAXLEN ~`), renews both keys' TTL (the app's window) and publishes it on the channel's
//!   usual pub/sub route with its position in front (`S{epoch}:{offset}\n`). Being one
//!   script, the stream's order is the order every node (the publisher included) receives.
//!   Both keys carry the route as hash tag, so on a Redis Cluster they live on the shard that
//!   owns the route's slot and the script may `SPUBLISH` there.
//! - **Lineages** (`{prefix}#lin#{app}#{lineage}`, a hash): `s` the owning socket, `l` whether it
//!   is live, `c:{channel}` its cursors (`{epoch}:{offset}`), and after a takeover `o` the
//!   previous socket and `p:{channel}` the previous connection's cursors, each taken once by a
//!   resubscription ([`CLAIM_SCRIPT`]). Owners write their cursors every second while they
//!   change, and once more when they drop ([`CHECKPOINT_SCRIPT`]); a node that dies leaves its
//!   last checkpoint. Writes of a connection that lost the lineage are ignored.
//! - **Read** ([`READ_SCRIPT`]): the meta hash and the events after a cursor, atomically.
//!
//! Claims and checkpoints of one lineage run in order on one worker (different lineages in
//! parallel); a read or claim that Redis does not answer in time recovers nothing.

use super::link::Publisher;
use super::Target;
use crate::hub::{
    Checkpoint, RecoverAnswer, RecoverRequest, SocketId, StoredEvent, StreamPosition,
};
use axum::extract::ws::Utf8Bytes;
use redis::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long a claim and read may take before the subscription goes on without recovery.
pub(super) const RECOVER_TIMEOUT: Duration = Duration::from_secs(2);

/// KEYS: stream, meta. ARGV: route, payload, epoch for a new stream, max events, TTL ms,
/// `PUBLISH` or `SPUBLISH`. Returns the offset.
pub(super) const PUBLISH_SCRIPT: &str = r"
local n = redis.call('HINCRBY', KEYS[2], 'n', 1)
local e = redis.call('HGET', KEYS[2], 'e')
if n == 1 or not e then
  e = ARGV[3]
  n = 1
  redis.call('HSET', KEYS[2], 'e', e, 'n', 1)
  redis.call('DEL', KEYS[1])
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], n .. '-0', 'p', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call(ARGV[6], ARGV[1], 'S' .. e .. ':' .. n .. '\n' .. ARGV[2])
return n
";

/// KEYS: stream, meta. ARGV: first offset, count. Returns `{epoch, head, entries}`.
const READ_SCRIPT: &str = r"
local m = redis.call('HMGET', KEYS[2], 'e', 'n')
local entries = {}
if m[1] then
  entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
end
return {m[1] or '', m[2] or '', entries}
";

/// KEYS: lineage. ARGV: the claiming socket, channel, TTL ms. Returns `{previous socket,
/// previous cursor on the channel, the socket to close (a live previous owner)}`, each '' when
/// none.
const CLAIM_SCRIPT: &str = r"
local s = redis.call('HGET', KEYS[1], 's')
local closing = ''
if s and s ~= ARGV[1] then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 2) == 'p:' then redis.call('HDEL', KEYS[1], all[i]) end
  end
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 2) == 'c:' then
      redis.call('HSET', KEYS[1], 'p:' .. string.sub(all[i], 3), all[i + 1])
      redis.call('HDEL', KEYS[1], all[i])
    end
  end
  if redis.call('HGET', KEYS[1], 'l') == '1' then closing = s end
  redis.call('HSET', KEYS[1], 'o', s)
end
redis.call('HSET', KEYS[1], 's', ARGV[1], 'l', '1')
local cursor = redis.call('HGET', KEYS[1], 'p:' .. ARGV[2])
if cursor then redis.call('HDEL', KEYS[1], 'p:' .. ARGV[2]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {redis.call('HGET', KEYS[1], 'o') or '', cursor or '', closing}
";

/// KEYS: lineage. ARGV: socket, TTL ms, `live` | `drop` | `clean`, then channel, cursor pairs.
const CHECKPOINT_SCRIPT: &str = r"
local s = redis.call('HGET', KEYS[1], 's')
if s and s ~= ARGV[1] then return 0 end
if ARGV[3] == 'clean' then
  redis.call('DEL', KEYS[1])
  return 1
end
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, 1, 2) == 'c:' then redis.call('HDEL', KEYS[1], f) end
end
local live = '0'
if ARGV[3] == 'live' then live = '1' end
redis.call('HSET', KEYS[1], 's', ARGV[1], 'l', live)
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[1], 'c:' .. ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// The stream and meta keys of a recovered channel whose events travel on `route`.
pub(super) fn stream_keys(route: &str, channel: &str) -> (String, String) {
    (
        format!("{{{route}}}#s#{channel}"),
        format!("{{{route}}}#m#{channel}"),
    )
}

/// A numbered publish: what the publish script needs besides the route and payload.
#[derive(Debug, Clone)]
pub(super) struct StreamWrite {
    pub stream: String,
    pub meta: String,
    pub max_events: usize,
    pub ttl_ms: u64,
    /// What delivers it locally when Redis cannot be reached.
    pub fallback: Fallback,
}

/// The publish itself, for a local delivery when Redis cannot take it.
#[derive(Debug, Clone)]
pub(super) struct Fallback {
    pub app: Arc<str>,
    pub channel: Arc<str>,
    pub frame: Utf8Bytes,
    pub except: Option<SocketId>,
}

impl StreamWrite {
    /// The `EVAL` of [`PUBLISH_SCRIPT`] for this write on `route` (`publish` is `PUBLISH` or
    /// `SPUBLISH`).
    pub fn command(&self, route: &str, payload: &[u8], publish: &str) -> redis::Cmd {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(PUBLISH_SCRIPT)
            .arg(2)
            .arg(&self.stream)
            .arg(&self.meta)
            .arg(route)
            .arg(payload)
            .arg(rand::random::<u64>() >> 12 | 1) // an epoch Lua's numbers keep exactly
            .arg(self.max_events)
            .arg(self.ttl_ms.max(1))
            .arg(publish);
        cmd
    }
}

/// A payload the publish script sent: its position and the envelope behind it.
pub(super) fn split_numbered(payload: &[u8]) -> Option<(StreamPosition, &[u8])> {
    let rest = payload.strip_prefix(b"S")?;
    let nl = rest.iter().position(|&b| b == b'\n')?;
    let head = std::str::from_utf8(&rest[..nl]).ok()?;
    let position = parse_position(head)?;
    Some((position, &rest[nl + 1..]))
}

/// `{epoch}:{offset}`.
fn parse_position(s: &str) -> Option<StreamPosition> {
    let (e, o) = s.split_once(':')?;
    Some(StreamPosition {
        epoch: e.parse().ok()?,
        offset: o.parse().ok()?,
    })
}

fn format_position(p: StreamPosition) -> String {
    format!("{}:{}", p.epoch, p.offset)
}

/// Where a channel's stream is, for the worker (the adapter knows the routes).
pub(super) type KeysOf = Arc<dyn Fn(&str, &str) -> (String, String) + Send + Sync>;

enum Job {
    Checkpoint(Checkpoint),
    Recover(
        RecoverRequest,
        oneshot::Sender<(RecoverAnswer, Option<SocketId>)>,
    ),
}

impl Job {
    fn lineage(&self) -> (&str, &str) {
        match self {
            Job::Checkpoint(c) => (&c.app_id, &c.lineage),
            Job::Recover(r, _) => (&r.app_id, &r.lineage),
        }
    }
}

/// The worker's handle: queue checkpoints, ask for recoveries.
pub(super) struct Lineages {
    tx: mpsc::Sender<Job>,
}

impl Lineages {
    pub fn start(target: Arc<Target>, prefix: String, keys: KeysOf, queue: usize) -> Lineages {
        let (tx, rx) = mpsc::channel(queue.max(16));
        tokio::spawn(worker(target, prefix, keys, rx));
        Lineages { tx }
    }

    /// Queue a checkpoint; dropped (logged at debug) when the queue is full.
    pub fn checkpoint(&self, c: Checkpoint) {
        if self.tx.try_send(Job::Checkpoint(c)).is_err() {
            tracing::debug!("redis adapter: lineage queue full, checkpoint dropped");
        }
    }

    /// Claim and read; the answer and the socket another node must close (a live previous
    /// owner of the lineage).
    pub async fn recover(&self, r: RecoverRequest) -> (RecoverAnswer, Option<SocketId>) {
        let (tx, rx) = oneshot::channel();
        if self.tx.try_send(Job::Recover(r, tx)).is_err() {
            return (RecoverAnswer::default(), None);
        }
        tokio::time::timeout(RECOVER_TIMEOUT, rx)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
    }
}

async fn worker(target: Arc<Target>, prefix: String, keys: KeysOf, mut rx: mpsc::Receiver<Job>) {
    let mut conn: Option<Publisher> = None;
    let mut batch = Vec::with_capacity(256);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if conn.is_none() {
            conn = tokio::time::timeout(RECOVER_TIMEOUT, target.publisher())
                .await
                .ok()
                .and_then(Result::ok);
        }
        let Some(c) = conn.clone() else {
            batch.clear(); // answers dropped: their requests recover nothing
            continue;
        };
        // One lineage's jobs in order; different lineages at once.
        let mut groups: Vec<Vec<Job>> = Vec::new();
        let mut index: HashMap<(String, String), usize> = HashMap::new();
        for job in batch.drain(..) {
            let (app, lineage) = job.lineage();
            let key = (app.to_string(), lineage.to_string());
            let i = *index.entry(key).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[i].push(job);
        }
        let runs = groups.into_iter().map(|jobs| {
            let mut c = c.clone();
            let (prefix, keys) = (prefix.as_str(), keys.clone());
            async move {
                let mut ok = true;
                for job in jobs {
                    ok &= run(&mut c, prefix, &keys, job).await;
                }
                ok
            }
        });
        let results = futures_util::future::join_all(runs).await;
        if results.iter().any(|ok| !ok) {
            conn = None; // reconnect before the next batch
        }
    }
}

fn lineage_key(prefix: &str, app: &str, lineage: &str) -> String {
    format!("{prefix}#lin#{app}#{lineage}")
}

/// Run one job; false when Redis failed (the connection is rebuilt).
async fn run(c: &mut Publisher, prefix: &str, keys: &KeysOf, job: Job) -> bool {
    match job {
        Job::Checkpoint(cp) => checkpoint(c, prefix, keys, cp).await.is_ok(),
        Job::Recover(r, reply) => match recover(c, prefix, keys, &r).await {
            Ok(answer) => {
                let _ = reply.send(answer);
                true
            }
            Err(e) => {
                tracing::debug!("redis adapter: recovery read failed: {e}");
                false
            }
        },
    }
}

async fn checkpoint(
    c: &mut Publisher,
    prefix: &str,
    keys: &KeysOf,
    cp: Checkpoint,
) -> redis::RedisResult<()> {
    let ttl = cp.window.as_millis().max(1) as u64;
    let mode = match cp.ended {
        None => "live",
        Some(false) => "drop",
        Some(true) => "clean",
    };
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(CHECKPOINT_SCRIPT)
        .arg(1)
        .arg(lineage_key(prefix, &cp.app_id, &cp.lineage))
        .arg(cp.socket.0)
        .arg(ttl)
        .arg(mode);
    for (channel, position) in &cp.cursors {
        cmd.arg(&**channel).arg(format_position(*position));
    }
    c.query(&cmd).await?;
    if cp.ended == Some(false) {
        // The streams it may come back for outlive the window from now.
        for (channel, _) in &cp.cursors {
            let (stream, meta) = keys(&cp.app_id, channel);
            let mut pipe = redis::pipe();
            pipe.cmd("PEXPIRE").arg(&stream).arg(ttl).ignore();
            pipe.cmd("PEXPIRE").arg(&meta).arg(ttl).ignore();
            c.query_pipe(&pipe).await?;
        }
    }
    Ok(())
}

async fn recover(
    c: &mut Publisher,
    prefix: &str,
    keys: &KeysOf,
    r: &RecoverRequest,
) -> redis::RedisResult<(RecoverAnswer, Option<SocketId>)> {
    let mut claim = redis::cmd("EVAL");
    claim
        .arg(CLAIM_SCRIPT)
        .arg(1)
        .arg(lineage_key(prefix, &r.app_id, &r.lineage))
        .arg(r.socket.0)
        .arg(&*r.channel)
        .arg(r.window.as_millis().max(1) as u64);
    let claimed = strings(&c.query(&claim).await?);
    let socket = |i: usize| {
        claimed
            .get(i)
            .and_then(|s| s.parse().ok())
            .map(SocketId)
            .filter(|s| *s != r.socket)
    };
    let (old_socket, closing) = (socket(0), socket(2));
    let cursor = claimed.get(1).and_then(|s| parse_position(s));

    let (stream, meta) = keys(&r.app_id, &r.channel);
    let first = cursor.map_or(1, |c| c.offset + 1);
    let mut read = redis::cmd("EVAL");
    read.arg(READ_SCRIPT)
        .arg(2)
        .arg(&stream)
        .arg(&meta)
        .arg(first)
        .arg(r.max_events.saturating_mul(2).max(16));
    let answer = answer(&c.query(&read).await?, cursor, old_socket);
    Ok((answer, closing))
}

/// Make the answer from the read script's reply and the claimed cursor.
fn answer(reply: &Value, cursor: Option<StreamPosition>, old: Option<SocketId>) -> RecoverAnswer {
    let Value::Array(parts) = reply else {
        return RecoverAnswer::default();
    };
    let text = |v: Option<&Value>| match v {
        Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(Value::SimpleString(s)) => s.clone(),
        _ => String::new(),
    };
    let (epoch, head) = (text(parts.first()), text(parts.get(1)));
    let head = match (epoch.parse::<u64>(), head.parse::<u64>()) {
        (Ok(epoch), Ok(offset)) => StreamPosition { epoch, offset },
        _ => StreamPosition::default(), // no stream
    };
    let events = entries(parts.get(2));
    let missed = cursor.and_then(|cursor| missed(cursor, head, events));
    RecoverAnswer {
        old_socket: old,
        missed,
        head: Some(head),
    }
}

/// The events after `cursor`, if the stream still holds every one of them.
fn missed(
    cursor: StreamPosition,
    head: StreamPosition,
    events: Vec<StoredEvent>,
) -> Option<Vec<StoredEvent>> {
    if head.epoch == 0 {
        // No stream: nothing was published since a cursor taken when there was none either.
        return (cursor == StreamPosition::default()).then(Vec::new);
    }
    let known = cursor.epoch == head.epoch || cursor == StreamPosition::default();
    if !known || cursor.offset > head.offset {
        return None;
    }
    let wanted = (head.offset - cursor.offset) as usize;
    let contiguous = events
        .iter()
        .enumerate()
        .all(|(i, e)| e.offset == cursor.offset + 1 + i as u64);
    (events.len() == wanted && contiguous).then_some(events)
}

/// `XRANGE` entries (`[id, [field, value, ...]]`) as events.
fn entries(v: Option<&Value>) -> Vec<StoredEvent> {
    let Some(Value::Array(items)) = v else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(pair) = item else { continue };
        let (Some(Value::BulkString(id)), Some(Value::Array(fields))) = (pair.first(), pair.get(1))
        else {
            continue;
        };
        let offset = std::str::from_utf8(id)
            .ok()
            .and_then(|id| id.split('-').next())
            .and_then(|ms| ms.parse().ok());
        let payload = fields.get(1).and_then(|p| match p {
            Value::BulkString(b) => Some(b.as_slice()),
            _ => None,
        });
        if let (Some(offset), Some(Some((frame, except)))) =
            (offset, payload.map(super::envelope_publish))
        {
            out.push(StoredEvent {
                offset,
                frame,
                except,
            });
        }
    }
    out
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                Value::SimpleString(s) => s.clone(),
                Value::Int(n) => n.to_string(),
                _ => String::new(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(epoch: u64, offset: u64) -> StreamPosition {
        StreamPosition { epoch, offset }
    }

    fn events(range: std::ops::RangeInclusive<u64>) -> Vec<StoredEvent> {
        range
            .map(|offset| StoredEvent {
                offset,
                frame: Utf8Bytes::from_static("f"),
                except: None,
            })
            .collect()
    }

    #[test]
    fn positions_round_trip_through_the_payload_header() {
        let (p, rest) = split_numbered(b"S77:12\n{\"node\":1}").unwrap();
        assert_eq!(p, at(77, 12));
        assert_eq!(rest, b"{\"node\":1}");
        assert!(split_numbered(b"{\"node\":1}").is_none());
        assert!(split_numbered(b"S77\n{}").is_none());
        assert!(split_numbered(b"Sx:1\n{}").is_none());
        assert_eq!(parse_position(&format_position(at(5, 9))), Some(at(5, 9)));
    }

    #[test]
    fn a_cursor_is_honoured_only_with_every_event_after_it() {
        assert_eq!(missed(at(7, 3), at(7, 6), events(4..=6)).unwrap().len(), 3);
        assert_eq!(missed(at(7, 6), at(7, 6), vec![]).unwrap().len(), 0);
        // Trimmed: the first kept event is not the one after the cursor.
        assert!(missed(at(7, 3), at(7, 6), events(5..=6)).is_none());
        // Another life of the stream, or a cursor past its head.
        assert!(missed(at(8, 3), at(7, 6), events(4..=6)).is_none());
        assert!(missed(at(7, 9), at(7, 6), vec![]).is_none());
        // A cursor taken when there was no stream: everything since its first event.
        assert_eq!(missed(at(0, 0), at(7, 2), events(1..=2)).unwrap().len(), 2);
        assert!(missed(at(0, 0), at(7, 9), events(3..=9)).is_none());
        assert_eq!(missed(at(0, 0), at(0, 0), vec![]).unwrap().len(), 0);
        // The stream is gone but the cursor knew one: cannot tell what was lost.
        assert!(missed(at(7, 3), at(0, 0), vec![]).is_none());
    }

    #[test]
    fn keys_share_the_routes_hash_tag() {
        let (s, m) = stream_keys("p#app#ch#news", "news");
        assert_eq!(s, "{p#app#ch#news}#s#news");
        assert_eq!(m, "{p#app#ch#news}#m#news");
    }
}
