//! `api_request_rate`: an app over its HTTP API requests per second gets 429 with a
//! Pusher-style JSON body and `Retry-After`; other apps and unsigned requests do not count;
//! with the Redis counter the limit holds across nodes. The cluster test needs a Redis on
//! 127.0.0.1:6379 (a random key prefix per run).

mod common;

use common::*;
use rf_broadcast::{App, AppState, Apps, Hub, HubSettings, RedisSettings, ServerOptions};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn redis(url: &str, prefix: &str) -> RedisSettings {
    RedisSettings {
        url: url.into(),
        prefix: prefix.into(),
        ..RedisSettings::default()
    }
}

fn limited(rate: u32) -> App {
    App {
        api_request_rate: Some(rate),
        ..app()
    }
}

/// Sleep until early in a second, so a burst falls in one window.
async fn start_of_a_second() {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_millis();
    tokio::time::sleep(Duration::from_millis(u64::from(1000 - ms) + 5)).await;
}

/// One signed publish; returns status, Retry-After and body.
async fn publish(addr: std::net::SocketAddr, app: &App) -> (u16, Option<String>, Value) {
    let path = format!("/apps/{}/events", app.id);
    let body = json!({"name":"e","channel":"c","data":"{}"}).to_string();
    let q = signed_post(&app.key, &app.secret, &path, body.as_bytes());
    let r = reqwest::Client::new()
        .post(format!("http://{addr}{path}?{q}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (status, retry, r.json().await.unwrap())
}

#[tokio::test]
async fn over_the_rate_gets_429_with_retry_after() {
    let other = App {
        id: "other".into(),
        key: "other-key".into(),
        ..limited(1)
    };
    let server = TestServer::with(
        vec![limited(5), other.clone()],
        HubSettings::default(),
        ServerOptions::default(),
    )
    .await;
    // Unsigned requests are refused before counting: they cannot spend the budget.
    for _ in 0..10 {
        let r = reqwest::Client::new()
            .post(format!("http://{}/apps/app-id/events", server.addr))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
    }
    start_of_a_second().await;
    let mut statuses = Vec::new();
    let mut refusal = None;
    for _ in 0..8 {
        let (status, retry, body) = publish(server.addr, &server.app).await;
        if status == 429 {
            refusal = Some((retry, body));
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    let (retry, body) = refusal.unwrap();
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(body["code"], 429);
    assert_eq!(
        body["error"],
        "Too many requests: the app allows 5 API requests per second"
    );
    // Another app has its own budget.
    assert_eq!(publish(server.addr, &other).await.0, 200);
    // The next second starts afresh.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(publish(server.addr, &server.app).await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn no_rate_means_no_limit() {
    let server = TestServer::start().await;
    for _ in 0..30 {
        assert_eq!(publish(server.addr, &server.app).await.0, 200);
    }
    server.stop().await;
}

#[tokio::test]
async fn with_redis_the_rate_holds_across_nodes() {
    let prefix = format!("rf-test-{:016x}", rand::random::<u64>());
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let hub = Hub::new(Apps::new(vec![limited(6)]), HubSettings::default());
        let state = AppState::new(hub, ServerOptions::default())
            .with_redis_rate_limits(&redis("redis://127.0.0.1:6379", &prefix))
            .unwrap();
        nodes.push(TestServer::from_state(state, limited(6)).await);
    }
    // Warm both Redis connections, then a burst of 4 per node in one second: 8 > 6.
    for n in &nodes {
        publish(n.addr, &n.app).await;
    }
    start_of_a_second().await;
    let mut ok = 0;
    let mut refused = 0;
    for _ in 0..4 {
        for n in &nodes {
            match publish(n.addr, &n.app).await.0 {
                200 => ok += 1,
                429 => refused += 1,
                s => panic!("status {s}"),
            }
        }
    }
    assert_eq!((ok, refused), (6, 2), "the two nodes share one budget");
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test]
async fn an_unreachable_redis_falls_back_to_the_node_count() {
    let port = free_port();
    let hub = Hub::new(Apps::new(vec![limited(3)]), HubSettings::default());
    let state = AppState::new(hub, ServerOptions::default())
        .with_redis_rate_limits(&redis(&format!("redis://127.0.0.1:{port}"), "x"))
        .unwrap();
    let server = TestServer::from_state(state, limited(3)).await;
    start_of_a_second().await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(publish(server.addr, &server.app).await.0);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    server.stop().await;
}
