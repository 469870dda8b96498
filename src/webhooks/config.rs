//! The node-wide webhook settings (delay, batching, retries, limits; flags in `config.rs`,
//! defaults as Pusher), and the target types, which belong to the app (`apps/`).

pub use crate::apps::webhook_targets::{Kind, Kinds, Target};
use std::time::Duration;

/// Node-wide webhook settings (flags in `config.rs`, defaults as Pusher).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// How long `channel_vacated` and `member_removed` wait for a rejoin that cancels them.
    pub delay: Duration,
    /// How long events are gathered per target before a request goes (0: at once).
    pub batch_window: Duration,
    /// Most events in one request.
    pub batch_max: usize,
    /// How long a failing request is retried before its events are given up (and counted).
    pub retry_for: Duration,
    /// First retry wait; it doubles (with jitter) up to `retry_max_backoff`.
    pub retry_min_backoff: Duration,
    pub retry_max_backoff: Duration,
    /// Per-request timeout: a receiver must answer 2xx within it.
    pub timeout: Duration,
    /// Events queued per target; beyond it new events are dropped and counted.
    pub queue: usize,
    /// Requests in flight per target.
    pub max_in_flight: usize,
    /// With the Redis adapter: events the cluster's stream holds pending at most (beyond it
    /// new ones are dropped and counted).
    pub cluster_max_pending: usize,
    /// How long shutdown waits for queued webhooks to be delivered.
    pub flush_timeout: Duration,
    /// `subscription_count`: channels above this many subscribers are throttled...
    pub count_throttle_above: usize,
    /// ...to one event per this interval.
    pub count_interval: Duration,
    /// Attempt reports a watcher (the debug console) may fall behind by before it misses
    /// some (and is told how many).
    pub attempt_reports: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            delay: Duration::from_secs(3),
            batch_window: Duration::from_millis(250),
            batch_max: 20,
            retry_for: Duration::from_secs(300),
            retry_min_backoff: Duration::from_secs(1),
            retry_max_backoff: Duration::from_secs(60),
            timeout: Duration::from_secs(4),
            queue: 10_000,
            max_in_flight: 4,
            cluster_max_pending: 100_000,
            flush_timeout: Duration::from_secs(10),
            count_throttle_above: 100,
            count_interval: Duration::from_secs(5),
            attempt_reports: 1024,
        }
    }
}

/// Parse a duration: `250ms`, `3s`, `5m`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (e.g. 250ms, 3s, 5m)"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(format!("'{s}' is not a duration (e.g. 250ms, 3s, 5m)")),
    };
    if d > Duration::from_secs(24 * 3600) {
        return Err(format!("'{s}' is longer than a day"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("100000m").is_err());
    }
}
