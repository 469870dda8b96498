//! An app's webhook receivers as configured: URL, the kinds it wants, a channel filter and
//! extra headers. Part of `App` (the apps file's `"webhooks"`), checked when read: a bad URL or
//! an unknown kind is a configuration error naming the field. The sender is `webhooks/`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_name_starts_with: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(try_from = "RawTarget", into = "RawTarget")]
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

#[derive(Deserialize, Serialize)]
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

impl From<Target> for RawTarget {
    fn from(t: Target) -> RawTarget {
        RawTarget {
            url: t.url,
            events: Kind::ALL
                .into_iter()
                .filter(|k| t.events.contains(*k))
                .map(|k| k.name().to_string())
                .collect(),
            filter: t.filter,
            headers: t.headers,
        }
    }
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
        // Written back (database rows, `apps` commands) as it was read.
        let t: Target = serde_json::from_str(
            r#"{"url":"http://x/","events":["member_added"],"filter":{"channel_name_ends_with":"-a"},"headers":{"X":"1"}}"#,
        )
        .unwrap();
        let again: Target = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(again, t);
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
}
