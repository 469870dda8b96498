//! The bytes of a webhook request as Pusher's SDK validators expect them: the body
//! `{"time_ms":…,"events":[…]}` and `X-Pusher-Signature`, the hex HMAC-SHA256 of exactly
//! those bytes with the app secret. Built anew for every attempt, so a retry carries a fresh
//! `time_ms` (pusher-http-python rejects bodies older than 300 s).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The request body for events already serialized as JSON objects.
pub fn body<'a>(time_ms: u64, events: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let mut out = format!("{{\"time_ms\":{time_ms},\"events\":[").into_bytes();
    for (i, e) in events.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(e.as_bytes());
    }
    out.extend_from_slice(b"]}");
    out
}

/// `X-Pusher-Signature` for a body.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pusher_docs_vector() {
        let b = body(
            1327078148132,
            [r#"{"name":"channel_occupied","channel":"test_channel"}"#],
        );
        assert_eq!(
            std::str::from_utf8(&b).unwrap(),
            r#"{"time_ms":1327078148132,"events":[{"name":"channel_occupied","channel":"test_channel"}]}"#
        );
        assert_eq!(
            signature("7ad3773142a6692b25b8", &b),
            "709fdb84c03664445f7698120b0edf0acc1ab1c8c6e93a0368c61841d6b998aa"
        );
    }

    #[test]
    fn several_events() {
        let b = body(1, ["{}", "{\"a\":1}"]);
        assert_eq!(b, br#"{"time_ms":1,"events":[{},{"a":1}]}"#);
    }
}
