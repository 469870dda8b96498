//! Reports of webhook delivery attempts, for whoever watches (the debug console): each request
//! a target was sent, with what it carried and how it went: delivered, will be retried, or
//! given up.
//!
//! The sender never waits for a watcher: reports go into a bounded broadcast ring
//! ([`WebhookSettings::attempt_reports`](super::WebhookSettings::attempt_reports) entries); a
//! watcher that falls behind skips ahead and is told how many it missed. With nobody watching
//! a report is not even built. What a report shows of the target is its URL without user
//! name, password, query or fragment: those may hold the receiver's credentials.

use std::sync::Arc;
use tokio::sync::broadcast;

/// How an attempt ended for the events it carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered 2xx: the events are delivered.
    Delivered,
    /// Failed; the request is sent again after `retry_in_ms`.
    WillRetry,
    /// Failed, and `retry_for` is spent: the events are given up (and counted).
    GivenUp,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::WillRetry => "will_retry",
            Outcome::GivenUp => "given_up",
        }
    }
}

/// One request to one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub app_id: Arc<str>,
    /// The target's URL without credentials, query or fragment ([`shown_url`]).
    pub target: Arc<str>,
    /// The kinds of the events in the request (each once, sorted).
    pub kinds: Vec<&'static str>,
    /// The channels of the events in the request (each once, in order).
    pub channels: Vec<Arc<str>>,
    /// How many events the request carried.
    pub events: usize,
    /// 1 for the first request of these events, 2 for the first retry, ...
    pub attempt: u32,
    /// The HTTP status the receiver answered (`None`: no answer).
    pub status: Option<u16>,
    /// Why it failed (`None` when delivered): "answered 500", "timed out", "unreachable".
    pub error: Option<String>,
    pub outcome: Outcome,
    /// When the next attempt goes, for [`Outcome::WillRetry`].
    pub retry_in_ms: Option<u64>,
}

/// The sender's end: cheap to clone, one per node.
#[derive(Clone)]
pub struct AttemptReports {
    tx: broadcast::Sender<Arc<Attempt>>,
}

impl AttemptReports {
    /// A ring of `capacity` reports per watcher.
    pub fn new(capacity: usize) -> AttemptReports {
        let (tx, _) = broadcast::channel(capacity.max(1));
        AttemptReports { tx }
    }

    /// Hand a report to every watcher without waiting; built only when someone watches.
    pub fn report(&self, attempt: impl FnOnce() -> Attempt) {
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(Arc::new(attempt()));
        }
    }

    /// A watcher's end: every report from now on (`Lagged(n)`: it missed `n`).
    pub fn watch(&self) -> broadcast::Receiver<Arc<Attempt>> {
        self.tx.subscribe()
    }
}

/// A webhook URL as it may be shown (console, logs): scheme, host, port and path; no user
/// name, password, query or fragment.
pub fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        // Targets are checked when read, so this is not expected; show nothing of it.
        Err(_) => "(invalid URL)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_query_never_show() {
        assert_eq!(
            shown_url("https://user:pa55@hooks.example:8443/in/rf?token=s3cret#frag"),
            "https://hooks.example:8443/in/rf"
        );
        assert_eq!(
            shown_url("http://127.0.0.1:9/hook"),
            "http://127.0.0.1:9/hook"
        );
        assert_eq!(shown_url("not a url"), "(invalid URL)");
    }

    fn attempt(n: u32) -> Attempt {
        Attempt {
            app_id: "a".into(),
            target: "http://x/".into(),
            kinds: vec!["channel_occupied"],
            channels: vec!["c".into()],
            events: 1,
            attempt: n,
            status: Some(200),
            error: None,
            outcome: Outcome::Delivered,
            retry_in_ms: None,
        }
    }

    #[test]
    fn nobody_watching_builds_nothing_and_a_slow_watcher_skips_ahead() {
        let reports = AttemptReports::new(2);
        reports.report(|| panic!("built a report nobody watches"));
        let mut rx = reports.watch();
        for n in 1..=5 {
            reports.report(|| attempt(n));
        }
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(3))
        ));
        assert_eq!(rx.try_recv().unwrap().attempt, 4);
        assert_eq!(rx.try_recv().unwrap().attempt, 5);
    }
}
