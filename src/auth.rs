//! Signatures: pure functions over an app's key and secret and the exact strings a peer sent.
//!
//! Every signature in the Pusher protocol is `hex(HMAC-SHA256(secret, string_to_sign))`:
//! channel authorization (`socket_id:channel[:channel_data]`), user sign-in
//! (`socket_id::user::user_data`), HTTP API requests (`METHOD\npath\nsorted query`) and webhooks
//! (the raw body). Verification always signs the bytes as received (never re-serialised JSON)
//! and compares in constant time.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// `hex(HMAC-SHA256(secret, message))`, lowercase, 64 characters.
pub fn sign(secret: &str, message: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key size");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Lowercase hex MD5 of a request body (`body_md5`).
pub fn body_md5(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

/// Constant-time equality of two strings (length is not secret).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The string signed for a channel subscription: `socket_id:channel[:channel_data]`.
pub fn channel_string_to_sign(
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
) -> String {
    match channel_data {
        Some(data) => format!("{socket_id}:{channel}:{data}"),
        None => format!("{socket_id}:{channel}"),
    }
}

/// The `auth` value an application's auth endpoint returns: `key:signature`.
pub fn channel_auth(
    key: &str,
    secret: &str,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
) -> String {
    let sig = sign(
        secret,
        &channel_string_to_sign(socket_id, channel, channel_data),
    );
    format!("{key}:{sig}")
}

/// The `auth` value for `pusher:signin`: `key:hex(HMAC(secret, socket_id::user::user_data))`.
pub fn user_auth(key: &str, secret: &str, socket_id: &str, user_data: &str) -> String {
    let sig = sign(secret, &format!("{socket_id}::user::{user_data}"));
    format!("{key}:{sig}")
}

/// Why an `auth` field was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("auth is missing")]
    Missing,
    #[error("auth is not of the form 'key:signature'")]
    Malformed,
    #[error("Invalid key in subscription auth data: '{0}'")]
    WrongKey(String),
    #[error("Invalid signature: Expected HMAC SHA256 hex digest of {0}")]
    BadSignature(String),
}

/// Verify an `auth` field (`key:signature`) against the string to sign.
/// Splits at the first `:`, checks the key, then compares the signature in constant time.
pub fn verify_auth(
    auth: Option<&str>,
    key: &str,
    secret: &str,
    string_to_sign: &str,
) -> Result<(), AuthError> {
    let auth = auth.filter(|a| !a.is_empty()).ok_or(AuthError::Missing)?;
    let (given_key, signature) = auth.split_once(':').ok_or(AuthError::Malformed)?;
    if !constant_time_eq(given_key, key) {
        return Err(AuthError::WrongKey(truncate(given_key, 64)));
    }
    let expected = sign(secret, string_to_sign);
    if constant_time_eq(&expected, signature) {
        Ok(())
    } else {
        Err(AuthError::BadSignature(truncate(string_to_sign, 200)))
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The string to sign for an HTTP API request: `METHOD\npath\nk=v&...` with every query
/// parameter except `auth_signature`, keys lowercased and sorted, values URL-decoded.
/// `params` are already-decoded key/value pairs.
pub fn http_string_to_sign<'a>(
    method: &str,
    path: &str,
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let mut pairs: Vec<(String, &str)> = params
        .into_iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("auth_signature"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    pairs.sort();
    let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{}\n{}\n{}",
        method.to_ascii_uppercase(),
        path,
        query.join("&")
    )
}

/// Sign an HTTP API request as the Pusher SDKs do; returns the full query string
/// (`auth_key`, `auth_timestamp`, `auth_version`, `body_md5` when there is a body, extra
/// params, `auth_signature`). Used by the load generator, examples and tests.
pub fn sign_http_request(
    key: &str,
    secret: &str,
    method: &str,
    path: &str,
    body: &[u8],
    timestamp: u64,
    extra: &[(&str, &str)],
) -> String {
    let ts = timestamp.to_string();
    let md5 = body_md5(body);
    let mut params: Vec<(&str, &str)> = vec![
        ("auth_key", key),
        ("auth_timestamp", &ts),
        ("auth_version", "1.0"),
    ];
    if !body.is_empty() {
        params.push(("body_md5", &md5));
    }
    params.extend_from_slice(extra);
    let signature = sign(
        secret,
        &http_string_to_sign(method, path, params.iter().copied()),
    );
    let mut query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect();
    query.push(format!("auth_signature={signature}"));
    query.join("&")
}

fn percent_encode(v: &str) -> String {
    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "278d425bdf160c739803";
    const SECRET: &str = "7ad3773142a6692b25b8";

    #[test]
    fn channel_vectors_from_protocol_doc() {
        let cases = [
            (
                "1234.1234:private-foobar",
                "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4",
            ),
            (
                "1234.1234:private-encrypted-foobar",
                "e6a18892d037c5d5e76a2265df4f086ffc38631605530dfd214aa5bff495f533",
            ),
            (
                r#"1234.1234:presence-foobar:{"user_id":10,"user_info":{"name":"Mr. Pusher"}}"#,
                "afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c",
            ),
            (
                r#"1234.1234:presence-foobar:{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#,
                "31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80",
            ),
            (
                r#"1234.1234:presence-room.1:{"user_id":"42","user_info":{"name":"Ada"}}"#,
                "5ab9f6ece470cd0da2d7b15a451d63eeaa3e350f9a5f7e1c09100e0cee422cb9",
            ),
            (
                r#"1234.1234:presence-room.1:{"user_id": "42", "user_info": {"name": "Ada"}}"#,
                "18eb937579f3c28b4e2fd7a92502ce603a61e2635b890274bad567a089773053",
            ),
            (
                r#"1234.1234::user::{"id":"12345"}"#,
                "4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba",
            ),
            (
                r#"1234.1234::user::{"id": "12345"}"#,
                "d06dc389319077f890321aeac54e04868921e1601686928f61fc9bf702e92830",
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(sign(SECRET, message), expected, "{message}");
        }
    }

    #[test]
    fn channel_auth_and_verify_round_trip() {
        let auth = channel_auth(KEY, SECRET, "1234.1234", "private-foobar", None);
        assert_eq!(
            auth,
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
        let s = channel_string_to_sign("1234.1234", "private-foobar", None);
        assert_eq!(verify_auth(Some(&auth), KEY, SECRET, &s), Ok(()));
        assert_eq!(
            verify_auth(Some(""), KEY, SECRET, &s),
            Err(AuthError::Missing)
        );
        assert_eq!(verify_auth(None, KEY, SECRET, &s), Err(AuthError::Missing));
        assert_eq!(
            verify_auth(Some("nocolon"), KEY, SECRET, &s),
            Err(AuthError::Malformed)
        );
        assert!(matches!(
            verify_auth(Some(&auth.replace(KEY, "otherkey")), KEY, SECRET, &s),
            Err(AuthError::WrongKey(_))
        ));
        let other = channel_string_to_sign("1234.1235", "private-foobar", None);
        assert!(matches!(
            verify_auth(Some(&auth), KEY, SECRET, &other),
            Err(AuthError::BadSignature(_))
        ));
        let user = user_auth(KEY, SECRET, "1234.1234", r#"{"id":"12345"}"#);
        assert!(user.ends_with("4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba"));
    }

    #[test]
    fn http_vectors_from_protocol_doc() {
        let base = [
            ("auth_key", KEY),
            ("auth_timestamp", "1353088179"),
            ("auth_version", "1.0"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut v: Vec<(&str, &str)> = base.to_vec();
            v.extend_from_slice(extra);
            v
        };
        // B1
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        assert_eq!(body_md5(body), "ec365a775a4cd0599faeb73354201b6f");
        let s = http_string_to_sign(
            "POST",
            "/apps/3/events",
            with(&[("body_md5", "ec365a775a4cd0599faeb73354201b6f")]),
        );
        assert_eq!(
            sign(SECRET, &s),
            "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        );
        // B2 (order of input does not matter; auth_signature is left out)
        let mut p = with(&[("info", "user_count"), ("filter_by_prefix", "presence-")]);
        p.push(("auth_signature", "ignored"));
        p.reverse();
        let s = http_string_to_sign("get", "/apps/3/channels", p);
        assert_eq!(
            sign(SECRET, &s),
            "16819168891cb5dfd72b5c7a5d3d602605b26c6ba1930033b5e2eeeb65010291"
        );
        // B3
        let s = http_string_to_sign(
            "GET",
            "/apps/3/channels",
            with(&[
                ("body_md5", "d41d8cd98f00b204e9800998ecf8427e"),
                ("filter_by_prefix", "presence-"),
                ("info", "user_count"),
            ]),
        );
        assert_eq!(
            sign(SECRET, &s),
            "f3f17c61ae491cc9085db68b22076e9b772e3bcb301659d655153ee3f9782aba"
        );
        // B4
        let s = http_string_to_sign(
            "GET",
            "/apps/3/channels/presence-foobar",
            with(&[("info", "subscription_count,user_count")]),
        );
        assert_eq!(
            sign(SECRET, &s),
            "2344f72e5fcee04906d1642c250642abb5862a7f149f27e9d6ab21f90261e969"
        );
        // B5
        let s = http_string_to_sign(
            "GET",
            "/apps/3/channels/presence-foobar/users",
            with(&[("body_md5", "d41d8cd98f00b204e9800998ecf8427e")]),
        );
        assert_eq!(
            sign(SECRET, &s),
            "3d68b512095fd42cb6741cc80616761b1c77d00fcc4d6d9740f09504a4b761b0"
        );
        // B6
        assert_eq!(body_md5(b"{}"), "99914b932bd37a50b983c5e7c90ae93b");
        let s = http_string_to_sign(
            "POST",
            "/apps/3/users/12345/terminate_connections",
            with(&[("body_md5", "99914b932bd37a50b983c5e7c90ae93b")]),
        );
        assert_eq!(
            sign(SECRET, &s),
            "01fa634edeb0cae84115307cad5c23f65a46cd286461b1c89637a3b5871a8f0e"
        );
    }

    #[test]
    fn webhook_vector() {
        let body = r#"{"time_ms":1327078148132,"events":[{"name":"channel_occupied","channel":"test_channel"}]}"#;
        assert_eq!(
            sign(SECRET, body),
            "709fdb84c03664445f7698120b0edf0acc1ab1c8c6e93a0368c61841d6b998aa"
        );
    }

    #[test]
    fn signed_request_contains_valid_signature() {
        let q = sign_http_request(
            KEY,
            SECRET,
            "POST",
            "/apps/3/events",
            br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#,
            1353088179,
            &[],
        );
        assert!(q.ends_with(
            "auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        ));
    }
}
