//! Signing helpers: the only place that knows the app secret's uses.
//!
//! Two signatures of the Pusher protocol: the HTTP API request signature (for publishing through
//! `POST /apps/{id}/events`) and the private-channel auth string (`key:hex(hmac(secret,
//! socket_id:channel))`) that an app's auth endpoint would hand a client. The load generator
//! computes both locally so it needs no app server.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

/// The app credentials the load generator acts with.
#[derive(Clone, Debug)]
pub struct Creds {
    pub app_id: String,
    pub key: String,
    pub secret: String,
}

/// hex(HMAC-SHA256(secret, msg)).
pub fn hmac_hex(secret: &str, msg: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac takes any key");
    mac.update(msg.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The `auth` field of a `pusher:subscribe` for a private channel.
pub fn channel_auth(creds: &Creds, socket_id: &str, channel: &str) -> String {
    format!(
        "{}:{}",
        creds.key,
        hmac_hex(&creds.secret, &format!("{socket_id}:{channel}"))
    )
}

/// The query string (without `?`) that signs an HTTP API request with a body.
/// Parameters are already in sorted order, as the signature requires.
pub fn signed_query(
    creds: &Creds,
    method: &str,
    path: &str,
    body: &[u8],
    timestamp: u64,
) -> String {
    let body_md5 = hex::encode(Md5::digest(body));
    let params = format!(
        "auth_key={}&auth_timestamp={}&auth_version=1.0&body_md5={}",
        creds.key, timestamp, body_md5
    );
    let sig = hmac_hex(&creds.secret, &format!("{method}\n{path}\n{params}"));
    format!("{params}&auth_signature={sig}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs_creds() -> Creds {
        Creds {
            app_id: "3".into(),
            key: "278d425bdf160c739803".into(),
            secret: "7ad3773142a6692b25b8".into(),
        }
    }

    #[test]
    fn private_channel_auth_matches_pusher_vector_a1() {
        assert_eq!(
            channel_auth(&docs_creds(), "1234.1234", "private-foobar"),
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
    }

    #[test]
    fn publish_signature_matches_pusher_vector_b1() {
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        let q = signed_query(&docs_creds(), "POST", "/apps/3/events", body, 1353088179);
        assert_eq!(
            q,
            "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0\
             &body_md5=ec365a775a4cd0599faeb73354201b6f\
             &auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        );
    }
}
