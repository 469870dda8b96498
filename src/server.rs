//! The router and the serve loop: WebSocket `/app/{key}`, the HTTP API, `/up`, the
//! development routes when asked for, and graceful shutdown (every
//! WebSocket closed with 4200 so clients reconnect at once, to another node if there is one).

pub use crate::api::{AppState, ServerOptions};
use crate::hub::{CloseRequest, Hub};
use crate::protocol::ErrorCode;
use crate::ws::{self, Handshake};
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use std::future::Future;
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
    )
}

async fn ws_upgrade(
    State(state): State<AppState>,
    Path(key): Path<String>,
    query: RawQuery,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade_with(state, key, query, headers, upgrade, None)
}

fn upgrade_with(
    state: AppState,
    key: String,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
    lineage: Option<Arc<str>>,
) -> Response {
    let protocol = crate::api::Query::parse(query.as_deref().unwrap_or(""))
        .get("protocol")
        .map(str::to_string);
    let handshake = Handshake {
        app: state.hub.app_by_key(&key),
        protocol,
        origin: headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        lineage,
    };
    if let (Some(metrics), Some(app)) = (&state.metrics, &handshake.app) {
        // The ws layer refuses it after the upgrade; the hub never sees the connection.
        if !app.origin_allowed(handshake.origin.as_deref()) {
            metrics.refused(&app.id, "origin");
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

/// Serve until `shutdown` resolves, then close every WebSocket with 4200 and wait (bounded)
/// for them to go.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let hub = state.hub.clone();
    let grace = state.options.shutdown_grace;
    let app = router(state);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    // Small frames must not wait for Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server =
        axum::serve(listener, app.into_make_service()).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = tx.send(());
        });
    let closer = {
        let hub = hub.clone();
        async move {
            if rx.await.is_err() {
                return;
            }
            close_all(&hub, grace).await;
        }
    };
    let (result, _) = tokio::join!(async move { server.await }, closer);
    result
}

/// Ask every connection to close with 4200 and wait until they are gone or `grace` passes.
pub async fn close_all(hub: &Arc<Hub>, grace: Duration) {
    for conn in hub.all_connections() {
        conn.close(CloseRequest {
            code: ErrorCode::ReconnectImmediately,
            message: "Server is shutting down; reconnect",
            send_error: true,
        });
    }
    let deadline = tokio::time::Instant::now() + grace;
    while hub.connection_count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
