//! The cluster-wide rate counter on Redis (API requests and new connections, `api/rate_limit.rs`):
//! one key per window and second, `{prefix}#rate#{window}#{second}` (`{window}` is
//! `api#{app_id}` or `conn#{app_id}#{client}`), counted with `INCR` and given a 2 s `EXPIRE` in
//! the same pipelined round trip, so the keys clean themselves up. Its own multiplexed
//! connection (the adapter's publishing connection is a one-way queue); when Redis is away or
//! slower than [`RESPONSE_TIMEOUT`], it answers `None` and the limiter falls back to this node's
//! count, and it tries to reconnect at most once per [`RETRY_EVERY`] so requests and upgrades
//! never queue behind a dead Redis.

use crate::hub::{CountFuture, WindowCounter};
use parking_lot::Mutex;
use std::time::{Duration, Instant};

/// Longest a request or upgrade waits for its count.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);

/// Time between reconnect attempts while Redis is away.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);

/// How long a window's key outlives its second.
const KEY_TTL_SECS: u64 = 2;

enum Link {
    Up(redis::aio::MultiplexedConnection),
    /// Down since this instant; the next attempt waits for [`RETRY_EVERY`].
    Down(Instant),
    Never,
}

/// Counts hits per window and second in Redis.
pub struct RedisCounter {
    client: redis::Client,
    prefix: String,
    link: Mutex<Link>,
    /// Serialises reconnect attempts.
    connecting: tokio::sync::Mutex<()>,
}

impl RedisCounter {
    /// A counter on the Redis at `url` (connects on first use); fails only on a bad URL.
    pub fn new(url: &str, prefix: &str) -> Result<RedisCounter, String> {
        let client = redis::Client::open(url).map_err(|e| format!("invalid Redis URL: {e}"))?;
        Ok(RedisCounter {
            client,
            prefix: prefix.to_string(),
            link: Mutex::new(Link::Never),
            connecting: tokio::sync::Mutex::new(()),
        })
    }

    async fn connection(&self) -> Option<redis::aio::MultiplexedConnection> {
        let ready = |link: &Link| match link {
            Link::Up(c) => Some(Some(c.clone())),
            Link::Down(since) if since.elapsed() < RETRY_EVERY => Some(None),
            _ => None,
        };
        if let Some(answer) = ready(&self.link.lock()) {
            return answer;
        }
        let _one = self.connecting.lock().await;
        if let Some(answer) = ready(&self.link.lock()) {
            return answer;
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(RESPONSE_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        match self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(c) => {
                *self.link.lock() = Link::Up(c.clone());
                Some(c)
            }
            Err(e) => {
                let first = !matches!(*self.link.lock(), Link::Down(_));
                if first {
                    tracing::warn!("rate limits count per node: cannot reach Redis: {e}");
                }
                *self.link.lock() = Link::Down(Instant::now());
                None
            }
        }
    }

    async fn count(&self, window: &str, second: u64) -> Option<u64> {
        let mut conn = self.connection().await?;
        let key = format!("{}#rate#{window}#{second}", self.prefix);
        let result: redis::RedisResult<(u64,)> = redis::pipe()
            .cmd("INCR")
            .arg(&key)
            .cmd("EXPIRE")
            .arg(&key)
            .arg(KEY_TTL_SECS)
            .ignore()
            .query_async(&mut conn)
            .await;
        match result {
            Ok((n,)) => Some(n),
            Err(e) => {
                tracing::warn!("rate limits count per node: Redis failed: {e}");
                *self.link.lock() = Link::Down(Instant::now());
                None
            }
        }
    }
}

impl WindowCounter for RedisCounter {
    fn hit<'a>(&'a self, key: &'a str, second: u64) -> CountFuture<'a> {
        Box::pin(self.count(key, second))
    }
}
