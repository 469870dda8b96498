//! The HTTP API in process: the server's router on the shared hub, called without a socket,
//! and a signer that signs requests as the Pusher SDKs do.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use rf_broadcast::testing::auth::sign_http_request;
use rf_broadcast::testing::router;
use rf_broadcast::{AppState, ServerOptions};
use std::sync::OnceLock;
use tower::ServiceExt;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

fn app_router() -> &'static axum::Router {
    static ROUTER: OnceLock<axum::Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let options = ServerOptions {
            max_request_bytes: 4096,
            ..ServerOptions::default()
        };
        router(AppState::new(crate::common::hub().clone(), options))
    })
}

/// Send one request through the router; `None` when the fuzzer's URI is not a URI at all.
/// Returns the status and body. A 5xx is a bug: peers never cause server errors.
pub fn call(method: &str, uri: &str, body: Vec<u8>) -> Option<(StatusCode, Vec<u8>)> {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .ok()?;
    let (status, bytes) = runtime().block_on(async {
        let res = app_router().clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let bytes = res
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().to_vec());
        (status, bytes.unwrap_or_default())
    });
    assert!(
        !status.is_server_error(),
        "{method} {uri}: {status} {}",
        String::from_utf8_lossy(&bytes)
    );
    Some((status, bytes))
}

/// Seconds since the epoch, for signing.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `path?signed query` as the SDKs build it, with `extra` parameters signed too.
pub fn signed(method: &str, path: &str, body: &[u8], extra: &[(&str, &str)]) -> String {
    let q = sign_http_request(
        crate::common::KEY,
        crate::common::SECRET,
        method,
        path,
        body,
        now(),
        extra,
    );
    format!("{path}?{q}")
}
