//! Embedding rf-broadcast in an axum application: the app's own `POST /orders` handler creates
//! an order and broadcasts `order.created` to `private-orders` and `orders`, while the same
//! router serves the Pusher endpoints (`/app/{key}`, `/apps/{id}/...`) for pusher-js / Echo.
//!
//! Run: `cargo run --example embedded` then
//! `curl -XPOST localhost:3000/orders -d '{"item":"book"}' -H 'content-type: application/json'`.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use rf_broadcast::{websocket_router, App, Broadcaster, Channel, MemoryBroadcaster, SimpleEvent};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The application's state: its broadcaster and (for the example) an order counter.
#[derive(Clone)]
pub struct Shop {
    pub broadcaster: MemoryBroadcaster,
    pub next_id: Arc<AtomicU64>,
}

/// `POST /orders`: "create" the order, then tell every subscriber.
async fn create_order(State(shop): State<Shop>, Json(order): Json<Value>) -> Json<Value> {
    let id = shop.next_id.fetch_add(1, Ordering::Relaxed);
    let record = json!({ "id": id, "order": order });
    let event = SimpleEvent::new("order.created", record.clone())
        .on(Channel::private("orders"))
        .on(Channel::public("orders"));
    if let Err(e) = shop.broadcaster.broadcast(&event) {
        tracing::warn!(error = %e, "broadcast failed");
    }
    Json(record)
}

/// The whole app: its own routes plus the Pusher endpoints.
pub fn app(shop: Shop) -> Router {
    let pusher = websocket_router(&shop.broadcaster);
    Router::new()
        .route("/orders", post(create_order))
        .with_state(shop)
        .merge(pusher)
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt::init();
    let shop = Shop {
        broadcaster: MemoryBroadcaster::new(vec![App::new("app-id", "app-key", "app-secret")]),
        next_id: Arc::new(AtomicU64::new(1)),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("shop on http://127.0.0.1:3000 (Pusher key app-key)");
    axum::serve(listener, app(shop)).await
}
