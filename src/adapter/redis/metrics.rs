//! The Redis adapter's figures as Prometheus series, read at scrape time: what it lost,
//! dropped, received and missed, and (interest routing) its per-channel subscriptions.
//!
//! A collector of its own, registered on the metrics registry by whoever starts the adapter
//! (`main.rs`), so the metrics module needs to know nothing of Redis.

use super::RedisAdapter;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntGauge, Opts};
use std::sync::Arc;

/// The series; see [`RedisAdapter::collector`].
pub struct RedisCollector {
    adapter: Arc<RedisAdapter>,
    lost: IntCounter,
    dropped: IntCounter,
    received: IntCounter,
    missed: IntCounter,
    subscribe_commands: IntCounter,
    subscribe_timeouts: IntCounter,
    channel_subscriptions: IntGauge,
}

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::with_opts(Opts::new(format!("rf_broadcast_redis_{name}"), help))
        .expect("a valid metric name")
}

impl RedisCollector {
    pub(super) fn new(adapter: Arc<RedisAdapter>) -> RedisCollector {
        RedisCollector {
            adapter,
            lost: counter(
                "lost_total",
                "Messages to other nodes whose publish failed (Redis away, a shard down, a failover); never resent",
            ),
            dropped: counter(
                "dropped_total",
                "Messages to other nodes not published: queue full, or lost",
            ),
            received: counter("received_total", "Messages received from Redis"),
            missed: counter(
                "missed_total",
                "Messages of other nodes that never arrived here (holes in their numbering): their publish failed, or this node's subscription was down or not yet on a new primary",
            ),
            subscribe_commands: counter(
                "subscribe_commands_total",
                "Interest routing: SUBSCRIBE/UNSUBSCRIBE batches sent",
            ),
            subscribe_timeouts: counter(
                "subscribe_timeouts_total",
                "Interest routing: subscribers released before their channel's SUBSCRIBE was confirmed",
            ),
            channel_subscriptions: IntGauge::with_opts(Opts::new(
                "rf_broadcast_redis_channel_subscriptions",
                "Interest routing: per-channel Redis subscriptions of this node",
            ))
            .expect("a valid metric name"),
        }
    }

    fn parts(&self) -> [&dyn Collector; 7] {
        [
            &self.lost,
            &self.dropped,
            &self.received,
            &self.missed,
            &self.subscribe_commands,
            &self.subscribe_timeouts,
            &self.channel_subscriptions,
        ]
    }
}

/// Bring a counter up to `value` (the adapter's own counters only grow).
fn catch_up(c: &IntCounter, value: u64) {
    let now = c.get();
    if value > now {
        c.inc_by(value - now);
    }
}

impl Collector for RedisCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.parts().into_iter().flat_map(|c| c.desc()).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let a = &self.adapter;
        catch_up(&self.lost, a.lost());
        catch_up(&self.dropped, a.dropped());
        catch_up(&self.received, a.received());
        catch_up(&self.missed, a.missed());
        let (commands, timeouts) = a.routing_stats();
        catch_up(&self.subscribe_commands, commands);
        catch_up(&self.subscribe_timeouts, timeouts);
        self.channel_subscriptions
            .set(a.channel_subscriptions() as i64);
        self.parts().into_iter().flat_map(|c| c.collect()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_catch_up_and_never_go_back() {
        let c = counter("x_total", "x");
        catch_up(&c, 5);
        catch_up(&c, 3);
        assert_eq!(c.get(), 5);
        catch_up(&c, 9);
        assert_eq!(c.get(), 9);
    }
}
