//! What a connection does with each frame it receives: `pusher:ping`, `pusher:subscribe`
//! (with channel auth), `pusher:unsubscribe`, `pusher:signin`, and `client-` events.
//!
//! Replies are queued on the connection like any other frame. Errors a client can cause are
//! answered with `pusher:error` or `pusher:subscription_error` and the connection stays open.

use super::Flow;
use crate::auth;
use crate::hub::{Connection, Hub, SubscribeError};
use crate::protocol::{
    self, decode_data, parse_member, parse_user_data, validate_channel_name, ChannelInfo,
    ChannelKind, ErrorCode, MemberData, SigninData, SubscribeData,
};
use serde_json::value::RawValue;
use std::sync::Arc;
use std::time::Instant;

/// Per-connection handling state that only this connection's task touches.
pub struct Session {
    hub: Arc<Hub>,
    conn: Arc<Connection>,
    socket_id: String,
    /// Client-event token bucket: tokens left and when it was last refilled.
    tokens: f32,
    refilled: Instant,
    /// The signed-in user's `user_info`, for presence joins without `channel_data`.
    user_info: Option<Box<RawValue>>,
}

impl Session {
    pub fn new(hub: Arc<Hub>, conn: Arc<Connection>) -> Session {
        let socket_id = conn.socket_id.to_string();
        let tokens = conn.app().client_event_rate as f32;
        Session {
            hub,
            conn,
            socket_id,
            tokens,
            refilled: Instant::now(),
            user_info: None,
        }
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn conn_arc(&self) -> &Arc<Connection> {
        &self.conn
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    fn send_error(&self, code: Option<ErrorCode>, message: &str, channel: Option<&str>) {
        self.conn.push(protocol::error(code, message, channel));
    }

    /// A frame that could not be understood: error, connection stays open.
    pub fn invalid(&self, why: &str) -> Flow {
        self.send_error(
            Some(ErrorCode::ReconnectImmediately),
            &format!("Invalid message format: {why}"),
            None,
        );
        Flow::Continue
    }

    pub fn handle_text(&mut self, text: &str) -> Flow {
        let frame = match protocol::parse_frame(text) {
            Ok(f) => f,
            Err(e) => return self.invalid(&e.to_string()),
        };
        match &*frame.event {
            "pusher:ping" => self.conn.push(protocol::pong()),
            "pusher:pong" => self.hub.pong(&self.conn),
            "pusher:subscribe" => match decode_data::<SubscribeData>(frame.data) {
                Ok(d) => self.subscribe(d),
                Err(e) => return self.invalid(&e.to_string()),
            },
            "pusher:unsubscribe" => match decode_data::<SubscribeData>(frame.data) {
                Ok(SubscribeData {
                    channel: Some(channel),
                    ..
                }) => self.hub.unsubscribe(&self.conn, &channel),
                _ => return self.invalid("pusher:unsubscribe needs data.channel"),
            },
            "pusher:signin" => match decode_data::<SigninData>(frame.data) {
                Ok(d) => self.signin(d),
                Err(e) => return self.invalid(&e.to_string()),
            },
            name if name.starts_with("client-") => {
                let name = name.to_string();
                self.client_event(&name, frame.channel.as_deref(), frame.data)
            }
            other => {
                let other: String = other.chars().take(64).collect();
                self.send_error(None, &format!("Unsupported event: {other}"), None);
            }
        }
        Flow::Continue
    }

    fn subscription_error(&self, channel: &str, kind: &str, message: &str, status: u16) {
        tracing::debug!(socket_id = %self.socket_id, channel, message, "subscription refused");
        self.conn
            .push(protocol::subscription_error(channel, kind, message, status));
    }

    fn subscribe(&mut self, data: SubscribeData) {
        let app = self.conn.app();
        let Some(channel) = data.channel.filter(|c| !c.is_empty()) else {
            self.send_error(None, "Invalid subscription: data.channel is missing", None);
            return;
        };
        if let Err(e) = validate_channel_name(&channel, app.max_channel_name_len) {
            self.subscription_error(&channel, "InvalidChannel", &e.to_string(), 400);
            return;
        }
        let kind = ChannelInfo::of(&channel).kind;
        let auth = data.auth.as_deref();
        let mut member: Option<MemberData> = None;
        match kind {
            ChannelKind::Public => {}
            ChannelKind::ServerToUser => {
                let own = self.conn.user_id();
                let wanted = &channel[protocol::channel::SERVER_TO_USER_PREFIX.len()..];
                if own.as_deref() != Some(wanted) {
                    self.subscription_error(
                        &channel,
                        "AuthError",
                        "The connection is not signed in as this user",
                        401,
                    );
                    return;
                }
            }
            ChannelKind::Private | ChannelKind::Encrypted => {
                let s = auth::channel_string_to_sign(&self.socket_id, &channel, None);
                if let Err(e) = auth::verify_auth(auth, &app.key, &app.secret, &s) {
                    self.subscription_error(&channel, "AuthError", &e.to_string(), 401);
                    return;
                }
            }
            ChannelKind::Presence => match data.channel_data.as_deref() {
                Some(channel_data) => {
                    if channel_data.len() > app.max_presence_member_bytes {
                        self.subscription_error(
                            &channel,
                            "LimitReached",
                            &format!(
                                "channel_data is larger than {} bytes",
                                app.max_presence_member_bytes
                            ),
                            4301,
                        );
                        return;
                    }
                    let s =
                        auth::channel_string_to_sign(&self.socket_id, &channel, Some(channel_data));
                    if let Err(e) = auth::verify_auth(auth, &app.key, &app.secret, &s) {
                        self.subscription_error(&channel, "AuthError", &e.to_string(), 401);
                        return;
                    }
                    match parse_member(channel_data, app.max_user_id_len) {
                        Ok(m) => member = Some(m),
                        Err(e) => {
                            self.subscription_error(&channel, "InvalidChannelData", &e, 400);
                            return;
                        }
                    }
                }
                None => {
                    // Signed-in connections may join presence with just `socket_id:channel`.
                    let Some(user_id) = self.conn.user_id() else {
                        self.subscription_error(
                            &channel,
                            "AuthError",
                            "Presence channels need channel_data or a signed-in connection",
                            401,
                        );
                        return;
                    };
                    let s = auth::channel_string_to_sign(&self.socket_id, &channel, None);
                    if let Err(e) = auth::verify_auth(auth, &app.key, &app.secret, &s) {
                        self.subscription_error(&channel, "AuthError", &e.to_string(), 401);
                        return;
                    }
                    member = Some(MemberData {
                        user_id: user_id.to_string(),
                        user_info: self.user_info.clone().unwrap_or_else(protocol::null_raw),
                    });
                }
            },
        }
        if let Err(e) = self.hub.subscribe(&self.conn, &channel, member) {
            let status = match e {
                SubscribeError::PresenceFull(_) => 4100,
                SubscribeError::TooManyChannels(_) => 4301,
            };
            self.subscription_error(&channel, "LimitReached", &e.to_string(), status);
        }
    }

    fn signin(&mut self, data: SigninData) {
        let app = self.conn.app();
        let Some(user_data) = data.user_data else {
            self.send_error(
                Some(ErrorCode::Unauthorized),
                "Invalid sign-in: user_data is missing",
                None,
            );
            return;
        };
        if user_data.len() > app.max_event_bytes {
            self.send_error(
                Some(ErrorCode::Unauthorized),
                &format!(
                    "Invalid sign-in: user_data is larger than {} bytes",
                    app.max_event_bytes
                ),
                None,
            );
            return;
        }
        let s = format!("{}::user::{}", self.socket_id, user_data);
        if let Err(e) = auth::verify_auth(data.auth.as_deref(), &app.key, &app.secret, &s) {
            tracing::debug!(socket_id = %self.socket_id, error = %e, "sign-in refused");
            self.send_error(
                Some(ErrorCode::Unauthorized),
                &format!("Invalid signature: {e}"),
                None,
            );
            return;
        }
        let user = match parse_user_data(&user_data) {
            Ok(u) if u.id.len() > app.max_user_id_len => {
                self.send_error(
                    Some(ErrorCode::Unauthorized),
                    &format!(
                        "Invalid user_data: id is longer than {}",
                        app.max_user_id_len
                    ),
                    None,
                );
                return;
            }
            Ok(u) => u,
            Err(e) => {
                self.send_error(
                    Some(ErrorCode::Unauthorized),
                    &format!("Invalid user_data: {e}"),
                    None,
                );
                return;
            }
        };
        if let Some(existing) = self.conn.user_id() {
            if *existing != *user.id {
                self.send_error(
                    Some(ErrorCode::Unauthorized),
                    "This connection is already signed in as another user",
                    None,
                );
                return;
            }
        }
        if self.conn.user_id().is_some_and(|u| *u != *user.id) {
            self.send_error(
                Some(ErrorCode::Unauthorized),
                "Invalid sign-in: the connection is signed in as another user",
                None,
            );
            return;
        }
        self.conn.push(protocol::signin_success(&user_data));
        self.user_info = user.user_info.clone();
        if let Err(e) = self.hub.sign_in(&self.conn, &user.id, &user.watchlist) {
            self.send_error(Some(ErrorCode::Unauthorized), &e.to_string(), None);
            return;
        }
        if user.watchlist.len() > app.max_watchlist {
            self.send_error(
                Some(ErrorCode::WatchlistLimit),
                &format!(
                    "Watchlist limit exceeded: only the first {} ids are watched",
                    app.max_watchlist
                ),
                None,
            );
        }
    }

    /// Take one client-event token; false when the connection is over its rate.
    fn take_token(&mut self) -> bool {
        let rate = self.conn.app().client_event_rate as f32;
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f32();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * rate).min(rate.max(1.0));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn client_event(&mut self, event: &str, channel: Option<&str>, data: Option<&RawValue>) {
        let app = self.conn.app();
        let reject = |s: &Self, message: &str, channel: Option<&str>| {
            s.send_error(Some(ErrorCode::ClientEventRejected), message, channel)
        };
        if !app.client_events {
            return reject(
                self,
                "The app does not have client messaging enabled.",
                channel,
            );
        }
        let Some(channel) = channel else {
            return reject(self, "Client event rejected: channel is missing", None);
        };
        if !ChannelInfo::of(channel).kind.allows_client_events() {
            return reject(
                self,
                "Client event rejected: only supported on private and presence channels",
                Some(channel),
            );
        }
        if event.len() > app.max_event_name_len {
            return reject(
                self,
                &format!(
                    "Client event rejected: event name longer than {}",
                    app.max_event_name_len
                ),
                Some(channel),
            );
        }
        let null;
        let data = match data {
            Some(d) => d,
            None => {
                null = protocol::null_raw();
                &null
            }
        };
        if data.get().len() > app.max_event_bytes {
            return reject(
                self,
                &format!(
                    "Client event rejected: data larger than {} bytes",
                    app.max_event_bytes
                ),
                Some(channel),
            );
        }
        let user_id = {
            let state = self.conn.state.lock();
            match state.subscription(channel) {
                Some(sub) => sub.user_id.clone(),
                None => {
                    drop(state);
                    self.send_error(
                        Some(ErrorCode::Unauthorized),
                        "The client is not a member of the specified channel.",
                        Some(channel),
                    );
                    return;
                }
            }
        };
        if !self.take_token() {
            return reject(
                self,
                "Client event rejected due to rate limit",
                Some(channel),
            );
        }
        let frame = protocol::client_event(event, channel, data, user_id.as_deref());
        self.hub
            .client_event(&self.conn, channel, event, data.get(), frame);
    }
}
