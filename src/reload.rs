//! What SIGHUP does: a list of reload actions that parts of the server register (the TLS
//! certificate, the apps file, ...) and that run in registration order on each SIGHUP.
//! An action must not block: one with I/O to wait on spawns a task of its own.

use parking_lot::Mutex;
use std::sync::Arc;

type Action = Box<dyn Fn() + Send + Sync>;

/// The reload actions, shared by whoever registers them and the signal handler.
#[derive(Clone, Default)]
pub struct ReloadHooks {
    actions: Arc<Mutex<Vec<(&'static str, Action)>>>,
}

impl ReloadHooks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Run `action` on every reload; `name` is logged.
    pub fn register(&self, name: &'static str, action: impl Fn() + Send + Sync + 'static) {
        self.actions.lock().push((name, Box::new(action)));
    }

    /// Run every registered action once, in order. A panicking action is logged and the
    /// others still run.
    pub fn reload(&self) {
        let actions = self.actions.lock();
        tracing::info!("reload: running {} action(s)", actions.len());
        for (name, action) in actions.iter() {
            tracing::debug!("reload: {name}");
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(action)).is_err() {
                tracing::error!("reload: {name} panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_action_runs_on_each_reload_even_after_a_panic() {
        let hooks = ReloadHooks::new();
        let count = Arc::new(AtomicUsize::new(0));
        hooks.register("boom", || panic!("reload failed"));
        let c = count.clone();
        hooks.register("count", move || {
            c.fetch_add(1, Ordering::SeqCst);
        });
        hooks.reload();
        hooks.clone().reload();
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }
}
