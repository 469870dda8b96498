//! One WebSocket connection: the handshake checks, then a single task that selects over the
//! socket, the connection's outbound queue and its heartbeat timer.
//!
//! Inbound frames are parsed (`protocol`) and handled here (subscribe with auth, sign-in,
//! client events with their rate limit); everything outbound, replies included, goes through
//! the connection's queue so frames keep their order and are written in batches with one
//! flush. One task per connection, no channels between tasks, no buffers held while idle.

mod handler;

use crate::apps::App;
use crate::hub::{CloseRequest, Connection, Hub};
use crate::protocol::{self, ErrorCode};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Oldest and newest protocol versions accepted (`?protocol=`); missing means 7.
pub const MIN_PROTOCOL: u32 = 5;

/// WebSocket close code for a frame over the size limit (RFC 6455 "message too big").
pub const CLOSE_TOO_BIG: u16 = 1009;

/// How long to wait for the client's close reply before dropping the socket.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// How long a connection closed by the server (slow consumer, terminate, shutdown) may take to
/// get its close frame out before the socket is dropped.
const SLOW_CLOSE_GRACE: Duration = Duration::from_secs(10);

/// What the upgrade request asked for, checked before the connection is admitted.
pub struct Handshake {
    pub app: Option<Arc<App>>,
    pub protocol: Option<String>,
}

/// Run one connection to its end.
pub async fn serve(mut socket: WebSocket, hub: Arc<Hub>, handshake: Handshake) {
    let app = match check_handshake(&handshake) {
        Ok(app) => app,
        Err((code, message)) => {
            Box::pin(refuse(&mut socket, code, message)).await;
            return;
        }
    };
    let conn = match hub.connect(&app) {
        Ok(conn) => conn,
        Err(code) => {
            Box::pin(refuse(
                &mut socket,
                code,
                "Application is over connection quota",
            ))
            .await;
            return;
        }
    };
    let _guard = Registered {
        hub: &hub,
        conn: &conn,
    };
    tracing::debug!(app_id = %app.id, socket_id = %conn.socket_id, "connected");
    conn.push(protocol::connection_established(
        &conn.socket_id.to_string(),
        app.activity_timeout,
    ));
    run(socket, &hub, &conn).await;
    tracing::debug!(app_id = %app.id, socket_id = %conn.socket_id, "disconnected");
}

/// Unregisters the connection from the hub however the task ends.
struct Registered<'a> {
    hub: &'a Arc<Hub>,
    conn: &'a Arc<Connection>,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.hub.disconnect(self.conn);
    }
}

fn check_handshake(h: &Handshake) -> Result<Arc<App>, (ErrorCode, &'static str)> {
    let app = h
        .app
        .clone()
        .ok_or((ErrorCode::AppDoesNotExist, "Application does not exist"))?;
    if !app.enabled {
        return Err((ErrorCode::AppDisabled, "Application is disabled"));
    }
    if let Some(p) = &h.protocol {
        match p.parse::<u32>() {
            Ok(v) if v >= MIN_PROTOCOL => {}
            _ => {
                return Err((
                    ErrorCode::UnsupportedProtocol,
                    "Unsupported protocol version",
                ))
            }
        }
    }
    Ok(app)
}

/// Send `pusher:error` and close with the same code.
async fn refuse(socket: &mut WebSocket, code: ErrorCode, message: &'static str) {
    let _ = socket
        .send(Message::Text(protocol::error(Some(code), message, None)))
        .await;
    close(socket, code.code(), message).await;
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(reason.chars().take(120).collect::<String>()),
    };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    // Wait (briefly) for the client's close reply so the close frame is not lost to a reset.
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(msg)) = socket.recv().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Heartbeat state: the server pings a client silent for `activity_timeout`, and closes it
/// with 4201 if nothing arrives within `pong_timeout` after.
struct Heartbeat {
    activity: Duration,
    pong_wait: Duration,
    last_seen: Instant,
    pinged: bool,
}

impl Heartbeat {
    fn deadline(&self) -> Instant {
        if self.pinged {
            self.last_seen + self.activity + self.pong_wait
        } else {
            self.last_seen + self.activity
        }
    }
}

enum Flow {
    Continue,
    Close(u16, String),
}

async fn run(mut socket: WebSocket, hub: &Arc<Hub>, conn: &Arc<Connection>) {
    let app = conn.app.clone();
    let mut session = handler::Session::new(hub.clone(), conn.clone());
    let mut batch: VecDeque<Utf8Bytes> = VecDeque::new();
    let mut hb = Heartbeat {
        activity: Duration::from_secs(app.activity_timeout.max(1)),
        pong_wait: Duration::from_secs(app.pong_timeout.max(1)),
        last_seen: Instant::now(),
        pinged: false,
    };
    let sleep = tokio::time::sleep_until(hb.deadline());
    tokio::pin!(sleep);

    loop {
        // Write whatever is queued, then honour a close request.
        let mut close_request = conn.take(&mut batch);
        if !batch.is_empty() {
            match write_batch(&mut socket, conn, &mut batch).await {
                Ok(()) => {}
                Err(WriteError::Io) => return,
                Err(WriteError::Overflow) => close_request = conn.take(&mut batch),
            }
        }
        if let Some(req) = close_request {
            // A slow consumer may not read its close frame soon, if ever: bounded wait.
            let _ = Box::pin(tokio::time::timeout(
                SLOW_CLOSE_GRACE,
                finish(&mut socket, req),
            ))
            .await;
            return;
        }
        tokio::select! {
            biased;
            _ = conn.notified() => {}
            msg = socket.recv() => {
                let flow = match msg {
                    None => return,
                    Some(Err(e)) => read_error(e),
                    Some(Ok(msg)) => {
                        hb.last_seen = Instant::now();
                        hb.pinged = false;
                        match msg {
                            Message::Text(text) => session.handle_text(text.as_str()),
                            Message::Binary(bytes) => match std::str::from_utf8(&bytes) {
                                Ok(text) => session.handle_text(text),
                                Err(_) => session.invalid("binary frame is not UTF-8 JSON"),
                            },
                            Message::Close(_) => return,
                            Message::Ping(_) | Message::Pong(_) => Flow::Continue,
                        }
                    }
                };
                if let Flow::Close(code, reason) = flow {
                    // Flush what is queued (for instance a pusher:error) before closing.
                    conn.take(&mut batch);
                    if !batch.is_empty() {
                        let _ = write_batch(&mut socket, conn, &mut batch).await;
                    }
                    Box::pin(close(&mut socket, code, &reason)).await;
                    return;
                }
            }
            _ = &mut sleep => {
                if Instant::now() >= hb.deadline() {
                    if hb.pinged {
                        Box::pin(close(&mut socket, ErrorCode::PongNotReceived.code(), "Pong reply not received")).await;
                        return;
                    }
                    hb.pinged = true;
                    conn.push(protocol::ping());
                }
                sleep.as_mut().reset(hb.deadline());
            }
        }
    }
}

fn read_error(e: axum::Error) -> Flow {
    let text = e.to_string();
    tracing::debug!(error = %text, "websocket read error");
    if text.contains("Space limit exceeded")
        || text.contains("too long")
        || text.contains("too big")
    {
        Flow::Close(CLOSE_TOO_BIG, "Frame too large".into())
    } else {
        Flow::Close(1002, "Protocol error".into())
    }
}

enum WriteError {
    Io,
    Overflow,
}

/// Write a batch with one flush. While the socket cannot take more, keep watching the queue:
/// if it overflows meanwhile (slow consumer), stop writing at once.
async fn write_batch(
    socket: &mut WebSocket,
    conn: &Connection,
    batch: &mut VecDeque<Utf8Bytes>,
) -> Result<(), WriteError> {
    let write = async {
        for frame in batch.drain(..) {
            socket.feed(Message::Text(frame)).await?;
        }
        socket.flush().await
    };
    let overflow = async {
        loop {
            conn.notified().await;
            if conn.close_requested() {
                return;
            }
            // Otherwise more frames were queued: the main loop takes them after this write.
        }
    };
    tokio::select! {
        biased;
        r = write => r.map_err(|_| WriteError::Io),
        _ = overflow => Err(WriteError::Overflow),
    }
}

async fn finish(socket: &mut WebSocket, req: CloseRequest) {
    if req.send_error {
        let _ = socket
            .send(Message::Text(protocol::error(
                Some(req.code),
                req.message,
                None,
            )))
            .await;
    }
    close(socket, req.code.code(), req.message).await;
}
