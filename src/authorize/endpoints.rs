//! The HTTP face of an [`Authorizer`]: the endpoints Laravel Echo and pusher-js call by
//! default, `POST /broadcasting/auth` and `POST /broadcasting/user-auth`, and their
//! `/pusher/auth`, `/pusher/user-auth` aliases, as a router to merge next to
//! [`crate::websocket_router`]. Bodies are form-encoded (what pusher-js sends) or JSON.

use super::authorizer::Authorizer;
use super::refusal::Refusal;
use crate::api::Query;
use crate::apps::App;
use crate::broadcaster::Broadcaster;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;
use std::sync::Arc;

/// The auth endpoints for `authorizer`, signing with the broadcaster's app (its first, or the
/// one named by [`AuthorizerBuilder::app_id`](crate::AuthorizerBuilder::app_id)) through the
/// same code the server verifies subscriptions with.
///
/// | request | answer |
/// |---|---|
/// | `POST /broadcasting/auth`, `/pusher/auth` with `socket_id`, `channel_name` | 200 `{"auth"}` (private), `{"auth", "channel_data"}` (presence), `{"auth", "shared_secret"}` (encrypted, with a master key) |
/// | `POST /broadcasting/user-auth`, `/pusher/user-auth` with `socket_id` | 200 `{"auth", "user_data"}` |
/// | no user resolved | 401 `{"message": "Unauthenticated."}` |
/// | no route matches, the route refuses, sign-in not enabled | 403 `{"message": "This action is unauthorized."}` |
/// | missing or garbled body, socket id not `\d+\.\d+`, bad or oversized channel name | 400 `{"message": ...}` |
/// | body over [`max_body_bytes`](crate::AuthorizerBuilder::max_body_bytes) | 413 |
/// | a callback errs or panics / overruns its deadline | 500 / 503 |
///
/// ```
/// use rf_broadcast::{authorization_router, websocket_router, App, Authorizer, User, MemoryBroadcaster};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let broadcaster = MemoryBroadcaster::new(vec![App::new("app-id", "app-key", "app-secret")]);
/// // For the example, the user is whoever the `x-user` header names.
/// let authorizer = Authorizer::builder(|req: &axum::http::request::Parts| {
///     Some(User::new(req.headers.get("x-user")?.to_str().ok()?))
/// })
/// .private("orders.{id}", |user, params| async move { Ok(params.get("id") == Some(user.id.as_str())) })
/// .build();
/// let app: axum::Router = axum::Router::new()
///     .merge(websocket_router(&broadcaster))
///     .merge(authorization_router(&broadcaster, authorizer));
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let addr = listener.local_addr().unwrap();
/// tokio::spawn(async move { axum::serve(listener, app).await });
/// let ask = |user: &'static str| {
///     reqwest::Client::new()
///         .post(format!("http://{addr}/broadcasting/auth"))
///         .header("x-user", user)
///         .header("content-type", "application/x-www-form-urlencoded")
///         .body("socket_id=123.456&channel_name=private-orders.7")
///         .send()
/// };
/// let ok = ask("7").await.unwrap();
/// assert_eq!(ok.status(), 200);
/// let body: serde_json::Value = ok.json().await.unwrap();
/// assert!(body["auth"].as_str().unwrap().starts_with("app-key:"));
/// assert_eq!(ask("8").await.unwrap().status(), 403);
/// # }
/// ```
pub fn authorization_router<B: Broadcaster>(broadcaster: &B, authorizer: Authorizer) -> Router {
    let app = match authorizer.app_id() {
        Some(id) => broadcaster.hub().apps().by_id(id).cloned(),
        None => broadcaster.default_app().ok(),
    };
    if app.is_none() {
        tracing::error!(
            app_id = authorizer.app_id(),
            "authorization_router: the broadcaster has no such app; auth requests will fail with 500"
        );
    }
    let limit = authorizer.max_body_bytes();
    let endpoint = Arc::new(Endpoint { app, authorizer });
    Router::new()
        .route("/broadcasting/auth", post(channel_auth))
        .route("/pusher/auth", post(channel_auth))
        .route("/broadcasting/user-auth", post(user_auth))
        .route("/pusher/user-auth", post(user_auth))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(endpoint)
}

struct Endpoint {
    app: Option<Arc<App>>,
    authorizer: Authorizer,
}

impl Endpoint {
    fn app(&self) -> Result<&App, Refusal> {
        self.app
            .as_deref()
            .ok_or_else(|| Refusal::server_error("the broadcaster has no app to sign for"))
    }
}

async fn channel_auth(
    State(endpoint): State<Arc<Endpoint>>,
    parts: Parts,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(
        async {
            let app = endpoint.app()?;
            let user = endpoint.authorizer.resolve_user(&parts).await?;
            let fields = Fields::parse(&parts, body.map_err(unreadable)?)?;
            let socket_id = fields.required("socket_id")?;
            let channel = fields.required("channel_name")?;
            endpoint
                .authorizer
                .authorize_channel(app, user, socket_id, channel)
                .await
        }
        .await,
    )
}

async fn user_auth(
    State(endpoint): State<Arc<Endpoint>>,
    parts: Parts,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(
        async {
            let app = endpoint.app()?;
            let user = endpoint.authorizer.resolve_user(&parts).await?;
            let fields = Fields::parse(&parts, body.map_err(unreadable)?)?;
            let socket_id = fields.required("socket_id")?;
            endpoint
                .authorizer
                .authenticate_user(app, user, socket_id)
                .await
        }
        .await,
    )
}

fn answer(result: Result<Value, Refusal>) -> Response {
    match result {
        Ok(body) => Json(body).into_response(),
        Err(refusal) => {
            tracing::debug!(%refusal, "auth request refused");
            refusal.into_response()
        }
    }
}

/// A body axum could not read (too large: 413), as a refusal.
fn unreadable(rejection: BytesRejection) -> Refusal {
    Refusal::new(rejection.status(), rejection.body_text())
}

/// The fields of an auth request body, as strings.
struct Fields(Vec<(String, Value)>);

impl Fields {
    /// JSON when the content type says so (`application/json`, `…+json`), else form-encoded.
    fn parse(parts: &Parts, body: Bytes) -> Result<Fields, Refusal> {
        let is_json = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let mime = v.split(';').next().unwrap_or("").trim();
                mime.ends_with("/json") || mime.ends_with("+json")
            });
        if is_json {
            match serde_json::from_slice::<serde_json::Map<String, Value>>(&body) {
                Ok(map) => Ok(Fields(map.into_iter().collect())),
                Err(_) => Err(Refusal::bad_request("the body is not a JSON object")),
            }
        } else {
            let text = std::str::from_utf8(&body)
                .map_err(|_| Refusal::bad_request("the body is not UTF-8"))?;
            let form = Query::parse_form(text)
                .ok_or_else(|| Refusal::bad_request("the form body is not UTF-8"))?;
            Ok(Fields(
                form.into_pairs()
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
            ))
        }
    }

    /// A string field (the last one, when repeated, as PHP reads forms); 400 when missing,
    /// empty or not a string.
    fn required(&self, name: &str) -> Result<&str, Refusal> {
        match self.0.iter().rev().find(|(k, _)| k == name) {
            Some((_, Value::String(s))) if !s.is_empty() => Ok(s),
            Some((_, Value::String(_))) | None => Err(Refusal::bad_request(format!(
                "The {name} field is required."
            ))),
            Some(_) => Err(Refusal::bad_request(format!(
                "The {name} field must be a string."
            ))),
        }
    }
}
