//! Webhooks, exactly as Pusher sends them: an observer of the hub's lifecycle events that
//! tells each app's receivers when channels are occupied and vacated, members come and go,
//! client events are sent, cache channels miss and subscription counts change.
//!
//! The flow: the hub hands events to the [`observer`] (bounded, never blocking the hub);
//! it decides what happened (with the vacated / removed delay and its cancellation) and
//! hands webhook events either straight to the [`Dispatcher`] (one node) or to Redis
//! ([`cluster`]), whence the one node that holds the delivery lease dispatches them; the
//! dispatcher gives each to the targets that want it, each with its own queue, batching and
//! retries ([`delivery`], [`batch`]); requests are signed as the SDKs check ([`sign`]).
//! Every attempt is reported to whoever watches ([`attempts`]: the debug console subscribes
//! through [`Webhooks::watch_attempts`]; this module knows nothing of it).

pub mod attempts;
pub mod batch;
pub mod cluster;
pub mod config;
pub mod delivery;
pub mod event;
mod metrics;
pub mod observer;
pub mod sign;

pub use attempts::Attempt;
pub use config::{Kinds, Target, WebhookSettings};
pub use delivery::StatsSnapshot;

use crate::adapter::redis::RedisSettings;
use crate::hub::Hub;
use attempts::AttemptReports;
use batch::{Ack, Queued};
use delivery::TargetHandle;
use event::WebhookEvent;
use observer::{Key, Observer, Sink};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Hub events the observer may have queued before it falls behind (then they are dropped
/// and counted by the hub, and logged here).
const OBSERVER_QUEUE: usize = 65_536;

/// A delivery task's identity: the app and the target exactly as configured.
type TargetId = (Arc<str>, Target);

/// Routes events to targets. The targets are read from the app's live settings on every
/// event, so an apps reload that adds, changes or removes a target takes effect for the next
/// event; each distinct (app, target) gets its delivery task when it is first needed.
pub struct Dispatcher {
    hub: Weak<Hub>,
    client: reqwest::Client,
    settings: WebhookSettings,
    handles: Mutex<HashMap<TargetId, Arc<TargetHandle>>>,
    /// Where every target reports its attempts.
    reports: AttemptReports,
}

impl Dispatcher {
    fn targets(&self, ev: &WebhookEvent) -> Vec<Arc<TargetHandle>> {
        let Some(app) = self.hub.upgrade().and_then(|h| h.app(&ev.app_id)) else {
            return Vec::new();
        };
        let app = app.app();
        let wanted: Vec<&Target> = app
            .webhooks
            .iter()
            .filter(|t| t.wants(ev.kind, &ev.channel))
            .collect();
        if wanted.is_empty() {
            return Vec::new();
        }
        let mut handles = self.handles.lock();
        wanted
            .into_iter()
            .map(|t| {
                handles
                    .entry((ev.app_id.clone(), t.clone()))
                    .or_insert_with(|| Arc::new(self.start_target(&ev.app_id, t)))
                    .clone()
            })
            .collect()
    }

    /// Whether any target of the event's app wants it (now).
    pub fn wanted(&self, ev: &WebhookEvent) -> bool {
        self.hub
            .upgrade()
            .and_then(|h| h.app(&ev.app_id))
            .is_some_and(|ah| {
                ah.app()
                    .webhooks
                    .iter()
                    .any(|t| t.wants(ev.kind, &ev.channel))
            })
    }

    fn start_target(&self, app_id: &Arc<str>, target: &Target) -> TargetHandle {
        let hub = self.hub.clone();
        let id = app_id.clone();
        let source: delivery::AppSource =
            Arc::new(move || hub.upgrade().and_then(|h| h.app(&id)).map(|ah| ah.app()));
        TargetHandle::start(
            self.client.clone(),
            app_id.clone(),
            source,
            target.clone(),
            self.settings.clone(),
            self.reports.clone(),
        )
    }

    /// Hand an event to every target that wants it.
    pub fn dispatch(&self, ev: WebhookEvent) {
        for t in self.targets(&ev) {
            t.offer(Queued {
                event: ev.clone(),
                ack: None,
                since: Instant::now(),
            });
        }
    }

    /// Same, for a stream entry: `id` is acknowledged once every target is done with it.
    pub fn dispatch_acked(&self, ev: WebhookEvent, id: String, tx: &mpsc::UnboundedSender<String>) {
        let targets = self.targets(&ev);
        let ack = Ack::new(id, targets.len(), tx.clone());
        for t in targets {
            t.offer(Queued {
                event: ev.clone(),
                ack: Some(ack.clone()),
                since: Instant::now(),
            });
        }
    }

    /// Every started target with its app id.
    fn by_app(&self) -> Vec<(Arc<str>, Arc<TargetHandle>)> {
        self.handles
            .lock()
            .iter()
            .map(|((app, _), t)| (app.clone(), t.clone()))
            .collect()
    }

    fn all(&self) -> Vec<Arc<TargetHandle>> {
        self.handles.lock().values().cloned().collect()
    }

    fn outstanding(&self) -> usize {
        self.all().iter().map(|t| t.outstanding()).sum()
    }
}

/// One node: decisions go straight to the targets.
struct LocalSink(Arc<Dispatcher>);

impl Sink for LocalSink {
    fn up(&mut self, key: Key) {
        self.0.dispatch(key.event(true));
    }
    fn down(&mut self, key: Key) {
        self.0.dispatch(key.event(false));
    }
    fn direct(&mut self, event: WebhookEvent) {
        self.0.dispatch(event);
    }
}

/// The running webhook sender of one node.
pub struct Webhooks {
    dispatcher: Arc<Dispatcher>,
    flush: mpsc::UnboundedSender<oneshot::Sender<()>>,
    cluster: Option<Arc<cluster::Cluster>>,
    settings: WebhookSettings,
}

impl Webhooks {
    /// Start sending the webhooks of every app of `hub` that has targets (`None` when no app
    /// has any: then nothing observes the hub). With `redis`, decisions and delivery go
    /// through Redis so the cluster sends each webhook once.
    pub async fn start(
        hub: &Arc<Hub>,
        settings: WebhookSettings,
        redis: Option<&RedisSettings>,
    ) -> Result<Option<Webhooks>, String> {
        if hub.apps().iter().all(|a| a.webhooks.is_empty()) {
            return Ok(None);
        }
        let dispatcher = Arc::new(Dispatcher {
            hub: Arc::downgrade(hub),
            client: delivery::client(&settings)?,
            settings: settings.clone(),
            handles: Mutex::new(HashMap::new()),
            reports: AttemptReports::new(settings.attempt_reports),
        });
        let handle = hub.observe(OBSERVER_QUEUE);
        let (flush_tx, flush_rx) = mpsc::unbounded_channel();
        let cluster = match redis {
            Some(r) => {
                let (cluster, sink) =
                    cluster::Cluster::start(r, &settings, dispatcher.clone()).await?;
                let obs = Observer::new(settings.clone(), true, sink);
                tokio::spawn(obs.run(handle, flush_rx));
                Some(cluster)
            }
            None => {
                let obs = Observer::new(settings.clone(), false, LocalSink(dispatcher.clone()));
                tokio::spawn(obs.run(handle, flush_rx));
                None
            }
        };
        Ok(Some(Webhooks {
            dispatcher,
            flush: flush_tx,
            cluster,
            settings,
        }))
    }

    /// Shutdown: fire every delayed webhook now (the channels did empty), then wait up to
    /// the flush timeout for the queues to drain. On one node what is still undelivered
    /// then is counted and logged as lost; in a cluster it stays in Redis for the next node.
    pub async fn flush(&self) {
        let deadline = tokio::time::Instant::now() + self.settings.flush_timeout;
        let (tx, rx) = oneshot::channel();
        if self.flush.send(tx).is_ok() {
            let _ = tokio::time::timeout_at(deadline, rx).await;
        }
        if let Some(c) = &self.cluster {
            // Let the decisions reach Redis, then hand the lease on.
            while c.backlog() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            c.stop();
        }
        let waits: Vec<_> = self.dispatcher.all().iter().map(|t| t.flush()).collect();
        let _ = tokio::time::timeout_at(deadline, futures_util::future::join_all(waits)).await;
        let left = self.dispatcher.outstanding();
        if left > 0 {
            tracing::warn!(
                "webhooks: {left} events undelivered at shutdown{}",
                if self.cluster.is_some() {
                    " (left in Redis for another node)"
                } else {
                    " (lost)"
                }
            );
        }
    }

    /// Add the webhook series (`rf_broadcast_webhook_*`) to a Prometheus registry.
    pub fn register_metrics(&self, registry: &prometheus::Registry) {
        let collector =
            metrics::WebhookCollector::new(self.dispatcher.clone(), self.cluster.clone());
        if let Err(e) = registry.register(Box::new(collector)) {
            tracing::warn!("webhooks: cannot register metrics: {e}");
        }
    }

    /// Watch every delivery attempt of this node from now on (the debug console does): a
    /// bounded ring, so a watcher that falls behind misses reports (and is told how many)
    /// instead of slowing delivery.
    pub fn watch_attempts(&self) -> tokio::sync::broadcast::Receiver<Arc<Attempt>> {
        self.dispatcher.reports.watch()
    }

    /// Delivery counters summed over every target.
    pub fn stats(&self) -> StatsSnapshot {
        let mut s = StatsSnapshot::default();
        for t in self.dispatcher.all() {
            s += t.stats.snapshot();
        }
        if let Some(c) = &self.cluster {
            // Decisions that never reached Redis for want of room count as overflow.
            s.overflowed += c.dropped();
        }
        s
    }

    /// In a cluster: whether this node currently delivers the cluster's webhooks.
    pub fn delivering(&self) -> bool {
        self.cluster.as_ref().is_some_and(|c| c.delivering())
    }
}
