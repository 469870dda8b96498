//! Channel queries (`/channels`, `/channels/{c}`, `/channels/{c}/users`) and
//! `terminate_connections`. Answers are always JSON objects with status 200, and speak for
//! the whole cluster when an adapter joins several nodes.

use super::AppState;
use super::{authorize, check_channel, ApiError, Query};
use crate::apps::App;
use crate::protocol::{ChannelInfo, ChannelKind};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, Uri};
use axum::Json;
use serde_json::{json, Map, Value};

/// `GET /apps/{app_id}/channels?filter_by_prefix=&info=user_count`
pub async fn channels(
    State(state): State<AppState>,
    Path(app_id): Path<String>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (app, query) = authorize(&state, &app_id, &method, &uri, &body).await?;
    let prefix = query.get("filter_by_prefix").unwrap_or("");
    let info = query.list("info");
    let wants_users = info.iter().any(|i| i == "user_count");
    if wants_users && !prefix.starts_with("presence-") {
        return Err(ApiError::BadRequest(
            "info=user_count is only allowed with filter_by_prefix=presence-".into(),
        ));
    }
    let wants_subs = info.iter().any(|i| i == "subscription_count");
    let mut channels = Map::new();
    for (name, stats) in state.hub.cluster_channels(&app.id, prefix).await {
        let mut attrs = Map::new();
        if wants_users {
            attrs.insert("user_count".into(), stats.user_count.unwrap_or(0).into());
        }
        if wants_subs {
            attrs.insert("subscription_count".into(), stats.subscription_count.into());
        }
        channels.insert(name.to_string(), Value::Object(attrs));
    }
    Ok(Json(json!({ "channels": channels })))
}

/// `GET /apps/{app_id}/channels/{channel}?info=user_count,subscription_count,cache`
pub async fn channel(
    State(state): State<AppState>,
    Path((app_id, channel)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (app, query) = authorize(&state, &app_id, &method, &uri, &body).await?;
    check_channel(&app, &channel)?;
    let info = query.list("info");
    let kind = ChannelInfo::of(&channel);
    let presence = kind.kind == ChannelKind::Presence;
    if info.iter().any(|i| i == "user_count") && !presence {
        return Err(ApiError::BadRequest(
            "info=user_count is only allowed for presence channels".into(),
        ));
    }
    let stats = state.hub.cluster_channel(&app.id, &channel).await;
    let mut out = Map::new();
    out.insert("occupied".into(), (stats.subscription_count > 0).into());
    for attr in &info {
        match attr.as_str() {
            "user_count" => {
                out.insert(attr.clone(), stats.user_count.unwrap_or(0).into());
            }
            "subscription_count" => {
                out.insert(attr.clone(), stats.subscription_count.into());
            }
            "cache" if kind.cache => {
                let cache = match &stats.cache {
                    Some((frame, ttl)) => {
                        let data = serde_json::from_str::<Value>(frame.as_str())
                            .ok()
                            .and_then(|v| v.get("data").cloned())
                            .unwrap_or(Value::Null);
                        json!({ "data": data, "ttl": ttl })
                    }
                    None => Value::Null,
                };
                out.insert(attr.clone(), cache);
            }
            _ => {}
        }
    }
    Ok(Json(Value::Object(out)))
}

/// `GET /apps/{app_id}/channels/{channel}/users` (presence channels only).
pub async fn users(
    State(state): State<AppState>,
    Path((app_id, channel)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (app, _) = authorize(&state, &app_id, &method, &uri, &body).await?;
    check_channel(&app, &channel)?;
    if ChannelInfo::of(&channel).kind != ChannelKind::Presence {
        return Err(ApiError::BadRequest(
            "Users can only be listed for presence channels".into(),
        ));
    }
    let users: Vec<Value> = state
        .hub
        .presence_users(&app.id, &channel)
        .into_iter()
        .map(|id| json!({ "id": id }))
        .collect();
    Ok(Json(json!({ "users": users })))
}

/// `POST /apps/{app_id}/users/{user_id}/terminate_connections`
pub async fn terminate_connections(
    State(state): State<AppState>,
    Path((app_id, user_id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (app, _) = authorize(&state, &app_id, &method, &uri, &body).await?;
    terminate(&state, &app, &user_id)
}

/// `POST /users/{user_id}/terminate_connections`, as pusher-http-python 3.3.4 sends it: the
/// app is the one whose key signed the request.
pub async fn terminate_connections_short(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let query = Query::of(&uri);
    let key = query.get("auth_key").unwrap_or("");
    let app = state
        .hub
        .apps()
        .by_key(key)
        .cloned()
        .ok_or_else(|| ApiError::Unauthorized("Unknown auth_key".into()))?;
    let (app, _) = authorize(&state, &app.id, &method, &uri, &body).await?;
    terminate(&state, &app, &user_id)
}

fn terminate(state: &AppState, app: &App, user_id: &str) -> Result<Json<Value>, ApiError> {
    if user_id.is_empty() || user_id.len() > app.max_user_id_len {
        return Err(ApiError::BadRequest(format!(
            "Invalid user id: it must be 1 to {} characters",
            app.max_user_id_len
        )));
    }
    let app_id = app.id.as_str();
    state.hub.terminate_user(app_id, user_id);
    Ok(Json(json!({})))
}
