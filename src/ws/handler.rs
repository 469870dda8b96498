//! What a connection does with each frame it receives: `pusher:ping`, `pusher:subscribe`
//! (with channel auth), `pusher:unsubscribe`, `pusher:signin`, and `client-` events.
//!
//! Replies are queued on the connection like any other frame. What a client cannot have is
//! returned as a [`Refusal`]; the connection task tells the client (`ConnTask::refuse`).

use super::refusal::{ClientEventRefusal, Refusal, SigninRefusal, SubscriptionRefusal};
use crate::auth;
use crate::hub::{Connection, Hub};
use crate::protocol::{
    self, decode_data, parse_member, parse_user_data, validate_channel_name, ChannelInfo,
    ChannelKind, MemberData, SigninData, SubscribeData, UserData,
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

    pub fn socket_id(&self) -> &str {
        &self.socket_id
    }

    pub fn handle_text(&mut self, text: &str) -> Result<(), Refusal> {
        let frame = protocol::parse_frame(text).map_err(|e| Refusal::invalid(e.to_string()))?;
        // The event name and channel only: data and auth stay out of every log (SECURITY.md).
        tracing::trace!(socket_id = %self.socket_id, event = %frame.event, channel = frame.channel.as_deref(), "frame");
        match &*frame.event {
            "pusher:ping" => self.conn.push(protocol::pong()),
            "pusher:pong" => self.hub.pong(&self.conn),
            "pusher:subscribe" => {
                let data = decode_data::<SubscribeData>(frame.data)
                    .map_err(|e| Refusal::invalid(e.to_string()))?;
                self.subscribe(data)?
            }
            "pusher:unsubscribe" => match decode_data::<SubscribeData>(frame.data) {
                Ok(SubscribeData {
                    channel: Some(channel),
                    ..
                }) => self.hub.unsubscribe(&self.conn, &channel),
                _ => return Err(Refusal::invalid("pusher:unsubscribe needs data.channel")),
            },
            "pusher:signin" => {
                let data = decode_data::<SigninData>(frame.data)
                    .map_err(|e| Refusal::invalid(e.to_string()))?;
                self.signin(data)?
            }
            name if name.starts_with("client-") => {
                let name = name.to_string();
                self.client_event(&name, frame.channel.as_deref(), frame.data)?
            }
            other => return Err(Refusal::UnsupportedEvent(other.to_string())),
        }
        Ok(())
    }

    fn subscribe(&mut self, data: SubscribeData) -> Result<(), Refusal> {
        let Some(channel) = data.channel.filter(|c| !c.is_empty()) else {
            return Err(Refusal::invalid("pusher:subscribe needs data.channel"));
        };
        let auth = data.auth.as_deref();
        self.join(&channel, auth, data.channel_data.as_deref())
            .map_err(|why| Refusal::subscription(&channel, why))
    }

    /// Authorize and join one channel.
    fn join(
        &mut self,
        channel: &str,
        auth: Option<&str>,
        channel_data: Option<&str>,
    ) -> Result<(), SubscriptionRefusal> {
        let app = self.conn.app();
        validate_channel_name(channel, app.max_channel_name_len)
            .map_err(SubscriptionRefusal::InvalidName)?;
        let kind = ChannelInfo::of(channel).kind;
        let verify = |s: &str| {
            auth::verify_auth(auth, &app.key, &app.secret, s).map_err(SubscriptionRefusal::BadAuth)
        };
        let mut member: Option<MemberData> = None;
        match kind {
            ChannelKind::Public => {}
            ChannelKind::ServerToUser => {
                let own = self.conn.user_id();
                let wanted = &channel[protocol::channel::SERVER_TO_USER_PREFIX.len()..];
                if own.as_deref() != Some(wanted) {
                    return Err(SubscriptionRefusal::NotThisUser);
                }
            }
            ChannelKind::Private | ChannelKind::Encrypted => {
                verify(&auth::channel_string_to_sign(
                    &self.socket_id,
                    channel,
                    None,
                ))?;
            }
            ChannelKind::Presence => match channel_data {
                Some(channel_data) => {
                    if channel_data.len() > app.max_presence_member_bytes {
                        return Err(SubscriptionRefusal::ChannelDataTooBig(
                            app.max_presence_member_bytes,
                        ));
                    }
                    verify(&auth::channel_string_to_sign(
                        &self.socket_id,
                        channel,
                        Some(channel_data),
                    ))?;
                    member = Some(
                        parse_member(channel_data, app.max_user_id_len)
                            .map_err(SubscriptionRefusal::InvalidChannelData)?,
                    );
                }
                None => {
                    // Signed-in connections may join presence with just `socket_id:channel`.
                    let user_id = self.conn.user_id().ok_or(SubscriptionRefusal::NoIdentity)?;
                    verify(&auth::channel_string_to_sign(
                        &self.socket_id,
                        channel,
                        None,
                    ))?;
                    member = Some(MemberData {
                        user_id: user_id.to_string(),
                        user_info: self.user_info.clone().unwrap_or_else(protocol::null_raw),
                    });
                }
            },
        }
        self.hub.subscribe(&self.conn, channel, member)?;
        Ok(())
    }

    fn signin(&mut self, data: SigninData) -> Result<(), Refusal> {
        let (user_data, user) = self.check_signin(data).map_err(Refusal::Signin)?;
        self.conn.push(protocol::signin_success(&user_data));
        self.user_info = user.user_info.clone();
        self.hub
            .sign_in(&self.conn, &user.id, &user.watchlist)
            .map_err(|e| Refusal::Signin(e.into()))?;
        let max = self.conn.app().max_watchlist;
        if user.watchlist.len() > max {
            return Err(Refusal::WatchlistTruncated(max));
        }
        Ok(())
    }

    /// The signed and parsed `user_data` of a sign-in.
    fn check_signin(&self, data: SigninData) -> Result<(String, UserData), SigninRefusal> {
        let app = self.conn.app();
        let user_data = data.user_data.ok_or(SigninRefusal::MissingUserData)?;
        if user_data.len() > app.max_event_bytes {
            return Err(SigninRefusal::UserDataTooBig(app.max_event_bytes));
        }
        let s = format!("{}::user::{}", self.socket_id, user_data);
        auth::verify_auth(data.auth.as_deref(), &app.key, &app.secret, &s)
            .map_err(SigninRefusal::BadAuth)?;
        let user = parse_user_data(&user_data).map_err(SigninRefusal::InvalidUserData)?;
        if user.id.len() > app.max_user_id_len {
            return Err(SigninRefusal::IdTooLong(app.max_user_id_len));
        }
        if let Some(existing) = self.conn.user_id() {
            if *existing != *user.id {
                return Err(SigninRefusal::OtherUser);
            }
        }
        Ok((user_data, user))
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

    fn client_event(
        &mut self,
        event: &str,
        channel: Option<&str>,
        data: Option<&RawValue>,
    ) -> Result<(), Refusal> {
        use ClientEventRefusal as Why;
        let app = self.conn.app();
        let reject = |channel, why| Err(Refusal::client_event(channel, why));
        if !app.client_events {
            return reject(channel, Why::Disabled);
        }
        let Some(channel) = channel else {
            return reject(None, Why::NoChannel);
        };
        if !ChannelInfo::of(channel).kind.allows_client_events() {
            return reject(Some(channel), Why::WrongChannelKind);
        }
        if event.len() > app.max_event_name_len {
            return reject(Some(channel), Why::NameTooLong(app.max_event_name_len));
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
            return reject(Some(channel), Why::DataTooBig(app.max_event_bytes));
        }
        let user_id = {
            let state = self.conn.state.lock();
            match state.subscription(channel) {
                Some(sub) => sub.user_id.clone(),
                None => {
                    return Err(Refusal::NotAMember {
                        channel: channel.to_string(),
                    })
                }
            }
        };
        if !self.take_token() {
            return reject(Some(channel), Why::RateLimited);
        }
        let frame = protocol::client_event(event, channel, data, user_id.as_deref());
        self.hub
            .client_event(&self.conn, channel, event, data.get(), frame);
        Ok(())
    }
}
