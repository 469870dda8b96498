//! One accepted socket from accept to upgrade (or close): the TLS handshake, then hyper's
//! HTTP/1.1 connection serving the router, under a deadline that each answered request moves
//! `--handshake-timeout` further. When the connection upgrades, hyper hands the stream to the
//! WebSocket task and this task ends, releasing the socket's pending-handshake slot.

use super::io::{Counted, Stream};
use super::limits::{IpSlot, PendingSlot};
use crate::tls::Tls;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tower_service::Service;

/// Largest request head (request line and headers) hyper buffers; bigger answers 431.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Everything the connection task needs, handed over by the accept loop.
pub(super) struct Accepted {
    pub tcp: TcpStream,
    pub peer: SocketAddr,
    pub ip_slot: IpSlot,
    pub pending_slot: PendingSlot,
    pub app: Router,
    pub tls: Option<Arc<Tls>>,
    pub timeout: Duration,
    pub stop: watch::Receiver<bool>,
}

/// Serve one socket until it upgrades, closes, misses its deadline, or shutdown finishes it.
pub(super) async fn drive(accepted: Accepted) {
    let Accepted {
        tcp,
        peer,
        ip_slot,
        pending_slot,
        app,
        tls,
        timeout,
        mut stop,
    } = accepted;
    let deadline = Arc::new(Deadline::new(timeout));
    let stream = match tls {
        None => Stream::Plain(tcp),
        Some(tls) => {
            match tokio::time::timeout_at(deadline.at(), tls.acceptor().accept(tcp)).await {
                Ok(Ok(tls_stream)) => Stream::Tls(Box::new(tls_stream)),
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            }
        }
    };
    let service = ConnService {
        app,
        peer,
        deadline: deadline.clone(),
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(TokioIo::new(Counted::new(stream, ip_slot)), service)
        .with_upgrades();
    tokio::pin!(conn);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, "HTTP connection ended: {e}");
                }
                break;
            }
            _ = tokio::time::sleep_until(deadline.at()) => {
                // An answered request may have moved the deadline since the sleep began.
                if deadline.passed() {
                    tracing::debug!(%peer, "closed: no complete request within {timeout:?}");
                    break;
                }
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
    drop(pending_slot);
}

/// When the socket is closed unless a request is answered first: `timeout` after the accept,
/// then `timeout` after each answer.
struct Deadline {
    base: Instant,
    timeout: Duration,
    /// Milliseconds after `base`.
    at_ms: AtomicU64,
}

impl Deadline {
    fn new(timeout: Duration) -> Self {
        Deadline {
            base: Instant::now(),
            timeout,
            at_ms: AtomicU64::new(millis(timeout)),
        }
    }

    fn at(&self) -> Instant {
        self.base + Duration::from_millis(self.at_ms.load(Ordering::Acquire))
    }

    fn passed(&self) -> bool {
        Instant::now() >= self.at()
    }

    /// A request was answered: the next one has a full `timeout`.
    fn extend(&self) {
        let at = self.base.elapsed() + self.timeout;
        self.at_ms.store(millis(at), Ordering::Release);
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2)
}

/// The router as hyper's service for one connection: adds the client's address
/// (`ConnectInfo<SocketAddr>`, which the upgrade handler's per-app connection rate counts by),
/// moves the deadline.
#[derive(Clone)]
struct ConnService {
    app: Router,
    peer: SocketAddr,
    deadline: Arc<Deadline>,
}

type Answer = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, mut request: Request<Incoming>) -> Answer {
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let answer = self.app.clone().call(request.map(Body::new));
        let deadline = self.deadline.clone();
        Box::pin(async move {
            let response = answer.await;
            deadline.extend();
            response
        })
    }
}
