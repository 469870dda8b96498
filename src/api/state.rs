//! What every HTTP and WebSocket handler sees: the hub and the node-wide options of the HTTP
//! and WebSocket layers. It lives here, below the router (`server.rs`), so the API, the
//! development routes and the upgrade handler import it without importing the server.

use super::rate_limit::RateLimiter;
use crate::hub::{Hub, WindowCounter};
use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;

/// Node-wide settings of the HTTP and WebSocket layers.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Largest WebSocket message (and frame) a client may send, in bytes; bigger closes 1009.
    pub max_frame_bytes: usize,
    /// Largest HTTP API request body, in bytes; bigger answers 413.
    pub max_request_bytes: usize,
    /// Serve the development auth endpoints and the demo page.
    pub dev_auth: bool,
    /// How long shutdown waits for connections to close.
    pub shutdown_grace: Duration,
    /// Serve everything under this path (`/ws` → `/ws/app/{key}`, `/ws/apps/{id}/...`), as
    /// pusher-js's `wsPath` and the PHP SDK's `path` option expect; signatures are still
    /// checked over the path without it. Empty: served at the root.
    pub path_prefix: String,
    /// Time a socket has for each HTTP request (TLS handshake, headers and body) before it
    /// upgrades: from the accept, then from the previous answer. Late: the socket is closed.
    pub handshake_timeout: Duration,
    /// Open sockets (WebSocket or not) from one client IP; more are closed at accept. 0: no cap.
    pub max_connections_per_ip: usize,
    /// Sockets that have not (yet) become WebSocket connections; more are closed at accept.
    /// 0: no cap.
    pub max_pending_handshakes: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_frame_bytes: 64 * 1024,
            max_request_bytes: 1024 * 1024,
            dev_auth: false,
            shutdown_grace: Duration::from_secs(3),
            path_prefix: String::new(),
            handshake_timeout: Duration::from_secs(10),
            max_connections_per_ip: 1_000,
            max_pending_handshakes: 4_096,
        }
    }
}

/// What every handler sees.
#[derive(Clone)]
pub struct AppState {
    pub hub: Arc<Hub>,
    pub options: Arc<ServerOptions>,
    /// Each app's `api_request_rate` and `connection_rate_per_ip`, counted on this node or
    /// cluster-wide.
    pub(crate) rate: Arc<RateLimiter>,
    /// Prometheus metrics, when they are on.
    pub(crate) metrics: Option<Arc<Metrics>>,
}

impl AppState {
    /// The state for a hub, with API rates counted on this node.
    pub fn new(hub: Arc<Hub>, options: ServerOptions) -> AppState {
        AppState {
            hub,
            options: Arc::new(options),
            rate: Arc::new(RateLimiter::local()),
            metrics: None,
        }
    }

    /// Record metrics in `metrics`: registers its observer with the hub (call it once per
    /// hub, inside a tokio runtime) and times the HTTP API.
    pub fn with_metrics(mut self, metrics: &Arc<Metrics>) -> AppState {
        for app in self.hub.apps().iter() {
            metrics.init_app(&app.id);
        }
        crate::metrics::observe(&self.hub, metrics.clone());
        self.metrics = Some(metrics.clone());
        self
    }

    /// Count API and connection rates with `counter` (cluster-wide) instead of on this node
    /// only.
    pub(crate) fn with_rate_counter(mut self, counter: Arc<dyn WindowCounter>) -> AppState {
        self.rate = Arc::new(RateLimiter::cluster(counter));
        self
    }
}
