//! The Pusher HTTP API: publish (`/events`, `/batch_events`), channel queries, presence users
//! and `terminate_connections`. Every request is signed; `verify` checks it before a handler
//! runs. Errors become an HTTP status and `{"error": "..."}` in one place ([`ApiError`]).

mod events;
mod observe;
pub mod publish;
mod queries;
mod query;
pub mod rate_limit;
mod signature;
mod state;

pub use publish::{check_channel, InvalidChannel, Publication, PublishError};
pub use query::Query;
pub use signature::verify;
pub use state::{AppState, ServerOptions};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

/// Why an API request failed; each maps to one status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    TooLarge(String),
    /// Over the app's `api_request_rate`: 429 with `Retry-After`.
    #[error("{0}")]
    TooManyRequests(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::json!({ "error": self.to_string(), "code": status.as_u16() });
        let mut response = (status, Json(body)).into_response();
        if let ApiError::TooManyRequests(_) = self {
            // Windows are whole seconds: the next one starts within a second.
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

/// The API routes, to be given the server's state (every request counted; timed and counted
/// by endpoint when metrics are on).
pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/apps/{app_id}/events", post(events::events))
        .route("/apps/{app_id}/batch_events", post(events::batch_events))
        .route("/apps/{app_id}/channels", get(queries::channels))
        .route("/apps/{app_id}/channels/{channel}", get(queries::channel))
        .route(
            "/apps/{app_id}/channels/{channel}/users",
            get(queries::users),
        )
        .route(
            "/apps/{app_id}/users/{user_id}/terminate_connections",
            post(queries::terminate_connections),
        )
        // pusher-http-python 3.3.4 posts here without the /apps/{id} prefix.
        .route(
            "/users/{user_id}/terminate_connections",
            post(queries::terminate_connections_short),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::record,
        ))
}

/// A verified request's app and decoded query.
pub(crate) type Authorized = (std::sync::Arc<crate::apps::App>, Query);

/// Find the app of a request, verify its signature and count it against the app's
/// `api_request_rate`; returns the app and decoded query.
pub(crate) async fn authorize(
    state: &AppState,
    app_id: &str,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    body: &[u8],
) -> Result<Authorized, ApiError> {
    let app = state
        .hub
        .app_by_id(app_id)
        .ok_or_else(|| ApiError::NotFound(format!("The app {app_id} could not be found.")))?;
    let query = Query::of(uri);
    verify(&app, method.as_str(), uri.path(), &query, body)?;
    if !app.enabled {
        return Err(ApiError::Forbidden("Application is disabled".into()));
    }
    // Counted only once signed: nobody without the secret can spend an app's budget.
    if let Err(rate_limit::OverRate(limit)) = state.rate.admit_api(&app).await {
        return Err(ApiError::TooManyRequests(format!(
            "Too many requests: the app allows {limit} API requests per second"
        )));
    }
    Ok((app, query))
}

impl From<InvalidChannel> for ApiError {
    fn from(e: InvalidChannel) -> ApiError {
        ApiError::BadRequest(e.to_string())
    }
}

impl From<PublishError> for ApiError {
    fn from(e: PublishError) -> ApiError {
        match e {
            PublishError::TooLarge { .. } => ApiError::TooLarge(e.to_string()),
            _ => ApiError::BadRequest(e.to_string()),
        }
    }
}
