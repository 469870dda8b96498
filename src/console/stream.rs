//! The live log: one task drains the console's queue of hub events (and, when webhooks run,
//! the webhook sender's attempt reports), turns each into a row, counts it and hands it to
//! every watching browser; `GET /api/stream` is each browser's Server-Sent Events view of
//! those rows.
//!
//! Two bounded hand-offs, neither of which ever waits: the hub's `try_send` into the
//! console's queue (`--console-queue` events; what does not fit is counted by the hub) or the
//! webhook sender's ring of attempt reports (a watcher that falls behind skips ahead), and a
//! broadcast ring per page ([`ConsoleSettings::stream_buffer`] rows; a page that falls behind
//! skips ahead). Both losses show up in the log as `dropped` rows with a count, so a gap is
//! never silent. A page that opens gets the last [`ConsoleSettings::backlog_rows`] rows first.
//!
//! Before a row leaves, every app secret the hub knows is blanked out of it: no reason string
//! or payload can carry one to the browser.

use super::rows::{self, PayloadRules};
use super::samples::Samples;
use super::ConsoleSettings;
use crate::hub::{Hub, ObserverHandle};
use crate::webhooks::Attempt;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

/// How often the counters are sampled and the queue's drop count is checked.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Idle streams get a comment this often, so proxies keep them open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// What replaces an app secret found in a row.
const REDACTED: &str = "[redacted]";

/// What the feed task shares with the handlers.
pub struct Feed {
    tx: broadcast::Sender<Arc<str>>,
    /// Recent rows; rows are pushed here and broadcast under this lock, so a page that
    /// subscribes while holding it sees every row exactly once.
    backlog: Mutex<VecDeque<Arc<str>>>,
    backlog_rows: usize,
    pub samples: Mutex<Samples>,
}

impl Feed {
    /// Register as the hub's observer and start the task that feeds the log; with
    /// `attempts` (the webhook sender's reports) webhook attempts are logged too.
    pub fn start(
        hub: &Arc<Hub>,
        settings: &ConsoleSettings,
        attempts: Option<Attempts>,
    ) -> Arc<Feed> {
        let (tx, _) = broadcast::channel(settings.stream_buffer.max(16));
        let feed = Arc::new(Feed {
            tx,
            backlog: Mutex::new(VecDeque::new()),
            backlog_rows: settings.backlog_rows,
            samples: Mutex::new(Samples::default()),
        });
        let handle = hub.observe(settings.queue);
        let rules = PayloadRules {
            show_private: settings.show_payloads,
            max_bytes: settings.max_payload_bytes,
        };
        tokio::spawn(run(
            feed.clone(),
            Arc::downgrade(hub),
            handle,
            attempts,
            rules,
        ));
        feed
    }

    fn publish(&self, row: Arc<str>) {
        let mut backlog = self.backlog.lock();
        if self.backlog_rows > 0 {
            if backlog.len() >= self.backlog_rows {
                backlog.pop_front();
            }
            backlog.push_back(row.clone());
        }
        let _ = self.tx.send(row);
    }

    /// A page's view: the backlog, then every new row.
    fn subscribe(&self) -> (Vec<Arc<str>>, broadcast::Receiver<Arc<str>>) {
        let backlog = self.backlog.lock();
        (backlog.iter().cloned().collect(), self.tx.subscribe())
    }
}

/// Every app secret blanked out of `text`.
fn scrub(mut text: String, secrets: &[String]) -> String {
    for s in secrets {
        if !s.is_empty() && text.contains(s.as_str()) {
            text = text.replace(s.as_str(), REDACTED);
        }
    }
    text
}

/// The webhook sender's attempt reports, as the console watches them.
pub type Attempts = broadcast::Receiver<Arc<Attempt>>;

/// The next attempt report; never, when there is no sender (or it stopped).
async fn next_attempt(
    attempts: &mut Option<Attempts>,
) -> Result<Arc<Attempt>, broadcast::error::RecvError> {
    match attempts {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn run(
    feed: Arc<Feed>,
    hub: std::sync::Weak<Hub>,
    mut handle: ObserverHandle,
    mut attempts: Option<Attempts>,
    rules: PayloadRules,
) {
    let secrets_of =
        |hub: &Hub| -> Vec<String> { hub.apps().iter().map(|a| a.secret.clone()).collect() };
    let mut secrets = match hub.upgrade() {
        Some(h) => secrets_of(&h),
        None => return,
    };
    let mut reported_drops = 0;
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = handle.events.recv() => {
                let Some(event) = event else { return };
                feed.samples.lock().count(&event);
                let row = rows::row(&event, &rules).to_string();
                feed.publish(Arc::from(scrub(row, &secrets)));
            }
            attempt = next_attempt(&mut attempts) => {
                let row = match attempt {
                    Ok(a) => {
                        feed.samples.lock().count_attempt(&a);
                        rows::attempt(&a)
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => rows::notice(
                        "dropped",
                        json!({ "count": n, "where": "webhook attempt reports" }),
                    ),
                    Err(broadcast::error::RecvError::Closed) => {
                        attempts = None;
                        continue;
                    }
                };
                feed.publish(Arc::from(scrub(row.to_string(), &secrets)));
            }
            _ = tick.tick() => {
                let Some(hub) = hub.upgrade() else { return };
                secrets = secrets_of(&hub);
                let dropped = handle.dropped();
                if dropped > reported_drops {
                    let row = rows::notice(
                        "dropped",
                        json!({ "count": dropped - reported_drops, "where": "console queue" }),
                    );
                    reported_drops = dropped;
                    feed.publish(Arc::from(row.to_string()));
                }
                let mut samples = feed.samples.lock();
                samples.totals.dropped_rows = dropped;
                samples.tick(
                    unix_secs(),
                    hub.connection_count(),
                    hub.occupied_channel_count(),
                    hub.api_requests(),
                );
            }
        }
    }
}

/// `GET /api/stream`: `text/event-stream`, one JSON row per `data:` line.
pub fn stream(feed: &Feed) -> Response {
    let (backlog, rx) = feed.subscribe();
    let state = (VecDeque::from(backlog), rx);
    let events = futures_util::stream::unfold(state, |(mut backlog, mut rx)| async move {
        if let Some(row) = backlog.pop_front() {
            return Some((
                Ok::<_, Infallible>(Event::default().data(&*row)),
                (backlog, rx),
            ));
        }
        let data = match rx.recv().await {
            Ok(row) => row.to_string(),
            Err(broadcast::error::RecvError::Lagged(n)) => rows::notice(
                "dropped",
                json!({ "count": n, "where": "this page's stream" }),
            )
            .to_string(),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(Event::default().data(data)), (backlog, rx)))
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    response.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    response
}

/// The counters and their five minutes of samples, for `GET /api/overview`.
pub fn samples_json(feed: &Feed) -> Value {
    let s = feed.samples.lock();
    json!({
        "totals": s.totals,
        "samples": s.ring().collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::{App, Apps};
    use crate::hub::HubSettings;

    #[test]
    fn secrets_are_blanked() {
        let s = scrub(
            "a app-secret b".into(),
            &["app-secret".into(), String::new()],
        );
        assert_eq!(s, "a [redacted] b");
    }

    #[tokio::test]
    async fn rows_reach_a_page_and_drops_are_reported() {
        let app = App::new("a", "k", "the-secret");
        let hub = Hub::new(Apps::new(vec![app.clone()]), HubSettings::default());
        let settings = ConsoleSettings {
            queue: 4,
            backlog_rows: 2,
            ..ConsoleSettings::default()
        };
        let feed = Feed::start(&hub, &settings, None);
        let (_, mut rx) = feed.subscribe();
        let c = hub.connect(&app).unwrap();
        hub.refused(&c, "private-x", "Expected HMAC of x, key the-secret");
        let first: Value = serde_json::from_str(&rx.recv().await.unwrap()).unwrap();
        assert_eq!(first["type"], "connection_opened");
        assert_eq!(first["socket_id"], c.socket_id.to_string());
        let second = rx.recv().await.unwrap();
        assert!(second.contains("subscription_refused") && !second.contains("the-secret"));
        // A late page gets the backlog.
        let (backlog, _) = feed.subscribe();
        assert_eq!(backlog.len(), 2);
        // Overflow the queue of 4 while the task cannot run (this is a current-thread runtime).
        for _ in 0..10 {
            hub.publish("a", &["news"], "e", "{}", None);
        }
        let dropped = loop {
            let row: Value = serde_json::from_str(&rx.recv().await.unwrap()).unwrap();
            if row["type"] == "dropped" {
                break row;
            }
        };
        assert_eq!(dropped["count"], 6);
        assert_eq!(feed.samples.lock().totals.api_publishes, 4);
    }

    #[tokio::test]
    async fn a_slow_consumer_close_is_a_row() {
        let app = App::new("a", "k", "a-long-secret");
        let hub = Hub::new(
            Apps::new(vec![app.clone()]),
            HubSettings {
                max_queued_frames: 2,
            },
        );
        let feed = Feed::start(&hub, &ConsoleSettings::default(), None);
        let (_, mut rx) = feed.subscribe();
        let c = hub.connect(&app).unwrap();
        hub.subscribe(&c, "news", None).unwrap();
        // Nobody reads the queue: subscription_succeeded, one event, and the next overflows.
        for _ in 0..3 {
            hub.publish("a", &["news"], "e", "{}", None);
        }
        let row = loop {
            let row: Value = serde_json::from_str(&rx.recv().await.unwrap()).unwrap();
            if row["type"] == "slow_consumer_closed" {
                break row;
            }
        };
        assert_eq!(row["socket_id"], c.socket_id.to_string());
        assert_eq!(row["app_id"], "a");
        assert_eq!(feed.samples.lock().totals.slow_consumers, 1);
    }

    #[tokio::test]
    async fn webhook_attempts_and_their_losses_are_rows() {
        use crate::webhooks::attempts::{Attempt, AttemptReports, Outcome};
        let app = App::new("a", "k", "the-secret");
        let hub = Hub::new(Apps::new(vec![app]), HubSettings::default());
        let reports = AttemptReports::new(2);
        let feed = Feed::start(&hub, &ConsoleSettings::default(), Some(reports.watch()));
        let (_, mut rx) = feed.subscribe();
        let attempt = |n: u32| Attempt {
            app_id: "a".into(),
            target: "http://127.0.0.1:9/hook".into(),
            kinds: vec!["channel_occupied"],
            channels: vec!["news".into()],
            events: 1,
            attempt: n,
            status: None,
            error: Some("unreachable".into()),
            outcome: Outcome::WillRetry,
            retry_in_ms: Some(1000),
        };
        // Five reports into a ring of two while the task cannot run: three are missed.
        for n in 1..=5 {
            reports.report(|| attempt(n));
        }
        let mut got = Vec::new();
        while got.len() < 3 {
            got.push(serde_json::from_str::<Value>(&rx.recv().await.unwrap()).unwrap());
        }
        assert_eq!(got[0]["type"], "dropped");
        assert_eq!(got[0]["count"], 3);
        assert_eq!(got[0]["where"], "webhook attempt reports");
        assert_eq!(
            (got[1]["type"].clone(), got[1]["attempt"].clone()),
            (json!("webhook_attempt"), json!(4))
        );
        assert_eq!(got[2]["attempt"], 5);
        assert_eq!(got[2]["outcome"], "will_retry");
        assert_eq!(feed.samples.lock().totals.webhook_failures, 2);
    }
}
