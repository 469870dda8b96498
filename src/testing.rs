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

/// How many channels with subscribers on this node start with `prefix`.
pub fn occupied_channels(hub: &Hub, app_id: &str, prefix: &str) -> usize {
    hub.channels(app_id, prefix).len()
}
