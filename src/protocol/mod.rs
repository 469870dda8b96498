//! The Pusher wire protocol: parsing client frames, building server frames, channel names.
//!
//! Pure code, no IO, no state: the WebSocket layer hands text in and gets typed messages out;
//! the hub and the HTTP API build the frames they send with the functions here, so every frame
//! of a kind is encoded the same way, once. Its one outside type is the frame buffer itself
//! (`Utf8Bytes`, the reference-counted text the socket writes without a copy). See
//! `docs/pusher-protocol.md` §1–§4.

pub mod channel;
pub mod error;

pub use channel::{validate_channel_name, ChannelInfo, ChannelKind};
pub use error::ErrorCode;

use axum::extract::ws::Utf8Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// One frame from a client, with `data` left raw so client events relay it unchanged.
#[derive(Debug, Deserialize)]
pub struct ClientFrame<'a> {
    #[serde(borrow)]
    pub event: Cow<'a, str>,
    #[serde(borrow, default)]
    pub channel: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub data: Option<&'a RawValue>,
}

/// Why a client frame could not be read (the refusal adds "Invalid message format: ").
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("{0}")]
    Malformed(String),
    #[error("field '{0}' is missing")]
    MissingField(&'static str),
}

/// Parse a text frame into its envelope. Non-objects and missing `event` are errors.
pub fn parse_frame(text: &str) -> Result<ClientFrame<'_>, FrameError> {
    serde_json::from_str(text).map_err(|e| FrameError::Malformed(short(&e.to_string())))
}

fn short(s: &str) -> String {
    s.chars().take(120).collect()
}

/// `data` of `pusher:subscribe`: accepts an object or a JSON string holding one.
#[derive(Debug, Deserialize, Default)]
pub struct SubscribeData {
    pub channel: Option<String>,
    #[serde(default)]
    pub auth: Option<String>,
    /// The exact `channel_data` string as sent (signatures are over these bytes).
    #[serde(default, deserialize_with = "string_or_raw")]
    pub channel_data: Option<String>,
}

/// `data` of `pusher:signin`.
#[derive(Debug, Deserialize, Default)]
pub struct SigninData {
    #[serde(default)]
    pub auth: Option<String>,
    #[serde(default, deserialize_with = "string_or_raw")]
    pub user_data: Option<String>,
}

/// A field that should be a JSON string; if a client sent an object instead, keep its raw text.
fn string_or_raw<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let raw: Option<Box<RawValue>> = Option::deserialize(d)?;
    Ok(raw.map(|raw| {
        let text = raw.get();
        if text.starts_with('"') {
            serde_json::from_str::<String>(text).unwrap_or_else(|_| text.to_string())
        } else {
            text.to_string()
        }
    }))
}

/// Decode a `data` field that is an object, or a JSON string that holds one.
pub fn decode_data<T: for<'de> Deserialize<'de>>(data: Option<&RawValue>) -> Result<T, FrameError> {
    let raw = data.ok_or(FrameError::MissingField("data"))?;
    let text = raw.get();
    if text.starts_with('"') {
        let inner: String =
            serde_json::from_str(text).map_err(|e| FrameError::Malformed(short(&e.to_string())))?;
        serde_json::from_str(&inner).map_err(|e| FrameError::Malformed(short(&e.to_string())))
    } else {
        serde_json::from_str(text).map_err(|e| FrameError::Malformed(short(&e.to_string())))
    }
}

/// A presence member's identity, parsed from `channel_data` (or signed-in `user_data`).
#[derive(Debug, Clone)]
pub struct MemberData {
    /// `user_id` in its string form (`1` and `"1"` are the same user).
    pub user_id: String,
    /// `user_info` as raw JSON (`null` when absent).
    pub user_info: Box<RawValue>,
}

#[derive(Deserialize)]
struct RawMember<'a> {
    #[serde(borrow)]
    user_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    user_info: Option<&'a RawValue>,
}

/// Why presence `channel_data` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemberError {
    #[error("channel_data is not a JSON object")]
    NotAnObject,
    #[error("channel_data has no user_id")]
    NoUserId,
    #[error("user_id must be a string or a number")]
    BadUserId,
    #[error("user_id must be 1 to {0} characters")]
    UserIdLength(usize),
}

/// Parse presence `channel_data`: an object with `user_id` (string or number) and optional
/// `user_info`. `max_id_len` bounds the id.
pub fn parse_member(channel_data: &str, max_id_len: usize) -> Result<MemberData, MemberError> {
    let raw: RawMember =
        serde_json::from_str(channel_data).map_err(|_| MemberError::NotAnObject)?;
    let id_raw = raw.user_id.ok_or(MemberError::NoUserId)?;
    let user_id = id_to_string(id_raw).ok_or(MemberError::BadUserId)?;
    if user_id.is_empty() || user_id.len() > max_id_len {
        return Err(MemberError::UserIdLength(max_id_len));
    }
    let user_info = match raw.user_info {
        Some(v) => v.to_owned(),
        None => null_raw(),
    };
    Ok(MemberData { user_id, user_info })
}

fn id_to_string(raw: &RawValue) -> Option<String> {
    let text = raw.get();
    if text.starts_with('"') {
        serde_json::from_str::<String>(text).ok()
    } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        Some(text.to_string())
    } else {
        None
    }
}

/// A raw JSON `null`.
pub fn null_raw() -> Box<RawValue> {
    RawValue::from_string("null".to_string()).expect("null is valid JSON")
}

/// `user_data` of a sign-in: an object with a non-empty string `id`, optional `user_info`
/// and `watchlist`.
#[derive(Debug, Clone)]
pub struct UserData {
    pub id: String,
    pub user_info: Option<Box<RawValue>>,
    pub watchlist: Vec<String>,
}

/// Why sign-in `user_data` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserDataError {
    #[error("user_data is not a JSON object")]
    NotAnObject,
    #[error("user_data.id must be a non-empty string")]
    BadId,
}

pub fn parse_user_data(user_data: &str) -> Result<UserData, UserDataError> {
    #[derive(Deserialize)]
    struct Raw {
        id: Option<serde_json::Value>,
        #[serde(default)]
        user_info: Option<Box<RawValue>>,
        #[serde(default)]
        watchlist: Option<Vec<serde_json::Value>>,
    }
    let raw: Raw = serde_json::from_str(user_data).map_err(|_| UserDataError::NotAnObject)?;
    let id = match raw.id {
        Some(serde_json::Value::String(s)) if !s.is_empty() => s,
        _ => return Err(UserDataError::BadId),
    };
    let watchlist = raw
        .watchlist
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| match v {
            serde_json::Value::String(s) => Some(s),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .collect();
    Ok(UserData {
        id,
        user_info: raw.user_info,
        watchlist,
    })
}

// ---------------------------------------------------------------------------------------------
// Server frames. Each returns the encoded text, ready to share between recipients.

#[derive(Serialize)]
struct Frame<'a, D: Serialize + ?Sized> {
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a D>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
}

fn encode<D: Serialize + ?Sized>(
    event: &str,
    channel: Option<&str>,
    data: Option<&D>,
    user_id: Option<&str>,
) -> Utf8Bytes {
    let frame = Frame {
        event,
        channel,
        data,
        user_id,
    };
    // Serialising strings and raw JSON into a Vec cannot fail.
    Utf8Bytes::from(serde_json::to_string(&frame).unwrap_or_default())
}

/// A channel event: `{"event":…,"channel":…,"data":"…"}` with `data` the publisher's string.
pub fn channel_event(event: &str, channel: &str, data: &str) -> Utf8Bytes {
    encode(event, Some(channel), Some(data), None)
}

/// A relayed client event: `data` passed through as raw JSON, `user_id` on presence channels.
pub fn client_event(
    event: &str,
    channel: &str,
    data: &RawValue,
    user_id: Option<&str>,
) -> Utf8Bytes {
    encode(event, Some(channel), Some(data), user_id)
}

pub fn connection_established(socket_id: &str, activity_timeout: u64) -> Utf8Bytes {
    let data = format!(r#"{{"socket_id":"{socket_id}","activity_timeout":{activity_timeout}}}"#);
    encode("pusher:connection_established", None, Some(&data), None)
}

pub fn pong() -> Utf8Bytes {
    Utf8Bytes::from_static(r#"{"event":"pusher:pong","data":{}}"#)
}

pub fn ping() -> Utf8Bytes {
    Utf8Bytes::from_static(r#"{"event":"pusher:ping","data":{}}"#)
}

#[derive(Serialize)]
struct ErrorData<'a> {
    code: Option<u16>,
    message: &'a str,
}

/// `pusher:error` with `{"code","message"}`; `channel` at top level when bound to one.
pub fn error(code: Option<ErrorCode>, message: &str, channel: Option<&str>) -> Utf8Bytes {
    let data = ErrorData {
        code: code.map(|c| c as u16),
        message,
    };
    encode("pusher:error", channel, Some(&data), None)
}

#[derive(Serialize)]
struct SubscriptionErrorData<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    error: &'a str,
    status: u16,
}

/// `pusher:subscription_error` as soketi sends it (Echo's `.error()` receives it).
pub fn subscription_error(channel: &str, kind: &str, message: &str, status: u16) -> Utf8Bytes {
    let data = SubscriptionErrorData {
        kind,
        error: message,
        status,
    };
    encode(
        "pusher:subscription_error",
        Some(channel),
        Some(&data),
        None,
    )
}

pub fn subscription_succeeded(channel: &str, data: &str) -> Utf8Bytes {
    encode(
        "pusher_internal:subscription_succeeded",
        Some(channel),
        Some(data),
        None,
    )
}

pub fn member_added(channel: &str, user_id: &str, user_info: &RawValue) -> Utf8Bytes {
    #[derive(Serialize)]
    struct D<'a> {
        user_id: &'a str,
        user_info: &'a RawValue,
    }
    let data = serde_json::to_string(&D { user_id, user_info }).unwrap_or_default();
    encode(
        "pusher_internal:member_added",
        Some(channel),
        Some(&data),
        None,
    )
}

pub fn member_removed(channel: &str, user_id: &str) -> Utf8Bytes {
    #[derive(Serialize)]
    struct D<'a> {
        user_id: &'a str,
    }
    let data = serde_json::to_string(&D { user_id }).unwrap_or_default();
    encode(
        "pusher_internal:member_removed",
        Some(channel),
        Some(&data),
        None,
    )
}

pub fn subscription_count(channel: &str, count: usize) -> Utf8Bytes {
    let data = format!(r#"{{"subscription_count":{count}}}"#);
    encode(
        "pusher_internal:subscription_count",
        Some(channel),
        Some(&data),
        None,
    )
}

pub fn cache_miss(channel: &str) -> Utf8Bytes {
    encode::<str>("pusher:cache_miss", Some(channel), None, None)
}

pub fn signin_success(user_data: &str) -> Utf8Bytes {
    #[derive(Serialize)]
    struct D<'a> {
        user_data: &'a str,
    }
    encode("pusher:signin_success", None, Some(&D { user_data }), None)
}

/// `pusher_internal:watchlist_events` with one entry per non-empty list.
pub fn watchlist_events(online: &[&str], offline: &[&str]) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Entry<'a> {
        name: &'a str,
        user_ids: &'a [&'a str],
    }
    #[derive(Serialize)]
    struct D<'a> {
        events: Vec<Entry<'a>>,
    }
    let mut events = Vec::new();
    if !online.is_empty() {
        events.push(Entry {
            name: "online",
            user_ids: online,
        });
    }
    if !offline.is_empty() {
        events.push(Entry {
            name: "offline",
            user_ids: offline,
        });
    }
    let data = serde_json::to_string(&D { events }).unwrap_or_default();
    encode("pusher_internal:watchlist_events", None, Some(&data), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_subscribe_with_object_or_string_data() {
        let f = parse_frame(r#"{"event":"pusher:subscribe","data":{"channel":"a","auth":""}}"#)
            .unwrap();
        let d: SubscribeData = decode_data(f.data).unwrap();
        assert_eq!(d.channel.as_deref(), Some("a"));
        let f =
            parse_frame(r#"{"event":"pusher:subscribe","data":"{\"channel\":\"b\"}"}"#).unwrap();
        let d: SubscribeData = decode_data(f.data).unwrap();
        assert_eq!(d.channel.as_deref(), Some("b"));
    }

    #[test]
    fn channel_data_kept_as_exact_string() {
        let f = parse_frame(
            r#"{"event":"pusher:subscribe","data":{"channel":"presence-a","auth":"k:s","channel_data":"{\"user_id\": \"42\"}"}}"#,
        )
        .unwrap();
        let d: SubscribeData = decode_data(f.data).unwrap();
        assert_eq!(d.channel_data.as_deref(), Some(r#"{"user_id": "42"}"#));
    }

    #[test]
    fn malformed_frames_are_errors() {
        assert!(parse_frame("not json").is_err());
        assert!(parse_frame("[1,2]").is_err());
        assert!(parse_frame(r#"{"data":{}}"#).is_err());
        assert!(parse_frame(r#"{"event":5}"#).is_err());
        assert!(decode_data::<SubscribeData>(None).is_err());
    }

    #[test]
    fn member_ids_are_strings() {
        let m = parse_member(r#"{"user_id":1,"user_info":{"name":"A"}}"#, 128).unwrap();
        assert_eq!(m.user_id, "1");
        assert_eq!(m.user_info.get(), r#"{"name":"A"}"#);
        let m = parse_member(r#"{"user_id":"1"}"#, 128).unwrap();
        assert_eq!(m.user_id, "1");
        assert_eq!(m.user_info.get(), "null");
        assert!(parse_member(r#"{"user_info":{}}"#, 128).is_err());
        assert!(parse_member(r#"{"user_id":{}}"#, 128).is_err());
        assert!(parse_member(r#"{"user_id":"abc"}"#, 2).is_err());
        assert!(parse_member("nope", 128).is_err());
    }

    #[test]
    fn frames_encode_as_pusher_expects() {
        assert_eq!(
            channel_event(r"App\Events\X", "c", r#"{"a":1}"#).as_str(),
            r#"{"event":"App\\Events\\X","channel":"c","data":"{\"a\":1}"}"#
        );
        assert_eq!(
            connection_established("1.2", 120).as_str(),
            r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.2\",\"activity_timeout\":120}"}"#
        );
        assert_eq!(
            error(Some(ErrorCode::AppDoesNotExist), "x", None).as_str(),
            r#"{"event":"pusher:error","data":{"code":4001,"message":"x"}}"#
        );
        assert_eq!(
            watchlist_events(&["1"], &["2", "3"]).as_str(),
            r#"{"event":"pusher_internal:watchlist_events","data":"{\"events\":[{\"name\":\"online\",\"user_ids\":[\"1\"]},{\"name\":\"offline\",\"user_ids\":[\"2\",\"3\"]}]}"}"#
        );
        assert_eq!(
            cache_miss("cache-a").as_str(),
            r#"{"event":"pusher:cache_miss","channel":"cache-a"}"#
        );
    }

    #[test]
    fn user_data_needs_string_id() {
        let u = parse_user_data(r#"{"id":"7","watchlist":["1",2]}"#).unwrap();
        assert_eq!(u.id, "7");
        assert_eq!(u.watchlist, vec!["1", "2"]);
        assert!(parse_user_data(r#"{"id":7}"#).is_err());
        assert!(parse_user_data(r#"{"id":""}"#).is_err());
    }
}
