//! User sign-in, server-to-user events, watchlist, terminate_connections, cache channels and
//! subscription counts.

mod common;

use common::*;
use rf_broadcast::testing::auth;
use rf_broadcast::App;
use serde_json::{json, Value};
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(300);

#[tokio::test]
async fn signin_then_server_to_user_events_reach_every_connection_of_the_user() {
    let s = TestServer::start().await;
    let mut a = s.client().await;
    let mut a2 = s.client().await;
    let mut other = s.client().await;
    let ud = r#"{"id":"12345","user_info":{"name":"Ada"}}"#;
    let ok = a.signin(ud).await;
    assert_eq!(ok["data"]["user_data"], ud);
    a2.signin(ud).await;
    other.signin(r#"{"id":"999"}"#).await;
    // pusher-js subscribes to its own #server-to-user- channel: allowed for itself only.
    a.subscribe("#server-to-user-12345").await;
    other
        .send(json!({"event":"pusher:subscribe","data":{"channel":"#server-to-user-12345","auth":""}}))
        .await;
    assert_eq!(
        other.expect_next("pusher:subscription_error").await["data"]["status"],
        401
    );
    let (status, _) = s
        .http()
        .publish(&["#server-to-user-12345"], "note", "{}")
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        a.expect_next("note").await["channel"],
        "#server-to-user-12345"
    );
    a2.expect_next("note").await;
    other.expect_silence(QUIET).await;
}

#[tokio::test]
async fn bad_signin_is_an_error_and_the_connection_stays() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let ud = r#"{"id":"1"}"#;
    c.send(json!({"event":"pusher:signin","data":{"auth":"app-key:bad","user_data":ud}}))
        .await;
    assert_eq!(c.expect_next("pusher:error").await["data"]["code"], 4009);
    // Replayed from another socket.
    let mut other = s.client().await;
    let stolen = auth::user_auth("app-key", "app-secret", &other.socket_id, ud);
    c.send(json!({"event":"pusher:signin","data":{"auth":stolen,"user_data":ud}}))
        .await;
    assert_eq!(c.expect_next("pusher:error").await["data"]["code"], 4009);
    // Validly signed but unusable user_data.
    for bad in [
        r#"{"id":7}"#,
        r#"{"name":"x"}"#,
        "nope",
        &format!(r#"{{"id":"{}"}}"#, "u".repeat(20_000)),
    ] {
        let a = auth::user_auth("app-key", "app-secret", &c.socket_id, bad);
        c.send(json!({"event":"pusher:signin","data":{"auth":a,"user_data":bad}}))
            .await;
        let v = c.next(WAIT).await;
        match v {
            Some(v) => assert_eq!(v["event"], "pusher:error", "{v}"),
            None => panic!("no answer to bad user_data"),
        }
    }
    // Signing in as someone else after a sign-in fails.
    c.signin(ud).await;
    let a = auth::user_auth("app-key", "app-secret", &c.socket_id, r#"{"id":"2"}"#);
    c.send(json!({"event":"pusher:signin","data":{"auth":a,"user_data":r#"{"id":"2"}"#}}))
        .await;
    assert_eq!(c.expect_next("pusher:error").await["data"]["code"], 4009);
    other.signin(r#"{"id":"3"}"#).await;
}

#[tokio::test]
async fn presence_join_with_signed_in_identity() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    c.signin(r#"{"id":"77","user_info":{"name":"Signed"}}"#)
        .await;
    let auth = c.auth_for("presence-si", None);
    c.send(json!({"event":"pusher:subscribe","data":{"channel":"presence-si","auth":auth}}))
        .await;
    let v = c
        .expect_next("pusher_internal:subscription_succeeded")
        .await;
    let p: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
    assert_eq!(p["presence"]["hash"]["77"], json!({"name":"Signed"}));
}

#[tokio::test]
async fn terminate_connections_closes_every_connection_of_the_user_with_4009() {
    let s = TestServer::start().await;
    let mut a = s.client().await;
    let mut a2 = s.client().await;
    let mut b = s.client().await;
    a.signin(r#"{"id":"42"}"#).await;
    a2.signin(r#"{"id":"42"}"#).await;
    b.signin(r#"{"id":"43"}"#).await;
    let (status, v) = s
        .http()
        .post("/apps/app-id/users/42/terminate_connections", &json!({}))
        .await;
    assert_eq!((status, v), (200, json!({})));
    for c in [&mut a, &mut a2] {
        assert_eq!(c.expect_next("pusher:error").await["data"]["code"], 4009);
        c.expect_close_code(4009).await;
    }
    b.send(json!({"event":"pusher:ping","data":{}})).await;
    b.expect_next("pusher:pong").await;
    // The python SDK's short path works too.
    let path = "/users/43/terminate_connections";
    let q = signed_post("app-key", "app-secret", path, b"{}");
    assert_eq!(s.http().post_query(path, &q, b"{}").await.0, 200);
    b.expect_close_code(4009).await;
}

#[tokio::test]
async fn watchlist_reports_online_and_offline() {
    let s = TestServer::start().await;
    let mut friend = s.client().await;
    friend.signin(r#"{"id":"f1"}"#).await;
    let mut watcher = s.client().await;
    watcher
        .signin(r#"{"id":"w","watchlist":["f1","f2"]}"#)
        .await;
    let v = watcher
        .expect_next("pusher_internal:watchlist_events")
        .await;
    let d: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
    assert_eq!(
        d,
        json!({"events":[{"name":"online","user_ids":["f1"]},{"name":"offline","user_ids":["f2"]}]})
    );
    let mut f2 = s.client().await;
    f2.signin(r#"{"id":"f2"}"#).await;
    let v = watcher
        .expect_next("pusher_internal:watchlist_events")
        .await;
    assert!(v["data"]
        .as_str()
        .unwrap()
        .contains(r#"{"name":"online","user_ids":["f2"]}"#));
    drop(friend);
    let v = watcher
        .expect_next("pusher_internal:watchlist_events")
        .await;
    assert!(v["data"]
        .as_str()
        .unwrap()
        .contains(r#"{"name":"offline","user_ids":["f1"]}"#));
}

#[tokio::test]
async fn watchlist_over_the_limit_gets_4302() {
    let s = TestServer::with_app(App {
        max_watchlist: 2,
        ..app()
    })
    .await;
    let mut c = s.client().await;
    c.signin(r#"{"id":"w","watchlist":["a","b","c"]}"#).await;
    let v = c.expect_event("pusher:error").await;
    assert_eq!(v["data"]["code"], 4302);
}

#[tokio::test]
async fn cache_channels_replay_the_last_event_or_say_cache_miss() {
    let s = TestServer::start().await;
    let mut early = s.client().await;
    early.subscribe("cache-ticker").await;
    assert_eq!(
        early.expect_next("pusher:cache_miss").await["channel"],
        "cache-ticker"
    );
    s.http()
        .publish(&["cache-ticker"], "price", r#"{"p":1}"#)
        .await;
    s.http()
        .publish(&["cache-ticker"], "price", r#"{"p":2}"#)
        .await;
    early.expect_next("price").await;
    early.expect_next("price").await;
    let mut late = s.client().await;
    late.subscribe("cache-ticker").await;
    let v = late.expect_next("price").await;
    assert_eq!(v["data"], r#"{"p":2}"#);
    // Cached even with nobody subscribed.
    s.http().publish(&["private-cache-x"], "e", "7").await;
    let mut p = s.client().await;
    p.subscribe_private("private-cache-x").await;
    assert_eq!(p.expect_next("e").await["data"], "7");
    let (_, v) = s
        .http()
        .get("/apps/app-id/channels/cache-ticker", &[("info", "cache")])
        .await;
    assert_eq!(v["cache"]["data"], r#"{"p":2}"#);
    assert!(v["cache"]["ttl"].as_u64().unwrap() > 1700);
    // Client events are not cached.
    let mut q = s.client().await;
    q.subscribe_private("private-cache-y").await;
    q.expect_next("pusher:cache_miss").await;
    q.send(json!({"event":"client-x","channel":"private-cache-y","data":{}}))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut r = s.client().await;
    r.subscribe_private("private-cache-y").await;
    r.expect_next("pusher:cache_miss").await;
}

#[tokio::test]
async fn cache_expires_after_ttl() {
    let s = TestServer::with_app(App {
        cache_ttl: 1,
        ..app()
    })
    .await;
    s.http().publish(&["cache-short"], "e", "{}").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut c = s.client().await;
    c.subscribe("cache-short").await;
    c.expect_next("pusher:cache_miss").await;
}

#[tokio::test]
async fn subscription_count_is_sent_when_enabled() {
    let s = TestServer::with_app(App {
        subscription_count: true,
        ..app()
    })
    .await;
    let mut a = s.client().await;
    a.subscribe("counted").await;
    let v = a.expect_next("pusher_internal:subscription_count").await;
    assert_eq!(v["data"], r#"{"subscription_count":1}"#);
    let mut b = s.client().await;
    b.subscribe("counted").await;
    let v = a.expect_next("pusher_internal:subscription_count").await;
    assert_eq!(v["data"], r#"{"subscription_count":2}"#);
    b.expect_next("pusher_internal:subscription_count").await;
    drop(b);
    let v = a.expect_next("pusher_internal:subscription_count").await;
    assert_eq!(v["data"], r#"{"subscription_count":1}"#);
    // Not on presence channels.
    a.join("presence-nocount", "1", json!({})).await;
    a.expect_silence(QUIET).await;
}

#[tokio::test]
async fn subscription_count_is_off_by_default() {
    let s = TestServer::start().await;
    let mut a = s.client().await;
    a.subscribe("plain").await;
    a.expect_silence(QUIET).await;
}
