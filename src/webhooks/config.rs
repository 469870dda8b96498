//! What an app wants sent where: webhook targets (URL, kinds, channel filter, extra headers)
//! and the node-wide delivery settings (delay, batching, retries, limits).
//!
//! Targets come from the apps file (`"webhooks": [...]` on an app) or, for the single app of
//! the command line, from `--webhook-url` / `--webhook-events`. Everything is checked when it
//! is read: a bad URL or an unknown kind is a configuration error naming the field.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The webhook kinds Pusher sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    ChannelOccupied,
    ChannelVacated,
    MemberAdded,
    MemberRemoved,
    ClientEvent,
    CacheMiss,
    SubscriptionCount,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::ChannelOccupied,
        Kind::ChannelVacated,
        Kind::MemberAdded,
        Kind::MemberRemoved,
        Kind::ClientEvent,
        Kind::CacheMiss,
        Kind::SubscriptionCount,
    ];

    /// The `name` field of the event.
    pub fn name(self) -> &'static str {
        match self {
            Kind::ChannelOccupied => "channel_occupied",
            Kind::ChannelVacated => "channel_vacated",
            Kind::MemberAdded => "member_added",
            Kind::MemberRemoved => "member_removed",
            Kind::ClientEvent => "client_event",
            Kind::CacheMiss => "cache_miss",
            Kind::SubscriptionCount => "subscription_count",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s.trim())
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of kinds (one bit each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kinds(u8);

impl Kinds {
    /// What a target gets when it names no kinds: everything but `subscription_count`,
    /// which Pusher sends only to apps that turn it on (name it in `events`).
    pub fn default_set() -> Kinds {
        let mut k = Kinds(0);
        for kind in Kind::ALL {
            if kind != Kind::SubscriptionCount {
                k.0 |= kind.bit();
            }
        }
        k
    }

    pub fn contains(self, kind: Kind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// Parse a list of kind names; the error names the first unknown one.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Kinds, String> {
        let mut k = Kinds(0);
        for n in names {
            if n.trim().is_empty() {
                continue;
            }
            let kind = Kind::parse(n).ok_or_else(|| {
                format!(
                    "unknown kind '{n}' (one of {})",
                    Kind::ALL.map(Kind::name).join(", ")
                )
            })?;
            k.0 |= kind.bit();
        }
        if k.0 == 0 {
            return Ok(Kinds::default_set());
        }
        Ok(k)
    }
}

/// Which channels a target hears about (both parts must match when both are set).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    #[serde(default)]
    pub channel_name_starts_with: Option<String>,
    #[serde(default)]
    pub channel_name_ends_with: Option<String>,
}

impl Filter {
    pub fn matches(&self, channel: &str) -> bool {
        self.channel_name_starts_with
            .as_deref()
            .is_none_or(|p| channel.starts_with(p))
            && self
                .channel_name_ends_with
                .as_deref()
                .is_none_or(|s| channel.ends_with(s))
    }
}

/// One receiver of an app's webhooks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "RawTarget")]
pub struct Target {
    pub url: String,
    pub events: Kinds,
    pub filter: Filter,
    /// Extra request headers (cannot replace the three Pusher headers).
    pub headers: BTreeMap<String, String>,
}

impl Target {
    /// A target for `url` with the given kinds; checks the URL.
    pub fn new(url: &str, events: Kinds) -> Result<Target, String> {
        check_url(url)?;
        Ok(Target {
            url: url.to_string(),
            events,
            filter: Filter::default(),
            headers: BTreeMap::new(),
        })
    }

    /// Whether this target wants an event of `kind` on `channel`.
    pub fn wants(&self, kind: Kind, channel: &str) -> bool {
        self.events.contains(kind) && self.filter.matches(channel)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    url: String,
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    filter: Filter,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

impl TryFrom<RawTarget> for Target {
    type Error = String;

    fn try_from(raw: RawTarget) -> Result<Target, String> {
        check_url(&raw.url).map_err(|e| format!("webhooks[].url: {e}"))?;
        let events = Kinds::parse(raw.events.iter().map(String::as_str))
            .map_err(|e| format!("webhooks[].events: {e}"))?;
        for (name, value) in &raw.headers {
            let lower = name.to_ascii_lowercase();
            if ["content-type", "x-pusher-key", "x-pusher-signature"].contains(&lower.as_str()) {
                return Err(format!(
                    "webhooks[].headers: '{name}' is set by the server and cannot be replaced"
                ));
            }
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                || reqwest::header::HeaderValue::from_str(value).is_err()
            {
                return Err(format!("webhooks[].headers: invalid header '{name}'"));
            }
        }
        Ok(Target {
            url: raw.url,
            events,
            filter: raw.filter,
            headers: raw.headers,
        })
    }
}

fn check_url(url: &str) -> Result<(), String> {
    match reqwest::Url::parse(url) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => Ok(()),
        Ok(_) => Err(format!("'{url}' is not an http:// or https:// URL")),
        Err(e) => Err(format!("'{url}' is not a URL ({e})")),
    }
}

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
    /// How long shutdown waits for queued webhooks to be delivered.
    pub flush_timeout: Duration,
    /// `subscription_count`: channels above this many subscribers are throttled...
    pub count_throttle_above: usize,
    /// ...to one event per this interval.
    pub count_interval: Duration,
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
            flush_timeout: Duration::from_secs(10),
            count_throttle_above: 100,
            count_interval: Duration::from_secs(5),
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
    fn targets_from_json() {
        let t: Target = serde_json::from_str(
            r#"{"url":"https://example.com/hook","events":["channel_occupied","member_added"],
                "filter":{"channel_name_starts_with":"presence-"},"headers":{"X-Env":"prod"}}"#,
        )
        .unwrap();
        assert!(t.wants(Kind::MemberAdded, "presence-room"));
        assert!(!t.wants(Kind::MemberAdded, "private-room"));
        assert!(!t.wants(Kind::ChannelVacated, "presence-room"));
        assert_eq!(t.headers["X-Env"], "prod");
        let all: Target = serde_json::from_str(r#"{"url":"http://127.0.0.1:9/x"}"#).unwrap();
        assert!(all.wants(Kind::ClientEvent, "anything"));
        assert!(!all.wants(Kind::SubscriptionCount, "anything"));
    }

    #[test]
    fn bad_targets_name_the_field() {
        let e = serde_json::from_str::<Target>(r#"{"url":"ftp://x/y"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("webhooks[].url"), "{e}");
        let e = serde_json::from_str::<Target>(r#"{"url":"not a url"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("webhooks[].url"), "{e}");
        let e =
            serde_json::from_str::<Target>(r#"{"url":"http://x/","events":["channel_ocupied"]}"#)
                .unwrap_err()
                .to_string();
        assert!(
            e.contains("webhooks[].events") && e.contains("channel_ocupied"),
            "{e}"
        );
        let e = serde_json::from_str::<Target>(
            r#"{"url":"http://x/","headers":{"X-Pusher-Signature":"forged"}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("webhooks[].headers"), "{e}");
        assert!(serde_json::from_str::<Target>(r#"{"url":"http://x/","filtr":{}}"#).is_err());
    }

    #[test]
    fn filters_need_both_parts() {
        let f = Filter {
            channel_name_starts_with: Some("private-".into()),
            channel_name_ends_with: Some("-log".into()),
        };
        assert!(f.matches("private-a-log"));
        assert!(!f.matches("private-a"));
        assert!(!f.matches("a-log"));
        assert!(Filter::default().matches("x"));
    }

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
