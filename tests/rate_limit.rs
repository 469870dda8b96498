//! The per-app rates. `api_request_rate`: an app over its HTTP API requests per second gets 429
//! with a Pusher-style JSON body and `Retry-After`; other apps and unsigned requests do not
//! count. `connection_rate_per_ip`: a connection over the app's new connections per second
//! from one client address gets `pusher:error` 4100 and close 4100 (pusher-js reconnects after
//! a second); other addresses and other apps do not count. With the Redis counter both hold across nodes, and
//! with Redis unreachable each node counts alone. The cluster tests need a Redis on
//! 127.0.0.1:6379 (a random key prefix per run).

mod common;

use common::*;
use rf_broadcast::{App, AppState, Apps, Hub, HubSettings, RedisSettings, ServerOptions};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::MaybeTlsStream;

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

// ---------------------------------------------------------------------------------------------
// connection_rate_per_ip

fn connection_limited(rate: u32) -> App {
    App {
        connection_rate_per_ip: Some(rate),
        ..app()
    }
}

/// What a connection to `key` from the loopback address `from` (127.0.0.x: one client address)
/// is told first: `Ok(())` for `connection_established`, else the `pusher:error` (code,
/// message) and the close code that follows it.
async fn connect_from(from: [u8; 4], addr: SocketAddr, key: &str) -> Result<(), (u16, String)> {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((from, 0)))
        .expect("bind a 127.0.0.x source address");
    let tcp: TcpStream = socket.connect(addr).await.unwrap();
    let url = format!("ws://{addr}/app/{key}?protocol=7");
    let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp))
        .await
        .unwrap();
    let mut c = Client {
        ws,
        socket_id: String::new(),
        key: key.into(),
        secret: String::new(),
    };
    let first = c.next(WAIT).await.expect("a first frame");
    if first["event"] == "pusher:connection_established" {
        return Ok(());
    }
    assert_eq!(first["event"], "pusher:error", "{first}");
    let code = first["data"]["code"].as_u64().unwrap() as u16;
    let message = first["data"]["message"].as_str().unwrap().to_string();
    c.expect_close_code(code).await;
    Err((code, message))
}

/// The refusal of a connection over a rate of `limit`.
fn over(limit: u32) -> Result<(), (u16, String)> {
    Err((
        4100,
        format!("Too many new connections: the app allows {limit} per second from one address"),
    ))
}

#[tokio::test]
async fn new_connections_over_the_rate_per_ip_get_4100() {
    let other = App {
        id: "other".into(),
        key: "other-key".into(),
        ..connection_limited(1)
    };
    let server = TestServer::with(
        vec![connection_limited(3), other.clone()],
        HubSettings::default(),
        ServerOptions::default(),
    )
    .await;
    start_of_a_second().await;
    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(connect_from([127, 0, 0, 3], server.addr, "app-key").await);
    }
    assert_eq!(answers, [Ok(()), Ok(()), Ok(()), over(3), over(3)]);
    // Another address, another app, and the HTTP API are not limited by it.
    assert_eq!(
        connect_from([127, 0, 0, 4], server.addr, "app-key").await,
        Ok(())
    );
    assert_eq!(
        connect_from([127, 0, 0, 3], server.addr, "other-key").await,
        Ok(())
    );
    assert_eq!(server.http().publish(&["a"], "e", "{}").await.0, 200);
    // The next second starts afresh (pusher-js reconnects after a second).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        connect_from([127, 0, 0, 3], server.addr, "app-key").await,
        Ok(())
    );
    server.stop().await;
}

#[tokio::test]
async fn no_connection_rate_means_no_limit_and_refused_keys_are_not_counted() {
    let limited = App {
        id: "limited".into(),
        key: "limited-key".into(),
        ..connection_limited(2)
    };
    let disabled = App {
        id: "off".into(),
        key: "off-key".into(),
        enabled: false,
        ..connection_limited(1)
    };
    let server = TestServer::with(
        vec![connection_limited(0), limited, disabled],
        HubSettings::default(),
        ServerOptions::default(),
    )
    .await;
    start_of_a_second().await;
    for _ in 0..20 {
        // 0 is off, as is no value.
        assert_eq!(
            connect_from([127, 0, 0, 5], server.addr, "app-key").await,
            Ok(())
        );
    }
    // Unknown keys and disabled apps are refused for what they are, and spend no budget.
    for _ in 0..3 {
        let unknown = connect_from([127, 0, 0, 5], server.addr, "nope").await;
        assert_eq!(unknown.unwrap_err().0, 4001);
        let off = connect_from([127, 0, 0, 5], server.addr, "off-key").await;
        assert_eq!(off.unwrap_err().0, 4003);
    }
    assert_eq!(
        connect_from([127, 0, 0, 5], server.addr, "limited-key").await,
        Ok(())
    );
    server.stop().await;
}

#[tokio::test]
async fn with_redis_the_connection_rate_holds_across_nodes() {
    let prefix = format!("rf-test-{:016x}", rand::random::<u64>());
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let hub = Hub::new(
            Apps::new(vec![connection_limited(6)]),
            HubSettings::default(),
        );
        let state = AppState::new(hub, ServerOptions::default())
            .with_redis_rate_limits(&redis("redis://127.0.0.1:6379", &prefix))
            .unwrap();
        nodes.push(TestServer::from_state(state, connection_limited(6)).await);
    }
    // Warm both Redis connections from another address, then 4 connections per node from
    // one address in one second: 8 > 6.
    for n in &nodes {
        assert_eq!(
            connect_from([127, 0, 0, 9], n.addr, "app-key").await,
            Ok(())
        );
    }
    start_of_a_second().await;
    let mut ok = 0;
    let mut refused = 0;
    for _ in 0..4 {
        for n in &nodes {
            match connect_from([127, 0, 0, 6], n.addr, "app-key").await {
                Ok(()) => ok += 1,
                Err((4100, _)) => refused += 1,
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!((ok, refused), (6, 2), "the two nodes share one budget");
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test]
async fn an_unreachable_redis_counts_connections_per_node() {
    let port = free_port();
    let hub = Hub::new(
        Apps::new(vec![connection_limited(3)]),
        HubSettings::default(),
    );
    let state = AppState::new(hub, ServerOptions::default())
        .with_redis_rate_limits(&redis(&format!("redis://127.0.0.1:{port}"), "x"))
        .unwrap();
    let server = TestServer::from_state(state, connection_limited(3)).await;
    start_of_a_second().await;
    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(connect_from([127, 0, 0, 7], server.addr, "app-key").await);
    }
    assert_eq!(answers, [Ok(()), Ok(()), Ok(()), over(3), over(3)]);
    server.stop().await;
}
