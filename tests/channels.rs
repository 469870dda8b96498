//! Subscriptions: public, private, encrypted and presence channels, with their auth checks,
//! name validation and presence membership rules; and client events.

mod common;

use common::*;
use rf_broadcast::testing;
use rf_broadcast::App;
use serde_json::{json, Value};
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(300);

#[tokio::test]
async fn public_subscribe_then_receive_published_event_verbatim() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let ok = c.subscribe("orders").await;
    assert_eq!(ok["channel"], "orders");
    assert_eq!(ok["data"], "{}");
    let (status, body) = s
        .http()
        .publish(
            &["orders"],
            r"App\Events\OrderShipped",
            r#"{"order":{"id":1}}"#,
        )
        .await;
    assert_eq!((status, body), (200, json!({})));
    let v = c.expect_next(r"App\Events\OrderShipped").await;
    assert_eq!(v["channel"], "orders");
    assert_eq!(v["data"], r#"{"order":{"id":1}}"#);
}

#[tokio::test]
async fn resubscribe_answers_again_and_unsubscribe_stops_delivery() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    c.subscribe("a").await;
    c.subscribe("a").await;
    assert_eq!(testing::subscription_count(&s.hub, "app-id", "a"), 1);
    c.send(json!({"event":"pusher:unsubscribe","data":{"channel":"a"}}))
        .await;
    c.send(json!({"event":"pusher:unsubscribe","data":{"channel":"never-joined"}}))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.http().publish(&["a"], "e", "{}").await;
    c.expect_silence(QUIET).await;
    assert_eq!(testing::subscription_count(&s.hub, "app-id", "a"), 0);
}

#[tokio::test]
async fn private_channel_needs_a_valid_signature() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    c.subscribe_private("private-orders.1").await;
    let cases = [
        json!({"channel":"private-x"}),
        json!({"channel":"private-x","auth":""}),
        json!({"channel":"private-x","auth":"no-colon"}),
        json!({"channel":"private-x","auth":format!("app-key:{}", "0".repeat(64))}),
        json!({"channel":"private-x","auth":c.auth_for("private-other", None)}),
        json!({"channel":"private-x","auth":c.auth_for("private-x", None).replace("app-key", "other-key")}),
        json!({"channel":"private-encrypted-x","auth":"app-key:bad"}),
    ];
    for data in cases {
        c.send(json!({"event":"pusher:subscribe","data":data}))
            .await;
        let v = c.expect_next("pusher:subscription_error").await;
        assert_eq!(v["data"]["type"], "AuthError", "{data}");
        assert_eq!(v["data"]["status"], 401);
        assert_eq!(v["channel"], data["channel"]);
    }
    // A signature made with another secret.
    let foreign = rf_broadcast::testing::auth::channel_auth(
        "app-key",
        "other-secret",
        &c.socket_id,
        "private-x",
        None,
    );
    c.send(json!({"event":"pusher:subscribe","data":{"channel":"private-x","auth":foreign}}))
        .await;
    c.expect_next("pusher:subscription_error").await;
    assert_eq!(
        testing::subscription_count(&s.hub, "app-id", "private-x"),
        0
    );
    // A signature for another socket does not work here.
    let mut other = s.client().await;
    let stolen = c.auth_for("private-y", None);
    other
        .send(json!({"event":"pusher:subscribe","data":{"channel":"private-y","auth":stolen}}))
        .await;
    other.expect_next("pusher:subscription_error").await;
    // The connection still works.
    c.subscribe_private("private-encrypted-x").await;
}

#[tokio::test]
async fn invalid_channel_names_are_refused() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    for name in ["bad:name", "has space", &"a".repeat(201), "#other", "é"] {
        c.send(json!({"event":"pusher:subscribe","data":{"channel":name}}))
            .await;
        let v = c.expect_next("pusher:subscription_error").await;
        assert_eq!(v["data"]["status"], 400, "{name}");
    }
    c.subscribe(&"a".repeat(200)).await;
}

#[tokio::test]
async fn presence_members_are_counted_per_user() {
    let s = TestServer::start().await;
    let ch = "presence-room.1";
    let mut ada = s.client().await;
    let p = ada.join(ch, "1", json!({"name":"Ada"})).await;
    assert_eq!(
        p,
        json!({"presence":{"ids":["1"],"hash":{"1":{"name":"Ada"}},"count":1}})
    );

    let mut bob = s.client().await;
    let p = bob.join(ch, "2", json!({"name":"Bob"})).await;
    assert_eq!(p["presence"]["count"], 2);
    assert_eq!(p["presence"]["hash"]["1"], json!({"name":"Ada"}));
    assert_eq!(p["presence"]["hash"]["2"], json!({"name":"Bob"}));
    let added = ada.expect_next("pusher_internal:member_added").await;
    assert_eq!(added["channel"], ch);
    let d: Value = serde_json::from_str(added["data"].as_str().unwrap()).unwrap();
    assert_eq!(d, json!({"user_id":"2","user_info":{"name":"Bob"}}));

    // Bob's second tab: no member_added, count unchanged.
    let mut bob2 = s.client().await;
    let p = bob2.join(ch, "2", json!({"name":"Bob"})).await;
    assert_eq!(p["presence"]["count"], 2);
    ada.expect_silence(QUIET).await;
    let (_, users) = s
        .http()
        .get(&format!("/apps/app-id/channels/{ch}/users"), &[])
        .await;
    assert_eq!(users, json!({"users":[{"id":"1"},{"id":"2"}]}));

    // First tab leaves (unsubscribe): no member_removed yet.
    bob.send(json!({"event":"pusher:unsubscribe","data":{"channel":ch}}))
        .await;
    ada.expect_silence(QUIET).await;
    // Last tab disconnects: member_removed, once.
    drop(bob2);
    let removed = ada.expect_next("pusher_internal:member_removed").await;
    let d: Value = serde_json::from_str(removed["data"].as_str().unwrap()).unwrap();
    assert_eq!(d, json!({"user_id":"2"}));
    ada.expect_silence(QUIET).await;
    assert_eq!(
        testing::presence_users(&s.hub, "app-id", ch),
        vec!["1".to_string()]
    );
}

#[tokio::test]
async fn numeric_and_string_user_ids_are_the_same_member() {
    let s = TestServer::start().await;
    let ch = "presence-ids";
    let mut a = s.client().await;
    let cd = r#"{"user_id":7,"user_info":{"n":1}}"#;
    let auth = a.auth_for(ch, Some(cd));
    a.send(json!({"event":"pusher:subscribe","data":{"channel":ch,"auth":auth,"channel_data":cd}}))
        .await;
    let v = a
        .expect_next("pusher_internal:subscription_succeeded")
        .await;
    assert!(v["data"].as_str().unwrap().contains(r#""ids":["7"]"#));
    let mut b = s.client().await;
    let p = b.join(ch, "7", json!({"n":2})).await;
    assert_eq!(p["presence"]["count"], 1);
    a.expect_silence(QUIET).await;
}

#[tokio::test]
async fn presence_signature_is_over_the_exact_channel_data_bytes() {
    let s = TestServer::start().await;
    let ch = "presence-exact";
    let mut c = s.client().await;
    // Python-style JSON with spaces and PHP-style escaped slash, signed as sent.
    let cd = r#"{"user_id": "42", "user_info": {"url": "http:\/\/x"}}"#;
    let auth = c.auth_for(ch, Some(cd));
    c.send(json!({"event":"pusher:subscribe","data":{"channel":ch,"auth":auth,"channel_data":cd}}))
        .await;
    let v = c
        .expect_next("pusher_internal:subscription_succeeded")
        .await;
    let p: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
    assert_eq!(p["presence"]["hash"]["42"]["url"], "http://x");
    // Same data re-serialised differently does not verify.
    let mut d = s.client().await;
    let auth = d.auth_for(ch, Some(cd));
    let other = r#"{"user_id":"42","user_info":{"url":"http://x"}}"#;
    d.send(
        json!({"event":"pusher:subscribe","data":{"channel":ch,"auth":auth,"channel_data":other}}),
    )
    .await;
    assert_eq!(
        d.expect_next("pusher:subscription_error").await["data"]["status"],
        401
    );
}

#[tokio::test]
async fn presence_limits_and_bad_channel_data() {
    let s = TestServer::with_app(App {
        max_presence_members: 2,
        max_presence_member_bytes: 200,
        ..app()
    })
    .await;
    let ch = "presence-small";
    let mut a = s.client().await;
    a.join(ch, "1", json!({})).await;
    let mut b = s.client().await;
    b.join(ch, "2", json!({})).await;
    // A third user: refused with LimitReached 4100; an existing user's new tab still fits.
    let mut c = s.client().await;
    let cd = json!({"user_id":"3"}).to_string();
    let auth = c.auth_for(ch, Some(&cd));
    c.send(json!({"event":"pusher:subscribe","data":{"channel":ch,"auth":auth,"channel_data":cd}}))
        .await;
    let v = c.expect_next("pusher:subscription_error").await;
    assert_eq!(v["data"]["type"], "LimitReached");
    assert_eq!(v["data"]["status"], 4100);
    c.join(ch, "1", json!({})).await;
    // Oversized channel_data.
    let big = json!({"user_id":"9","user_info":{"x":"y".repeat(300)}}).to_string();
    let auth = c.auth_for("presence-other", Some(&big));
    c.send(json!({"event":"pusher:subscribe","data":{"channel":"presence-other","auth":auth,"channel_data":big}}))
        .await;
    assert_eq!(
        c.expect_next("pusher:subscription_error").await["data"]["status"],
        4301
    );
    // channel_data without user_id, or not JSON: refused.
    for cd in [r#"{"user_info":{}}"#, "nope", r#"{"user_id":{"a":1}}"#] {
        let auth = c.auth_for("presence-other", Some(cd));
        c.send(json!({"event":"pusher:subscribe","data":{"channel":"presence-other","auth":auth,"channel_data":cd}}))
            .await;
        assert_eq!(
            c.expect_next("pusher:subscription_error").await["data"]["status"],
            400,
            "{cd}"
        );
    }
    // Presence without channel_data and not signed in: refused.
    let auth = c.auth_for("presence-other", None);
    c.send(json!({"event":"pusher:subscribe","data":{"channel":"presence-other","auth":auth}}))
        .await;
    assert_eq!(
        c.expect_next("pusher:subscription_error").await["data"]["status"],
        401
    );
}

// ---------------------------------------------------------------------------------------------
// Client events

#[tokio::test]
async fn client_events_reach_others_not_the_sender() {
    let s = TestServer::start().await;
    let ch = "private-chat";
    let mut a = s.client().await;
    let mut b = s.client().await;
    let mut outsider = s.client().await;
    a.subscribe_private(ch).await;
    b.subscribe_private(ch).await;
    outsider.subscribe_private("private-elsewhere").await;
    a.send(json!({"event":"client-typing","channel":ch,"data":{"name":"Ada"},"extra":"dropped"}))
        .await;
    let v = b.expect_next("client-typing").await;
    assert_eq!(
        v,
        json!({"event":"client-typing","channel":ch,"data":{"name":"Ada"}})
    );
    a.expect_silence(QUIET).await;
    outsider.expect_silence(Duration::from_millis(50)).await;
}

#[tokio::test]
async fn client_events_on_presence_carry_user_id() {
    let s = TestServer::start().await;
    let ch = "presence-chat";
    let mut a = s.client().await;
    let mut b = s.client().await;
    a.join(ch, "ada", json!({})).await;
    b.join(ch, "bob", json!({})).await;
    a.expect_next("pusher_internal:member_added").await;
    b.send(json!({"event":"client-wave","channel":ch,"data":"hi"}))
        .await;
    let v = a.expect_next("client-wave").await;
    assert_eq!(v["user_id"], "bob");
    assert_eq!(v["data"], "hi");
}

#[tokio::test]
async fn client_events_are_refused_where_not_allowed() {
    let s = TestServer::start().await;
    let mut a = s.client().await;
    a.subscribe("public-room").await;
    a.subscribe_private("private-encrypted-room").await;
    for ch in ["public-room", "private-encrypted-room"] {
        a.send(json!({"event":"client-x","channel":ch,"data":{}}))
            .await;
        let v = a.expect_next("pusher:error").await;
        assert_eq!(v["data"]["code"], 4301, "{ch}");
    }
    // Not subscribed.
    a.send(json!({"event":"client-x","channel":"private-not-joined","data":{}}))
        .await;
    assert_eq!(a.expect_next("pusher:error").await["data"]["code"], 4009);
    // No channel.
    a.send(json!({"event":"client-x","data":{}})).await;
    assert_eq!(a.expect_next("pusher:error").await["data"]["code"], 4301);
    // Too large.
    a.subscribe_private("private-big").await;
    a.send(json!({"event":"client-x","channel":"private-big","data":"z".repeat(11_000)}))
        .await;
    assert_eq!(a.expect_next("pusher:error").await["data"]["code"], 4301);
    // Other non-protocol events are refused without closing.
    a.send(json!({"event":"something-else","channel":"private-big","data":{}}))
        .await;
    a.expect_next("pusher:error").await;
    a.send(json!({"event":"pusher:ping","data":{}})).await;
    a.expect_next("pusher:pong").await;
}

#[tokio::test]
async fn client_events_disabled_for_the_app() {
    let s = TestServer::with_app(App {
        client_events: false,
        ..app()
    })
    .await;
    let mut a = s.client().await;
    a.subscribe_private("private-x").await;
    a.send(json!({"event":"client-x","channel":"private-x","data":{}}))
        .await;
    let v = a.expect_next("pusher:error").await;
    assert_eq!(v["data"]["code"], 4301);
    assert!(v["data"]["message"]
        .as_str()
        .unwrap()
        .contains("not have client messaging"));
}

#[tokio::test]
async fn client_event_rate_limit_drops_the_excess_with_4301() {
    let s = TestServer::start().await; // 10 per second
    let ch = "private-rate";
    let mut a = s.client().await;
    let mut b = s.client().await;
    a.subscribe_private(ch).await;
    b.subscribe_private(ch).await;
    for i in 0..15 {
        a.send(json!({"event":"client-n","channel":ch,"data":{"i":i}}))
            .await;
    }
    let mut errors = 0;
    while let Some(v) = a.next(QUIET).await {
        assert_eq!(v["data"]["code"], 4301);
        assert_eq!(
            v["data"]["message"],
            "Client event rejected due to rate limit"
        );
        errors += 1;
    }
    let mut got = 0;
    while b.next(QUIET).await.is_some() {
        got += 1;
    }
    assert_eq!((got, errors), (10, 5));
    // After a second the bucket has refilled.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    a.send(json!({"event":"client-n","channel":ch,"data":{}}))
        .await;
    b.expect_next("client-n").await;
}

/// Every refusal the client is told about reaches the hub's observers with its reason (the
/// string that should have been signed, never the secret).
#[tokio::test]
async fn observers_hear_refused_subscriptions_with_the_reason() {
    let s = TestServer::start().await;
    let mut events = s.hub.observe(64);
    let mut c = s.client().await;
    c.send(json!({"event":"pusher:subscribe","data":{"channel":"private-x","auth":"app-key:00"}}))
        .await;
    c.expect_event("pusher:subscription_error").await;
    let reason = loop {
        match tokio::time::timeout(std::time::Duration::from_secs(5), events.events.recv())
            .await
            .expect("no refusal event")
            .unwrap()
        {
            rf_broadcast::HubEvent::SubscriptionRefused {
                channel, reason, ..
            } => {
                assert_eq!(&*channel, "private-x");
                break reason;
            }
            _ => continue,
        }
    };
    assert!(reason.contains("Invalid signature"), "{reason}");
    assert!(reason.contains(&c.socket_id), "{reason}");
    assert!(!reason.contains(&s.app.secret), "{reason}");
}
