//! Subscribe data with auth and channel_data: the input gives a channel name, a presence
//! `channel_data` and a mode; the target signs the subscription correctly (or not, by mode)
//! as an app's auth endpoint would, so the fuzzer gets past the signature into channel-name
//! checks, `channel_data` parsing, presence limits and member events. Two connections join,
//! one sends a client event, both leave; nothing may panic or be left behind.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use rf_broadcast::testing::auth::channel_auth;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = common::fields(rest, 3);
    let channel = f.first().cloned().unwrap_or_default();
    let channel_data = f.get(1).cloned();
    let extra = f.get(2).cloned().unwrap_or_default();
    let mut sessions = [common::session(), common::session()];
    for s in sessions.iter_mut() {
        let socket_id = s.socket_id().to_string();
        let auth = match mode % 4 {
            // Signed over exactly what is sent.
            0 | 1 => channel_auth(
                common::KEY,
                common::SECRET,
                &socket_id,
                &channel,
                channel_data.as_deref(),
            ),
            // The fuzzer's own auth string.
            2 => extra.clone(),
            // Signed without the channel_data that is sent.
            _ => channel_auth(common::KEY, common::SECRET, &socket_id, &channel, None),
        };
        let mut d = json!({ "channel": channel, "auth": auth });
        if let Some(cd) = &channel_data {
            // As a string (what pusher-js sends) or, in mode 1, raw JSON if it parses.
            d["channel_data"] = match (mode % 4, serde_json::from_str::<serde_json::Value>(cd)) {
                (1, Ok(v)) => v,
                _ => json!(cd),
            };
        }
        // `data` as an object or as a JSON string holding one (both are seen in the wild).
        let data = if mode & 0x10 != 0 {
            json!(d.to_string())
        } else {
            d
        };
        let frame = json!({ "event": "pusher:subscribe", "data": data }).to_string();
        common::handle(s, &frame);
    }
    let client = json!({ "event": format!("client-{extra}"), "channel": channel, "data": extra })
        .to_string();
    common::handle(&mut sessions[0], &client);
    if mode & 0x20 != 0 {
        let unsub =
            json!({ "event": "pusher:unsubscribe", "data": { "channel": channel } }).to_string();
        common::handle(&mut sessions[1], &unsub);
    }
    let [a, b] = sessions;
    common::end(a);
    common::end(b);
    common::assert_nothing_left();
});
