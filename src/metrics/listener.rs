//! The metrics listener: `GET /metrics` (text exposition format 0.0.4) on its own address,
//! apart from the public port. Anything else answers 404.

use super::Metrics;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serve `GET /metrics` on `listener` until the process ends.
pub async fn serve_metrics(listener: TcpListener, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
                    metrics.render(),
                )
                    .into_response()
            }
        }),
    );
    axum::serve(listener, app).await
}
