//! The accept loop: every socket is admitted against the per-IP and pending-handshake caps
//! (a refused one is closed at once, logged and counted in `rf_broadcast_refusals_total`),
//! then served by a task of its own until it becomes a WebSocket or closes. Until then the
//! client has `--handshake-timeout` for each request (TLS handshake, headers and body, from the
//! accept or from the end of the previous response), or the socket is closed: a silent or
//! trickling client (slowloris) holds a file descriptor for that long and no longer.
//!
//! HTTP/1.1 only (hyper's server connection with upgrades), optionally over TLS ([`crate::tls`]).

mod conn;
mod io;
mod limits;

use crate::metrics::{Metrics, UNKNOWN_APP};
use crate::tls::Tls;
use axum::Router;
use limits::{Limits, Refusal};
use parking_lot::Mutex;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The listener's part of the server options.
#[derive(Clone)]
pub(crate) struct Settings {
    pub handshake_timeout: Duration,
    pub max_connections_per_ip: usize,
    pub max_pending_handshakes: usize,
    /// Where refusals are counted, when metrics are on.
    pub metrics: Option<Arc<Metrics>>,
}

/// After the accept loop stopped: the sockets it admitted that have not upgraded yet.
pub(crate) struct Stopped {
    limits: Arc<Limits>,
}

impl Stopped {
    /// Sockets still mid-handshake (they were told to finish their request and close).
    pub(crate) fn pending(&self) -> usize {
        self.limits.pending()
    }
}

/// Accept and serve `app` until `stop` resolves; then stop accepting and ask every socket that
/// has not upgraded to close once its current request is answered.
pub(crate) async fn accept_until(
    listener: TcpListener,
    app: Router,
    settings: Settings,
    tls: Option<Arc<Tls>>,
    stop: impl Future<Output = ()>,
) -> Stopped {
    let limits = Limits::new(
        settings.max_connections_per_ip,
        settings.max_pending_handshakes,
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let refusals = Throttled::new(REFUSAL_LOG_EVERY);
    let accept_errors = Throttled::new(REFUSAL_LOG_EVERY);
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    if !is_per_connection(&e) {
                        // Out of file descriptors or memory: the socket stays in the backlog;
                        // back off a little instead of spinning on it.
                        accept_errors.warn(|n| format!("accept error ({n} in the last 10 s): {e}"));
                        tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    }
                    continue;
                }
            },
        };
        match limits.admit(peer.ip()) {
            Ok((ip_slot, pending_slot)) => {
                let _ = tcp.set_nodelay(true); // small frames must not wait for Nagle
                tokio::spawn(conn::drive(conn::Accepted {
                    tcp,
                    peer,
                    ip_slot,
                    pending_slot,
                    app: app.clone(),
                    tls: tls.clone(),
                    timeout: settings.handshake_timeout,
                    stop: stop_rx.clone(),
                }));
            }
            Err(refusal) => {
                drop(tcp);
                if let Some(metrics) = &settings.metrics {
                    // Before any request: the app is not known.
                    metrics.refused(UNKNOWN_APP, refusal.reason());
                }
                refusals.warn(|n| match refusal {
                    Refusal::PerIp => format!(
                        "refused {n} socket(s) in the last 10 s, latest from {}: \
                         --max-connections-per-ip ({}) reached (behind a proxy every \
                         client shares its address: raise it or set 0)",
                        peer.ip(),
                        settings.max_connections_per_ip
                    ),
                    Refusal::Pending => format!(
                        "refused {n} socket(s) in the last 10 s, latest from {}: \
                         --max-pending-handshakes ({}) reached",
                        peer.ip(),
                        settings.max_pending_handshakes
                    ),
                });
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    Stopped { limits }
}

/// How often a repeated refusal or accept error is logged.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Pause after an accept error that is not about one connection (EMFILE, ENOMEM).
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(20);

/// Errors that concern only the connection being accepted; the next accept may succeed.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
    )
}

/// A warning logged at most once per period, with the count of occurrences since the last.
struct Throttled {
    every: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttled {
    fn new(every: Duration) -> Self {
        Throttled {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    fn warn(&self, message: impl FnOnce(u64) -> String) {
        let mut state = self.state.lock();
        state.1 += 1;
        let due = state.0.is_none_or(|last| last.elapsed() >= self.every);
        if due {
            let n = state.1;
            *state = (Some(Instant::now()), 0);
            drop(state);
            tracing::warn!("{}", message(n));
        }
    }
}
