//! Development-only routes (`--dev-auth`): this server answers pusher-js's auth requests
//! itself, signing any private/presence subscription and any user sign-in with the app
//! secret, so a front end can be tried with no back end; plus the demo page. Never enable it
//! in production: anyone can join any channel as anyone.

use crate::api::{AppState, Publication, Query};
use crate::auth;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;

const DEMO_PAGE: &str = include_str!("../examples/demo.html");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/pusher/auth", post(channel_auth).options(preflight))
        .route("/broadcasting/auth", post(channel_auth).options(preflight))
        .route("/pusher/user-auth", post(user_auth).options(preflight))
        .route(
            "/broadcasting/user-auth",
            post(user_auth).options(preflight),
        )
        .route("/demo", get(|| async { Html(DEMO_PAGE) }))
        .route("/demo/publish", post(publish))
}

/// Form-encoded (pusher-js) or JSON body, as a flat map of strings.
fn fields(headers: &HeaderMap, body: &[u8]) -> HashMap<String, String> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if is_json {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        v.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let s = v
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string());
                        (k.clone(), s)
                    })
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Query::parse(&String::from_utf8_lossy(body))
            .into_pairs()
            .into_iter()
            .collect()
    }
}

fn cors(resp: impl IntoResponse) -> Response {
    let mut resp = resp.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        "*".parse().expect("static"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        "*".parse().expect("static"),
    );
    resp
}

async fn preflight() -> Response {
    cors(StatusCode::NO_CONTENT)
}

fn bad(message: &str) -> Response {
    cors((StatusCode::BAD_REQUEST, Json(json!({ "error": message }))))
}

fn random_user() -> String {
    format!("user-{}", rand::random::<u32>() % 100_000)
}

/// `POST /pusher/auth` / `/broadcasting/auth`: `socket_id`, `channel_name`, optional
/// `user_id` and `user_info` (JSON) for presence.
async fn channel_auth(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let f = fields(&headers, &body);
    let (Some(socket_id), Some(channel)) = (f.get("socket_id"), f.get("channel_name")) else {
        return bad("socket_id and channel_name are required");
    };
    let Some(app) = state.hub.apps().first().cloned() else {
        return bad("no app");
    };
    tracing::warn!(
        socket_id,
        channel,
        "dev-auth: signing a subscription (development only)"
    );
    if channel.starts_with("presence-") {
        let user_id = f.get("user_id").cloned().unwrap_or_else(random_user);
        let info: Value = f
            .get("user_info")
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_else(|| json!({ "name": user_id }));
        let channel_data = json!({ "user_id": user_id, "user_info": info }).to_string();
        let auth = auth::channel_auth(
            &app.key,
            &app.secret,
            socket_id,
            channel,
            Some(&channel_data),
        );
        cors(Json(json!({ "auth": auth, "channel_data": channel_data })))
    } else {
        let auth = auth::channel_auth(&app.key, &app.secret, socket_id, channel, None);
        cors(Json(json!({ "auth": auth })))
    }
}

/// `POST /pusher/user-auth` / `/broadcasting/user-auth`: `socket_id`, optional `user_id`.
async fn user_auth(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let f = fields(&headers, &body);
    let Some(socket_id) = f.get("socket_id") else {
        return bad("socket_id is required");
    };
    let Some(app) = state.hub.apps().first().cloned() else {
        return bad("no app");
    };
    let user_id = f.get("user_id").cloned().unwrap_or_else(random_user);
    tracing::warn!(
        socket_id,
        user_id,
        "dev-auth: signing a user sign-in (development only)"
    );
    let user_data = json!({ "id": user_id, "user_info": { "name": user_id } }).to_string();
    let auth = auth::user_auth(&app.key, &app.secret, socket_id, &user_data);
    cors(Json(json!({ "auth": auth, "user_data": user_data })))
}

/// `POST /demo/publish` `{channel, event, data}`: publish as the app would (development only).
async fn publish(State(state): State<AppState>, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (Some(channel), Some(event)) = (
        v.get("channel").and_then(Value::as_str),
        v.get("event").and_then(Value::as_str),
    ) else {
        return bad("channel and event are required");
    };
    let Some(app) = state.hub.apps().first().cloned() else {
        return bad("no app");
    };
    let data = match v.get("data") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "{}".into(),
    };
    match Publication::check(&app, event.into(), data, vec![channel.into()], None) {
        Ok(publication) => {
            publication.send(&state.hub);
            cors(Json(json!({})))
        }
        Err(e) => bad(&e.to_string()),
    }
}
