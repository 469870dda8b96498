//! The router and the serve loop: WebSocket `/app/{key}`, the HTTP API, `/up`, the
//! development routes when asked for, and graceful shutdown (every
//! WebSocket closed with 4200 so clients reconnect at once, to another node if there is one).
//! The sockets themselves are accepted and limited in [`crate::listener`].

use crate::adapter::redis::RedisSettings;
use crate::adapter::redis_counter::RedisCounter;
use crate::api::rate_limit::OverRate;
pub use crate::api::{AppState, ServerOptions};
use crate::hub::{CloseRequest, Hub};
use crate::protocol::ErrorCode;
use crate::readiness::Readiness;
use crate::tls::Tls;
use crate::ws::{self, Handshake};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, RawQuery, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Initial read buffer of a WebSocket connection. Pusher client frames are small (a subscribe
/// with presence auth is a few hundred bytes); the buffer grows only while a larger frame is in
/// flight. tungstenite's default is 128 KiB per connection.
const READ_BUFFER_BYTES: usize = 256;

/// All routes with their state: mount it in any axum app, or serve it with [`serve`].
/// Mounting it starts the hub's once-a-second ticker (heartbeats, cache expiry, subscription
/// counts) unless it runs already: once per hub, however many routers serve it.
pub fn router(state: AppState) -> Router {
    // Outside a runtime the ticker starts with the first WebSocket upgrade instead.
    state.hub.start_ticker();
    let mut router = Router::new()
        .route("/app/{key}", get(ws_upgrade))
        .route("/l/{lineage}/app/{key}", get(lineage_upgrade))
        .route("/up", get(|| async { "OK" }))
        .merge(crate::api::routes(&state));
    if state.options.dev_auth {
        router = router.merge(crate::dev::routes());
    }
    let prefix = normalize_prefix(&state.options.path_prefix);
    let router = router
        .layer(DefaultBodyLimit::max(state.options.max_request_bytes))
        .with_state(state);
    match prefix {
        // Nested routes see the path without the prefix, which is what publishers sign.
        Some(prefix) => Router::new().nest(&prefix, router),
        None => router,
    }
}

impl AppState {
    /// Count each app's `api_request_rate` and `connection_rate_per_ip` cluster-wide in the
    /// Redis of `redis` (its URL and prefix), as every node of the cluster must. Fails only on a malformed URL. (Wiring:
    /// the API counts through the hub's `WindowCounter` port, the adapter implements it.)
    pub fn with_redis_rate_limits(self, redis: &RedisSettings) -> Result<AppState, String> {
        let counter = RedisCounter::new(&redis.url, &redis.prefix)?;
        Ok(self.with_rate_counter(Arc::new(counter)))
    }
}

/// `ws`, `/ws/` → `Some("/ws")`; empty or `/` → `None`.
fn normalize_prefix(raw: &str) -> Option<String> {
    let trimmed = raw.trim().trim_matches('/');
    (!trimmed.is_empty()).then(|| format!("/{trimmed}"))
}

/// `/l/{lineage}/app/{key}`: a connection that opted in to missed-message recovery. An
/// invalid lineage id gets the same answer as an unknown path.
async fn lineage_upgrade(
    State(state): State<AppState>,
    Path((lineage, key)): Path<(String, String)>,
    query: RawQuery,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    if !crate::hub::valid_lineage(&lineage) {
        return axum::http::StatusCode::NOT_FOUND.into_response();
    }
    upgrade_with(
        state,
        key,
        query,
        headers,
        upgrade,
        Some(Arc::from(lineage)),
        peer_ip(peer),
    )
    .await
}

async fn ws_upgrade(
    State(state): State<AppState>,
    Path(key): Path<String>,
    query: RawQuery,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade_with(state, key, query, headers, upgrade, None, peer_ip(peer)).await
}

/// The client's address, when the listener recorded it (observers mask it).
fn peer_ip(peer: Option<Extension<ConnectInfo<SocketAddr>>>) -> Option<std::net::IpAddr> {
    peer.map(|Extension(ConnectInfo(addr))| addr.ip())
}

/// Answer an upgrade with the WebSocket, whose task checks the handshake (key, enabled, the
/// connection rate counted here, origin, protocol, quota) and refuses with a Pusher error.
async fn upgrade_with(
    state: AppState,
    key: String,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
    lineage: Option<Arc<str>>,
    peer: Option<std::net::IpAddr>,
) -> Response {
    let protocol = crate::api::Query::parse(query.as_deref().unwrap_or(""))
        .get("protocol")
        .map(str::to_string);
    let mut handshake = Handshake {
        app: state.hub.app_by_key(&key),
        protocol,
        origin: headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        lineage,
        peer,
        over_connection_rate: None,
        metrics: state.metrics.clone(),
    };
    if let (Some(app), Some(ip)) = (handshake.app.as_ref().filter(|a| a.enabled), peer) {
        // Counted before the upgrade; a refusal is told on the WebSocket (4100).
        if let Err(OverRate(limit)) = state.rate.admit_connection(app, ip).await {
            handshake.over_connection_rate = Some(limit);
        }
    }
    let max = state.options.max_frame_bytes;
    let hub = state.hub.clone();
    hub.start_ticker();
    upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_write_buffer_size(max.max(1024 * 1024) * 4)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| {
            // Hand the socket to a task of its own, so axum's upgrade future (config, callback,
            // the socket it built) is freed now instead of living as long as the connection.
            tokio::spawn(ws::serve(socket, hub, handshake));
            std::future::ready(())
        })
}

/// What [`serve_with`] adds to the router: readiness (`/ready`) and built-in TLS.
#[derive(Clone, Default)]
pub struct Serving {
    /// Answers `/ready`; shutdown marks it draining.
    pub readiness: Arc<Readiness>,
    /// Serve `https://` and `wss://` with this certificate instead of plain HTTP.
    pub tls: Option<Arc<Tls>>,
}

/// Serve until `shutdown` resolves, then close every WebSocket with 4200 and wait (bounded)
/// for them to go.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, Serving::default(), shutdown).await
}

/// [`serve`] with `/ready` and optional TLS. When `shutdown` resolves: `/ready` answers 503,
/// no socket is accepted any more, sockets that have not upgraded finish their request and
/// close, every WebSocket gets 4200, and this returns once they are gone or
/// `shutdown_grace` has passed.
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    serving: Serving,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let hub = state.hub.clone();
    let options = state.options.clone();
    let metrics = state.metrics.clone();
    let app = router(state).merge(ready_route(&options.path_prefix, serving.readiness.clone()));
    let settings = crate::listener::Settings {
        handshake_timeout: options.handshake_timeout,
        max_connections_per_ip: options.max_connections_per_ip,
        max_pending_handshakes: options.max_pending_handshakes,
        metrics,
    };
    let stopped =
        crate::listener::accept_until(listener, app, settings, serving.tls, shutdown).await;
    serving.readiness.start_draining();
    let deadline = tokio::time::Instant::now() + options.shutdown_grace;
    close_all(&hub, options.shutdown_grace).await;
    while stopped.pending() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// `GET {prefix}/ready`.
fn ready_route(prefix: &str, readiness: Arc<Readiness>) -> Router {
    let path = format!("{}/ready", normalize_prefix(prefix).unwrap_or_default());
    Router::new().route(&path, get(move || async move { readiness.response() }))
}

/// How often shutdown repeats its close request, for connections that upgraded after the
/// first one went out.
const CLOSE_REPEAT: Duration = Duration::from_millis(100);

/// Ask every connection to close with 4200 and wait until they are gone or `grace` passes.
pub async fn close_all(hub: &Arc<Hub>, grace: Duration) {
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        // Repeated: a connection that was mid-upgrade at the first round is asked too. The
        // first request a connection gets is the one it acts on, so repeats change nothing.
        for conn in hub.all_connections() {
            conn.close(CloseRequest {
                code: ErrorCode::ReconnectImmediately,
                message: "Server is shutting down; reconnect",
                send_error: true,
            });
        }
        let next = tokio::time::Instant::now() + CLOSE_REPEAT;
        while hub.connection_count() > 0 && tokio::time::Instant::now() < next.min(deadline) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if hub.connection_count() == 0 || tokio::time::Instant::now() >= deadline {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::{App, Apps};
    use crate::hub::HubSettings;

    /// Two routers mounted on one hub run one ticker: one sweep a second, not two. (Time is
    /// paused and advances only while every task waits, so the count is exact.)
    #[tokio::test(start_paused = true)]
    async fn two_routers_on_one_hub_run_one_ticker() {
        let hub = Hub::new(Apps::new(vec![App::default()]), HubSettings::default());
        let _first = router(AppState::new(hub.clone(), ServerOptions::default()));
        let _second = Router::new().merge(router(AppState::new(
            hub.clone(),
            ServerOptions {
                path_prefix: "/ws".into(),
                ..ServerOptions::default()
            },
        )));
        // The first sweep runs at once, then one a second: at 0, 1, ..., 5 s.
        tokio::time::sleep(Duration::from_millis(5_500)).await;
        assert_eq!(hub.ticks(), 6);
    }
}
