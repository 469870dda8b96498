//! The apps this server serves: credentials, limits and switches, looked up by key and by id.
//!
//! Every limit a peer can run into is a named field here with a documented default; the
//! command line (`config.rs`) or an apps file fills them in. A field an operator may set per
//! app (apps file entry, database column) is also one line in `appstore/settings.rs`.

mod origins;
pub mod webhook_targets;

use serde::Deserialize;
use std::sync::Arc;

/// One Pusher app: credentials plus its limits and feature switches.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct App {
    pub id: String,
    pub key: String,
    pub secret: String,
    /// A disabled app refuses connections (4003) and API calls (403).
    pub enabled: bool,
    /// Allow `client-` events on private and presence channels.
    pub client_events: bool,
    /// Send `pusher_internal:subscription_count` to subscribers of non-presence channels.
    pub subscription_count: bool,
    /// Maximum simultaneous connections (None: unlimited). Over it: error + close 4004.
    pub max_connections: Option<usize>,
    /// Seconds sent as `activity_timeout`; the server pings a client silent this long.
    pub activity_timeout: u64,
    /// Seconds to wait for any frame after the server's ping before closing with 4201.
    pub pong_timeout: u64,
    /// Longest channel name.
    pub max_channel_name_len: usize,
    /// Longest event name.
    pub max_event_name_len: usize,
    /// Largest `data` of one event, HTTP or client event (bytes). Pusher: 10 KB.
    pub max_event_bytes: usize,
    /// Most channels one HTTP event may target.
    pub max_channels_per_event: usize,
    /// Most events in one batch.
    pub max_batch_events: usize,
    /// Most distinct users in one presence channel.
    pub max_presence_members: usize,
    /// Largest presence `channel_data` / member info (bytes).
    pub max_presence_member_bytes: usize,
    /// Longest presence `user_id`.
    pub max_user_id_len: usize,
    /// Client events per second per connection (token bucket with this burst).
    pub client_event_rate: u32,
    /// Most channels one connection may be subscribed to.
    pub max_channels_per_connection: usize,
    /// Seconds a cache channel keeps its last event.
    pub cache_ttl: u64,
    /// Most watchlist ids honoured per sign-in (4302 beyond).
    pub max_watchlist: usize,
    /// Webhook receivers of this app (README "Webhooks").
    pub webhooks: Vec<webhook_targets::Target>,
    /// Origins whose pages may connect (`https://*.example.com`, `example.com`); empty or
    /// `*`: any. Another origin gets `pusher:error` 4009 and close 4009.
    pub allowed_origins: Vec<String>,
    /// HTTP API requests per second this app may make (cluster-wide with the Redis adapter);
    /// beyond it: 429 with `Retry-After`. `None` or 0: no limit.
    pub api_request_rate: Option<u32>,
    /// New WebSocket connections per second from one client address (an IPv4 address or an
    /// IPv6 /64), cluster-wide with the Redis adapter; beyond it: error + close 4100 (pusher-js
    /// reconnects a second later). `None` or 0: no limit.
    pub connection_rate_per_ip: Option<u32>,
    /// Missed-message recovery: seconds a dropped connection's place is kept, and events are
    /// buffered for it (0: off). Clients opt in with a lineage path (`/l/{id}/app/{key}`).
    pub recovery_window: u64,
    /// Channel-name patterns (`*` matches any run of characters) whose events are buffered for
    /// recovery; empty: every channel.
    pub recovery_channels: Vec<String>,
    /// Most events buffered per recovered channel (the oldest go first).
    pub recovery_max_events: usize,
    /// Most bytes of buffered events per app (the oldest go first).
    pub recovery_max_bytes: usize,
}

impl Default for App {
    fn default() -> Self {
        App {
            id: "app-id".into(),
            key: "app-key".into(),
            secret: "app-secret".into(),
            enabled: true,
            client_events: true,
            subscription_count: false,
            max_connections: None,
            activity_timeout: 120,
            pong_timeout: 30,
            max_channel_name_len: 200,
            max_event_name_len: 200,
            max_event_bytes: 10_240,
            max_channels_per_event: 100,
            max_batch_events: 10,
            max_presence_members: 100,
            max_presence_member_bytes: 2_048,
            max_user_id_len: 128,
            client_event_rate: 10,
            max_channels_per_connection: 1_000,
            cache_ttl: 1_800,
            max_watchlist: 100,
            webhooks: Vec::new(),
            allowed_origins: Vec::new(),
            api_request_rate: None,
            connection_rate_per_ip: None,
            recovery_window: 0,
            recovery_channels: Vec::new(),
            recovery_max_events: 100,
            recovery_max_bytes: 8 * 1024 * 1024,
        }
    }
}

impl App {
    /// An app with these credentials and default limits.
    pub fn new(id: impl Into<String>, key: impl Into<String>, secret: impl Into<String>) -> Self {
        App {
            id: id.into(),
            key: key.into(),
            secret: secret.into(),
            ..App::default()
        }
    }

    /// Whether a page of `origin` (the upgrade's `Origin` header) may connect.
    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        origins::origin_allowed(&self.allowed_origins, origin)
    }
}

/// A set of apps (the configured ones, or the hub's current ones: see `Hub::apps`).
#[derive(Debug, Clone)]
pub struct Apps {
    apps: Vec<Arc<App>>,
}

impl Apps {
    pub fn new(apps: Vec<App>) -> Self {
        Apps {
            apps: apps.into_iter().map(Arc::new).collect(),
        }
    }

    pub(crate) fn from_arcs(apps: Vec<Arc<App>>) -> Self {
        Apps { apps }
    }

    pub fn by_key(&self, key: &str) -> Option<&Arc<App>> {
        self.apps.iter().find(|a| a.key == key)
    }

    pub fn by_id(&self, id: &str) -> Option<&Arc<App>> {
        self.apps.iter().find(|a| a.id == id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<App>> {
        self.apps.iter()
    }

    pub fn first(&self) -> Option<&Arc<App>> {
        self.apps.first()
    }
}
