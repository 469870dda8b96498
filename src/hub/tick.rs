//! The once-a-second sweep: the heartbeat of every connection (one pass instead of a timer
//! each), throttled subscription counts, cache expiry, and the ticker task that runs it
//! exactly once per hub.

use super::channels::SUBSCRIPTION_COUNT_INTERVAL;
use super::connection::{self, CloseRequest, Heartbeat};
use super::sparse::shrink_if_sparse;
use super::Hub;
use crate::protocol::ErrorCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Hub {
    /// Periodic work: heartbeats, throttled subscription counts, expired cache entries.
    /// Runs every second once [`Hub::start_ticker`] was called.
    pub(crate) fn tick(&self) {
        self.sweep_heartbeats();
        for ah in self.app_hubs() {
            if ah.app().recovery_window > 0 {
                ah.recovery_tick();
            }
            for shard in ah.shards.iter() {
                let mut shard = shard.write();
                shard.retain(|name, state| {
                    if state.count_dirty
                        && state
                            .count_sent
                            .is_none_or(|t| t.elapsed() >= SUBSCRIPTION_COUNT_INTERVAL)
                    {
                        state.send_subscription_count(name);
                    }
                    if state
                        .cache
                        .as_ref()
                        .is_some_and(|(_, e)| *e <= Instant::now())
                    {
                        state.cache = None;
                    }
                    !state.is_empty()
                });
                // Cache channels expire in bulk after a flood of them.
                shrink_if_sparse(&mut *shard);
            }
        }
    }

    /// The heartbeat for every connection: `pusher:ping` to a client silent for its app's
    /// `activity_timeout`, close 4201 when it stays silent for `pong_timeout` after that.
    fn sweep_heartbeats(&self) {
        let now = connection::now_ms();
        for ah in self.app_hubs() {
            let app = ah.app();
            let activity = app.activity_timeout.max(1).saturating_mul(1000);
            let pong = app.pong_timeout.max(1).saturating_mul(1000);
            let conns = ah.connections.lock();
            for conn in conns.values() {
                match conn.heartbeat(now, activity, pong) {
                    Heartbeat::Alive => {}
                    Heartbeat::Ping => {
                        conn.ping();
                    }
                    Heartbeat::Dead => conn.close(CloseRequest {
                        code: ErrorCode::PongNotReceived,
                        message: "Pong reply not received",
                        send_error: false,
                    }),
                }
            }
        }
    }

    /// Start the once-a-second ticker for this hub unless it runs already; it stops when the
    /// hub is dropped. Called by every router that serves the hub, so mounting one (or two)
    /// starts exactly one. Outside a tokio runtime this does nothing and answers false; the
    /// routers call it again on their first request.
    pub(crate) fn start_ticker(self: &Arc<Self>) -> bool {
        if self.node.ticker_started.load(Ordering::Acquire) {
            return true;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        if self.node.ticker_started.swap(true, Ordering::AcqRel) {
            return true;
        }
        let weak = Arc::downgrade(self);
        runtime.spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                match weak.upgrade() {
                    Some(hub) => {
                        hub.node.ticks.fetch_add(1, Ordering::Relaxed);
                        hub.tick();
                    }
                    None => return,
                }
            }
        });
        true
    }

    /// Sweeps the ticker has run since the hub started (one a second): how tests see that
    /// exactly one ticker runs.
    #[cfg(test)]
    pub(crate) fn ticks(&self) -> u64 {
        self.node.ticks.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use crate::apps::{App, Apps};
    use crate::hub::{Hub, HubSettings};

    /// Started twice, the ticker runs once: one sweep a second, not two. (Time is paused
    /// and advances only while every task waits, so the count is exact.)
    #[tokio::test(start_paused = true)]
    async fn the_ticker_starts_once() {
        let hub = Hub::new(Apps::new(vec![App::default()]), HubSettings::default());
        assert!(hub.start_ticker());
        assert!(hub.start_ticker());
        // The first sweep runs at once, then one a second: at 0, 1, ..., 5 s.
        tokio::time::sleep(std::time::Duration::from_millis(5_500)).await;
        assert_eq!(hub.ticks(), 6);
    }

    #[test]
    fn no_runtime_no_ticker() {
        let hub = Hub::new(Apps::new(vec![App::default()]), HubSettings::default());
        assert!(!hub.start_ticker());
    }

    #[test]
    fn expired_cache_entries_are_dropped() {
        let app = App {
            cache_ttl: 0,
            ..App::default()
        };
        let hub = Hub::new(Apps::new(vec![app.clone()]), HubSettings::default());
        hub.publish(&app.id, &["cache-x"], "e", "{}", None);
        hub.tick();
        assert_eq!(hub.channel(&app.id, "cache-x").cache, None);
    }
}
