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
//! The flow: WebSocket frames and HTTP requests are parsed ([`protocol`], [`api`]), verified
//! ([`auth`]), and handed to the [`hub`], which encodes each event once and queues the same
//! buffer for every subscriber; each connection's task ([`ws`]) writes its queue in batches.
//! The [`adapter`] carries events to other nodes.

pub mod adapter;
pub mod api;
pub mod apps;
pub mod auth;
pub mod broadcaster;
pub mod config;
mod dev;
pub mod hub;
pub mod protocol;
pub mod server;
#[doc(hidden)]
pub mod testing;
pub mod ws;

pub use adapter::redis::{RedisAdapter, RedisBroadcaster, RedisSettings};
pub use apps::App;
pub use broadcaster::{
    websocket_router, websocket_router_with, BroadcastError, Broadcaster, Channel, Event, Member,
    MemoryBroadcaster, SimpleEvent,
};
pub use hub::{Hub, HubSettings};
pub use server::{serve, AppState, ServerOptions};
