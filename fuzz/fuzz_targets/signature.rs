//! Signatures: `auth` strings (`key:signature`) checked against the string to sign. A
//! signature made with the secret verifies; the fuzzer's own `auth` verifies only if it is
//! exactly that signature; a changed socket id, channel or channel_data never verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rf_broadcast::testing::auth::{channel_auth, channel_string_to_sign, user_auth, verify_auth};

const KEY: &str = "fuzz-key";
const SECRET: &str = "fuzz-secret";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut f = text.splitn(4, '\0');
    let socket_id = f.next().unwrap_or("");
    let channel = f.next().unwrap_or("");
    let channel_data = f.next();
    let given = f.next().unwrap_or("");

    let to_sign = channel_string_to_sign(socket_id, channel, channel_data);
    let good = channel_auth(KEY, SECRET, socket_id, channel, channel_data);
    assert!(verify_auth(Some(&good), KEY, SECRET, &to_sign).is_ok());
    // Another app's key or secret never verifies.
    assert!(verify_auth(Some(&good), "other-key", SECRET, &to_sign).is_err());
    assert!(verify_auth(Some(&good), KEY, "other-secret", &to_sign).is_err());
    // The fuzzer's auth verifies only if it is the good one.
    if verify_auth(Some(given), KEY, SECRET, &to_sign).is_ok() {
        assert_eq!(given, good);
    }
    // Moving bytes between fields changes the signed string unless it is the same string.
    let moved = channel_string_to_sign(&format!("{socket_id}x"), channel, channel_data);
    assert!(verify_auth(Some(&good), KEY, SECRET, &moved).is_err());
    // User sign-in signatures are not channel signatures.
    let user = user_auth(KEY, SECRET, socket_id, channel);
    let channel_string = channel_string_to_sign(socket_id, channel, None);
    if user == channel_auth(KEY, SECRET, socket_id, channel, None) {
        panic!("a sign-in signature equals a channel signature for {channel_string:?}");
    }
    let _ = verify_auth(None, KEY, SECRET, &to_sign);
});
