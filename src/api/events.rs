//! `POST /apps/{app_id}/events` and `POST /apps/{app_id}/batch_events`: validate everything,
//! then publish through the hub, and answer `{}` (or the requested channel info) with 200.

use super::query::split_list;
use super::AppState;
use super::{authorize, ApiError, Publication};
use crate::apps::App;
use crate::protocol::{ChannelInfo, ChannelKind};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, Uri};
use axum::Json;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// One event as the SDKs send it (`channel` or `channels`).
#[derive(Deserialize)]
pub struct EventBody {
    name: Option<String>,
    data: Option<Box<RawValue>>,
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    socket_id: Option<String>,
    #[serde(default)]
    info: Option<String>,
}

/// An event that passed the gate, with the channel attributes its publisher asked for.
pub struct ValidEvent {
    pub publication: Publication,
    pub info: Vec<String>,
}

/// The body as JSON. It must be UTF-8 as a whole (RFC 8259 §8.1): serde_json alone checks only
/// the strings it keeps, so invalid bytes inside an ignored field would pass (found by the
/// `http_body` fuzz target, RELIABILITY.md).
fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "The request body is not valid JSON: not UTF-8 ({e})"
        ))
    })?;
    serde_json::from_str(text)
        .map_err(|e| ApiError::BadRequest(format!("The request body is not valid JSON: {e}")))
}

/// Read one event of the body and pass it through the publish gate.
pub fn validate(app: &App, ev: EventBody) -> Result<ValidEvent, ApiError> {
    let name = ev
        .name
        .ok_or_else(|| ApiError::BadRequest("The event name is missing".into()))?;
    let raw = ev
        .data
        .ok_or_else(|| ApiError::BadRequest("The event data is missing".into()))?;
    // `data` is a string that goes out verbatim; an object is accepted as its JSON text.
    let data = if raw.get().starts_with('"') {
        serde_json::from_str::<String>(raw.get())
            .map_err(|_| ApiError::BadRequest("The event data is not a valid string".into()))?
    } else {
        raw.get().to_string()
    };
    let channels = match (ev.channels, ev.channel) {
        (Some(list), _) => list,
        (None, Some(one)) => vec![one],
        (None, None) => Vec::new(),
    };
    let publication = Publication::check(app, name, data, channels, ev.socket_id.as_deref())?;
    let info = ev.info.as_deref().map(split_list).unwrap_or_default();
    Ok(ValidEvent { publication, info })
}

/// The `info` attributes of one event's channels, after publishing (cluster-wide counts).
async fn channel_info(state: &AppState, app_id: &str, ev: &ValidEvent) -> Value {
    let mut channels = Map::new();
    for c in &ev.publication.channels {
        let stats = state.hub.cluster_channel(app_id, c).await;
        let mut attrs = Map::new();
        let presence = ChannelInfo::of(c).kind == ChannelKind::Presence;
        for attr in &ev.info {
            match attr.as_str() {
                "subscription_count" => {
                    attrs.insert(attr.clone(), stats.subscription_count.into());
                }
                "user_count" if presence => {
                    attrs.insert(attr.clone(), stats.user_count.unwrap_or(0).into());
                }
                _ => {}
            }
        }
        channels.insert(c.clone(), Value::Object(attrs));
    }
    Value::Object(channels)
}

pub async fn events(
    State(state): State<AppState>,
    Path(app_id): Path<String>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (app, _) = authorize(&state, &app_id, &method, &uri, &body).await?;
    let ev = validate(&app, parse_json(&body)?)?;
    ev.publication.send(&state.hub);
    if ev.info.is_empty() {
        return Ok(Json(Value::Object(Map::new())));
    }
    Ok(Json(
        serde_json::json!({ "channels": channel_info(&state, &app.id, &ev).await }),
    ))
}

#[derive(Deserialize)]
struct BatchBody {
    batch: Option<Vec<EventBody>>,
}

pub async fn batch_events(
    State(state): State<AppState>,
    Path(app_id): Path<String>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (app, _) = authorize(&state, &app_id, &method, &uri, &body).await?;
    let batch: BatchBody = parse_json(&body)?;
    let batch = batch
        .batch
        .ok_or_else(|| ApiError::BadRequest("The request has no batch".into()))?;
    if batch.len() > app.max_batch_events {
        return Err(ApiError::BadRequest(format!(
            "A batch holds at most {} events",
            app.max_batch_events
        )));
    }
    // Validate every event before sending any.
    let events = batch
        .into_iter()
        .map(|e| validate(&app, e))
        .collect::<Result<Vec<_>, _>>()?;
    for ev in &events {
        ev.publication.send(&state.hub);
    }
    if events.iter().all(|e| e.info.is_empty()) {
        return Ok(Json(Value::Object(Map::new())));
    }
    let mut items = Vec::with_capacity(events.len());
    for ev in &events {
        // One attribute object per item (its single channel).
        let item = match channel_info(&state, &app.id, ev).await {
            Value::Object(m) => m.into_iter().next().map(|(_, v)| v),
            _ => None,
        };
        items.push(item.unwrap_or_else(|| Value::Object(Map::new())));
    }
    Ok(Json(serde_json::json!({ "batch": items })))
}
