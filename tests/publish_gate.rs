//! One publish gate: the app's limits bind the library's `Broadcaster::broadcast`, the HTTP
//! API and the development `/demo/publish` alike. A refused event reaches nobody.

mod common;

use common::{TestServer, WAIT};
use rf_broadcast::{
    App, BroadcastError, Broadcaster, Channel, MemoryBroadcaster, ServerOptions, SimpleEvent,
};
use serde_json::json;
use std::time::Duration;

fn small_app() -> App {
    App {
        max_event_bytes: 32,
        max_channels_per_event: 2,
        max_event_name_len: 20,
        ..common::app()
    }
}

#[tokio::test]
async fn the_library_refuses_what_the_app_does_not_allow() {
    let broadcaster = MemoryBroadcaster::new(vec![small_app()]);
    let server = TestServer::from_hub(
        broadcaster.hub().clone(),
        small_app(),
        ServerOptions::default(),
    )
    .await;
    let mut c = server.client().await;
    c.subscribe("news").await;

    let big = SimpleEvent::new("e", json!({ "text": "x".repeat(40) })).on(Channel::public("news"));
    assert!(matches!(
        broadcaster.broadcast(&big),
        Err(BroadcastError::EventTooLarge { max: 32, .. })
    ));
    let wide = SimpleEvent::new("e", json!({}))
        .on(Channel::public("news"))
        .on(Channel::public("a"))
        .on(Channel::public("b"));
    assert_eq!(
        broadcaster.broadcast(&wide),
        Err(BroadcastError::TooManyChannels { count: 3, max: 2 })
    );
    let encrypted = SimpleEvent::new("e", json!({}))
        .on(Channel::named("private-encrypted-x"))
        .on(Channel::public("news"));
    assert_eq!(
        broadcaster.broadcast(&encrypted),
        Err(BroadcastError::EncryptedChannelNotAlone)
    );
    let long_name = SimpleEvent::new("e".repeat(21), json!({})).on(Channel::public("news"));
    assert_eq!(
        broadcaster.broadcast(&long_name),
        Err(BroadcastError::InvalidEventName { max: 20 })
    );
    let bad_channel = SimpleEvent::new("e", json!({})).on(Channel::public("a b"));
    assert!(matches!(
        broadcaster.broadcast(&bad_channel),
        Err(BroadcastError::InvalidChannel(c, _)) if c == "a b"
    ));
    c.expect_silence(Duration::from_millis(200)).await;

    // Within the limits it goes out, once per channel even when named twice.
    let ok = SimpleEvent::new("e", json!({ "n": 1 }))
        .on(Channel::public("news"))
        .on(Channel::public("news"));
    broadcaster.broadcast(&ok).unwrap();
    let ev = c.expect_next("e").await;
    assert_eq!(ev["data"], r#"{"n":1}"#);
    c.expect_silence(Duration::from_millis(200)).await;
    server.stop().await;
}

#[tokio::test]
async fn the_http_api_and_dev_publish_apply_the_same_limits() {
    let options = ServerOptions {
        dev_auth: true,
        ..ServerOptions::default()
    };
    let server = TestServer::with(vec![small_app()], Default::default(), options).await;
    let mut c = server.client().await;
    c.subscribe("news").await;
    let api = server.http();
    let big = "x".repeat(33);

    let (status, body) = api
        .post(
            "/apps/app-id/events",
            &json!({"name":"e","channel":"news","data":big}),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    let (status, _) = api
        .post(
            "/apps/app-id/events",
            &json!({"name":"e","channels":["news","a","b"],"data":"{}"}),
        )
        .await;
    assert_eq!(status, 400);
    let (status, body) = api
        .post(
            "/apps/app-id/events",
            &json!({"name":"e","channel":"news","data":"{}","socket_id":"nope"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "Invalid socket_id 'nope'");

    let demo = |body: serde_json::Value| {
        let url = format!("http://{}/demo/publish", server.addr);
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, body) = demo(json!({"channel":"news","event":"e","data":big})).await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("at most 32 bytes"),
        "{body}"
    );
    let (status, _) = demo(json!({"channel":"news","event":"e".repeat(21)})).await;
    assert_eq!(status, 400);
    c.expect_silence(Duration::from_millis(200)).await;

    let (status, _) = demo(json!({"channel":"news","event":"e","data":"hi"})).await;
    assert_eq!(status, 200);
    let ev = tokio::time::timeout(WAIT, c.expect_next("e"))
        .await
        .unwrap();
    assert_eq!(ev["data"], "hi");
    server.stop().await;
}

#[tokio::test]
async fn terminate_takes_the_user_id_limit_from_the_app() {
    let app = App {
        max_user_id_len: 8,
        ..common::app()
    };
    let server = TestServer::with_app(app).await;
    let api = server.http();
    let (status, _) = api
        .post(
            "/apps/app-id/users/12345678/terminate_connections",
            &json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = api
        .post(
            "/apps/app-id/users/123456789/terminate_connections",
            &json!({}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    server.stop().await;
}
