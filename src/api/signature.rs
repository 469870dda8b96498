//! HTTP request signatures: `auth_key`, `auth_timestamp` (within 600 s), `auth_version`,
//! `body_md5` (checked against the raw body whenever present) and `auth_signature` over
//! `METHOD\npath\nsorted decoded query` (`docs/pusher-protocol.md` §5.1).

use super::{ApiError, Query};
use crate::apps::App;
use crate::auth;
use std::time::{SystemTime, UNIX_EPOCH};

/// Largest accepted clock difference between publisher and server.
pub const MAX_TIMESTAMP_SKEW_SECS: u64 = 600;

/// Verify a request's signature against the app. `path` is the request path as signed
/// (`/apps/{id}/...`), `query` its decoded query.
pub fn verify(
    app: &App,
    method: &str,
    path: &str,
    query: &Query,
    body: &[u8],
) -> Result<(), ApiError> {
    let key = query
        .get("auth_key")
        .ok_or_else(|| ApiError::Unauthorized("Missing auth_key".into()))?;
    if !auth::constant_time_eq(key, &app.key) {
        return Err(ApiError::Unauthorized(
            "Invalid auth_key: it does not belong to this app".into(),
        ));
    }
    let ts = query
        .get("auth_timestamp")
        .ok_or_else(|| ApiError::Unauthorized("Missing auth_timestamp".into()))?;
    let ts: u64 = ts
        .parse()
        .map_err(|_| ApiError::Unauthorized("auth_timestamp is not a number".into()))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if now.abs_diff(ts) > MAX_TIMESTAMP_SKEW_SECS {
        return Err(ApiError::Unauthorized(format!(
            "Timestamp expired: Given timestamp ({ts}) not within {MAX_TIMESTAMP_SKEW_SECS}s of server time ({now})"
        )));
    }
    match query.get("auth_version") {
        Some("1.0") | None => {}
        Some(v) => {
            return Err(ApiError::Unauthorized(format!(
                "Unsupported auth_version '{v}'"
            )))
        }
    }
    if let Some(md5) = query.get("body_md5") {
        if !md5.eq_ignore_ascii_case(&auth::body_md5(body)) {
            return Err(ApiError::Unauthorized(
                "body_md5 does not match the request body".into(),
            ));
        }
    } else if !body.is_empty() {
        return Err(ApiError::Unauthorized(
            "Missing body_md5 for a request with a body".into(),
        ));
    }
    let signature = query
        .get("auth_signature")
        .ok_or_else(|| ApiError::Unauthorized("Missing auth_signature".into()))?;
    let string_to_sign = auth::http_string_to_sign(method, path, query.pairs());
    let expected = auth::sign(&app.secret, &string_to_sign);
    if !auth::constant_time_eq(&expected, &signature.to_ascii_lowercase()) {
        return Err(ApiError::Unauthorized(format!(
            "Invalid signature: you should have sent HmacSHA256Hex({:?}, your_secret_key)",
            string_to_sign
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_signed_requests_and_rejects_tampering() {
        let app = App::new("3", "278d425bdf160c739803", "7ad3773142a6692b25b8");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let body = br#"{"name":"a","channel":"b","data":"{}"}"#;
        let q = auth::sign_http_request(
            &app.key,
            &app.secret,
            "POST",
            "/apps/3/events",
            body,
            now,
            &[],
        );
        let params = Query::parse(&q);
        assert!(verify(&app, "POST", "/apps/3/events", &params, body).is_ok());
        assert!(verify(&app, "POST", "/apps/3/events", &params, b"{}").is_err());
        assert!(verify(&app, "POST", "/apps/4/events", &params, body).is_err());
        let old = auth::sign_http_request(
            &app.key,
            &app.secret,
            "POST",
            "/apps/3/events",
            body,
            now - 601,
            &[],
        );
        let err = verify(&app, "POST", "/apps/3/events", &Query::parse(&old), body).unwrap_err();
        assert!(err.to_string().starts_with("Timestamp expired"));
        let other = App::new("3", "278d425bdf160c739803", "wrong");
        assert!(verify(&other, "POST", "/apps/3/events", &params, body).is_err());
        // GET with body_md5 of the empty body (python SDK) is accepted.
        let q = auth::sign_http_request(
            &app.key,
            &app.secret,
            "GET",
            "/apps/3/channels",
            b"",
            now,
            &[("body_md5", "d41d8cd98f00b204e9800998ecf8427e")],
        );
        assert!(verify(&app, "GET", "/apps/3/channels", &Query::parse(&q), b"").is_ok());
    }
}
