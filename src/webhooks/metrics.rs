//! The webhook sender's Prometheus series, read from the delivery counters when Prometheus
//! scrapes (nothing is counted twice, the delivery path pays nothing extra):
//! `rf_broadcast_webhook_events_delivered_total{app}`, `…_attempts_total{app}`,
//! `…_failures_total{app}` (attempts that failed), `…_dropped_total{app,reason}` (`given_up`
//! after the retry time, `queue_full`), `…_queue_depth{app}` (events accepted, not finished).

use super::cluster::Cluster;
use super::Dispatcher;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounterVec, IntGaugeVec, Opts};
use std::sync::Arc;

struct Series {
    delivered: IntCounterVec,
    attempts: IntCounterVec,
    failures: IntCounterVec,
    dropped: IntCounterVec,
    depth: IntGaugeVec,
}

impl Series {
    fn new() -> Series {
        let counter = |short: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(
                Opts::new(format!("rf_broadcast_webhook_{short}"), help),
                labels,
            )
            .expect("valid metric definition")
        };
        Series {
            delivered: counter(
                "events_delivered_total",
                "Webhook events delivered (answered 2xx)",
                &["app"],
            ),
            attempts: counter("attempts_total", "Webhook requests sent, retries included", &["app"]),
            failures: counter(
                "failures_total",
                "Webhook requests that failed (non-2xx, timeout, unreachable)",
                &["app"],
            ),
            dropped: counter(
                "dropped_total",
                "Webhook events not delivered: given up after the retry time, or refused by a full queue",
                &["app", "reason"],
            ),
            depth: IntGaugeVec::new(
                Opts::new(
                    "rf_broadcast_webhook_queue_depth",
                    "Webhook events accepted and not yet delivered or given up",
                ),
                &["app"],
            )
            .expect("valid metric definition"),
        }
    }

    fn all(&self) -> [&dyn Collector; 5] {
        [
            &self.delivered,
            &self.attempts,
            &self.failures,
            &self.dropped,
            &self.depth,
        ]
    }
}

/// Collects the series from the dispatcher's targets at each scrape.
pub struct WebhookCollector {
    dispatcher: Arc<Dispatcher>,
    /// In a cluster: what was dropped before reaching (or because of a full) Redis stream,
    /// counted with an empty `app` (the decision is the cluster's, not one target's).
    cluster: Option<Arc<Cluster>>,
    descs: Vec<Desc>,
}

impl WebhookCollector {
    pub fn new(dispatcher: Arc<Dispatcher>, cluster: Option<Arc<Cluster>>) -> Self {
        let descs = Series::new()
            .all()
            .iter()
            .flat_map(|c| c.desc().into_iter().cloned())
            .collect();
        WebhookCollector {
            dispatcher,
            cluster,
            descs,
        }
    }
}

impl Collector for WebhookCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let s = Series::new();
        for (app, t) in self.dispatcher.by_app() {
            let n = t.stats.snapshot();
            s.delivered.with_label_values(&[&app]).inc_by(n.delivered);
            s.attempts.with_label_values(&[&app]).inc_by(n.requests);
            s.failures
                .with_label_values(&[&app])
                .inc_by(n.failed_attempts);
            s.dropped
                .with_label_values(&[&app, "given_up"])
                .inc_by(n.given_up);
            s.dropped
                .with_label_values(&[&app, "queue_full"])
                .inc_by(n.overflowed);
            s.depth
                .with_label_values(&[&app])
                .add(t.outstanding() as i64);
        }
        if let Some(c) = &self.cluster {
            s.dropped
                .with_label_values(&["", "cluster_full"])
                .inc_by(c.dropped());
        }
        s.all().iter().flat_map(|c| c.collect()).collect()
    }
}
