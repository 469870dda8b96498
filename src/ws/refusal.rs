//! Every answer a WebSocket client gets when the server will not do what it asked, as one
//! type. [`Refusal`] alone knows how each is told: the `pusher:error` code and message, or the
//! `pusher:subscription_error` type and status, and whether the connection then closes and
//! with which code. Handlers return `Result<(), Refusal>`; the connection task sends the answer
//! in one place (`ConnTask::refuse`, or `finish` before a connection is admitted).
//!
//! The README's "Errors, as clients see them" table is rendered from this type
//! (`readme_table`); a unit test fails when the two differ.

use crate::auth::AuthError;
use crate::hub::{CloseRequest, SignInError, SubscribeError};
use crate::protocol::channel::ChannelNameError;
use crate::protocol::{self, ErrorCode, MemberError, UserDataError};
use axum::extract::ws::Utf8Bytes;
use std::borrow::Cow;

/// WebSocket close code for a protocol violation (RFC 6455 §7.4.1).
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// WebSocket close code for a text message (or close reason) that is not UTF-8 (§7.4.1).
pub const CLOSE_INVALID_DATA: u16 = 1007;
/// WebSocket close code for a frame or message over the size limit ("message too big").
pub const CLOSE_TOO_BIG: u16 = 1009;

/// An unknown event's name is echoed back cut to this many characters.
pub const MAX_ECHOED_EVENT_CHARS: usize = 64;

/// Why the server refuses a connection, a frame, a subscription, a sign-in or a client event,
/// or ends a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The app key in the URL is unknown.
    AppDoesNotExist,
    /// The app is disabled.
    AppDisabled,
    /// The app has its maximum number of connections.
    OverConnectionQuota,
    /// The client's address opened more new connections this second than the app's
    /// `connection_rate_per_ip` (the limit). Told with 4100, which pusher-js answers by
    /// reconnecting after a second: a close in 4300-4399 would make it give up for good, and an
    /// HTTP 429 instead of the upgrade makes it wait about 15 s (it reports the connection
    /// unavailable after 10 s and tries again 5 s later).
    OverConnectionRate(u32),
    /// `?protocol=` is not a number at least `MIN_PROTOCOL`.
    UnsupportedProtocol,
    /// The upgrade's `Origin` is not among the app's `allowed_origins`.
    OriginNotAllowed,
    /// A frame or message over `--max-frame-bytes`.
    FrameTooBig,
    /// A WebSocket protocol violation: bad framing, reserved bits, unknown opcode, an
    /// oversized or fragmented control frame, a bad close payload, a stray continuation.
    ProtocolViolation,
    /// A text message or close reason that is not UTF-8.
    InvalidUtf8,
    /// A frame that could not be understood (not JSON, not an object, a field missing).
    InvalidMessage(Cow<'static, str>),
    /// A `pusher:` event this server does not know.
    UnsupportedEvent(String),
    /// A subscription refused; the connection stays open.
    Subscription {
        channel: String,
        why: SubscriptionRefusal,
    },
    /// A `pusher:signin` refused; the connection stays open.
    Signin(SigninRefusal),
    /// Signed in, but the watchlist is longer than the limit: only its first ids are watched.
    WatchlistTruncated(usize),
    /// A client event refused; the connection stays open.
    ClientEvent {
        channel: Option<String>,
        why: ClientEventRefusal,
    },
    /// A client event on a channel this connection has not joined.
    NotAMember { channel: String },
    /// The hub ends the connection (terminate, slow consumer, no pong, shutdown).
    Ended(CloseRequest),
}

/// Why a subscription is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionRefusal {
    InvalidName(ChannelNameError),
    /// Missing, malformed or wrong `auth`.
    BadAuth(AuthError),
    /// `#server-to-user-{id}` from a connection not signed in as `{id}`.
    NotThisUser,
    /// A presence subscription with neither `channel_data` nor a signed-in user.
    NoIdentity,
    ChannelDataTooBig(usize),
    InvalidChannelData(MemberError),
    PresenceFull(usize),
    TooManyChannels(usize),
}

impl From<SubscribeError> for SubscriptionRefusal {
    fn from(e: SubscribeError) -> Self {
        match e {
            SubscribeError::PresenceFull(max) => SubscriptionRefusal::PresenceFull(max),
            SubscribeError::TooManyChannels(max) => SubscriptionRefusal::TooManyChannels(max),
        }
    }
}

impl From<SignInError> for SigninRefusal {
    fn from(e: SignInError) -> Self {
        match e {
            SignInError::AlreadySignedIn => SigninRefusal::OtherUser,
        }
    }
}

/// Why a `pusher:signin` is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigninRefusal {
    MissingUserData,
    UserDataTooBig(usize),
    BadAuth(AuthError),
    InvalidUserData(UserDataError),
    IdTooLong(usize),
    /// Already signed in as a different user.
    OtherUser,
}

/// Why a client event is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientEventRefusal {
    Disabled,
    NoChannel,
    /// Only private and presence channels carry client events.
    WrongChannelKind,
    NameTooLong(usize),
    DataTooBig(usize),
    RateLimited,
}

/// The close frame a refusal ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub reason: &'static str,
}

/// The Pusher frame a refusal is told with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Notice {
    /// `pusher:error` with this code (`null` when `None`).
    Error(Option<ErrorCode>),
    /// `pusher:subscription_error` with this type and status.
    SubscriptionError { kind: &'static str, status: u16 },
    /// No Pusher frame: the close frame says it all.
    Silent,
}

impl Refusal {
    pub fn subscription(channel: &str, why: impl Into<SubscriptionRefusal>) -> Refusal {
        Refusal::Subscription {
            channel: channel.to_string(),
            why: why.into(),
        }
    }

    pub fn client_event(channel: Option<&str>, why: ClientEventRefusal) -> Refusal {
        Refusal::ClientEvent {
            channel: channel.map(str::to_string),
            why,
        }
    }

    pub fn invalid(why: impl Into<Cow<'static, str>>) -> Refusal {
        Refusal::InvalidMessage(why.into())
    }

    fn notice(&self) -> Notice {
        use SubscriptionRefusal as S;
        let sub = |kind, status| Notice::SubscriptionError { kind, status };
        match self {
            Refusal::AppDoesNotExist => Notice::Error(Some(ErrorCode::AppDoesNotExist)),
            Refusal::AppDisabled => Notice::Error(Some(ErrorCode::AppDisabled)),
            Refusal::OverConnectionQuota => Notice::Error(Some(ErrorCode::OverConnectionQuota)),
            Refusal::OverConnectionRate(_) => Notice::Error(Some(ErrorCode::OverCapacity)),
            Refusal::UnsupportedProtocol => Notice::Error(Some(ErrorCode::UnsupportedProtocol)),
            Refusal::OriginNotAllowed => Notice::Error(Some(ErrorCode::Unauthorized)),
            Refusal::FrameTooBig | Refusal::ProtocolViolation | Refusal::InvalidUtf8 => {
                Notice::Silent
            }
            Refusal::InvalidMessage(_) => Notice::Error(Some(ErrorCode::ReconnectImmediately)),
            Refusal::UnsupportedEvent(_) => Notice::Error(None),
            Refusal::Subscription { why, .. } => match why {
                S::InvalidName(_) => sub("InvalidChannel", 400),
                S::BadAuth(_) | S::NotThisUser | S::NoIdentity => sub("AuthError", 401),
                S::ChannelDataTooBig(_) | S::TooManyChannels(_) => sub("LimitReached", 4301),
                S::InvalidChannelData(_) => sub("InvalidChannelData", 400),
                S::PresenceFull(_) => sub("LimitReached", 4100),
            },
            Refusal::Signin(_) | Refusal::NotAMember { .. } => {
                Notice::Error(Some(ErrorCode::Unauthorized))
            }
            Refusal::WatchlistTruncated(_) => Notice::Error(Some(ErrorCode::WatchlistLimit)),
            Refusal::ClientEvent { .. } => Notice::Error(Some(ErrorCode::ClientEventRejected)),
            Refusal::Ended(req) => match req.send_error {
                true => Notice::Error(Some(req.code)),
                false => Notice::Silent,
            },
        }
    }

    /// The `reason` label of `rf_broadcast_refusals_total` for a refusal of the handshake;
    /// `None` for the refusals of an admitted connection (subscription refusals are counted
    /// from the hub's events).
    pub fn handshake_reason(&self) -> Option<&'static str> {
        Some(match self {
            Refusal::AppDoesNotExist => "app_not_found",
            Refusal::AppDisabled => "app_disabled",
            Refusal::OverConnectionQuota => "over_connection_quota",
            Refusal::OverConnectionRate(_) => "connection_rate",
            Refusal::UnsupportedProtocol => "unsupported_protocol",
            Refusal::OriginNotAllowed => "origin",
            _ => return None,
        })
    }

    /// The close frame this refusal ends the connection with; `None`: it stays open.
    pub fn close(&self) -> Option<Close> {
        let pusher = |code: ErrorCode, reason| Close {
            code: code.code(),
            reason,
        };
        Some(match self {
            Refusal::AppDoesNotExist => pusher(ErrorCode::AppDoesNotExist, HANDSHAKE[0]),
            Refusal::AppDisabled => pusher(ErrorCode::AppDisabled, HANDSHAKE[1]),
            Refusal::OverConnectionQuota => pusher(ErrorCode::OverConnectionQuota, HANDSHAKE[2]),
            Refusal::OverConnectionRate(_) => pusher(
                ErrorCode::OverCapacity,
                "Too many new connections from this address; retry in a second",
            ),
            Refusal::UnsupportedProtocol => pusher(ErrorCode::UnsupportedProtocol, HANDSHAKE[3]),
            Refusal::OriginNotAllowed => pusher(ErrorCode::Unauthorized, "Origin not allowed"),
            Refusal::FrameTooBig => Close {
                code: CLOSE_TOO_BIG,
                reason: "Frame too large",
            },
            Refusal::ProtocolViolation => Close {
                code: CLOSE_PROTOCOL_ERROR,
                reason: "Protocol error",
            },
            Refusal::InvalidUtf8 => Close {
                code: CLOSE_INVALID_DATA,
                reason: "Invalid UTF-8",
            },
            Refusal::Ended(req) => pusher(req.code, req.message),
            Refusal::InvalidMessage(_)
            | Refusal::UnsupportedEvent(_)
            | Refusal::Subscription { .. }
            | Refusal::Signin(_)
            | Refusal::WatchlistTruncated(_)
            | Refusal::ClientEvent { .. }
            | Refusal::NotAMember { .. } => return None,
        })
    }

    /// The human-readable message of the Pusher frame.
    pub(super) fn message(&self) -> Cow<'static, str> {
        use ClientEventRefusal as C;
        use SigninRefusal as G;
        use SubscriptionRefusal as S;
        match self {
            // A refusal that closes says what its close frame says.
            Refusal::AppDoesNotExist
            | Refusal::AppDisabled
            | Refusal::OverConnectionQuota
            | Refusal::OriginNotAllowed
            | Refusal::UnsupportedProtocol
            | Refusal::FrameTooBig
            | Refusal::ProtocolViolation
            | Refusal::InvalidUtf8
            | Refusal::Ended(_) => self.close().map(|c| c.reason).unwrap_or_default().into(),
            Refusal::OverConnectionRate(limit) => format!(
                "Too many new connections: the app allows {limit} per second from one address"
            )
            .into(),
            Refusal::InvalidMessage(why) => format!("Invalid message format: {why}").into(),
            Refusal::UnsupportedEvent(name) => {
                let name: String = name.chars().take(MAX_ECHOED_EVENT_CHARS).collect();
                format!("Unsupported event: {name}").into()
            }
            Refusal::Subscription { why, .. } => match why {
                S::InvalidName(e) => e.to_string().into(),
                S::BadAuth(e) => e.to_string().into(),
                S::NotThisUser => "The connection is not signed in as this user".into(),
                S::NoIdentity => {
                    "Presence channels need channel_data or a signed-in connection".into()
                }
                S::ChannelDataTooBig(max) => {
                    format!("channel_data is larger than {max} bytes").into()
                }
                S::InvalidChannelData(why) => why.to_string().into(),
                S::PresenceFull(max) => SubscribeError::PresenceFull(*max).to_string().into(),
                S::TooManyChannels(max) => SubscribeError::TooManyChannels(*max).to_string().into(),
            },
            Refusal::Signin(why) => match why {
                G::MissingUserData => "Invalid sign-in: user_data is missing".into(),
                G::UserDataTooBig(max) => {
                    format!("Invalid sign-in: user_data is larger than {max} bytes").into()
                }
                // These two already say what is invalid.
                G::BadAuth(e @ (AuthError::BadSignature(_) | AuthError::WrongKey(_))) => {
                    e.to_string().into()
                }
                G::BadAuth(e) => format!("Invalid signature: {e}").into(),
                G::InvalidUserData(why) => format!("Invalid user_data: {why}").into(),
                G::IdTooLong(max) => format!("Invalid user_data: id is longer than {max}").into(),
                G::OtherUser => "This connection is already signed in as another user".into(),
            },
            Refusal::WatchlistTruncated(max) => {
                format!("Watchlist limit exceeded: only the first {max} ids are watched").into()
            }
            Refusal::ClientEvent { why, .. } => match why {
                C::Disabled => "The app does not have client messaging enabled.".into(),
                C::NoChannel => "Client event rejected: channel is missing".into(),
                C::WrongChannelKind => {
                    "Client event rejected: only supported on private and presence channels".into()
                }
                C::NameTooLong(max) => {
                    format!("Client event rejected: event name longer than {max}").into()
                }
                C::DataTooBig(max) => {
                    format!("Client event rejected: data larger than {max} bytes").into()
                }
                C::RateLimited => "Client event rejected due to rate limit".into(),
            },
            Refusal::NotAMember { .. } => {
                "The client is not a member of the specified channel.".into()
            }
        }
    }

    /// The channel the refusal is about, if any.
    fn channel(&self) -> Option<&str> {
        match self {
            Refusal::Subscription { channel, .. } | Refusal::NotAMember { channel } => {
                Some(channel)
            }
            Refusal::ClientEvent { channel, .. } => channel.as_deref(),
            _ => None,
        }
    }

    /// The Pusher frame that tells the client, if any. A channel name is echoed cut at
    /// `echo_limit` bytes (the app's channel-name limit: every valid name fits whole, and a
    /// 10 KB name is not sent back).
    pub fn frame(&self, echo_limit: usize) -> Option<Utf8Bytes> {
        let channel = self.channel().map(|c| truncate(c, echo_limit));
        let message = self.message();
        match self.notice() {
            Notice::Error(code) => Some(protocol::error(code, &message, channel)),
            Notice::SubscriptionError { kind, status } => Some(protocol::subscription_error(
                channel.unwrap_or_default(),
                kind,
                &message,
                status,
            )),
            Notice::Silent => None,
        }
    }
}

/// Close reasons of the handshake refusals, in variant order.
const HANDSHAKE: [&str; 4] = [
    "Application does not exist",
    "Application is disabled",
    "Application is over connection quota",
    "Unsupported protocol version",
];

/// `s` cut to at most `max` bytes, at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

// ---------------------------------------------------------------------------------------------
// The README table.

/// One example of every refusal (every variant, and every kind of frame it can be told with),
/// with the situation it answers, in the README's order.
#[cfg(test)]
fn examples() -> Vec<(&'static str, Refusal)> {
    use ClientEventRefusal as C;
    use SubscriptionRefusal as S;
    let sub = |why| Refusal::subscription("c", why);
    let ended = |code, send_error| {
        Refusal::Ended(CloseRequest {
            code,
            message: "",
            send_error,
        })
    };
    vec![
        ("unknown app key", Refusal::AppDoesNotExist),
        ("app disabled", Refusal::AppDisabled),
        (
            "app over its connection quota",
            Refusal::OverConnectionQuota,
        ),
        (
            "new connections from one address over the app's `connection_rate_per_ip` this \
             second (pusher-js reconnects after a second)",
            Refusal::OverConnectionRate(0),
        ),
        (
            "`?protocol=` missing is fine; below 5 or not a number",
            Refusal::UnsupportedProtocol,
        ),
        (
            "upgrade from an `Origin` the app's `allowed_origins` does not match (or none, when it restricts origins)",
            Refusal::OriginNotAllowed,
        ),
        (
            "frame or message over `--max-frame-bytes`",
            Refusal::FrameTooBig,
        ),
        (
            "WebSocket protocol violation: reserved bits, unknown opcode, control frame over \
             125 bytes or fragmented, stray continuation, bad close payload or close code",
            Refusal::ProtocolViolation,
        ),
        (
            "text message or close reason that is not UTF-8",
            Refusal::InvalidUtf8,
        ),
        (
            "not JSON, not an object, `event`/`data`/`data.channel` missing, binary frame not \
             UTF-8",
            Refusal::invalid(""),
        ),
        (
            "unknown `pusher:` event",
            Refusal::UnsupportedEvent(String::new()),
        ),
        (
            "invalid channel name (the name is echoed cut at `--max-channel-name` bytes)",
            sub(S::InvalidName(ChannelNameError::Empty)),
        ),
        (
            "missing or bad subscription `auth`; `#server-to-user-` channel of another user; \
             presence without `channel_data` or sign-in",
            sub(S::BadAuth(AuthError::Missing)),
        ),
        (
            "`channel_data` not an object or without a valid `user_id`",
            sub(S::InvalidChannelData(MemberError::NoUserId)),
        ),
        ("presence channel full", sub(S::PresenceFull(0))),
        (
            "too many channels on this connection; `channel_data` too big",
            sub(S::TooManyChannels(0)),
        ),
        (
            "failed `pusher:signin`",
            Refusal::Signin(SigninRefusal::MissingUserData),
        ),
        (
            "watchlist over its limit (the first ids are watched)",
            Refusal::WatchlistTruncated(0),
        ),
        (
            "client event: disabled, no channel, public or encrypted channel, name or data too \
             long, over the rate",
            Refusal::client_event(None, C::RateLimited),
        ),
        (
            "client event on a channel the socket has not joined",
            Refusal::NotAMember {
                channel: String::new(),
            },
        ),
        (
            "`terminate_connections`",
            ended(ErrorCode::Unauthorized, true),
        ),
        (
            "client too slow to read its queue (pusher-js backs off)",
            ended(ErrorCode::OverCapacity, false),
        ),
        (
            "no activity for `activity_timeout` + `pong_timeout` (after a server `pusher:ping`)",
            ended(ErrorCode::PongNotReceived, false),
        ),
        (
            "server shutdown (clients reconnect at once)",
            ended(ErrorCode::ReconnectImmediately, true),
        ),
    ]
}

/// The README's error table, rendered from [`Refusal`].
#[cfg(test)]
fn readme_table() -> String {
    let mut out = String::from("| situation | what the client gets |\n|---|---|\n");
    for (situation, refusal) in examples() {
        let told = match refusal.notice() {
            Notice::Error(Some(code)) => format!("`pusher:error` {}", code.code()),
            Notice::Error(None) => "`pusher:error` (code `null`)".to_string(),
            Notice::SubscriptionError { kind, status } => {
                format!("`pusher:subscription_error` `{{\"type\":\"{kind}\",\"status\":{status}}}`")
            }
            Notice::Silent => String::new(),
        };
        let answer = match (told.is_empty(), refusal.close()) {
            (false, Some(c)) => format!("{told}, then close {}", c.code),
            (true, Some(c)) => format!("close {}", c.code),
            (false, None) => format!("{told} (connection stays open)"),
            (true, None) => unreachable!("every refusal is told or closes"),
        };
        out.push_str(&format!("| {situation} | {answer} |\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant, so a new one must be given a README row.
    fn variant(r: &Refusal) -> usize {
        match r {
            Refusal::AppDoesNotExist => 0,
            Refusal::AppDisabled => 1,
            Refusal::OverConnectionQuota => 2,
            Refusal::UnsupportedProtocol => 3,
            Refusal::OriginNotAllowed => 15,
            Refusal::OverConnectionRate(_) => 16,
            Refusal::FrameTooBig => 4,
            Refusal::ProtocolViolation => 5,
            Refusal::InvalidUtf8 => 6,
            Refusal::InvalidMessage(_) => 7,
            Refusal::UnsupportedEvent(_) => 8,
            Refusal::Subscription { .. } => 9,
            Refusal::Signin(_) => 10,
            Refusal::WatchlistTruncated(_) => 11,
            Refusal::ClientEvent { .. } => 12,
            Refusal::NotAMember { .. } => 13,
            Refusal::Ended(_) => 14,
        }
    }
    const VARIANTS: usize = 17;

    #[test]
    fn every_variant_has_a_readme_row() {
        let mut seen = [false; VARIANTS];
        for (_, r) in examples() {
            seen[variant(&r)] = true;
        }
        assert!(seen.iter().all(|s| *s), "variants without a row: {seen:?}");
    }

    #[test]
    fn readme_table_is_this_types_table() {
        let readme = include_str!("../../README.md");
        let table = readme_table();
        assert!(
            readme.contains(&table),
            "README.md's \"Errors, as clients see them\" table differs from Refusal's; \
             replace it with:\n\n{table}"
        );
    }

    #[test]
    fn frames_carry_codes_statuses_and_no_repeated_prefix() {
        let r = Refusal::invalid("expected value");
        assert_eq!(
            r.frame(200).unwrap().as_str(),
            r#"{"event":"pusher:error","data":{"code":4200,"message":"Invalid message format: expected value"}}"#
        );
        assert_eq!(r.close(), None);
        let r = Refusal::subscription("presence-a", SubscribeError::PresenceFull(2));
        assert_eq!(
            r.frame(200).unwrap().as_str(),
            r#"{"event":"pusher:subscription_error","channel":"presence-a","data":{"type":"LimitReached","error":"The presence channel has reached its limit of 2 members","status":4100}}"#
        );
        let r = Refusal::Signin(SigninRefusal::BadAuth(AuthError::BadSignature("x".into())));
        let frame = r.frame(200).unwrap();
        assert_eq!(
            frame.as_str().matches("Invalid signature").count(),
            1,
            "{frame}"
        );
    }

    #[test]
    fn long_channel_names_are_echoed_cut() {
        let name = "é".repeat(5000);
        let r = Refusal::subscription(
            &name,
            SubscriptionRefusal::InvalidName(ChannelNameError::TooLong(200)),
        );
        let frame = r.frame(201).unwrap();
        let v: serde_json::Value = serde_json::from_str(frame.as_str()).unwrap();
        assert_eq!(v["channel"].as_str().unwrap(), "é".repeat(100));
    }

    #[test]
    fn websocket_closes_send_no_pusher_frame() {
        for (r, code) in [
            (Refusal::FrameTooBig, 1009),
            (Refusal::ProtocolViolation, 1002),
            (Refusal::InvalidUtf8, 1007),
        ] {
            assert_eq!(r.frame(200), None);
            assert_eq!(r.close().unwrap().code, code);
        }
    }
}
