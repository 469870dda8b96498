//! Readiness, as a load balancer asks for it (`GET /ready`): 200 only while this node should be
//! sent traffic. Other parts set the flags: shutdown starts draining, the cluster adapter says
//! whether it reaches Redis. `/up` (liveness) stays 200 whatever these say.
//!
//! There is no "apps not loaded" state: the binary loads its apps (file, flags, or the first
//! full read of the database, which must succeed or the process exits 2) before it listens, so
//! no request ever reaches a node without apps; later database outages keep the apps it has.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// Flags that together say whether this node accepts traffic. New: ready (adapter connected,
/// not draining); whoever owns a dependency sets its flag.
pub struct Readiness {
    draining: AtomicBool,
    adapter_connected: AtomicBool,
    /// Asked on each `/ready`: whether the cluster adapter reaches its broker now.
    adapter_probe: OnceLock<Probe>,
}

type Probe = Box<dyn Fn() -> bool + Send + Sync>;

impl Default for Readiness {
    fn default() -> Self {
        Readiness {
            draining: AtomicBool::new(false),
            adapter_connected: AtomicBool::new(true),
            adapter_probe: OnceLock::new(),
        }
    }
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("not_ready_because", &self.not_ready_because())
            .finish()
    }
}

impl Readiness {
    pub fn new() -> Arc<Readiness> {
        Arc::new(Readiness::default())
    }

    /// From now on `/ready` answers 503 (shutdown has begun); there is no way back.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// The cluster adapter reaches (true) or lost (false) its broker.
    pub fn set_adapter_connected(&self, connected: bool) {
        self.adapter_connected.store(connected, Ordering::Release);
    }

    /// Ask `probe` on each readiness check whether the adapter is connected (for an adapter
    /// that keeps its own state, like the Redis adapter's `connected()`); set once.
    pub fn set_adapter_probe(&self, probe: impl Fn() -> bool + Send + Sync + 'static) {
        let _ = self.adapter_probe.set(Box::new(probe));
    }

    /// Why the node is not ready, or `None` when it is.
    pub fn not_ready_because(&self) -> Option<&'static str> {
        if self.is_draining() {
            Some("draining")
        } else if !self.adapter_connected.load(Ordering::Acquire)
            || self.adapter_probe.get().is_some_and(|probe| !probe())
        {
            Some("adapter disconnected")
        } else {
            None
        }
    }

    /// The `/ready` answer: 200 `OK`, or 503 with the reason as the body.
    pub fn response(&self) -> Response {
        match self.not_ready_because() {
            None => (StatusCode::OK, "OK").into_response(),
            Some(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_flag_makes_it_unready() {
        let r = Readiness::new();
        assert_eq!(r.not_ready_because(), None);
        r.set_adapter_connected(false);
        assert_eq!(r.not_ready_because(), Some("adapter disconnected"));
        r.set_adapter_connected(true);
        assert_eq!(r.not_ready_because(), None);
        let up = Arc::new(AtomicBool::new(false));
        let probe = up.clone();
        r.set_adapter_probe(move || probe.load(Ordering::SeqCst));
        assert_eq!(r.not_ready_because(), Some("adapter disconnected"));
        up.store(true, Ordering::SeqCst);
        assert_eq!(r.response().status(), StatusCode::OK);
        r.start_draining();
        assert_eq!(r.response().status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.not_ready_because(), Some("draining"));
    }
}
