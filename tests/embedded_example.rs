//! The embedding example (`examples/embedded.rs`) really works: a pusher-protocol client on the
//! app's own router receives what the app's handler broadcasts.

mod common;
#[path = "../examples/embedded.rs"]
#[allow(dead_code)]
mod embedded;

use common::Client;
use rf_broadcast::{App, Broadcaster, Channel, MemoryBroadcaster};
use serde_json::json;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

#[tokio::test]
async fn handler_broadcast_reaches_subscribers_of_the_embedded_router() {
    let broadcaster = MemoryBroadcaster::new(vec![App::new("app-id", "app-key", "app-secret")]);
    let shop = embedded::Shop {
        broadcaster: broadcaster.clone(),
        next_id: Arc::new(AtomicU64::new(1)),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, embedded::app(shop)).await });

    let mut c = Client::established(
        &format!("ws://{addr}/app/app-key?protocol=7"),
        "app-key",
        "app-secret",
    )
    .await;
    c.subscribe_private("private-orders").await;
    assert!(broadcaster.is_subscribed(&c.socket_id, &Channel::private("orders")));
    assert_eq!(broadcaster.connections(), 1);

    let r: serde_json::Value = reqwest::Client::new()
        .post(format!("http://{addr}/orders"))
        .json(&json!({"item":"book"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["id"], 1);
    let ev = c.expect_next("order.created").await;
    assert_eq!(ev["channel"], "private-orders");
    let payload: serde_json::Value = serde_json::from_str(ev["data"].as_str().unwrap()).unwrap();
    assert_eq!(payload, json!({"id":1,"order":{"item":"book"}}));

    // Server-side subscribe/unsubscribe and presence through the trait.
    broadcaster
        .subscribe(
            &c.socket_id,
            &Channel::presence("staff"),
            Some(rf_broadcast::Member {
                user_id: "9".into(),
                user_info: json!({"n":"x"}),
            }),
        )
        .unwrap();
    c.expect_next("pusher_internal:subscription_succeeded")
        .await;
    assert_eq!(
        broadcaster.presence(&Channel::presence("staff"))[0].user_id,
        "9"
    );
    broadcaster
        .unsubscribe(&c.socket_id, &Channel::presence("staff"))
        .unwrap();
    assert!(broadcaster.presence(&Channel::presence("staff")).is_empty());
    assert!(broadcaster
        .subscribe("1.1", &Channel::public("x"), None)
        .is_err());
    // A broadcaster with no app answers with an error, not a panic.
    let empty = MemoryBroadcaster::new(vec![]);
    let ev = rf_broadcast::SimpleEvent::new("e", json!({})).on(Channel::public("x"));
    assert_eq!(
        empty.broadcast(&ev),
        Err(rf_broadcast::BroadcastError::NoApp)
    );
    assert!(empty.presence(&Channel::presence("x")).is_empty());
}

/// A router built outside any runtime (as an app may build its routes before it starts
/// tokio) still runs the heartbeat: the ticker starts with the first upgrade, and a client
/// silent for the activity timeout gets `pusher:ping`.
#[tokio::test]
async fn a_mounted_router_runs_the_heartbeat_even_when_built_outside_a_runtime() {
    let app = App {
        activity_timeout: 1,
        ..App::new("app-id", "app-key", "app-secret")
    };
    let broadcaster = MemoryBroadcaster::new(vec![app]);
    let b = broadcaster.clone();
    let router = std::thread::spawn(move || rf_broadcast::websocket_router(&b))
        .join()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let mut c = Client::established(
        &format!("ws://{addr}/app/app-key?protocol=7"),
        "app-key",
        "app-secret",
    )
    .await;
    c.expect_next("pusher:ping").await;
}
