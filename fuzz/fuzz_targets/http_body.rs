//! HTTP API bodies: the fuzzer's body posted, correctly signed, to `/apps/{id}/events` or
//! `/apps/{id}/batch_events` (by the first byte), through the server's router, while two
//! connections are subscribed to a public and a presence channel. The answer is never 5xx,
//! always a JSON body, and 200 only for a body that is a JSON object.
#![no_main]

#[path = "common/mod.rs"]
mod common;
#[path = "common/http.rs"]
mod http;

use libfuzzer_sys::fuzz_target;
use rf_broadcast::testing::auth::channel_auth;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let mut a = common::session();
    let mut b = common::session();
    for (s, user) in [(&mut a, "1"), (&mut b, "2")] {
        common::handle(
            s,
            r#"{"event":"pusher:subscribe","data":{"channel":"news"}}"#,
        );
        let sid = s.socket_id().to_string();
        let cd = json!({ "user_id": user }).to_string();
        let auth = channel_auth(
            common::KEY,
            common::SECRET,
            &sid,
            "presence-room",
            Some(&cd),
        );
        let sub = json!({"event":"pusher:subscribe","data":{"channel":"presence-room","auth":auth,"channel_data":cd}});
        common::handle(s, &sub.to_string());
    }
    let path = if sel & 1 == 0 {
        "/apps/fuzz-id/events"
    } else {
        "/apps/fuzz-id/batch_events"
    };
    let uri = http::signed("POST", path, body, &[]);
    if let Some((status, answer)) = http::call("POST", &uri, body.to_vec()) {
        let answer: Result<serde_json::Value, _> = serde_json::from_slice(&answer);
        assert!(answer.is_ok(), "{status}: the answer is not JSON");
        if status.is_success() {
            assert!(
                serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v.is_object()),
                "200 for a body that is not a JSON object"
            );
        }
    }
    common::end(a);
    common::end(b);
    common::assert_nothing_left();
});
