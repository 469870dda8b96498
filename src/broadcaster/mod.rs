//! The library face: broadcast from your own axum handlers and mount the Pusher endpoints in
//! your own app. `Channel` names a channel, an `Event` says what goes on it, a `Broadcaster`
//! sends it to every subscriber (on this node, and on the others when an adapter joins them).
//!
//! ```
//! use rf_broadcast::{App, Broadcaster, Channel, MemoryBroadcaster, SimpleEvent};
//!
//! let broadcaster = MemoryBroadcaster::new(vec![App::new("app-id", "app-key", "app-secret")]);
//! let event = SimpleEvent::new("order.shipped", serde_json::json!({"id": 1}))
//!     .on(Channel::private("orders.1"))
//!     .on(Channel::public("orders"));
//! broadcaster.broadcast(&event).unwrap();
//! assert_eq!(broadcaster.connections(), 0);
//! assert!(!broadcaster.is_subscribed("1.1", &Channel::public("orders")));
//! ```

mod event;
mod memory;
mod redis;

pub use event::{Channel, Event, SimpleEvent};
pub use memory::MemoryBroadcaster;
pub use redis::RedisBroadcaster;

use crate::api::{check_channel, InvalidChannel, Publication, PublishError};
use crate::apps::App;
use crate::hub::{Hub, SocketId};
use crate::protocol::MemberData;
use crate::server::{AppState, ServerOptions};
use std::sync::Arc;

/// Why a broadcast or subscription was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BroadcastError {
    #[error("invalid channel '{0}': {1}")]
    InvalidChannel(String, String),
    #[error("the event names no channel")]
    NoChannels,
    #[error("no connection with socket id {0}")]
    UnknownConnection(String),
    #[error("{0}")]
    Refused(String),
    #[error("the broadcaster has no app configured")]
    NoApp,
    #[error("the event name must be 1 to {max} characters")]
    InvalidEventName { max: usize },
    #[error("the event data is {bytes} bytes, the app allows at most {max}")]
    EventTooLarge { bytes: usize, max: usize },
    #[error("the event names {count} channels, the app allows at most {max}")]
    TooManyChannels { count: usize, max: usize },
    #[error("an event to an encrypted channel must name exactly one channel")]
    EncryptedChannelNotAlone,
    #[error("invalid socket id '{0}'")]
    InvalidSocketId(String),
}

impl From<InvalidChannel> for BroadcastError {
    fn from(e: InvalidChannel) -> BroadcastError {
        BroadcastError::InvalidChannel(e.channel, e.reason)
    }
}

impl From<PublishError> for BroadcastError {
    fn from(e: PublishError) -> BroadcastError {
        match e {
            PublishError::EventName { max } => BroadcastError::InvalidEventName { max },
            PublishError::TooLarge { bytes, max } => BroadcastError::EventTooLarge { bytes, max },
            PublishError::NoChannels => BroadcastError::NoChannels,
            PublishError::TooManyChannels { count, max } => {
                BroadcastError::TooManyChannels { count, max }
            }
            PublishError::InvalidChannel(c) => c.into(),
            PublishError::EncryptedNotAlone => BroadcastError::EncryptedChannelNotAlone,
            PublishError::InvalidSocketId(s) => BroadcastError::InvalidSocketId(s),
        }
    }
}

/// A presence member as the library reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub user_id: String,
    pub user_info: serde_json::Value,
}

/// Sends events to subscribers and answers who is subscribed. Implemented by
/// [`MemoryBroadcaster`] (one node) and by the Redis broadcaster (many nodes); the Pusher
/// endpoints ([`websocket_router`]) run on any of them.
pub trait Broadcaster: Send + Sync + 'static {
    /// The hub behind it (the engine the endpoints run on).
    fn hub(&self) -> &Arc<Hub>;

    /// The state the endpoints run on (the Redis broadcaster counts API rates cluster-wide).
    #[doc(hidden)]
    fn app_state(&self, options: ServerOptions) -> AppState {
        AppState::new(self.hub().clone(), options)
    }

    /// The app events go to when none is named (the first configured).
    fn default_app(&self) -> Result<Arc<App>, BroadcastError> {
        self.hub()
            .apps()
            .first()
            .cloned()
            .ok_or(BroadcastError::NoApp)
    }

    /// Send an event on all its channels. The app's limits bind it as they bind the HTTP
    /// API: event name length, `max_event_bytes`, `max_channels_per_event`, channel names, and
    /// one channel only for an encrypted channel.
    fn broadcast(&self, event: &dyn Event) -> Result<(), BroadcastError> {
        let channels = event.broadcast_on();
        if channels.is_empty() {
            return Err(BroadcastError::NoChannels);
        }
        let app = self.default_app()?;
        let names = channels.iter().map(|c| c.name().to_string()).collect();
        Publication::check(&app, event.event_name(), event.to_json(), names, None)?
            .send(self.hub());
        Ok(())
    }

    /// Subscribe a live connection (by socket id) to a channel from the server side; it
    /// receives `subscription_succeeded` as if it had asked. Presence channels need a member.
    fn subscribe(
        &self,
        socket_id: &str,
        channel: &Channel,
        member: Option<Member>,
    ) -> Result<(), BroadcastError> {
        let app = self.default_app()?;
        let conn = find_connection(self.hub(), &app, socket_id)?;
        check_channel(&app, channel.name())?;
        let member = member.map(|m| MemberData {
            user_id: m.user_id,
            user_info: serde_json::value::to_raw_value(&m.user_info)
                .unwrap_or_else(|_| crate::protocol::null_raw()),
        });
        self.hub()
            .subscribe(&conn, channel.name(), member)
            .map_err(|e| BroadcastError::Refused(e.to_string()))
    }

    /// Remove a connection from a channel.
    fn unsubscribe(&self, socket_id: &str, channel: &Channel) -> Result<(), BroadcastError> {
        let app = self.default_app()?;
        let conn = find_connection(self.hub(), &app, socket_id)?;
        self.hub().unsubscribe(&conn, channel.name());
        Ok(())
    }

    /// Live connections on this node.
    fn connections(&self) -> usize {
        self.hub().connection_count()
    }

    /// Members of a presence channel.
    fn presence(&self, channel: &Channel) -> Vec<Member> {
        let Ok(app) = self.default_app() else {
            return Vec::new();
        };
        self.hub()
            .presence_snapshot(&app.id, channel.name())
            .members
            .into_iter()
            .map(|(user_id, info)| Member {
                user_id,
                user_info: serde_json::from_str(info.get()).unwrap_or_default(),
            })
            .collect()
    }

    /// Whether a connection is subscribed to a channel.
    fn is_subscribed(&self, socket_id: &str, channel: &Channel) -> bool {
        self.default_app()
            .and_then(|app| find_connection(self.hub(), &app, socket_id))
            .is_ok_and(|c| c.is_subscribed(channel.name()))
    }
}

/// A live connection of `app` by its wire socket id.
fn find_connection(
    hub: &Hub,
    app: &App,
    socket_id: &str,
) -> Result<Arc<crate::hub::Connection>, BroadcastError> {
    SocketId::parse(socket_id)
        .and_then(|id| hub.connection(&app.id, id))
        .ok_or_else(|| BroadcastError::UnknownConnection(socket_id.into()))
}

/// The Pusher endpoints (`/app/{key}`, `/apps/{app_id}/...`, `/up`) as a router to merge into
/// any axum app. Starts the hub's periodic tick (once per hub, however many routers).
pub fn websocket_router<B: Broadcaster>(broadcaster: &B) -> axum::Router {
    websocket_router_with(broadcaster, ServerOptions::default())
}

/// [`websocket_router`] with explicit options (frame and body limits, dev auth).
pub fn websocket_router_with<B: Broadcaster>(
    broadcaster: &B,
    options: ServerOptions,
) -> axum::Router {
    crate::server::router(broadcaster.app_state(options))
}
