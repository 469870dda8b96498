//! Delivery to one target: a bounded queue, batches cut by `batch.rs`, at most
//! `max_in_flight` requests at once, each retried with exponential backoff and jitter until
//! it answers 2xx or `retry_for` has passed. Every attempt is signed anew with a fresh
//! `time_ms`. What overflows the queue or is given up is counted and logged with the target
//! and the kinds; nothing is dropped silently. Requests share one keep-alive HTTP client
//! (rustls for https).
//!
//! The hub never waits for any of this: events reach a target through `offer`, which only
//! counts and enqueues. Each attempt is also reported to whoever watches ([`super::attempts`],
//! the debug console), without waiting for them. Logs and reports show the target's URL
//! without its credentials or query ([`shown_url`]).

use super::attempts::{shown_url, Attempt, AttemptReports, Outcome};
use super::batch::{Pending, Queued};
use super::config::{Target, WebhookSettings};
use super::sign;
use crate::apps::App;
use parking_lot::Mutex;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Counters of one target (and, summed, of the node).
#[derive(Debug, Default)]
pub struct Stats {
    /// Events delivered (answered 2xx).
    pub delivered: AtomicU64,
    /// Requests sent, retries included.
    pub requests: AtomicU64,
    /// Attempts that failed (non-2xx, timeout, unreachable).
    pub failed_attempts: AtomicU64,
    /// Events given up after `retry_for` (or at the end of the shutdown flush).
    pub given_up: AtomicU64,
    /// Events refused because the target's queue was full.
    pub overflowed: AtomicU64,
}

/// A snapshot of [`Stats`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub delivered: u64,
    pub requests: u64,
    pub failed_attempts: u64,
    pub given_up: u64,
    pub overflowed: u64,
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            delivered: self.delivered.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            failed_attempts: self.failed_attempts.load(Ordering::Relaxed),
            given_up: self.given_up.load(Ordering::Relaxed),
            overflowed: self.overflowed.load(Ordering::Relaxed),
        }
    }
}

impl std::ops::AddAssign for StatsSnapshot {
    fn add_assign(&mut self, o: StatsSnapshot) {
        self.delivered += o.delivered;
        self.requests += o.requests;
        self.failed_attempts += o.failed_attempts;
        self.given_up += o.given_up;
        self.overflowed += o.overflowed;
    }
}

enum Cmd {
    Event(Queued),
    Flush(oneshot::Sender<()>),
}

/// The hub-side end of one target's delivery task.
pub struct TargetHandle {
    /// The target's URL as logs may show it.
    shown: Arc<str>,
    tx: mpsc::UnboundedSender<Cmd>,
    /// Events accepted and not yet finished (queued, batching or in flight).
    queued: Arc<AtomicUsize>,
    limit: usize,
    pub stats: Arc<Stats>,
    last_overflow_log: Mutex<Option<Instant>>,
}

/// The app's current credentials (an apps reload may change them; `None`: the app is gone).
pub type AppSource = Arc<dyn Fn() -> Option<Arc<App>> + Send + Sync>;

/// Everything a request needs.
struct Sender {
    client: reqwest::Client,
    app_id: Arc<str>,
    app: AppSource,
    target: Arc<Target>,
    /// The target's URL as logs and reports may show it.
    shown: Arc<str>,
    reports: AttemptReports,
    settings: WebhookSettings,
    stats: Arc<Stats>,
    queued: Arc<AtomicUsize>,
}

/// Build the shared HTTP client: keep-alive pool, rustls with the system's roots.
pub fn client(settings: &WebhookSettings) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(settings.max_in_flight.max(1))
        .tcp_nodelay(true)
        .user_agent(concat!(
            "rf-broadcast/",
            env!("CARGO_PKG_VERSION"),
            " webhooks"
        ))
        .build()
        .map_err(|e| format!("webhook HTTP client: {e}"))
}

impl TargetHandle {
    /// Start the delivery task of one target of `app_id`, reporting its attempts to
    /// `reports`.
    pub fn start(
        client: reqwest::Client,
        app_id: Arc<str>,
        app: AppSource,
        target: Target,
        settings: WebhookSettings,
        reports: AttemptReports,
    ) -> TargetHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Stats::default());
        let queued = Arc::new(AtomicUsize::new(0));
        let shown: Arc<str> = Arc::from(shown_url(&target.url));
        let target = Arc::new(target);
        let sender = Arc::new(Sender {
            client,
            app_id,
            app,
            target: target.clone(),
            shown: shown.clone(),
            reports,
            settings: settings.clone(),
            stats: stats.clone(),
            queued: queued.clone(),
        });
        tokio::spawn(run(sender, rx));
        TargetHandle {
            shown,
            tx,
            queued,
            limit: settings.queue.max(1),
            stats,
            last_overflow_log: Mutex::new(None),
        }
    }

    /// Enqueue an event without waiting. A full queue refuses it: counted, logged (at most
    /// once a second per target) and acknowledged, so it is not retried elsewhere either.
    pub fn offer(&self, q: Queued) {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.limit {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            let n = self.stats.overflowed.fetch_add(1, Ordering::Relaxed) + 1;
            let mut last = self.last_overflow_log.lock();
            if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                *last = Some(Instant::now());
                tracing::warn!(
                    target_url = %self.shown,
                    kind = q.event.kind.name(),
                    channel = %q.event.channel,
                    overflowed_total = n,
                    "webhook queue full ({} events): event dropped",
                    self.limit
                );
            }
            q.finish();
            return;
        }
        if let Err(mpsc::error::SendError(Cmd::Event(q))) = self.tx.send(Cmd::Event(q)) {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            q.finish();
        }
    }

    /// Send everything queued at once (no batching wait) and resolve when nothing is left.
    pub fn flush(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(Cmd::Flush(tx));
        rx
    }

    /// Events accepted and not finished yet.
    pub fn outstanding(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

async fn run(sender: Arc<Sender>, mut rx: mpsc::UnboundedReceiver<Cmd>) {
    let settings = &sender.settings;
    let max = settings.batch_max.max(1);
    let cap = settings.max_in_flight.max(1);
    let mut pending = Pending::default();
    let mut in_flight = 0usize;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Vec<Arc<str>>>();
    let mut flushing: Vec<oneshot::Sender<()>> = Vec::new();
    let mut open = true;
    loop {
        let window = if flushing.is_empty() {
            settings.batch_window
        } else {
            Duration::ZERO
        };
        let due = (in_flight < cap)
            .then(|| pending.next_due(window, max))
            .flatten();
        tokio::select! {
            cmd = rx.recv(), if open => match cmd {
                Some(Cmd::Event(q)) => pending.push(q),
                Some(Cmd::Flush(tx)) => flushing.push(tx),
                None => open = false,
            },
            _ = sleep_until(due), if due.is_some() => {
                let batch = pending.take(max);
                if !batch.is_empty() {
                    in_flight += 1;
                    let s = sender.clone();
                    let done = done_tx.clone();
                    tokio::spawn(async move {
                        let channels = s.deliver(batch).await;
                        let _ = done.send(channels);
                    });
                }
            }
            Some(channels) = done_rx.recv() => {
                in_flight -= 1;
                pending.release(channels.iter());
            }
        }
        if !flushing.is_empty() && pending.is_empty() && in_flight == 0 {
            for tx in flushing.drain(..) {
                let _ = tx.send(());
            }
        }
        if !open && pending.is_empty() && in_flight == 0 {
            return;
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    if let Some(t) = due {
        tokio::time::sleep_until(t.into()).await;
    }
}

/// Equal jitter: somewhere in [backoff/2, backoff].
fn jittered(backoff: Duration) -> Duration {
    let half = backoff / 2;
    let ms = half.as_millis() as u64;
    half + Duration::from_millis(if ms == 0 {
        0
    } else {
        rand::random_range(0..=ms)
    })
}

impl Sender {
    /// Send one batch until it is answered 2xx or `retry_for` has passed; finishes its
    /// events either way and returns their channels.
    async fn deliver(&self, batch: Vec<Queued>) -> Vec<Arc<str>> {
        let s = &self.settings;
        let started = Instant::now();
        let mut backoff = s.retry_min_backoff.max(Duration::from_millis(1));
        let mut attempt = 0u32;
        let delivered = loop {
            attempt += 1;
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let failure = match self.attempt(&batch).await {
                Ok(status) => {
                    self.report(
                        &batch,
                        attempt,
                        Some(status),
                        None,
                        Outcome::Delivered,
                        None,
                    );
                    break true;
                }
                Err(failure) => failure,
            };
            let why = &failure.why;
            self.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
            let wait = jittered(backoff);
            if started.elapsed() + wait > s.retry_for {
                self.report(
                    &batch,
                    attempt,
                    failure.status,
                    Some(why),
                    Outcome::GivenUp,
                    None,
                );
                tracing::warn!(
                    target_url = %self.shown,
                    kinds = %kinds(&batch).join(","),
                    events = batch.len(),
                    attempts = attempt,
                    "webhook given up after {:?}: {why}",
                    started.elapsed()
                );
                break false;
            }
            self.report(
                &batch,
                attempt,
                failure.status,
                Some(why),
                Outcome::WillRetry,
                Some(wait),
            );
            tracing::debug!(
                target_url = %self.shown,
                attempt,
                "webhook attempt failed ({why}); retry in {wait:?}"
            );
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(s.retry_max_backoff.max(s.retry_min_backoff));
        };
        let counter = if delivered {
            &self.stats.delivered
        } else {
            &self.stats.given_up
        };
        counter.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let channels = batch.iter().map(|q| q.event.channel.clone()).collect();
        for q in batch {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            q.finish();
        }
        channels
    }

    /// Tell the watchers (if any) how an attempt went.
    fn report(
        &self,
        batch: &[Queued],
        attempt: u32,
        status: Option<u16>,
        error: Option<&str>,
        outcome: Outcome,
        retry_in: Option<Duration>,
    ) {
        self.reports.report(|| {
            let mut channels: Vec<Arc<str>> = Vec::new();
            for q in batch {
                if !channels.contains(&q.event.channel) {
                    channels.push(q.event.channel.clone());
                }
            }
            Attempt {
                app_id: self.app_id.clone(),
                target: self.shown.clone(),
                kinds: kinds(batch),
                channels,
                events: batch.len(),
                attempt,
                status,
                error: error.map(str::to_string),
                outcome,
                retry_in_ms: retry_in.map(|d| d.as_millis() as u64),
            }
        });
    }

    /// One request: the receiver's status when it answered 2xx.
    async fn attempt(&self, batch: &[Queued]) -> Result<u16, Failure> {
        let app = (self.app)().ok_or_else(|| Failure {
            status: None,
            why: "the app is no longer configured".into(),
        })?;
        let body = sign::body(sign::now_ms(), batch.iter().map(|q| &*q.event.json));
        let signature = sign::signature(&app.secret, &body);
        let mut req = self
            .client
            .post(&self.target.url)
            .timeout(self.settings.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Pusher-Key", &app.key)
            .header("X-Pusher-Signature", signature);
        for (k, v) in &self.target.headers {
            req = req.header(k, v);
        }
        let response = req.body(body).send().await.map_err(|e| Failure {
            status: None,
            why: describe(e),
        })?;
        let status = response.status();
        // Read the (small) answer so the connection goes back to the keep-alive pool.
        let _ = response.bytes().await;
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err(Failure {
                status: Some(status.as_u16()),
                why: format!("answered {status}"),
            })
        }
    }
}

/// Why an attempt failed: the receiver's status when it answered, and a short reason.
struct Failure {
    status: Option<u16>,
    why: String,
}

/// A request error in a few words, without the URL (it may hold credentials).
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "unreachable".into()
    } else {
        e.without_url().to_string()
    }
}

/// The kinds in a batch, each once, sorted.
fn kinds(batch: &[Queued]) -> Vec<&'static str> {
    let set: BTreeSet<&'static str> = batch.iter().map(|q| q.event.kind.name()).collect();
    set.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_and_whole() {
        for _ in 0..100 {
            let j = jittered(Duration::from_millis(1000));
            assert!(j >= Duration::from_millis(500) && j <= Duration::from_millis(1000));
        }
        assert!(jittered(Duration::from_millis(1)) <= Duration::from_millis(1));
    }
}
