//! Sign-in `user_data`: the input is the `user_data` string (and a mode); the target signs it
//! correctly (or not) as the app's user-auth endpoint would, so parsing, the user id, the
//! watchlist and presence joins without `channel_data` are reached. Nothing may panic, and
//! after the connections go no user stays signed in.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use rf_broadcast::testing::auth::user_auth;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = common::fields(rest, 2);
    let user_data = f.first().cloned().unwrap_or_default();
    let channel = f.get(1).cloned().unwrap_or_else(|| "presence-room".into());
    let mut a = common::session();
    let mut b = common::session();
    for s in [&mut a, &mut b] {
        let socket_id = s.socket_id().to_string();
        let auth = if mode & 1 == 0 {
            user_auth(common::KEY, common::SECRET, &socket_id, &user_data)
        } else {
            format!("{}:{}", common::KEY, "0".repeat(64))
        };
        let d = json!({ "auth": auth, "user_data": user_data });
        let data = if mode & 2 != 0 {
            json!(d.to_string())
        } else {
            d
        };
        common::handle(
            s,
            &json!({ "event": "pusher:signin", "data": data }).to_string(),
        );
    }
    // A presence join by the signed-in user, then a signed-in-only event to itself.
    let sid = a.socket_id().to_string();
    let auth = rf_broadcast::testing::auth::channel_auth(
        common::KEY,
        common::SECRET,
        &sid,
        &channel,
        None,
    );
    common::handle(
        &mut a,
        &json!({ "event": "pusher:subscribe", "data": { "channel": channel, "auth": auth } })
            .to_string(),
    );
    common::end(a);
    common::end(b);
    common::assert_nothing_left();
});
