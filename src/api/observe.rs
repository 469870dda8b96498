//! The HTTP API's observing middleware, in front of every API route: every request is counted
//! on the hub (one atomic add: the debug console's "API requests/s"), and, when metrics are
//! on, counted by app, endpoint (the route template, so ids and channel names never become
//! labels) and status, and timed.

use super::{AppState, Query};
use crate::metrics::UNKNOWN_APP;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

/// Count one API request, and record it in the metrics when they are on.
pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    state.hub.count_api_request();
    let Some(metrics) = state.metrics.clone() else {
        return next.run(request).await;
    };
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "other".into());
    let app = app_label(&state, request.uri());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics
        .http_requests
        .with_label_values(&[app.as_str(), endpoint.as_str(), status.as_str()])
        .inc();
    metrics
        .http_duration
        .with_label_values(&[app.as_str(), endpoint.as_str()])
        .observe(started.elapsed().as_secs_f64());
    if response.status() == axum::http::StatusCode::TOO_MANY_REQUESTS {
        metrics.refused(&app, "api_rate_limit");
    }
    response
}

/// The app a request is for: `/apps/{id}/...`, or the app whose key signed it
/// (`/users/{id}/terminate_connections`); `unknown` when it is not one of ours.
fn app_label(state: &AppState, uri: &axum::http::Uri) -> String {
    let mut segments = uri.path().split('/').filter(|s| !s.is_empty());
    let by_path = loop {
        match segments.next() {
            Some("apps") => break segments.next(),
            Some(_) => continue,
            None => break None,
        }
    };
    let app = match by_path {
        Some(id) => state.hub.app_by_id(id),
        None => Query::of(uri)
            .get("auth_key")
            .and_then(|k| state.hub.app_by_key(k)),
    };
    app.map_or_else(|| UNKNOWN_APP.to_string(), |a| a.id.clone())
}
