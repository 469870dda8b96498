//! `rf_broadcast_refusals_total` counts what is refused before a connection exists, each with
//! its fixed `reason`: sockets closed at accept by the per-IP and pending-handshake caps
//! (`app="unknown"`), and handshakes refused with a Pusher error: unknown key (4001), disabled
//! app (4003), over quota (4004), unsupported protocol (4007), origin (4009), over the app's
//! connection rate (4100). Read from the same text Prometheus scrapes.

mod common;

use common::*;
use rf_broadcast::cli::Metrics;
use rf_broadcast::{App, AppState, Apps, Hub, HubSettings, ServerOptions};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A server with metrics on; the metrics to read.
async fn server_with_metrics(apps: Vec<App>, options: ServerOptions) -> (TestServer, Arc<Metrics>) {
    let metrics = Metrics::new();
    let first = apps[0].clone();
    let hub = Hub::new(Apps::new(apps), HubSettings::default());
    let state = AppState::new(hub, options).with_metrics(&metrics);
    (TestServer::from_state(state, first).await, metrics)
}

/// The value of `rf_broadcast_refusals_total{app, reason}` (0 when the series is absent).
fn refusals(metrics: &Metrics, app: &str, reason: &str) -> u64 {
    let series = format!(r#"rf_broadcast_refusals_total{{app="{app}",reason="{reason}"}} "#);
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&series).map(|v| v.parse().unwrap()))
        .unwrap_or(0)
}

/// Connect with `key` (and `origin`, `protocol`) and expect a `pusher:error` with `code`.
async fn refused_with(
    server: &TestServer,
    key: &str,
    query: &str,
    origin: Option<&str>,
    code: u16,
) {
    let url = format!("ws://{}/app/{key}?{query}", server.addr);
    let mut req = url.into_client_request().unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut c = Client {
        ws,
        socket_id: String::new(),
        key: key.into(),
        secret: String::new(),
    };
    let err = c.expect_next("pusher:error").await;
    assert_eq!(err["data"]["code"], code, "{err}");
    c.expect_close_code(code).await;
}

#[tokio::test]
async fn refused_handshakes_are_counted_by_reason() {
    let apps = vec![
        App {
            max_connections: Some(1),
            allowed_origins: vec!["https://ok.example".into()],
            ..app()
        },
        App {
            enabled: false,
            ..App::new("off", "off-key", "s")
        },
    ];
    let (server, metrics) = server_with_metrics(apps, ServerOptions::default()).await;
    let ok = "https://ok.example";
    for (reason, app) in [
        ("app_not_found", "unknown"),
        ("app_disabled", "off"),
        ("over_connection_quota", "app-id"),
        ("origin", "app-id"),
        ("unsupported_protocol", "app-id"),
    ] {
        assert_eq!(refusals(&metrics, app, reason), 0, "{reason}");
    }
    refused_with(&server, "nope", "protocol=7", Some(ok), 4001).await;
    refused_with(&server, "off-key", "protocol=7", Some(ok), 4003).await;
    refused_with(
        &server,
        "app-key",
        "protocol=7",
        Some("https://evil.test"),
        4009,
    )
    .await;
    refused_with(&server, "app-key", "protocol=3", Some(ok), 4007).await;
    // The one connection the quota allows, then one over it.
    let url = format!("ws://{}/app/app-key?protocol=7", server.addr);
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("origin", ok.parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut first = Client {
        ws,
        socket_id: String::new(),
        key: "app-key".into(),
        secret: "app-secret".into(),
    };
    first.expect_next("pusher:connection_established").await;
    refused_with(&server, "app-key", "protocol=7", Some(ok), 4004).await;

    assert_eq!(refusals(&metrics, "unknown", "app_not_found"), 1);
    assert_eq!(refusals(&metrics, "off", "app_disabled"), 1);
    assert_eq!(refusals(&metrics, "app-id", "origin"), 1);
    assert_eq!(refusals(&metrics, "app-id", "unsupported_protocol"), 1);
    assert_eq!(refusals(&metrics, "app-id", "over_connection_quota"), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_connection_over_the_connection_rate_is_counted() {
    let app = App {
        connection_rate_per_ip: Some(1),
        ..app()
    };
    let (server, metrics) = server_with_metrics(vec![app], ServerOptions::default()).await;
    let url = format!("ws://{}/app/app-key?protocol=7", server.addr);
    // Three in a row: at least one is over a rate of 1 per second, whichever way a second
    // boundary falls.
    let mut refused = 0;
    for _ in 0..3 {
        let mut c = Client::connect(&url).await;
        let first = c.next(WAIT).await.unwrap();
        if first["event"] == "pusher:error" {
            assert_eq!(first["data"]["code"], 4100, "{first}");
            refused += 1;
        }
    }
    assert!(refused >= 1);
    assert_eq!(refusals(&metrics, "app-id", "connection_rate"), refused);
    server.stop().await;
}

/// Wait until the server closes `tcp`.
async fn closed(tcp: &mut TcpStream) {
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(WAIT, tcp.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the socket was not closed: {read:?}"
    );
}

#[tokio::test]
async fn sockets_refused_at_accept_are_counted() {
    let options = ServerOptions {
        max_connections_per_ip: 1,
        ..ServerOptions::default()
    };
    let (server, metrics) = server_with_metrics(vec![app()], options).await;
    let _held = TcpStream::connect(server.addr).await.unwrap();
    let mut over = TcpStream::connect(server.addr).await.unwrap();
    closed(&mut over).await;
    assert_eq!(refusals(&metrics, "unknown", "max_connections_per_ip"), 1);
    server.stop().await;

    let options = ServerOptions {
        max_pending_handshakes: 1,
        ..ServerOptions::default()
    };
    let (server, metrics) = server_with_metrics(vec![app()], options).await;
    let _idle = TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut over = TcpStream::connect(server.addr).await.unwrap();
    closed(&mut over).await;
    assert_eq!(refusals(&metrics, "unknown", "max_pending_handshakes"), 1);
    assert_eq!(refusals(&metrics, "unknown", "max_connections_per_ip"), 0);
    server.stop().await;
}
