//! Prometheus metrics: what an operator graphs and alerts on, in the text exposition format
//! at `GET /metrics` on a listener of its own (`--metrics-host`, `--metrics-port`, default
//! 127.0.0.1:9601) so the public port never exposes them.
//!
//! Where the figures come from:
//! - the hub's lifecycle events (`observer.rs`, one registered observer of `Hub::observe`):
//!   connections opened and closed, messages and bytes, subscription refusals, slow-consumer
//!   closes. The observer runs in its own task; the hub hands it events without waiting, so
//!   metrics never slow a publish (what it misses when its queue is full is counted in
//!   `rf_broadcast_metrics_events_dropped_total`);
//! - at scrape time, from the hub itself ([`Metrics::follow`]): the gauges (connections,
//!   subscriptions, occupied channels, presence members), so they stay exact even when a flood
//!   made the observer miss events;
//! - the HTTP API's middleware (`api/observe.rs`): requests by endpoint and status, latency;
//! - the edges that refuse before the hub sees anything (the listener's caps, the upgrade's
//!   connection rate, handshake refusals such as an unknown key or origin, the API rate):
//!   [`Metrics::refused`], with the fixed reasons listed in the README;
//! - at scrape time: the adapter's link and the process (RSS, open fds, CPU) from `/proc`.
//!
//! Every series but the process and adapter ones carries an `app` label (the app id).
//! The names are listed in the README ("Metrics"). Other parts (webhooks) add their own
//! series through [`Metrics::registry`].

mod listener;
mod observer;

pub use listener::serve_metrics;
pub use observer::observe;

use crate::hub::Hub;
use parking_lot::Mutex;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::collections::HashSet;
use std::sync::{Arc, Weak};

/// Prefix of every series this server defines.
pub const PREFIX: &str = "rf_broadcast";

/// The `app` label of what is counted before its app is known (a socket refused at accept, an
/// unknown app key, an API request for an app that is not ours): ids a peer sends never
/// become label values.
pub const UNKNOWN_APP: &str = "unknown";

/// Distinct `reason` label values kept; further reasons are counted as `other`.
const MAX_REASONS: usize = 64;

/// Latency buckets of the HTTP API histogram, seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Whether the adapter's link is up, read at scrape time.
type AdapterProbe = Box<dyn Fn() -> bool + Send + Sync>;

/// Every series of this node.
pub struct Metrics {
    registry: Registry,
    pub(crate) connections: IntGaugeVec,
    pub(crate) connections_opened: IntCounterVec,
    pub(crate) connections_closed: IntCounterVec,
    pub(crate) subscriptions: IntGaugeVec,
    pub(crate) channels: IntGaugeVec,
    pub(crate) presence_members: IntGaugeVec,
    pub(crate) messages_received: IntCounterVec,
    pub(crate) messages_sent: IntCounterVec,
    pub(crate) bytes_received: IntCounterVec,
    pub(crate) bytes_sent: IntCounterVec,
    refusals: IntCounterVec,
    pub(crate) slow_consumer_closes: IntCounterVec,
    pub(crate) http_requests: IntCounterVec,
    pub(crate) http_duration: HistogramVec,
    adapter_connected: IntGaugeVec,
    pub(crate) events_dropped: IntCounter,
    reasons: Mutex<HashSet<String>>,
    adapter: Mutex<Option<(&'static str, AdapterProbe)>>,
    /// The hub the gauges are read from at each scrape (weak: metrics do not keep it alive).
    hub: Mutex<Option<Weak<Hub>>>,
}

fn name(short: &str) -> String {
    format!("{PREFIX}_{short}")
}

impl Metrics {
    /// A fresh set of series, with the process collector (on Linux) registered.
    pub fn new() -> Arc<Metrics> {
        let registry = Registry::new();
        let counter = |short: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name(short), help), labels)
                .expect("valid metric definition");
            registry
                .register(Box::new(c.clone()))
                .expect("metric registered once");
            c
        };
        let gauge = |short: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name(short), help), labels)
                .expect("valid metric definition");
            registry
                .register(Box::new(g.clone()))
                .expect("metric registered once");
            g
        };
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                name("http_request_duration_seconds"),
                "HTTP API request latency, by endpoint",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["app", "endpoint"],
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(http_duration.clone()))
            .expect("metric registered once");
        let events_dropped = IntCounter::new(
            name("metrics_events_dropped_total"),
            "Hub events the metrics observer missed because its queue was full",
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(events_dropped.clone()))
            .expect("metric registered once");
        #[cfg(target_os = "linux")]
        {
            // process_resident_memory_bytes, process_open_fds, process_cpu_seconds_total, ...
            let _ = registry.register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ));
        }
        Arc::new(Metrics {
            connections: gauge("connections", "Open WebSocket connections", &["app"]),
            connections_opened: counter(
                "connections_opened_total",
                "WebSocket connections accepted",
                &["app"],
            ),
            connections_closed: counter(
                "connections_closed_total",
                "WebSocket connections closed, by the close code the server sent (none: the client closed or the network dropped)",
                &["app", "code"],
            ),
            subscriptions: gauge(
                "subscriptions",
                "Channel subscriptions of this node's connections",
                &["app"],
            ),
            channels: gauge(
                "channels_occupied",
                "Channels with at least one subscriber on this node",
                &["app"],
            ),
            presence_members: gauge(
                "presence_members",
                "Presence channel members with a connection on this node (one per user and channel)",
                &["app"],
            ),
            messages_received: counter(
                "messages_received_total",
                "Events received: api_event (HTTP API or library publish), client_event",
                &["app", "kind"],
            ),
            messages_sent: counter(
                "messages_sent_total",
                "Frames queued for this node's connections: api_event, client_event, internal (connection_established, subscription_succeeded, cache_miss, member_added, member_removed)",
                &["app", "kind"],
            ),
            bytes_received: counter(
                "event_bytes_received_total",
                "Event data bytes received (the data field of API and client events)",
                &["app", "kind"],
            ),
            bytes_sent: counter(
                "event_bytes_sent_total",
                "Event data bytes queued for connections (data size times recipients)",
                &["app", "kind"],
            ),
            refusals: counter(
                "refusals_total",
                "Refused subscriptions, connections and API requests, by reason",
                &["app", "reason"],
            ),
            slow_consumer_closes: counter(
                "slow_consumer_closes_total",
                "Connections closed with 4100 because they did not read their queue",
                &["app"],
            ),
            http_requests: counter(
                "http_requests_total",
                "HTTP API requests, by endpoint and status",
                &["app", "endpoint", "status"],
            ),
            adapter_connected: gauge(
                "adapter_connected",
                "Whether the cluster adapter reaches the other nodes (1) or not (0); the local adapter is always 1",
                &["adapter"],
            ),
            http_duration,
            events_dropped,
            registry,
            reasons: Mutex::new(HashSet::new()),
            adapter: Mutex::new(None),
            hub: Mutex::new(None),
        })
    }

    /// Start an app's series at zero, so dashboards see them before the first event.
    pub(crate) fn init_app(&self, app_id: &str) {
        self.connections.with_label_values(&[app_id]);
        self.connections_opened.with_label_values(&[app_id]);
        self.subscriptions.with_label_values(&[app_id]);
        self.channels.with_label_values(&[app_id]);
        self.presence_members.with_label_values(&[app_id]);
        self.slow_consumer_closes.with_label_values(&[app_id]);
        for kind in ["api_event", "client_event"] {
            self.messages_received.with_label_values(&[app_id, kind]);
            self.bytes_received.with_label_values(&[app_id, kind]);
        }
        for kind in ["api_event", "client_event", "internal"] {
            self.messages_sent.with_label_values(&[app_id, kind]);
        }
    }

    /// The registry, for other parts to add their own series (names should start with
    /// `rf_broadcast_` and carry an `app` label, e.g. the webhook sender's
    /// `rf_broadcast_webhook_queue_depth{app}`, `rf_broadcast_webhook_attempts_total{app}`,
    /// `rf_broadcast_webhook_failures_total{app}`, `rf_broadcast_webhook_dropped_total{app}`).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Report the adapter's link at each scrape (`name`: `redis`, ...).
    pub fn set_adapter(
        &self,
        name: &'static str,
        connected: impl Fn() -> bool + Send + Sync + 'static,
    ) {
        *self.adapter.lock() = Some((name, Box::new(connected)));
    }

    /// Read the gauges (connections, subscriptions, occupied channels, presence members) from
    /// `hub` at each scrape.
    pub fn follow(&self, hub: &Arc<Hub>) {
        *self.hub.lock() = Some(Arc::downgrade(hub));
    }

    /// Set the gauges from the hub followed, if any and still alive.
    fn read_gauges(&self) {
        let Some(hub) = self.hub.lock().as_ref().and_then(Weak::upgrade) else {
            return;
        };
        for (app, g) in hub.gauges() {
            let set = |gauge: &IntGaugeVec, n: usize| {
                gauge
                    .with_label_values(&[&*app])
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            };
            set(&self.connections, g.connections);
            set(&self.subscriptions, g.subscriptions);
            set(&self.channels, g.channels);
            set(&self.presence_members, g.presence_members);
        }
    }

    /// Count a refusal of `app_id` ([`UNKNOWN_APP`] before the app is known) for `reason` (a
    /// short, fixed text such as `origin` or `max_connections_per_ip`, or the hub's
    /// subscription refusal). Past [`MAX_REASONS`] distinct reasons, new ones count as `other`,
    /// so a label never grows without bound.
    pub fn refused(&self, app_id: &str, reason: &str) {
        let reason = reason_label(reason);
        let label = {
            let mut seen = self.reasons.lock();
            if seen.contains(reason) {
                reason
            } else if seen.len() < MAX_REASONS {
                seen.insert(reason.to_string());
                reason
            } else {
                "other"
            }
        };
        self.refusals.with_label_values(&[app_id, label]).inc();
    }

    /// The text exposition of every series, as of now.
    pub fn render(&self) -> String {
        self.read_gauges();
        {
            let adapter = self.adapter.lock();
            let (name, up) = match &*adapter {
                Some((name, probe)) => (*name, probe()),
                None => ("local", true),
            };
            self.adapter_connected
                .with_label_values(&[name])
                .set(i64::from(up));
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!("metrics: cannot encode: {e}");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// A refusal reason as a label: the message up to its first detail (`:`, a quote or a
/// bracket), so `Invalid signature: expected HMAC of '1.2:private-x'` counts as
/// `Invalid signature` and socket ids or channel names never become label values.
fn reason_label(reason: &str) -> &str {
    let end = reason
        .find([':', '\'', '"', '(', '['])
        .unwrap_or(reason.len());
    let label = reason[..end].trim();
    let mut cut = label.len().min(64);
    while !label.is_char_boundary(cut) {
        cut -= 1;
    }
    match &label[..cut] {
        "" => "unspecified",
        l => l,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format_with_app_labels() {
        let m = Metrics::new();
        m.connections_opened.with_label_values(&["a1"]).inc();
        m.refused("a1", "origin");
        let text = m.render();
        assert!(text.contains("# TYPE rf_broadcast_connections_opened_total counter"));
        assert!(text.contains(r#"rf_broadcast_connections_opened_total{app="a1"} 1"#));
        assert!(text.contains(r#"rf_broadcast_refusals_total{app="a1",reason="origin"} 1"#));
        assert!(text.contains(r#"rf_broadcast_adapter_connected{adapter="local"} 1"#));
        #[cfg(target_os = "linux")]
        assert!(text.contains("process_resident_memory_bytes"));
    }

    #[test]
    fn reasons_lose_their_details() {
        assert_eq!(
            reason_label("Invalid signature: expected HMAC of '1.2:private-x'"),
            "Invalid signature"
        );
        assert_eq!(
            reason_label("Invalid channel name 'a b'"),
            "Invalid channel name"
        );
        assert_eq!(reason_label("origin"), "origin");
        assert_eq!(reason_label(": x"), "unspecified");
        assert_eq!(reason_label(&"é".repeat(100)).len(), 64);
    }

    #[test]
    fn reasons_are_bounded() {
        let m = Metrics::new();
        for i in 0..(MAX_REASONS + 10) {
            m.refused("a", &format!("reason {i}"));
        }
        let text = m.render();
        assert!(text.contains(r#"rf_broadcast_refusals_total{app="a",reason="other"} 10"#));
    }

    /// The series names in README.md's "Metrics" section.
    fn readme_series() -> std::collections::BTreeSet<String> {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("**Metrics** (on by default)")
            .nth(1)
            .expect("README has the Metrics paragraph")
            .split("\n## ")
            .next()
            .unwrap();
        section
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|code| code.starts_with("rf_broadcast_"))
            .map(|code| code.split('{').next().unwrap().to_string())
            .collect()
    }

    /// The series names other parts define in `source` (built as `{prefix}{short}` or written
    /// whole), from its string literals outside its tests.
    fn declared_in(source: &str, prefix: &str) -> Vec<String> {
        let code = source.split("#[cfg(test)]").next().unwrap();
        code.split('"')
            .skip(1)
            .step_by(2)
            .filter(|lit| {
                !lit.is_empty() && lit.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            })
            .filter_map(|lit| {
                if lit.starts_with("rf_broadcast_") {
                    Some(lit.to_string())
                } else if lit.ends_with("_total") {
                    Some(format!("{prefix}{lit}"))
                } else {
                    None
                }
            })
            .collect()
    }

    #[test]
    fn the_readme_lists_every_series_and_no_other() {
        let m = Metrics::new();
        m.init_app("a");
        m.connections_closed.with_label_values(&["a", "none"]).inc();
        m.refused("a", "origin");
        m.http_requests.with_label_values(&["a", "e", "200"]).inc();
        m.bytes_sent.with_label_values(&["a", "api_event"]).inc();
        m.http_duration.with_label_values(&["a", "e"]).observe(0.1);
        m.render();
        let mut real: Vec<String> = m
            .registry()
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .filter(|n| n.starts_with(PREFIX))
            .collect();
        assert!(real.len() >= 16, "{real:?}");
        real.extend(declared_in(
            include_str!("../webhooks/metrics.rs"),
            "rf_broadcast_webhook_",
        ));
        real.extend(declared_in(
            include_str!("../adapter/redis/metrics.rs"),
            "rf_broadcast_redis_",
        ));
        let real: std::collections::BTreeSet<String> = real.into_iter().collect();
        assert!(
            real.contains("rf_broadcast_webhook_attempts_total"),
            "{real:?}"
        );
        assert!(real.contains("rf_broadcast_redis_lost_total"), "{real:?}");
        let listed = readme_series();
        let missing: Vec<_> = real.difference(&listed).collect();
        let unknown: Vec<_> = listed.difference(&real).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "README.md's Metrics list lacks {missing:?} and names series that do not exist: \
             {unknown:?}"
        );
    }

    #[test]
    fn the_adapter_probe_is_read_at_scrape_time() {
        let m = Metrics::new();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let probe = up.clone();
        m.set_adapter("redis", move || {
            probe.load(std::sync::atomic::Ordering::Relaxed)
        });
        assert!(m
            .render()
            .contains(r#"rf_broadcast_adapter_connected{adapter="redis"} 0"#));
        up.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(m
            .render()
            .contains(r#"rf_broadcast_adapter_connected{adapter="redis"} 1"#));
    }
}
