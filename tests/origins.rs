//! Allowed origins: an app that names its origins refuses a WebSocket upgrade from any other
//! `Origin` with `pusher:error` 4009 and close 4009; an allowed origin connects as usual.

mod common;

use common::{Client, TestServer};
use rf_broadcast::App;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

async fn connect_from(server: &TestServer, origin: Option<&str>) -> Client {
    let mut req = server.ws_url("app-key").into_client_request().unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    Client {
        ws,
        socket_id: String::new(),
        key: "app-key".into(),
        secret: "app-secret".into(),
    }
}

async fn expect_refused(c: &mut Client) {
    let err = c.expect_next("pusher:error").await;
    let data: Value = match &err["data"] {
        Value::String(s) => serde_json::from_str(s).unwrap(),
        v => v.clone(),
    };
    assert_eq!(data["code"], 4009, "{err}");
    assert_eq!(data["message"], "Origin not allowed");
    c.expect_close_code(4009).await;
}

#[tokio::test]
async fn other_origins_are_refused_with_4009() {
    let app = App {
        allowed_origins: vec!["https://*.example.com".into(), "localhost".into()],
        ..common::app()
    };
    let server = TestServer::with_app(app).await;

    let mut ok = connect_from(&server, Some("https://app.example.com")).await;
    ok.expect_next("pusher:connection_established").await;
    let mut local = connect_from(&server, Some("http://localhost:5173")).await;
    local.expect_next("pusher:connection_established").await;

    for origin in [
        Some("https://evil.test"),
        Some("https://example.com.evil.test"),
        Some("http://app.example.com"),
        None,
    ] {
        let mut c = connect_from(&server, origin).await;
        expect_refused(&mut c).await;
    }
    let live = rf_broadcast::MemoryBroadcaster::from_hub(server.hub.clone());
    assert_eq!(rf_broadcast::Broadcaster::connections(&live), 2);
    server.stop().await;
}

#[tokio::test]
async fn any_origin_is_allowed_by_default() {
    let server = TestServer::start().await;
    for origin in [Some("https://anything.test"), None] {
        let mut c = connect_from(&server, origin).await;
        c.expect_next("pusher:connection_established").await;
    }
    server.stop().await;
}
