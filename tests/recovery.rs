//! Missed-message recovery through the lineage path, from outside: a client whose TCP
//! connection dies without a Close frame comes back with the same lineage and gets every event
//! published meanwhile, in order, then live events; a clean close, another lineage or an
//! invalid lineage id get nothing.

mod common;

use common::{app, read_events, Client, TestServer};
use rf_broadcast::App;
use serde_json::{json, Value};
use std::time::Duration;

fn recovering_app() -> App {
    App {
        recovery_window: 30,
        ..app()
    }
}

fn lineage_url(s: &TestServer, lineage: &str) -> String {
    format!(
        "ws://{}/l/{lineage}/app/{}?protocol=7&client=js&version=8.4.0",
        s.addr, s.app.key
    )
}

async fn lineage_client(s: &TestServer, lineage: &str) -> Client {
    Client::established(&lineage_url(s, lineage), &s.app.key, &s.app.secret).await
}

fn data(v: &Value) -> Value {
    serde_json::from_str(v["data"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn a_dropped_client_gets_what_it_missed_in_order_then_live_events() {
    let s = TestServer::with_app(recovering_app()).await;
    let api = s.http();
    let lineage = "tab-0b6c2f9e-5d1a";
    let mut c1 = lineage_client(&s, lineage).await;
    let ok = c1.subscribe_private("private-feed").await;
    assert_eq!(data(&ok), json!({"recovered": false, "missed": 0}));
    for i in 0..3 {
        api.publish(&["private-feed"], "e", &i.to_string()).await;
    }
    assert_eq!(read_events(&mut c1, 3).await, ["0", "1", "2"]);
    // The server asks for an acknowledgement of what it sent; answer it, then vanish.
    let ping = c1.expect_event("pusher:ping").await;
    assert_eq!(ping["event"], "pusher:ping");
    c1.send(json!({"event":"pusher:pong","data":{}})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(c1); // TCP closed without a Close frame
    tokio::time::sleep(Duration::from_millis(200)).await;

    for i in 3..53 {
        api.publish(&["private-feed"], "e", &i.to_string()).await;
    }
    let mut c2 = lineage_client(&s, lineage).await;
    let ok = c2.subscribe_private("private-feed").await;
    assert_eq!(data(&ok), json!({"recovered": true, "missed": 50}));
    let expected: Vec<String> = (3..53).map(|i| i.to_string()).collect();
    assert_eq!(read_events(&mut c2, 50).await, expected);
    api.publish(&["private-feed"], "e", "live").await;
    assert_eq!(read_events(&mut c2, 1).await, ["live"]);
}

#[tokio::test]
async fn a_clean_close_or_another_lineage_recovers_nothing() {
    let s = TestServer::with_app(recovering_app()).await;
    let api = s.http();
    let mut c1 = lineage_client(&s, "lineage-clean-1").await;
    c1.subscribe("news").await;
    c1.ws.close(None).await.unwrap(); // a Close frame without a code is not a goodbye...
    drop(c1);
    let mut c2 = lineage_client(&s, "lineage-clean-2").await;
    c2.subscribe("news").await;
    c2.ws
        .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: 1000u16.into(),
            reason: "bye".into(),
        }))
        .await
        .unwrap(); // ...but 1000 is
    drop(c2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    api.publish(&["news"], "e", "missed").await;

    let mut again2 = lineage_client(&s, "lineage-clean-2").await;
    let ok = again2.subscribe("news").await;
    assert_eq!(data(&ok), json!({"recovered": false, "missed": 0}));
    let mut again1 = lineage_client(&s, "lineage-clean-1").await;
    let ok = again1.subscribe("news").await;
    assert_eq!(data(&ok), json!({"recovered": true, "missed": 1}));
    let mut stranger = lineage_client(&s, "lineage-stranger").await;
    let ok = stranger.subscribe("news").await;
    assert_eq!(data(&ok), json!({"recovered": false, "missed": 0}));
    // A client without a lineage sees the usual empty data.
    let mut plain = s.client().await;
    let ok = plain.subscribe("news").await;
    assert_eq!(data(&ok), json!({}));
}

#[tokio::test]
async fn an_invalid_lineage_is_an_unknown_path_and_recovery_off_still_accepts_the_path() {
    let s = TestServer::start().await; // recovery off
    for bad in ["short", "has_underscore1", &"a".repeat(65)] {
        let url = lineage_url(&s, bad);
        assert!(
            tokio_tungstenite::connect_async(&url).await.is_err(),
            "{bad} was accepted"
        );
    }
    let mut c = lineage_client(&s, "lineage-when-off").await;
    let ok = c.subscribe("news").await;
    assert_eq!(data(&ok), json!({}), "no recovery fields while it is off");
}
