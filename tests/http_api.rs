//! The HTTP API over real HTTP: publish, batch, signature checks, limits, queries, info.

mod common;

use common::*;
use rf_broadcast::testing::auth;
use rf_broadcast::App;
use serde_json::json;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(300);

#[tokio::test]
async fn publish_to_many_channels_with_socket_id_exclusion() {
    let s = TestServer::start().await;
    let mut a = s.client().await;
    let mut b = s.client().await;
    a.subscribe("one").await;
    b.subscribe("one").await;
    b.subscribe("two").await;
    let (status, body) = s
        .http()
        .post(
            "/apps/app-id/events",
            &json!({"name":"e","channels":["one","two"],"data":"{}","socket_id":a.socket_id}),
        )
        .await;
    assert_eq!((status, body), (200, json!({})));
    let mut got: Vec<String> = Vec::new();
    for _ in 0..2 {
        got.push(b.expect_next("e").await["channel"].as_str().unwrap().into());
    }
    got.sort();
    assert_eq!(got, ["one", "two"]);
    a.expect_silence(QUIET).await;
}

#[tokio::test]
async fn single_channel_key_and_object_data_are_accepted() {
    let s = TestServer::start().await;
    let mut a = s.client().await;
    a.subscribe("solo").await;
    let (status, _) = s
        .http()
        .post(
            "/apps/app-id/events",
            &json!({"name":"e","channel":"solo","data":{"k":1}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(a.expect_next("e").await["data"], r#"{"k":1}"#);
    // A channel named twice gets the event once.
    let (status, _) = s
        .http()
        .post(
            "/apps/app-id/events",
            &json!({"name":"twice","channels":["solo","solo"],"data":"{}"}),
        )
        .await;
    assert_eq!(status, 200);
    a.expect_next("twice").await;
    a.expect_silence(QUIET).await;
}

#[tokio::test]
async fn batch_events_deliver_in_order_and_are_validated_first() {
    let s = TestServer::start().await;
    let mut a = s.client().await;
    a.subscribe("b1").await;
    let batch: Vec<_> = (0..10)
        .map(|i| json!({"name":format!("e{i}"),"channel":"b1","data":"{}"}))
        .collect();
    let (status, body) = s
        .http()
        .post("/apps/app-id/batch_events", &json!({ "batch": batch }))
        .await;
    assert_eq!((status, body), (200, json!({})));
    for i in 0..10 {
        a.expect_next(&format!("e{i}")).await;
    }
    // 11 events: 400, nothing sent.
    let batch: Vec<_> = (0..11)
        .map(|_| json!({"name":"x","channel":"b1","data":"{}"}))
        .collect();
    let (status, _) = s
        .http()
        .post("/apps/app-id/batch_events", &json!({ "batch": batch }))
        .await;
    assert_eq!(status, 400);
    // One bad item: 400, the good one is not sent either.
    let (status, _) = s
        .http()
        .post(
            "/apps/app-id/batch_events",
            &json!({"batch":[{"name":"ok","channel":"b1","data":"{}"},{"name":"bad","channel":"b:1","data":"{}"}]}),
        )
        .await;
    assert_eq!(status, 400);
    a.expect_silence(QUIET).await;
}

#[tokio::test]
async fn signature_failures_are_401_and_unknown_app_404() {
    let s = TestServer::start().await;
    let api = s.http();
    let body = br#"{"name":"e","channel":"c","data":"{}"}"#;
    let (status, v) = api
        .post_raw("/apps/app-id/events", body, "wrong-secret", now())
        .await;
    assert_eq!(status, 401);
    assert!(v["error"].as_str().unwrap().contains("Invalid signature"));
    let (status, v) = api
        .post_raw("/apps/app-id/events", body, "app-secret", now() - 700)
        .await;
    assert_eq!(status, 401);
    assert!(v["error"]
        .as_str()
        .unwrap()
        .starts_with("Timestamp expired"));
    // Body changed after signing.
    let events = "/apps/app-id/events";
    let q = signed_post("app-key", "app-secret", events, body);
    let tampered = br#"{"name":"e","channel":"c","data":"{\"x\":1}"}"#;
    assert_eq!(api.post_query(events, &q, tampered).await.0, 401);
    // Wrong key, no signature at all.
    let q = signed_post("other-key", "app-secret", events, body);
    assert_eq!(api.post_query(events, &q, body).await.0, 401);
    assert_eq!(api.post_query(events, "", body).await.0, 401);
    let (status, _) = api.post("/apps/nope/events", &json!({})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn malformed_and_oversized_requests() {
    let s = TestServer::start().await;
    let api = s.http();
    let p = "/apps/app-id/events";
    for body in [
        json!({"channels":["a"],"data":"{}"}),
        json!({"name":"e","data":"{}"}),
        json!({"name":"e","channels":["a"]}),
        json!({"name":"e","channels":[],"data":"{}"}),
        json!({"name":"e","channels":["bad name"],"data":"{}"}),
        json!({"name":"","channels":["a"],"data":"{}"}),
        json!({"name":"x".repeat(201),"channels":["a"],"data":"{}"}),
        json!({"name":"e","channels":["a"],"data":"{}","socket_id":"nope"}),
        json!({"name":"e","channels":["private-encrypted-a","b"],"data":"{}"}),
        json!({"name":"e","channels":(0..101).map(|i| format!("c{i}")).collect::<Vec<_>>(),"data":"{}"}),
    ] {
        let (status, v) = api.post(p, &body).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert!(v["error"].is_string());
    }
    let (status, _) = api.post_raw(p, b"{not json", "app-secret", now()).await;
    assert_eq!(status, 400);
    let (status, _) = api
        .post(
            p,
            &json!({"name":"e","channels":["a"],"data":"x".repeat(10_241)}),
        )
        .await;
    assert_eq!(status, 413);
    let (status, _) = api
        .post(
            p,
            &json!({"name":"e","channels":["a"],"data":"x".repeat(10_240)}),
        )
        .await;
    assert_eq!(status, 200);
    // A request body over the server's limit: 413 before anything is parsed.
    let huge = vec![b'x'; 2 * 1024 * 1024];
    let (status, _) = api.post_raw(p, &huge, "app-secret", now()).await;
    assert_eq!(status, 413);
}

#[tokio::test]
async fn events_info_returns_counts() {
    let s = TestServer::start().await;
    let mut a = s.client().await;
    a.subscribe("counted").await;
    a.join("presence-p", "u1", json!({})).await;
    let (status, v) = s
        .http()
        .post(
            "/apps/app-id/events",
            &json!({"name":"e","channels":["counted","presence-p"],"data":"{}","info":"subscription_count,user_count"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        v,
        json!({"channels":{"counted":{"subscription_count":1},"presence-p":{"subscription_count":1,"user_count":1}}})
    );
    let (_, v) = s
        .http()
        .post(
            "/apps/app-id/batch_events",
            &json!({"batch":[{"name":"e","channel":"counted","data":"{}","info":"subscription_count"},{"name":"e","channel":"empty","data":"{}"}]}),
        )
        .await;
    assert_eq!(v, json!({"batch":[{"subscription_count":1},{}]}));
}

#[tokio::test]
async fn channel_queries() {
    let s = TestServer::start().await;
    let api = s.http();
    let (status, v) = api.get("/apps/app-id/channels", &[]).await;
    assert_eq!((status, v), (200, json!({"channels":{}})));
    let mut a = s.client().await;
    let mut b = s.client().await;
    a.subscribe("news").await;
    b.subscribe("news").await;
    a.join("presence-lobby", "1", json!({})).await;
    b.join("presence-lobby", "2", json!({})).await;
    let (_, v) = api.get("/apps/app-id/channels", &[]).await;
    assert_eq!(v, json!({"channels":{"news":{},"presence-lobby":{}}}));
    let (_, v) = api
        .get(
            "/apps/app-id/channels",
            &[("filter_by_prefix", "presence-"), ("info", "user_count")],
        )
        .await;
    assert_eq!(v, json!({"channels":{"presence-lobby":{"user_count":2}}}));
    let (status, _) = api
        .get("/apps/app-id/channels", &[("info", "user_count")])
        .await;
    assert_eq!(status, 400);
    let (_, v) = api
        .get(
            "/apps/app-id/channels/news",
            &[("info", "subscription_count")],
        )
        .await;
    assert_eq!(v, json!({"occupied":true,"subscription_count":2}));
    let (_, v) = api
        .get(
            "/apps/app-id/channels/presence-lobby",
            &[("info", "subscription_count,user_count")],
        )
        .await;
    assert_eq!(
        v,
        json!({"occupied":true,"subscription_count":2,"user_count":2})
    );
    let (_, v) = api.get("/apps/app-id/channels/empty", &[]).await;
    assert_eq!(v, json!({"occupied":false}));
    let (status, _) = api
        .get("/apps/app-id/channels/news", &[("info", "user_count")])
        .await;
    assert_eq!(status, 400);
    let (status, _) = api.get("/apps/app-id/channels/news/users", &[]).await;
    assert_eq!(status, 400);
    let (status, _) = api.get("/apps/app-id/channels/bad:name", &[]).await;
    assert_eq!(status, 400);
    // python SDK style: body_md5 of the empty body on GET, info percent-encoded.
    let q = auth::sign_http_request(
        "app-key",
        "app-secret",
        "GET",
        "/apps/app-id/channels/presence-lobby/users",
        b"",
        now(),
        &[("body_md5", "d41d8cd98f00b204e9800998ecf8427e")],
    );
    let (status, v) = api
        .get_query("/apps/app-id/channels/presence-lobby/users", &q)
        .await;
    assert_eq!((status, v), (200, json!({"users":[{"id":"1"},{"id":"2"}]})));
    // Unoccupied presence channel: empty list.
    let (_, v) = api
        .get("/apps/app-id/channels/presence-none/users", &[])
        .await;
    assert_eq!(v, json!({"users":[]}));
}

#[tokio::test]
async fn keep_alive_is_honoured() {
    let s = TestServer::start().await;
    let api = s.http();
    for _ in 0..3 {
        let r = api
            .http
            .get(format!("{}/up", api.base))
            .send()
            .await
            .unwrap();
        assert!(r.headers().get("connection").is_none_or(|v| v != "close"));
    }
}

#[tokio::test]
async fn disabled_app_api_is_forbidden() {
    let s = TestServer::with_app(App {
        enabled: false,
        ..app()
    })
    .await;
    let (status, _) = s.http().publish(&["a"], "e", "{}").await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn path_prefix_serves_websocket_and_api_under_it() {
    let s = TestServer::with(
        vec![app()],
        rf_broadcast::HubSettings::default(),
        rf_broadcast::ServerOptions {
            path_prefix: "/ws/".into(),
            ..Default::default()
        },
    )
    .await;
    let mut c = Client::established(
        &format!("ws://{}/ws/app/app-key?protocol=7", s.addr),
        "app-key",
        "app-secret",
    )
    .await;
    c.subscribe("prefixed").await;
    // The SDKs sign the path without the prefix (PHP `path` option, Reverb's server path).
    let body = br#"{"name":"e","channel":"prefixed","data":"{}"}"#;
    let q = signed_post("app-key", "app-secret", "/apps/app-id/events", body);
    let api = s.http();
    let (status, _) = api.post_query("/ws/apps/app-id/events", &q, body).await;
    assert_eq!(status, 200);
    c.expect_next("e").await;
    // Not served at the root.
    let r = api
        .http
        .get(format!("{}/up", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = api
        .http
        .get(format!("{}/ws/up", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Found by the `http_body` fuzz target: invalid UTF-8 inside a field the server ignores was
/// accepted (serde_json validates only the strings it keeps). A body must be UTF-8 JSON.
#[tokio::test]
async fn a_body_that_is_not_utf8_is_400_even_in_an_ignored_field() {
    let s = TestServer::start().await;
    let api = s.http();
    let mut body = br#"{"name":"e","channels":["news"],"data":"{}","x-ignored":""#.to_vec();
    body.extend_from_slice(&[0xa1, 0x9b]);
    body.extend_from_slice(br#""}"#);
    let (status, v) = api
        .post_raw("/apps/app-id/events", &body, "app-secret", now())
        .await;
    assert_eq!(status, 400, "{v}");
    let batch = [
        br#"{"batch":[{"name":"e","channel":"news","data":"{}","x":""#.as_slice(),
        &[0xff],
        br#""}]}"#,
    ]
    .concat();
    let (status, v) = api
        .post_raw("/apps/app-id/batch_events", &batch, "app-secret", now())
        .await;
    assert_eq!(status, 400, "{v}");
}
