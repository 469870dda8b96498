//! One webhook event, serialized once with exactly the fields Pusher sends for its kind.
//!
//! The JSON object is what goes into the request's `events` array and, in a cluster, into
//! the Redis stream; `app_id`, `kind` and `channel` ride alongside for routing and filters.

use super::config::Kind;
use serde::Serialize;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    pub app_id: Arc<str>,
    pub kind: Kind,
    pub channel: Arc<str>,
    /// The event as a JSON object.
    pub json: Arc<str>,
}

#[derive(Serialize)]
struct Fields<'a> {
    name: &'static str,
    channel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    socket_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription_count: Option<usize>,
}

impl<'a> Fields<'a> {
    fn new(kind: Kind, channel: &'a str) -> Self {
        Fields {
            name: kind.name(),
            channel,
            event: None,
            data: None,
            socket_id: None,
            user_id: None,
            subscription_count: None,
        }
    }
}

impl WebhookEvent {
    fn build(app_id: &Arc<str>, kind: Kind, channel: &Arc<str>, f: Fields<'_>) -> Self {
        WebhookEvent {
            app_id: app_id.clone(),
            kind,
            channel: channel.clone(),
            json: serde_json::to_string(&f)
                .expect("plain strings serialize")
                .into(),
        }
    }

    /// `channel_occupied`, `channel_vacated` or `cache_miss`: `{name, channel}`.
    pub fn channel(app_id: &Arc<str>, kind: Kind, channel: &Arc<str>) -> Self {
        Self::build(app_id, kind, channel, Fields::new(kind, channel))
    }

    /// `member_added` or `member_removed`: `{name, channel, user_id}`.
    pub fn member(app_id: &Arc<str>, kind: Kind, channel: &Arc<str>, user_id: &str) -> Self {
        let mut f = Fields::new(kind, channel);
        f.user_id = Some(user_id);
        Self::build(app_id, kind, channel, f)
    }

    /// `client_event`: `{name, channel, event, data, socket_id}` plus `user_id` on presence
    /// channels. `data` is always a string, as Pusher sends it: a JSON string sent by the
    /// client is passed as its value, anything else as its JSON text.
    pub fn client_event(
        app_id: &Arc<str>,
        channel: &Arc<str>,
        event: &str,
        raw_data: &str,
        socket_id: &str,
        user_id: Option<&str>,
    ) -> Self {
        let unquoted = match serde_json::from_str::<serde_json::Value>(raw_data) {
            Ok(serde_json::Value::String(s)) => Some(s),
            _ => None,
        };
        let mut f = Fields::new(Kind::ClientEvent, channel);
        f.event = Some(event);
        f.data = Some(unquoted.as_deref().unwrap_or(raw_data));
        f.socket_id = Some(socket_id);
        f.user_id = user_id;
        Self::build(app_id, Kind::ClientEvent, channel, f)
    }

    /// An event read back from the cluster's stream (`json` as written by this module).
    pub fn from_json(app_id: &str, json: &str) -> Option<Self> {
        #[derive(serde::Deserialize)]
        struct Head {
            name: String,
            channel: String,
        }
        let head: Head = serde_json::from_str(json).ok()?;
        Some(WebhookEvent {
            app_id: app_id.into(),
            kind: Kind::parse(&head.name)?,
            channel: head.channel.into(),
            json: json.into(),
        })
    }

    /// `subscription_count`: `{name, channel, subscription_count}`.
    pub fn subscription_count(app_id: &Arc<str>, channel: &Arc<str>, count: usize) -> Self {
        let mut f = Fields::new(Kind::SubscriptionCount, channel);
        f.subscription_count = Some(count);
        Self::build(app_id, Kind::SubscriptionCount, channel, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_fields_per_kind() {
        let a: Arc<str> = "1".into();
        let c: Arc<str> = "presence-room".into();
        assert_eq!(
            &*WebhookEvent::channel(&a, Kind::ChannelVacated, &c).json,
            r#"{"name":"channel_vacated","channel":"presence-room"}"#
        );
        assert_eq!(
            &*WebhookEvent::member(&a, Kind::MemberAdded, &c, "42").json,
            r#"{"name":"member_added","channel":"presence-room","user_id":"42"}"#
        );
        assert_eq!(
            &*WebhookEvent::client_event(
                &a,
                &c,
                "client-typing",
                r#""{\"x\":1}""#,
                "1.2",
                Some("42")
            )
            .json,
            r#"{"name":"client_event","channel":"presence-room","event":"client-typing","data":"{\"x\":1}","socket_id":"1.2","user_id":"42"}"#
        );
        assert_eq!(
            &*WebhookEvent::client_event(&a, &c, "client-x", r#"{"x":1}"#, "1.2", None).json,
            r#"{"name":"client_event","channel":"presence-room","event":"client-x","data":"{\"x\":1}","socket_id":"1.2"}"#
        );
        assert_eq!(
            &*WebhookEvent::subscription_count(&a, &c, 3).json,
            r#"{"name":"subscription_count","channel":"presence-room","subscription_count":3}"#
        );
    }
}
