//! One WebSocket connection: the handshake checks, then one hand-written future per
//! connection ([`ConnTask`]) that drives the socket and the connection's outbound queue. The
//! heartbeat is one sweep over all connections in the hub (`Hub::tick`), not a timer each.
//!
//! Inbound frames are parsed (`protocol`) and handled here (subscribe with auth, sign-in,
//! client events with their rate limit); everything outbound, replies included, goes through
//! the connection's queue so frames keep their order and are written in batches with one
//! flush. One task per connection, no channels between tasks, no buffers held while idle. The
//! future is written by hand rather than as an `async fn` with `select!` because its size is
//! what every idle connection costs: it holds the socket, a few words of state and a boxed
//! nothing else (see DESIGN.md, per-connection memory).

mod handler;

use crate::apps::App;
use crate::hub::{CloseRequest, Connection, Hub};
use crate::protocol::{self, ErrorCode};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::future::Either;
use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// Oldest protocol version accepted (`?protocol=`); missing means 7.
pub const MIN_PROTOCOL: u32 = 5;

/// WebSocket close code for a frame over the size limit (RFC 6455 "message too big").
pub const CLOSE_TOO_BIG: u16 = 1009;

/// How long to wait for the client's close reply before dropping the socket.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// How long a connection closed by the server (slow consumer, terminate, shutdown) may take to
/// get its close frame out before the socket is dropped.
const SLOW_CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Inbound frames handled in one poll before the task yields to others.
const FRAMES_PER_POLL: usize = 32;

/// What the upgrade request asked for, checked before the connection is admitted.
pub struct Handshake {
    pub app: Option<Arc<App>>,
    pub protocol: Option<String>,
}

type BoxedClose = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The future that runs one connection to its end: a refusal (error + close) or a [`ConnTask`].
pub fn serve(
    mut socket: WebSocket,
    hub: Arc<Hub>,
    handshake: Handshake,
) -> Either<BoxedClose, ConnTask> {
    let app = match check_handshake(&handshake) {
        Ok(app) => app,
        Err((code, message)) => {
            return Either::Left(Box::pin(
                async move { refuse(&mut socket, code, message).await },
            ))
        }
    };
    match hub.connect(&app) {
        Ok(conn) => {
            tracing::debug!(app_id = %app.id, socket_id = %conn.socket_id, "connected");
            conn.push(protocol::connection_established(
                &conn.socket_id.to_string(),
                app.activity_timeout,
            ));
            Either::Right(ConnTask::new(socket, hub, conn))
        }
        Err(code) => Either::Left(Box::pin(async move {
            refuse(&mut socket, code, "Application is over connection quota").await
        })),
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

enum Flow {
    Continue,
    Close(u16, String),
}

/// One live connection, as a future. Dropping it unregisters the connection from the hub.
pub struct ConnTask {
    /// `None` once the socket has been handed to the closing future.
    socket: Option<WebSocket>,
    session: handler::Session,
    /// Frames were written since the last completed flush.
    unflushed: bool,
    /// A close this task decided on (protocol error): sent once the queue is written.
    local_close: Option<(u16, String)>,
    closing: Option<BoxedClose>,
}

impl ConnTask {
    fn new(socket: WebSocket, hub: Arc<Hub>, conn: Arc<Connection>) -> ConnTask {
        ConnTask {
            socket: Some(socket),
            session: handler::Session::new(hub, conn),
            unflushed: false,
            local_close: None,
            closing: None,
        }
    }

    fn conn(&self) -> &Connection {
        self.session.conn()
    }

    /// Move every queued frame the socket will take into it, then flush once. Returns whether
    /// everything queued was written and flushed; `Err` when the socket failed. When the socket
    /// is full the frames stay queued and the task is woken when it drains.
    fn poll_write(&mut self, socket: &mut WebSocket, cx: &mut Context<'_>) -> Result<bool, ()> {
        let mut drained = false;
        loop {
            match socket.poll_ready_unpin(cx) {
                Poll::Ready(Ok(())) => match self.session.conn().pop() {
                    Some(frame) => {
                        socket
                            .start_send_unpin(Message::Text(frame))
                            .map_err(|_| ())?;
                        self.unflushed = true;
                    }
                    None => {
                        drained = true;
                        break;
                    }
                },
                Poll::Ready(Err(_)) => return Err(()),
                Poll::Pending => break,
            }
        }
        if self.unflushed {
            match socket.poll_flush_unpin(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(_)) => return Err(()),
                Poll::Pending => {}
            }
        }
        Ok(drained && !self.unflushed)
    }

    /// Hand the socket to a future that sends the close (and, for server-side closes, the
    /// `pusher:error` first) within a bounded time.
    fn start_close(&mut self, request: Result<CloseRequest, (u16, String)>) {
        let Some(mut socket) = self.socket.take() else {
            return;
        };
        self.closing = Some(match request {
            Ok(req) => Box::pin(async move {
                let _ = tokio::time::timeout(SLOW_CLOSE_GRACE, finish(&mut socket, req)).await;
            }),
            Err((code, reason)) => Box::pin(async move {
                let _ =
                    tokio::time::timeout(SLOW_CLOSE_GRACE, close(&mut socket, code, &reason)).await;
            }),
        });
    }

    fn handle(&mut self, msg: Message) -> Flow {
        self.session.conn().seen();
        match msg {
            Message::Text(text) => self.session.handle_text(text.as_str()),
            Message::Binary(bytes) => match std::str::from_utf8(&bytes) {
                Ok(text) => self.session.handle_text(text),
                Err(_) => self.session.invalid("binary frame is not UTF-8 JSON"),
            },
            Message::Close(_) => Flow::Close(0, String::new()),
            Message::Ping(_) | Message::Pong(_) => Flow::Continue,
        }
    }
}

impl Future for ConnTask {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut handled = 0;
        loop {
            if let Some(closing) = this.closing.as_mut() {
                return closing.as_mut().poll(cx);
            }
            let Some(mut socket) = this.socket.take() else {
                return Poll::Ready(());
            };
            // Outbound first: register, then look at the queue, so no push is missed.
            this.conn().register(cx.waker());
            let Ok(written) = this.poll_write(&mut socket, cx) else {
                return Poll::Ready(());
            };
            let server_close = this.conn().close_request();
            let overflowed = server_close
                .as_ref()
                .is_some_and(|r| r.code == ErrorCode::OverCapacity);
            if let Some(req) = server_close {
                // A slow consumer's queue was dropped: close at once. Otherwise finish writing
                // what was queued before the close request.
                if overflowed || written {
                    this.socket = Some(socket);
                    this.start_close(Ok(req));
                    continue;
                }
            } else if written {
                if let Some(local) = this.local_close.take() {
                    this.socket = Some(socket);
                    this.start_close(Err(local));
                    continue;
                }
            }

            // Inbound.
            let mut progressed = false;
            if this.local_close.is_none() {
                match socket.poll_next_unpin(cx) {
                    Poll::Ready(Some(Ok(msg))) => {
                        progressed = true;
                        handled += 1;
                        match this.handle(msg) {
                            Flow::Continue => {}
                            // The client closed: tungstenite answers it; nothing more to do.
                            Flow::Close(0, _) => return Poll::Ready(()),
                            Flow::Close(code, reason) => this.local_close = Some((code, reason)),
                        }
                    }
                    Poll::Ready(Some(Err(e))) => {
                        progressed = true;
                        if let Flow::Close(code, reason) = read_error(e) {
                            this.local_close = Some((code, reason));
                        }
                    }
                    Poll::Ready(None) => return Poll::Ready(()),
                    Poll::Pending => {}
                }
            }

            this.socket = Some(socket);
            if !progressed {
                return Poll::Pending;
            }
            if handled >= FRAMES_PER_POLL {
                // Let other connections run; come back at once.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
    }
}

impl Drop for ConnTask {
    fn drop(&mut self) {
        let conn = self.session.conn_arc();
        tracing::debug!(app_id = %conn.app.id, socket_id = %conn.socket_id, "disconnected");
        self.session.hub().disconnect(conn);
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
