//! The console's JSON endpoints behind the page: the overview (apps, counters, samples), the
//! channel and connection inspectors, the disconnect button and the event creator.
//!
//! Reads go through the hub's read-only views (`hub/inspect.rs`, the presence snapshot);
//! the two actions go through what the rest of the server uses: `Connection::close` and the
//! publish gate of the HTTP API. Nothing here returns an app secret or key material.

use super::server::Console;
use super::stream;
use crate::api::{Publication, PublishError};
use crate::hub::{CloseRequest, SocketId};
use crate::protocol::{ChannelInfo, ChannelKind, ErrorCode};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// `GET /api/overview`: apps, settings the page shows, live gauges, counters and samples.
pub async fn overview(State(c): State<Console>) -> Response {
    let apps: Vec<String> = c.hub.app_ids().iter().map(|a| a.to_string()).collect();
    let mut body = stream::samples_json(&c.feed);
    body["apps"] = json!(apps);
    body["connections"] = c.hub.connection_count().into();
    body["channels"] = c.hub.occupied_channel_count().into();
    body["show_payloads"] = c.settings.show_payloads.into();
    body["token_required"] = c.access.required().into();
    Json(body).into_response()
}

#[derive(Deserialize)]
pub struct AppQuery {
    app: String,
}

/// `GET /api/channels?app=`: the occupied channels with their subscription counts.
pub async fn channels(State(c): State<Console>, Query(q): Query<AppQuery>) -> Response {
    let list: Vec<Value> = c
        .hub
        .channel_views(&q.app, c.settings.max_inspect_rows)
        .into_iter()
        .map(|ch| {
            json!({
                "name": &*ch.name,
                "subscription_count": ch.subscribers.len(),
                "user_count": ch.user_count,
            })
        })
        .collect();
    Json(json!({ "channels": list })).into_response()
}

#[derive(Deserialize)]
pub struct ChannelQuery {
    app: String,
    name: String,
}

/// `GET /api/channel?app=&name=`: one channel's subscribers and presence members.
pub async fn channel(State(c): State<Console>, Query(q): Query<ChannelQuery>) -> Response {
    let view = c
        .hub
        .channel_views(&q.app, usize::MAX)
        .into_iter()
        .find(|v| *v.name == *q.name);
    let Some(view) = view else {
        return error(StatusCode::NOT_FOUND, "No subscribers on this channel");
    };
    let members: Vec<Value> = if view.user_count.is_some() {
        c.hub
            .presence_snapshot(&q.app, &q.name)
            .members
            .into_iter()
            .map(|(id, info)| {
                let info: Value = serde_json::from_str(info.get()).unwrap_or(Value::Null);
                json!({ "user_id": id, "user_info": info })
            })
            .collect()
    } else {
        Vec::new()
    };
    let subscribers: Vec<String> = view
        .subscribers
        .iter()
        .take(c.settings.max_inspect_rows)
        .map(|s| s.to_string())
        .collect();
    Json(json!({
        "name": &*view.name,
        "subscription_count": view.subscribers.len(),
        "subscribers": subscribers,
        "presence": view.user_count.is_some(),
        "members": members,
    }))
    .into_response()
}

/// `GET /api/connections?app=`: socket id → channels, user, age, last activity.
pub async fn connections(State(c): State<Console>, Query(q): Query<AppQuery>) -> Response {
    let list: Vec<Value> = c
        .hub
        .connection_views(&q.app, c.settings.max_inspect_rows)
        .into_iter()
        .map(|v| {
            let channels: Vec<Value> = v
                .channels
                .iter()
                .map(|(ch, user)| json!({ "channel": &**ch, "user_id": user.as_deref() }))
                .collect();
            json!({
                "socket_id": v.socket_id.to_string(),
                "app_id": &*v.app_id,
                "channels": channels,
                "user": v.user.as_deref(),
                "age_ms": v.age_ms,
                "idle_ms": v.idle_ms,
            })
        })
        .collect();
    Json(json!({ "connections": list })).into_response()
}

#[derive(Deserialize)]
pub struct Disconnect {
    app_id: String,
    socket_id: String,
    /// Close with 4200 (the client reconnects at once) instead of 4009 (it does not).
    #[serde(default)]
    reconnect: bool,
}

/// `POST /api/disconnect`: close one connection.
pub async fn disconnect(State(c): State<Console>, Json(d): Json<Disconnect>) -> Response {
    let Some(id) = SocketId::parse(&d.socket_id) else {
        return error(StatusCode::BAD_REQUEST, "Invalid socket id");
    };
    let Some(conn) = c.hub.connection(&d.app_id, id) else {
        return error(StatusCode::NOT_FOUND, "No such connection on this node");
    };
    let (code, message) = if d.reconnect {
        (
            ErrorCode::ReconnectImmediately,
            "Disconnected from the debug console; reconnect",
        )
    } else {
        (
            ErrorCode::Unauthorized,
            "Disconnected from the debug console",
        )
    };
    conn.close(CloseRequest {
        code,
        message,
        send_error: true,
    });
    tracing::info!(socket_id = %id, app_id = %d.app_id, code = code.code(), "console: disconnected a connection");
    Json(json!({ "closed": d.socket_id, "code": code.code() })).into_response()
}

#[derive(Deserialize)]
pub struct Publish {
    app_id: String,
    channel: String,
    event: String,
    /// JSON text, sent as the event's `data`.
    data: String,
    #[serde(default)]
    socket_id: Option<String>,
}

/// `POST /api/publish`: the event creator. The data must be JSON; it is published in-process
/// through the same gate as the HTTP API, so the browser never needs a secret.
pub async fn publish(State(c): State<Console>, Json(p): Json<Publish>) -> Response {
    if serde_json::from_str::<Value>(&p.data).is_err() {
        return error(StatusCode::BAD_REQUEST, "The data is not valid JSON");
    }
    if ChannelInfo::of(&p.channel).kind == ChannelKind::Encrypted {
        return error(
            StatusCode::BAD_REQUEST,
            "Encrypted channels need the app's master key, which the server does not have: \
             publish to them from the app",
        );
    }
    match gate_publish(&c, &p) {
        Ok(()) => {
            tracing::info!(app_id = %p.app_id, channel = %p.channel, event = %p.event, "console: published an event");
            Json(json!({ "published": true })).into_response()
        }
        Err((status, message)) => error(status, message),
    }
}

/// The publish gate of the HTTP API, for one event of the console: the same checks (and
/// the same refusals) as `POST /apps/{id}/events`, then the same send.
fn gate_publish(c: &Console, p: &Publish) -> Result<(), (StatusCode, String)> {
    let app = c
        .hub
        .app_by_id(&p.app_id)
        .ok_or_else(|| (StatusCode::NOT_FOUND, format!("No app {}", p.app_id)))?;
    if !app.enabled {
        return Err((StatusCode::FORBIDDEN, "Application is disabled".into()));
    }
    let publication = Publication::check(
        &app,
        p.event.clone(),
        p.data.clone(),
        vec![p.channel.clone()],
        p.socket_id.as_deref().map(str::trim),
    )
    .map_err(|e| {
        let status = match e {
            PublishError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        (status, e.to_string())
    })?;
    publication.send(&c.hub);
    Ok(())
}
