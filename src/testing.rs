//! Internals the black-box tests (and fuzz targets) reach; not part of the public API.
//!
//! The tests in `tests/` see the crate as an embedding app does, plus exactly what is listed
//! here: one place to look when an internal changes.

use crate::hub::Hub;

pub use crate::config::{Cli, Config, ProcessEnv};

/// Signing and verification of channel auth, sign-in and HTTP API requests.
pub mod auth {
    pub use crate::auth::*;
}

/// Webhook targets, settings and the sender (tests start it on an in-process hub).
pub mod webhooks {
    pub use crate::webhooks::{Kinds, Target, WebhookSettings, Webhooks};
}

/// The members of a presence channel as this node sees them (cluster-wide).
pub fn presence_users(hub: &Hub, app_id: &str, channel: &str) -> Vec<String> {
    hub.presence_users(app_id, channel)
}

/// Whether this node holds a cached event for a cache channel.
pub fn has_cached_event(hub: &Hub, app_id: &str, channel: &str) -> bool {
    hub.channel(app_id, channel).cache.is_some()
}

/// Subscribers of a channel on this node.
pub fn subscription_count(hub: &Hub, app_id: &str, channel: &str) -> usize {
    hub.channel(app_id, channel).subscription_count
}

/// How many (other node, Redis channel) pairs the Redis adapter keeps a last number for (gap
/// detection): bounded by the channels it listens to and the nodes alive.
pub fn redis_baselines(adapter: &crate::RedisAdapter) -> usize {
    adapter.baselines()
}

/// How many channels with subscribers on this node start with `prefix`.
pub fn occupied_channels(hub: &Hub, app_id: &str, prefix: &str) -> usize {
    hub.channels(app_id, prefix).len()
}

// What the fuzz targets (`fuzz/`) reach: the parsers a peer feeds, and a connection's frame
// handling without a socket.
pub use crate::api::{verify as verify_request, Query};
pub use crate::protocol::{validate_channel_name, ChannelInfo, ChannelKind};
pub use crate::server::router;
pub use crate::ws::handler::Session;
pub use crate::ws::Refusal as WsRefusal;

/// A connection of the app with `app_key`, registered on the hub as `ws::serve` registers one
/// after the handshake, with its frame handling: what a socket's task would run, without the
/// socket. `None` for an unknown key or an app over its connection quota.
pub fn open_session(hub: &std::sync::Arc<Hub>, app_key: &str) -> Option<Session> {
    let app = hub.apps().by_key(app_key)?.clone();
    let conn = hub.connect_from(&app, None, None).ok()?;
    Some(Session::new(hub.clone(), conn))
}

/// End a session as its socket's task does when the socket goes.
pub fn close_session(session: Session) {
    let conn = session.conn_arc().clone();
    session.hub().disconnect(&conn);
}

/// Connections registered on this node, all apps.
pub fn connection_count(hub: &Hub) -> usize {
    hub.connection_count()
}

/// Users signed in on this node.
pub fn signed_in_users(hub: &Hub, app_id: &str) -> usize {
    hub.signed_in_users(app_id).len()
}
