//! How refusals read to a client (issue 12 item 3): every `pusher:error` has a code, no
//! message repeats its prefix, and a huge channel name is not echoed back whole. The full
//! table of refusals is `Refusal`'s (src/ws/refusal.rs, README "Errors").

mod common;

use common::TestServer;
use serde_json::{json, Value};

/// Every message in the frame: "Invalid message format: " at most once, and a code.
fn assert_well_formed(v: &Value) {
    let message = v["data"]["message"]
        .as_str()
        .or(v["data"]["error"].as_str())
        .unwrap_or_else(|| panic!("no message: {v}"));
    for prefix in [
        "Invalid message format:",
        "Invalid signature:",
        "Invalid sign-in:",
    ] {
        assert!(message.matches(prefix).count() <= 1, "{v}");
    }
}

#[tokio::test]
async fn a_subscribe_without_a_channel_has_a_code() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    c.send(json!({"event":"pusher:subscribe","data":{}})).await;
    let v = c.expect_next("pusher:error").await;
    assert_eq!(v["data"]["code"], 4200, "{v}");
    assert_eq!(
        v["data"]["message"],
        "Invalid message format: pusher:subscribe needs data.channel"
    );
    // The connection stays.
    c.subscribe("after").await;
}

#[tokio::test]
async fn messages_do_not_repeat_their_prefix() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let frames = [
        json!("not json"),
        json!({"event":"pusher:subscribe"}),
        json!({"event":"pusher:subscribe","data":"not json inside"}),
        json!({"event":"pusher:signin","data":{"auth":"app-key:bad","user_data":"{\"id\":\"1\"}"}}),
        json!({"event":"pusher:signin","data":{}}),
    ];
    for frame in frames {
        let text = match &frame {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        c.send_raw(tokio_tungstenite::tungstenite::Message::text(text))
            .await;
        let v = c.expect_next("pusher:error").await;
        assert!(v["data"]["code"].is_number(), "{v}");
        assert_well_formed(&v);
    }
}

#[tokio::test]
async fn a_10_kb_channel_name_is_not_echoed_whole() {
    let s = TestServer::start().await;
    let limit = s.app.max_channel_name_len;
    let mut c = s.client().await;
    let name = "a".repeat(10 * 1024);
    c.send(json!({"event":"pusher:subscribe","data":{"channel":name}}))
        .await;
    let v = c.expect_next("pusher:subscription_error").await;
    assert_eq!(v["data"]["type"], "InvalidChannel");
    assert_eq!(v["channel"].as_str().unwrap(), &name[..limit]);
    assert!(v.to_string().len() < 1024, "{v}");
    // A client event on such a channel: the same cut.
    c.send(json!({"event":"client-x","channel":format!("private-{name}"),"data":{}}))
        .await;
    let v = c.expect_next("pusher:error").await;
    assert_eq!(v["channel"].as_str().unwrap().len(), limit, "{v}");
}
