//! WebSocket conformance from outside: a raw-socket client (`raw/`) sends hand-made frames to
//! `/app/{key}` on the real server (its own socket settings, `ServerOptions::default()`) and
//! checks the exact bytes that come back. Organised like the Autobahn TestSuite (sections 1-7
//! and 9); each test names the Autobahn cases it mirrors. Pusher frames stand in for
//! Autobahn's echo: a text message is a Pusher frame, so "echoed" means "answered as Pusher".
//! Summary: docs/ws-conformance.md.

mod common;
mod raw;

use common::TestServer;
use raw::*;

async fn client(s: &TestServer) -> RawClient {
    RawClient::established(s.addr, "app-key").await
}

// ---------------------------------------------------------------------------------------------
// Close codes of failed reads (classified by error type, ws/read_error.rs).

/// Autobahn 2.5: a ping with a 126-byte payload fails with 1002 (not 1009).
#[tokio::test]
async fn case_2_5_oversized_ping_closes_1002() {
    let s = TestServer::start().await;
    let mut c = client(&s).await;
    c.send_frame(PING, &[b'x'; 126]).await;
    c.expect_failed(1002, "Protocol error").await;
}

/// Autobahn 6.3.1: invalid UTF-8 in a text message fails with 1007.
#[tokio::test]
async fn case_6_3_1_invalid_utf8_closes_1007() {
    let s = TestServer::start().await;
    let mut c = client(&s).await;
    c.send_frame(
        TEXT,
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
    )
    .await;
    c.expect_failed(1007, "Invalid UTF-8").await;
}

/// Autobahn 9.1 (limit side): a message over `--max-frame-bytes` fails with 1009.
#[tokio::test]
async fn case_9_1_message_over_the_limit_closes_1009() {
    let s = TestServer::start().await;
    let mut c = client(&s).await;
    let max = rf_broadcast::ServerOptions::default().max_frame_bytes;
    c.send_frame(TEXT, &vec![b' '; max + 1]).await;
    c.expect_failed(1009, "Frame too large").await;
}
