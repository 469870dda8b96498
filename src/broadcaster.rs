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

use crate::apps::{App, Apps};
use crate::hub::{Hub, HubSettings, SocketId};
use crate::protocol::{validate_channel_name, MemberData};
use crate::server::{AppState, ServerOptions};
use std::sync::Arc;

/// A channel by kind; the prefix (`private-`, `presence-`) is added for you.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Channel(String);

impl Channel {
    pub fn public(name: impl AsRef<str>) -> Channel {
        Channel(name.as_ref().to_string())
    }
    pub fn private(name: impl AsRef<str>) -> Channel {
        Channel(format!("private-{}", name.as_ref()))
    }
    pub fn presence(name: impl AsRef<str>) -> Channel {
        Channel(format!("presence-{}", name.as_ref()))
    }
    /// A channel by its full wire name (`private-encrypted-x`, `cache-y`, ...).
    pub fn named(name: impl Into<String>) -> Channel {
        Channel(name.into())
    }
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Something to broadcast: a name, a JSON payload, and the channels it goes to.
pub trait Event {
    /// The event name clients bind to (Laravel: `App\Events\OrderShipped` or `broadcastAs`).
    fn event_name(&self) -> String;
    /// The payload, as the JSON text clients receive in `data`.
    fn to_json(&self) -> String;
    /// The channels it is sent on.
    fn broadcast_on(&self) -> Vec<Channel>;
}

/// An event built at run time.
#[derive(Debug, Clone)]
pub struct SimpleEvent {
    name: String,
    data: serde_json::Value,
    channels: Vec<Channel>,
}

impl SimpleEvent {
    pub fn new(name: impl Into<String>, data: serde_json::Value) -> SimpleEvent {
        SimpleEvent {
            name: name.into(),
            data,
            channels: Vec::new(),
        }
    }
    /// Add a channel to send it on.
    pub fn on(mut self, channel: Channel) -> SimpleEvent {
        self.channels.push(channel);
        self
    }
}

impl Event for SimpleEvent {
    fn event_name(&self) -> String {
        self.name.clone()
    }
    fn to_json(&self) -> String {
        self.data.to_string()
    }
    fn broadcast_on(&self) -> Vec<Channel> {
        self.channels.clone()
    }
}

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

    /// The app events go to when none is named (the first configured).
    fn default_app(&self) -> Result<Arc<App>, BroadcastError> {
        self.hub()
            .apps()
            .first()
            .cloned()
            .ok_or(BroadcastError::NoApp)
    }

    /// Send an event on all its channels.
    fn broadcast(&self, event: &dyn Event) -> Result<(), BroadcastError> {
        let channels = event.broadcast_on();
        if channels.is_empty() {
            return Err(BroadcastError::NoChannels);
        }
        let app = self.default_app()?;
        for c in &channels {
            validate_channel_name(c.name(), app.max_channel_name_len)
                .map_err(|e| BroadcastError::InvalidChannel(c.name().into(), e.to_string()))?;
        }
        let names: Vec<&str> = channels.iter().map(Channel::name).collect();
        self.hub()
            .publish(&app.id, &names, &event.event_name(), &event.to_json(), None);
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
        validate_channel_name(channel.name(), app.max_channel_name_len)
            .map_err(|e| BroadcastError::InvalidChannel(channel.name().into(), e.to_string()))?;
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

/// One node, all state in memory.
#[derive(Clone)]
pub struct MemoryBroadcaster {
    hub: Arc<Hub>,
}

impl MemoryBroadcaster {
    /// A broadcaster for these apps with default hub settings.
    pub fn new(apps: Vec<App>) -> MemoryBroadcaster {
        Self::with_settings(apps, HubSettings::default())
    }

    pub fn with_settings(apps: Vec<App>, settings: HubSettings) -> MemoryBroadcaster {
        MemoryBroadcaster {
            hub: Hub::new(Apps::new(apps), settings),
        }
    }

    /// Wrap an existing hub (for instance one with a cluster adapter set).
    pub fn from_hub(hub: Arc<Hub>) -> MemoryBroadcaster {
        MemoryBroadcaster { hub }
    }
}

impl Broadcaster for MemoryBroadcaster {
    fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
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
    crate::server::router(AppState {
        hub: broadcaster.hub().clone(),
        options: Arc::new(options),
    })
}
