//! One hub event as one row of the live log: a JSON object with `type`, `time`, `app_id` and
//! the event's fields, with the payload rules applied.
//!
//! Payload rules: the `data` of events on private, presence and `#server-to-user-` channels
//! is hidden unless the console was started with `--console-show-payloads`; encrypted
//! channels carry only ciphertext (the server never has their key), which is shown as it is;
//! every payload is cut to the configured size on a character boundary. Client addresses
//! are masked ([`mask_ip`]).

use crate::hub::HubEvent;
use crate::protocol::{ChannelInfo, ChannelKind};
use crate::webhooks::Attempt;
use serde_json::{json, Map, Value};
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// How payloads are shown.
#[derive(Debug, Clone, Copy)]
pub struct PayloadRules {
    pub show_private: bool,
    pub max_bytes: usize,
}

impl PayloadRules {
    /// The `data`-related fields of a row for an event on `channels`.
    fn apply(&self, channels: &[&str], data: &str, row: &mut Map<String, Value>) {
        let kinds: Vec<ChannelKind> = channels.iter().map(|c| ChannelInfo::of(c).kind).collect();
        let encrypted = kinds.contains(&ChannelKind::Encrypted);
        let private = kinds.iter().any(|k| {
            matches!(
                k,
                ChannelKind::Private | ChannelKind::Presence | ChannelKind::ServerToUser
            )
        });
        if encrypted {
            row.insert("encrypted".into(), true.into());
        }
        if private && !self.show_private {
            row.insert("data".into(), Value::Null);
            row.insert("hidden".into(), true.into());
            return;
        }
        let (cut, truncated) = cut(data, self.max_bytes);
        row.insert("data".into(), cut.into());
        if truncated {
            row.insert("truncated".into(), true.into());
        }
    }
}

/// `s` cut to at most `max` bytes on a character boundary, and whether it was cut.
pub fn cut(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}

/// A client address with its host part hidden: IPv4 keeps its /24, IPv6 its /48.
pub fn mask_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.x", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => mask_ip(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}::x", s[0], s[1], s[2])
            }
        },
    }
}

/// The current time as RFC 3339 UTC with milliseconds, `2026-01-02T03:04:05.678Z`.
pub fn now_rfc3339() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    rfc3339(ms)
}

/// Milliseconds since the Unix epoch as RFC 3339 UTC.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

/// A row for something the console itself noticed (not a hub event).
pub fn notice(kind: &str, fields: Value) -> Value {
    let mut row = Map::new();
    row.insert("type".into(), kind.into());
    row.insert("time".into(), now_rfc3339().into());
    row.insert("app_id".into(), Value::Null);
    if let Value::Object(f) = fields {
        row.extend(f);
    }
    Value::Object(row)
}

/// The row for a webhook delivery attempt: the target (without credentials or query), what
/// the request carried, the attempt's number, the receiver's status or the error, and the
/// outcome (`delivered`, `will_retry` with `retry_in_ms`, `given_up`).
pub fn attempt(a: &Attempt) -> Value {
    let channels: Vec<&str> = a.channels.iter().map(|c| &**c).collect();
    let mut row = Map::new();
    row.insert("type".into(), "webhook_attempt".into());
    row.insert("time".into(), now_rfc3339().into());
    row.insert("app_id".into(), (*a.app_id).into());
    row.insert("target".into(), (*a.target).into());
    row.insert("kinds".into(), json!(a.kinds));
    row.insert("channels".into(), json!(channels));
    row.insert("events".into(), a.events.into());
    row.insert("attempt".into(), a.attempt.into());
    row.insert("status".into(), a.status.into());
    row.insert("error".into(), a.error.as_deref().into());
    row.insert("outcome".into(), a.outcome.name().into());
    row.insert("retry_in_ms".into(), a.retry_in_ms.into());
    Value::Object(row)
}

/// The row for a hub event.
pub fn row(event: &HubEvent, rules: &PayloadRules) -> Value {
    let mut row = Map::new();
    let (kind, fields) = match event {
        HubEvent::ConnectionOpened { socket_id, ip, .. } => (
            "connection_opened",
            json!({ "socket_id": socket_id.to_string(), "ip": ip.map(mask_ip) }),
        ),
        HubEvent::ConnectionClosed {
            socket_id,
            code,
            why,
            ..
        } => (
            "connection_closed",
            json!({ "socket_id": socket_id.to_string(), "code": code, "reason": why }),
        ),
        HubEvent::Subscribed {
            socket_id, channel, ..
        } => (
            "subscribed",
            json!({ "socket_id": socket_id.to_string(), "channel": &**channel }),
        ),
        HubEvent::Unsubscribed {
            socket_id, channel, ..
        } => (
            "unsubscribed",
            json!({ "socket_id": socket_id.to_string(), "channel": &**channel }),
        ),
        HubEvent::ChannelOccupied { channel, .. } => {
            ("channel_occupied", json!({ "channel": &**channel }))
        }
        HubEvent::ChannelVacated { channel, .. } => {
            ("channel_vacated", json!({ "channel": &**channel }))
        }
        HubEvent::MemberAdded(m) | HubEvent::MemberRemoved(m) => (
            if matches!(event, HubEvent::MemberAdded(_)) {
                "member_added"
            } else {
                "member_removed"
            },
            json!({
                "channel": &*m.channel,
                "user_id": &*m.user_id,
                "here": m.here,
                "cluster": m.cluster,
            }),
        ),
        HubEvent::ClientEvent {
            channel,
            event,
            data,
            socket_id,
            user_id,
            recipients,
            ..
        } => {
            let mut f = Map::new();
            f.insert("channel".into(), (**channel).into());
            f.insert("event".into(), (**event).into());
            f.insert("socket_id".into(), socket_id.to_string().into());
            f.insert("user_id".into(), user_id.as_deref().into());
            f.insert("recipients".into(), (*recipients).into());
            f.insert("bytes".into(), data.len().into());
            rules.apply(&[channel], data, &mut f);
            ("client_event", Value::Object(f))
        }
        HubEvent::ApiPublish {
            channels,
            event,
            data,
            bytes,
            recipients,
            except,
            ..
        } => {
            let names: Vec<&str> = channels.iter().map(|c| &**c).collect();
            let mut f = Map::new();
            f.insert("channels".into(), json!(names));
            f.insert("event".into(), (**event).into());
            f.insert("bytes".into(), (*bytes).into());
            f.insert("recipients".into(), (*recipients).into());
            f.insert(
                "except_socket_id".into(),
                except.map(|s| s.to_string()).into(),
            );
            rules.apply(&names, data, &mut f);
            ("api_publish", Value::Object(f))
        }
        HubEvent::CacheMiss { channel, .. } => ("cache_miss", json!({ "channel": &**channel })),
        HubEvent::SubscriptionCount { channel, count, .. } => (
            "subscription_count",
            json!({ "channel": &**channel, "count": count }),
        ),
        HubEvent::SubscriptionRefused {
            socket_id,
            channel,
            reason,
            ..
        } => (
            "subscription_refused",
            json!({
                "socket_id": socket_id.to_string(),
                "channel": &**channel,
                "reason": cut(reason, rules.max_bytes).0,
            }),
        ),
        HubEvent::SlowConsumerClosed { socket_id, .. } => (
            "slow_consumer_closed",
            json!({ "socket_id": socket_id.to_string() }),
        ),
    };
    row.insert("type".into(), kind.into());
    row.insert("time".into(), now_rfc3339().into());
    row.insert("app_id".into(), event.app_id().into());
    if let Value::Object(f) = fields {
        row.extend(f);
    }
    Value::Object(row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::SocketId;
    use std::sync::Arc;

    const RULES: PayloadRules = PayloadRules {
        show_private: false,
        max_bytes: 2048,
    };

    fn publish(channels: &[&str], data: &str) -> HubEvent {
        HubEvent::ApiPublish {
            app_id: "a".into(),
            channels: channels.iter().map(|c| Arc::from(*c)).collect(),
            event: "e".into(),
            data: data.into(),
            bytes: data.len(),
            recipients: 2,
            except: Some(SocketId((1 << 32) | 2)),
        }
    }

    #[test]
    fn api_publish_fields() {
        let r = row(&publish(&["news"], "{\"x\":1}"), &RULES);
        assert_eq!(r["type"], "api_publish");
        assert_eq!(r["app_id"], "a");
        assert_eq!(r["channels"], json!(["news"]));
        assert_eq!(r["data"], "{\"x\":1}");
        assert_eq!(r["recipients"], 2);
        assert_eq!(r["except_socket_id"], "1.2");
        assert!(r["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn private_and_presence_payloads_are_hidden_unless_asked() {
        for channels in [
            &["private-x"][..],
            &["presence-x"],
            &["news", "private-y"],
            &["#server-to-user-1"],
        ] {
            let r = row(&publish(channels, "secret-ish"), &RULES);
            assert_eq!(r["data"], Value::Null, "{channels:?}");
            assert_eq!(r["hidden"], true);
        }
        let show = PayloadRules {
            show_private: true,
            ..RULES
        };
        assert_eq!(row(&publish(&["private-x"], "d"), &show)["data"], "d");
        let client = HubEvent::ClientEvent {
            app_id: "a".into(),
            channel: "presence-r".into(),
            event: "client-typing".into(),
            data: "{}".into(),
            socket_id: SocketId(5),
            user_id: Some("u".into()),
            recipients: 1,
        };
        let r = row(&client, &RULES);
        assert_eq!(
            (r["hidden"].clone(), r["user_id"].clone()),
            (json!(true), json!("u"))
        );
    }

    #[test]
    fn encrypted_shows_ciphertext_and_payloads_are_cut() {
        let ct = r#"{"nonce":"n","ciphertext":"c"}"#;
        let r = row(&publish(&["private-encrypted-v"], ct), &RULES);
        assert_eq!(
            (r["data"].as_str(), r["encrypted"].clone()),
            (Some(ct), json!(true))
        );
        let big = "é".repeat(2000);
        let r = row(&publish(&["news"], &big), &RULES);
        assert_eq!(r["truncated"], true);
        assert!(r["data"].as_str().unwrap().len() <= 2048);
        assert_eq!(r["bytes"], 4000);
    }

    #[test]
    fn webhook_attempt_fields() {
        use crate::webhooks::attempts::Outcome;
        let a = Attempt {
            app_id: "a".into(),
            target: "https://hooks.example/in".into(),
            kinds: vec!["channel_occupied", "member_added"],
            channels: vec!["presence-r".into(), "news".into()],
            events: 3,
            attempt: 2,
            status: Some(503),
            error: Some("answered 503 Service Unavailable".into()),
            outcome: Outcome::WillRetry,
            retry_in_ms: Some(1500),
        };
        let r = attempt(&a);
        assert_eq!(r["type"], "webhook_attempt");
        assert_eq!(r["app_id"], "a");
        assert_eq!(r["target"], "https://hooks.example/in");
        assert_eq!(r["kinds"], json!(["channel_occupied", "member_added"]));
        assert_eq!(r["channels"], json!(["presence-r", "news"]));
        assert_eq!(
            (r["events"].clone(), r["attempt"].clone()),
            (json!(3), json!(2))
        );
        assert_eq!(
            (r["status"].clone(), r["outcome"].clone()),
            (json!(503), json!("will_retry"))
        );
        assert_eq!(r["retry_in_ms"], 1500);
        assert!(r["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn time_and_masks() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_767_323_045_678), "2026-01-02T03:04:05.678Z");
        assert_eq!(mask_ip("203.0.113.77".parse().unwrap()), "203.0.113.x");
        assert_eq!(mask_ip("2001:db8:1:2::9".parse().unwrap()), "2001:db8:1::x");
        assert_eq!(mask_ip("::ffff:10.1.2.3".parse().unwrap()), "10.1.2.x");
        assert_eq!(cut("abc", 2), ("ab", true));
    }
}
