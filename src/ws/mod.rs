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

pub(crate) mod handler;
mod read_error;
pub mod refusal;

pub use refusal::Refusal;

use crate::apps::App;
use crate::hub::{CloseRequest, Connection, Hub};
use crate::metrics::{Metrics, UNKNOWN_APP};
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
    /// The request's `Origin` header.
    pub origin: Option<String>,
    /// The lineage id of a `/l/{lineage}/app/{key}` path (missed-message recovery).
    pub lineage: Option<Arc<str>>,
    /// The client's address, when the listener knows it.
    pub peer: Option<std::net::IpAddr>,
    /// The app's `connection_rate_per_ip` (this limit) when the upgrade handler found the
    /// client's address over it: refused with 4100.
    pub over_connection_rate: Option<u32>,
    /// Where a refused handshake is counted, when metrics are on.
    pub metrics: Option<Arc<Metrics>>,
}

type BoxedClose = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The future that runs one connection to its end: a refusal (error + close) or a [`ConnTask`].
pub fn serve(
    socket: WebSocket,
    hub: Arc<Hub>,
    handshake: Handshake,
) -> Either<BoxedClose, ConnTask> {
    let metrics = handshake.metrics.clone();
    let count = |app_id: &str, refusal: &Refusal| {
        if let (Some(metrics), Some(reason)) = (&metrics, refusal.handshake_reason()) {
            metrics.refused(app_id, reason);
        }
    };
    let app = match check_handshake(&handshake) {
        Ok(app) => app,
        Err(refusal) => {
            let app_id = handshake
                .app
                .as_ref()
                .map_or(UNKNOWN_APP, |a| a.id.as_str());
            count(app_id, &refusal);
            return Either::Left(Box::pin(refuse_handshake(socket, refusal)));
        }
    };
    match hub.connect_from(&app, handshake.lineage, handshake.peer) {
        Ok(conn) => {
            tracing::debug!(app_id = %app.id, socket_id = %conn.socket_id, "connected");
            conn.push(protocol::connection_established(
                &conn.socket_id.to_string(),
                app.activity_timeout,
            ));
            Either::Right(ConnTask::new(socket, hub, conn))
        }
        Err(code) => {
            let refusal = match code {
                ErrorCode::OverConnectionQuota => Refusal::OverConnectionQuota,
                // The hub does not know the app (it went away since the lookup).
                _ => Refusal::AppDoesNotExist,
            };
            count(&app.id, &refusal);
            Either::Left(Box::pin(refuse_handshake(socket, refusal)))
        }
    }
}

async fn refuse_handshake(mut socket: WebSocket, refusal: Refusal) {
    tracing::debug!(?refusal, "connection refused");
    if let Some(ending) = Ending::of(&refusal, 0) {
        finish(&mut socket, ending).await
    }
}

fn check_handshake(h: &Handshake) -> Result<Arc<App>, Refusal> {
    let app = h.app.clone().ok_or(Refusal::AppDoesNotExist)?;
    if !app.enabled {
        return Err(Refusal::AppDisabled);
    }
    if let Some(limit) = h.over_connection_rate {
        return Err(Refusal::OverConnectionRate(limit));
    }
    if !app.origin_allowed(h.origin.as_deref()) {
        return Err(Refusal::OriginNotAllowed);
    }
    if let Some(p) = &h.protocol {
        match p.parse::<u32>() {
            Ok(v) if v >= MIN_PROTOCOL => {}
            _ => return Err(Refusal::UnsupportedProtocol),
        }
    }
    Ok(app)
}

/// How a connection ends: the refusal's Pusher frame (if any), then the close frame.
#[derive(Debug, Clone)]
struct Ending {
    frame: Option<Utf8Bytes>,
    code: u16,
    reason: &'static str,
}

impl Ending {
    /// The ending of a refusal that closes the connection; `None` for one that does not.
    fn of(refusal: &Refusal, echo_limit: usize) -> Option<Ending> {
        let close = refusal.close()?;
        Some(Ending {
            frame: refusal.frame(echo_limit),
            code: close.code,
            reason: close.reason,
        })
    }
}

/// Send the ending's Pusher frame (if any) and close frame.
async fn finish(socket: &mut WebSocket, ending: Ending) {
    if let Some(frame) = ending.frame {
        let _ = socket.send(Message::Text(frame)).await;
    }
    close(socket, ending.code, ending.reason).await;
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

/// Write the close reply tungstenite queued when the client's Close arrived (a flush sends it
/// and then reports the handshake done), within a bounded time; dropping the socket then
/// closes TCP, from the server's side as RFC 6455 §7.1.1 asks.
async fn answer_close(mut socket: WebSocket) {
    let _ = tokio::time::timeout(CLOSE_GRACE, socket.flush()).await;
}

enum Flow {
    Continue,
    /// The client sent a close frame. tungstenite has queued the reply (the client's code and
    /// reason echoed; 1002 for a code not allowed on the wire; an empty close for an empty
    /// one): it must still be written, then TCP is closed.
    ClientClosed,
}

/// What writing the queue achieved.
enum Written {
    /// Everything queued is in the socket and flushed; a close request pending with it.
    All(Option<CloseRequest>),
    /// The socket cannot take more now; the task is woken when it drains.
    Busy,
}

/// Writing to the socket failed: the peer is gone and nothing more can be sent.
struct SocketFailed;

/// One live connection, as a future. Dropping it unregisters the connection from the hub.
pub struct ConnTask {
    /// `None` once the socket has been handed to the closing future.
    socket: Option<WebSocket>,
    session: handler::Session,
    /// Frames were written since the last completed flush.
    unflushed: bool,
    /// A close this task decided on (unreadable or oversized frame): sent once the queue is
    /// written.
    local_close: Option<Ending>,
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

    /// Move every queued frame the socket will take into it, then flush once. `Err` when the
    /// socket failed. One queue lock per frame, and the close check rides on the last one.
    fn poll_write(
        &mut self,
        socket: &mut WebSocket,
        cx: &mut Context<'_>,
    ) -> Result<Written, SocketFailed> {
        let mut close = None;
        let mut drained = false;
        loop {
            match socket.poll_ready_unpin(cx) {
                Poll::Ready(Ok(())) => match self.session.conn().pop() {
                    Ok(frame) => {
                        socket
                            .start_send_unpin(Message::Text(frame))
                            .map_err(|_| SocketFailed)?;
                        self.unflushed = true;
                    }
                    Err(pending_close) => {
                        close = pending_close;
                        drained = true;
                        break;
                    }
                },
                Poll::Ready(Err(_)) => return Err(SocketFailed),
                Poll::Pending => break,
            }
        }
        if self.unflushed {
            match socket.poll_flush_unpin(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(_)) => return Err(SocketFailed),
                Poll::Pending => {}
            }
        }
        Ok(if drained && !self.unflushed {
            Written::All(close)
        } else {
            Written::Busy
        })
    }

    /// Hand the socket to a future that sends the ending within a bounded time (a client that
    /// does not read may never take it).
    fn start_close(&mut self, ending: Ending) {
        let Some(mut socket) = self.socket.take() else {
            return;
        };
        self.session
            .conn()
            .record_ending(Some(ending.code), ending.reason);
        self.closing = Some(Box::pin(async move {
            let _ = tokio::time::timeout(SLOW_CLOSE_GRACE, finish(&mut socket, ending)).await;
        }));
    }

    fn handle(&mut self, msg: Message) -> Flow {
        self.session.conn().seen();
        let handled = match msg {
            Message::Text(text) => self.session.handle_text(text.as_str()),
            Message::Binary(bytes) => match std::str::from_utf8(&bytes) {
                Ok(text) => self.session.handle_text(text),
                Err(_) => Err(Refusal::invalid("binary frame is not UTF-8 JSON")),
            },
            Message::Close(frame) => {
                let code = frame.as_ref().map(|f| f.code);
                let conn = self.session.conn();
                if code.is_some_and(|c| c == 1000 || c == 1001) {
                    conn.mark_clean_close();
                }
                // The client's code (its reason is its own text: not kept).
                conn.record_ending(code, "closed by the client");
                return Flow::ClientClosed;
            }
            Message::Ping(_) | Message::Pong(_) => Ok(()),
        };
        if let Err(refusal) = handled {
            self.refuse(refusal);
        }
        Flow::Continue
    }

    /// Tell the client about a refusal: the one place a refusal's frame is sent. One that
    /// closes the connection does so once everything queued before it is written.
    fn refuse(&mut self, refusal: Refusal) {
        let conn = self.session.conn();
        tracing::debug!(socket_id = %self.session.socket_id(), ?refusal, "refused");
        if let Refusal::Subscription { channel, .. } = &refusal {
            self.session
                .hub()
                .refused(conn, channel, &refusal.message());
        }
        let echo_limit = conn.app().max_channel_name_len;
        match Ending::of(&refusal, echo_limit) {
            Some(ending) => {
                self.local_close.get_or_insert(ending);
            }
            None => {
                if let Some(frame) = refusal.frame(echo_limit) {
                    conn.push(frame);
                }
            }
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
            // Close once everything queued before the request is out; a slow consumer whose
            // queue was dropped (4100) at once, since its socket is not draining.
            let ending = match written {
                Written::All(Some(req)) => Ending::of(&Refusal::Ended(req), 0),
                Written::All(None) => this.local_close.take(),
                Written::Busy => this
                    .conn()
                    .close_request()
                    .filter(|r| r.code == ErrorCode::OverCapacity)
                    .and_then(|req| Ending::of(&Refusal::Ended(req), 0)),
            };
            if let Some(ending) = ending {
                this.socket = Some(socket);
                this.start_close(ending);
                continue;
            }

            // Inbound.
            let mut progressed = false;
            if this.local_close.is_none() {
                match socket.poll_next_unpin(cx) {
                    Poll::Ready(Some(Ok(msg))) => {
                        progressed = true;
                        handled += 1;
                        if let Flow::ClientClosed = this.handle(msg) {
                            this.closing = Some(Box::pin(answer_close(socket)));
                            continue;
                        }
                    }
                    Poll::Ready(Some(Err(e))) => {
                        progressed = true;
                        match read_error::refusal_for(&e) {
                            Some(refusal) => this.refuse(refusal),
                            // The socket is gone: nothing can be sent.
                            None => return Poll::Ready(()),
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
        tracing::debug!(app_id = %conn.app_hub().app().id, socket_id = %conn.socket_id, "disconnected");
        self.session.hub().disconnect(conn);
    }
}
