//! HTTP API query strings and request signatures. Three ways in: (1) the raw query decoder
//! and verifier with the fuzzer's own query, which must refuse anything not signed with the
//! secret; (2) the fuzzer's parameters signed as the SDKs sign them, which must verify; (3) the
//! fuzzer's path and query through the server's router, which must never answer 5xx.
#![no_main]

#[path = "common/mod.rs"]
mod common;
#[path = "common/http.rs"]
#[allow(dead_code)]
mod http;

use libfuzzer_sys::fuzz_target;
use rf_broadcast::testing::{verify_request, Query};
use rf_broadcast::App;

const METHODS: [&str; 3] = ["GET", "POST", "DELETE"];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let f = common::fields(rest, 3);
    let path = f.first().cloned().unwrap_or_default();
    let query = f.get(1).cloned().unwrap_or_default();
    let body = f.get(2).cloned().unwrap_or_default();
    let method = METHODS[sel as usize % METHODS.len()];
    let app = App::new(common::APP_ID, common::KEY, common::SECRET);

    // (1) The fuzzer's query: it cannot know the secret, so it never verifies.
    let params = Query::parse(&query);
    assert!(
        verify_request(&app, method, &path, &params, body.as_bytes()).is_err(),
        "an unsigned query verified: {query:?}"
    );

    // (2) The fuzzer's parameters, signed: they verify, and not with another body or path.
    let extra: Vec<(String, String)> = params
        .pairs()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .filter(|(k, _)| {
            !k.is_empty()
                && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                && !k.starts_with("auth_")
                && k != "body_md5"
        })
        .take(8)
        .collect();
    let extra_refs: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let signed = http::signed(
        method,
        "/apps/fuzz-id/channels",
        body.as_bytes(),
        &extra_refs,
    );
    let signed_query = signed.split_once('?').map(|(_, q)| q).unwrap_or("");
    let signed_params = Query::parse(signed_query);
    if let Err(e) = verify_request(
        &app,
        method,
        "/apps/fuzz-id/channels",
        &signed_params,
        body.as_bytes(),
    ) {
        panic!("a correctly signed request was refused ({e}): {signed_query:?}");
    }
    assert!(verify_request(
        &app,
        method,
        "/apps/fuzz-id/channel",
        &signed_params,
        body.as_bytes()
    )
    .is_err());
    // Another body than the one signed (the fuzzer's own body may be "x").
    let other: &[u8] = if body.as_bytes() == b"x" { b"y" } else { b"x" };
    assert!(verify_request(&app, method, "/apps/fuzz-id/channels", &signed_params, other).is_err());

    // (3) Through the router: the fuzzer's path and query, then the signed GET of the same
    // path (channel names and user ids from the fuzzer, percent-encoded).
    let seg = percent_encoding::utf8_percent_encode(&path, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    let _ = http::call(
        method,
        &format!("/apps/fuzz-id/{path}?{query}"),
        body.clone().into_bytes(),
    );
    for p in [
        "/apps/fuzz-id/channels".to_string(),
        format!("/apps/fuzz-id/channels/{seg}"),
        format!("/apps/fuzz-id/channels/{seg}/users"),
    ] {
        let uri = http::signed("GET", &p, b"", &extra_refs);
        let _ = http::call("GET", &uri, Vec::new());
    }
    let p = format!("/apps/fuzz-id/users/{seg}/terminate_connections");
    let _ = http::call(
        "POST",
        &http::signed("POST", &p, b"", &extra_refs),
        Vec::new(),
    );
});
