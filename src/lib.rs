//! rf-broadcast: a Pusher-protocol broadcast server, and a library to embed it.
//!
//! Unchanged pusher-js, Laravel Echo and the Pusher server SDKs work against it. Run the
//! binary (`cargo run`), or mount the same endpoints in an axum app and broadcast from your
//! own handlers:
//!
//! ```no_run
//! use rf_broadcast::{websocket_router, App, Broadcaster, Channel, MemoryBroadcaster, SimpleEvent};
//!
//! # async fn run() -> std::io::Result<()> {
//! let broadcaster = MemoryBroadcaster::new(vec![App::new("app-id", "app-key", "app-secret")]);
//! let app = websocket_router(&broadcaster); // /app/{key}, /apps/{id}/events, ...
//! broadcaster
//!     .broadcast(&SimpleEvent::new("hello", serde_json::json!({})).on(Channel::public("news")))
//!     .unwrap();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:6001").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! The flow inside (see DESIGN.md): WebSocket frames and HTTP requests are parsed
//! (`protocol/`, `api/`), verified (`auth.rs`), and handed to the hub (`hub/`), which encodes
//! each event once and queues the same buffer for every subscriber; each connection's task
//! (`ws/`) writes its queue in batches. An adapter (`adapter/`) carries events to other nodes.

mod adapter;
mod api;
mod apps;
mod appstore;
mod auth;
mod authorize;
mod broadcaster;
mod config;
mod console;
mod dev;
mod env;
mod hub;
mod listener;
mod logging;
mod metrics;
mod protocol;
mod ratelog;
mod readiness;
mod redis_probe;
mod reload;
mod server;
mod startup;
mod tls;
mod webhooks;
mod ws;

// The library face: what an embedding app uses.
pub use adapter::redis::{RedisAdapter, RedisSettings, Routing};
pub use apps::App;
pub use authorize::{
    authorization_router, Authorizer, AuthorizerBuilder, ChannelParams, JwtKeyError, JwtResolver,
    Refusal, SignIn, User, UserResolver,
};
pub use broadcaster::{
    websocket_router, websocket_router_with, BroadcastError, Broadcaster, Channel, Event, Member,
    MemoryBroadcaster, RedisBroadcaster, SimpleEvent,
};
// What `serve` and `RedisAdapter::start` take: a hub and its settings.
pub use apps::Apps;
// The log filter that keeps signatures out of trace logs (SECURITY.md, "Logs").
pub use hub::{AppsReload, Hub, HubEvent, HubSettings, MemberChange, ObserverHandle};
pub use logging::log_filter;
pub use readiness::Readiness;
pub use reload::ReloadHooks;
pub use server::{serve, serve_with, AppState, ServerOptions, Serving};
pub use tls::{Tls, TlsError, TlsFiles};

/// What the `rf-broadcast` binary needs beyond the library face: the command line.
#[doc(hidden)]
pub mod cli {
    pub use crate::appstore::commands::run as run_apps_command;
    pub use crate::config::{Cli, Command, Config, MetricsListen, ProcessEnv};
    /// The debug console: bind its listener, then serve it beside the server.
    pub use crate::console::{bind as bind_console, serve as serve_console};
    pub use crate::metrics::{serve_metrics, Metrics};
    pub use crate::startup::{prepare, spawn_app_reloads};
    pub use crate::webhooks::Webhooks;
}

#[doc(hidden)]
pub mod testing;
