//! Connection life: handshake, errors with their close codes, ping/pong, the activity timeout,
//! the frame size limit, bad input, and shutdown with 4200; the close code observers of the
//! hub see for closes the server's socket task makes and for the client's own closes.

mod common;

use common::*;
use futures_util::StreamExt;
use rf_broadcast::testing;
use rf_broadcast::{App, HubSettings, ServerOptions};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn connection_established_carries_socket_id_and_activity_timeout() {
    let s = TestServer::start().await;
    let mut c = Client::connect(&s.ws_url("app-key")).await;
    let v = c.expect_next("pusher:connection_established").await;
    let data: Value =
        serde_json::from_str(v["data"].as_str().expect("data is a JSON string")).unwrap();
    let id = data["socket_id"].as_str().unwrap();
    let (a, b) = id.split_once('.').unwrap();
    assert!(a.bytes().all(|c| c.is_ascii_digit()) && b.bytes().all(|c| c.is_ascii_digit()));
    assert_eq!(data["activity_timeout"], 120);
    let c2 = s.client().await;
    assert_ne!(c2.socket_id, id, "socket ids are unique");
}

#[tokio::test]
async fn unknown_key_gets_4001_error_and_close() {
    let s = TestServer::start().await;
    let mut c = Client::connect(&s.ws_url("nope")).await;
    let v = c.expect_next("pusher:error").await;
    assert_eq!(v["data"]["code"], 4001);
    c.expect_close_code(4001).await;
}

#[tokio::test]
async fn disabled_app_gets_4003() {
    let s = TestServer::with_app(App {
        enabled: false,
        ..app()
    })
    .await;
    let mut c = Client::connect(&s.ws_url("app-key")).await;
    assert_eq!(c.expect_next("pusher:error").await["data"]["code"], 4003);
    c.expect_close_code(4003).await;
}

#[tokio::test]
async fn over_quota_gets_4004_and_a_slot_frees_on_disconnect() {
    let s = TestServer::with_app(App {
        max_connections: Some(1),
        ..app()
    })
    .await;
    let first = s.client().await;
    let mut second = Client::connect(&s.ws_url("app-key")).await;
    assert_eq!(
        second.expect_next("pusher:error").await["data"]["code"],
        4004
    );
    second.expect_close_code(4004).await;
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = Client::connect(&s.ws_url("app-key")).await;
    third.expect_next("pusher:connection_established").await;
}

#[tokio::test]
async fn old_or_bad_protocol_versions_get_4007_and_missing_is_fine() {
    let s = TestServer::start().await;
    for bad in ["3", "x"] {
        let url = format!("ws://{}/app/app-key?protocol={bad}", s.addr);
        let mut c = Client::connect(&url).await;
        assert_eq!(c.expect_next("pusher:error").await["data"]["code"], 4007);
        c.expect_close_code(4007).await;
    }
    let mut c = Client::connect(&format!("ws://{}/app/app-key", s.addr)).await;
    c.expect_next("pusher:connection_established").await;
}

#[tokio::test]
async fn ping_gets_pong() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    c.send(json!({"event":"pusher:ping","data":{}})).await;
    assert_eq!(c.expect_next("pusher:pong").await["data"], json!({}));
}

#[tokio::test]
async fn silent_client_is_pinged_then_closed_with_4201() {
    let s = TestServer::with_app(App {
        activity_timeout: 1,
        pong_timeout: 1,
        ..app()
    })
    .await;
    let mut c = s.client().await;
    let started = std::time::Instant::now();
    c.expect_next("pusher:ping").await;
    assert!(started.elapsed() >= Duration::from_millis(800));
    c.expect_close_code(4201).await;
}

#[tokio::test]
async fn a_client_that_answers_pings_stays_connected() {
    let s = TestServer::with_app(App {
        activity_timeout: 1,
        pong_timeout: 1,
        ..app()
    })
    .await;
    let mut c = s.client().await;
    for _ in 0..3 {
        c.expect_next("pusher:ping").await;
        c.send(json!({"event":"pusher:pong","data":{}})).await;
    }
    c.send(json!({"event":"pusher:ping","data":{}})).await;
    c.expect_event("pusher:pong").await;
}

#[tokio::test]
async fn oversized_frame_closes_with_1009_and_others_are_untouched() {
    let s = TestServer::start().await;
    let mut other = s.client().await;
    other.subscribe("news").await;
    let mut c = s.client().await;
    let huge = "x".repeat(1024 * 1024);
    let _ =
        c.ws.send(Message::text(
            json!({"event":"client-x","channel":"private-a","data":huge}).to_string(),
        ))
        .await;
    c.expect_close_code(1009).await;
    let (status, _) = s.http().publish(&["news"], "still-here", "{}").await;
    assert_eq!(status, 200);
    assert_eq!(other.expect_event("still-here").await["channel"], "news");
}

use futures_util::SinkExt;

/// The `ConnectionClosed` event of `socket_id`, waiting for it.
async fn closed_event(
    h: &mut rf_broadcast::ObserverHandle,
    socket_id: &str,
) -> (Option<u16>, &'static str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let event = tokio::time::timeout_at(deadline, h.events.recv())
            .await
            .unwrap_or_else(|_| panic!("no ConnectionClosed for {socket_id}"))
            .unwrap();
        if let rf_broadcast::HubEvent::ConnectionClosed {
            socket_id: id,
            code,
            why,
            ..
        } = event
        {
            if id.to_string() == socket_id {
                return (code, why);
            }
        }
    }
}

#[tokio::test]
async fn observers_see_the_close_code_that_ended_the_connection() {
    let s = TestServer::start().await;
    let mut h = s.hub.observe(1024);

    // The socket task closes an oversized message with 1009 on its own.
    let mut c = s.client().await;
    let _ = c.ws.send(Message::text("x".repeat(1024 * 1024))).await;
    c.expect_close_code(1009).await;
    let (code, why) = closed_event(&mut h, &c.socket_id).await;
    assert_eq!((code, why), (Some(1009), "Frame too large"));

    // A client that closes with its own code: that code.
    for client_code in [4000u16, 1000] {
        let mut c = s.client().await;
        c.ws.close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: client_code.into(),
            reason: "bye".into(),
        }))
        .await
        .unwrap();
        let (code, why) = closed_event(&mut h, &c.socket_id).await;
        assert_eq!((code, why), (Some(client_code), "closed by the client"));
    }

    // A close the hub asks for keeps its code (4009 from terminate_connections).
    let mut c = s.client().await;
    c.signin(r#"{"id":"u1"}"#).await;
    let (status, _) = s
        .http()
        .post("/apps/app-id/users/u1/terminate_connections", &json!({}))
        .await;
    assert_eq!(status, 200);
    c.expect_close_code(4009).await;
    assert_eq!(closed_event(&mut h, &c.socket_id).await.0, Some(4009));

    // A socket dropped without a close: no code.
    let c = s.client().await;
    let id = c.socket_id.clone();
    drop(c);
    assert_eq!(closed_event(&mut h, &id).await.0, None);
}

#[tokio::test]
async fn bad_input_gets_errors_and_the_connection_keeps_working() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let bad = [
        "not json",
        "[1,2,3]",
        "42",
        r#"{"data":{}}"#,
        r#"{"event":7}"#,
        r#"{"event":"pusher:subscribe"}"#,
        r#"{"event":"pusher:subscribe","data":5}"#,
        r#"{"event":"pusher:subscribe","data":"not json inside"}"#,
        r#"{"event":"pusher:unsubscribe","data":{}}"#,
        r#"{"event":"pusher:signin","data":7}"#,
    ];
    for text in bad {
        c.send_raw(Message::text(text)).await;
        let v = c.expect_next("pusher:error").await;
        assert!(v["data"]["message"].as_str().is_some(), "{text}: {v}");
    }
    // An unknown pusher: event is answered with an error too.
    c.send(json!({"event":"pusher:bogus","data":{}})).await;
    assert_eq!(
        c.expect_next("pusher:error").await["data"]["code"],
        Value::Null
    );
    // An empty subscribe data object: an error, no crash.
    c.send(json!({"event":"pusher:subscribe","data":{}})).await;
    c.expect_next("pusher:error").await;
    // Binary frames are read as UTF-8 JSON.
    c.send_raw(Message::binary(
        br#"{"event":"pusher:ping","data":{}}"#.to_vec(),
    ))
    .await;
    c.expect_next("pusher:pong").await;
    c.send_raw(Message::binary(vec![0xff, 0xfe])).await;
    c.expect_next("pusher:error").await;
    // Still alive.
    c.subscribe("after-bad-input").await;
}

#[tokio::test]
async fn subscribe_flood_is_bounded_per_connection() {
    let s = TestServer::with_app(App {
        max_channels_per_connection: 50,
        ..app()
    })
    .await;
    let mut c = s.client().await;
    for i in 0..60 {
        c.send(json!({"event":"pusher:subscribe","data":{"channel":format!("flood-{i}")}}))
            .await;
    }
    let mut ok = 0;
    let mut refused = 0;
    while ok + refused < 60 {
        let v = c.next(WAIT).await.expect("a reply to every subscribe");
        match v["event"].as_str().unwrap() {
            "pusher_internal:subscription_succeeded" => ok += 1,
            "pusher:subscription_error" => {
                assert_eq!(v["data"]["type"], "LimitReached");
                refused += 1
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, refused), (50, 10));
    assert_eq!(testing::occupied_channels(&s.hub, "app-id", "flood-"), 50);
}

#[tokio::test]
async fn slow_consumer_is_closed_with_4100_and_others_keep_receiving() {
    let s = TestServer::with(
        vec![app()],
        HubSettings {
            max_queued_frames: 50,
        },
        ServerOptions::default(),
    )
    .await;
    let mut slow = s.client().await;
    slow.subscribe("firehose").await;
    let mut fast = s.client().await;
    fast.subscribe("firehose").await;
    // The slow client never reads; publish enough to fill its socket buffers and queue.
    let payload = "y".repeat(8000);
    let api = s.http();
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while let Some(v) = fast.next(Duration::from_secs(5)).await {
            if v["event"] == "big" {
                n += 1;
                if n == 2000 {
                    break;
                }
            }
        }
        n
    });
    // Twenty publishers at once. The slow client starts reading only once 1,500 of the 2,000
    // events are out (long after its queue of 50 overflowed), so it takes the 4100 close
    // within the server's bounded close however loaded the machine is.
    let api = std::sync::Arc::new(api);
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let data = serde_json::to_string(&payload).unwrap();
    let publishers: Vec<_> = (0..20)
        .map(|_| {
            let (api, data, sent) = (api.clone(), data.clone(), sent.clone());
            tokio::spawn(async move {
                for _ in 0..100 {
                    let (status, _) = api.publish(&["firehose"], "big", &data).await;
                    assert_eq!(status, 200);
                    sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    let slow_reader = tokio::spawn(async move {
        while sent.load(std::sync::atomic::Ordering::Relaxed) < 1500 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        loop {
            match tokio::time::timeout(Duration::from_secs(10), slow.ws.next()).await {
                Ok(Some(Ok(Message::Close(f)))) => return f.map(|f| u16::from(f.code)),
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    });
    for p in publishers {
        p.await.unwrap();
    }
    assert_eq!(
        reader.await.unwrap(),
        2000,
        "the fast client got everything"
    );
    let saw = slow_reader.await.unwrap();
    assert_eq!(saw, Some(4100));
}

#[tokio::test]
async fn shutdown_closes_connections_with_4200() {
    let s = TestServer::start().await;
    let mut c = s.client().await;
    let stop = tokio::spawn(s.stop());
    let v = c.expect_next("pusher:error").await;
    assert_eq!(v["data"]["code"], 4200);
    c.expect_close_code(4200).await;
    stop.await.unwrap();
}
