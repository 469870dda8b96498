//! What the fuzz targets share: one hub with one app whose limits are small (so the fuzzer
//! reaches them), a session on it like a WebSocket connection's, and the check that a
//! connection leaves nothing behind when it goes.
#![allow(dead_code)]

use rf_broadcast::testing::{self, Session};
use rf_broadcast::{App, Apps, Hub, HubSettings};
use std::sync::{Arc, OnceLock};

pub const APP_ID: &str = "fuzz-id";
pub const KEY: &str = "fuzz-key";
pub const SECRET: &str = "fuzz-secret";

/// The app every target talks to: client events on, limits low enough to be hit.
pub fn app() -> App {
    let mut app = App::new(APP_ID, KEY, SECRET);
    app.client_events = true;
    app.max_channels_per_connection = 8;
    app.max_presence_members = 4;
    app.max_presence_member_bytes = 256;
    app.max_event_bytes = 512;
    app.max_channels_per_event = 4;
    app.max_batch_events = 4;
    app.max_watchlist = 4;
    app.client_event_rate = 5;
    app
}

/// One hub for the whole run (as in the server: connections come and go on it).
pub fn hub() -> &'static Arc<Hub> {
    static HUB: OnceLock<Arc<Hub>> = OnceLock::new();
    HUB.get_or_init(|| {
        Hub::new(
            Apps::new(vec![app()]),
            HubSettings {
                max_queued_frames: 64,
                ..HubSettings::default()
            },
        )
    })
}

/// A new connection's session, as `ws::serve` makes one after the handshake.
pub fn session() -> Session {
    testing::open_session(hub(), KEY).expect("the fuzz app takes connections")
}

/// One text frame through the session, and its refusal (if any) encoded as the socket task
/// would send it: always JSON, and never longer than the frame that caused it plus a bound.
pub fn handle(session: &mut Session, text: &str) {
    if let Err(refusal) = session.handle_text(text) {
        if let Some(frame) = refusal.frame(app().max_channel_name_len) {
            let v: Result<serde_json::Value, _> = serde_json::from_str(frame.as_str());
            assert!(v.is_ok(), "a refusal frame is not JSON: {}", frame.as_str());
            assert!(
                frame.len() <= 2048 + app().max_channel_name_len * 6,
                "a {} byte refusal for a {} byte frame",
                frame.len(),
                text.len()
            );
        }
    }
}

/// Disconnect a session as the socket task does when it ends.
pub fn end(session: Session) {
    testing::close_session(session);
}

/// After every connection of an input went: no connection, channel or signed-in user is left.
pub fn assert_nothing_left() {
    let hub = hub();
    assert_eq!(
        testing::connection_count(hub),
        0,
        "a connection outlived its socket"
    );
    assert_eq!(
        testing::occupied_channels(hub, APP_ID, ""),
        0,
        "channels left occupied"
    );
    assert_eq!(
        testing::signed_in_users(hub, APP_ID),
        0,
        "users left signed in"
    );
}

/// Split fuzz input into at most `n` byte fields at 0x00 bytes (the last takes the rest).
pub fn fields(data: &[u8], n: usize) -> Vec<String> {
    data.splitn(n, |&b| b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect()
}
