//! The console's counters: connections, channels, messages in and out, HTTP API requests,
//! publishes and refusals, sampled once a second into a ring of the last five minutes for the
//! sparklines.
//!
//! Rates are counted from the hub's events as the console's task drains them (nothing is
//! added to the publish path): messages in are events handed to the server to relay (one per
//! channel of an API publish, one per client event), messages out the deliveries to
//! connections on this node, publishes every `ApiPublish` (HTTP API, library, console's event
//! creator). API requests are every HTTP API request, whatever its endpoint or answer
//! (publishes, queries, `terminate_connections`, refused ones too): the API counts them on the
//! hub, and each sample takes the difference. Connections and channels are read from the hub
//! at each sample.

use crate::hub::HubEvent;
use crate::webhooks::attempts::Outcome;
use crate::webhooks::Attempt;
use serde::Serialize;
use std::collections::VecDeque;

/// Samples kept: one a second for five minutes.
pub const SAMPLES: usize = 300;

/// One second of the node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// Seconds since the Unix epoch at the end of the second.
    pub t: u64,
    pub connections: usize,
    pub channels: usize,
    pub messages_in: u64,
    pub messages_out: u64,
    /// HTTP API requests answered in the second.
    pub api_requests: u64,
    /// Publishes (HTTP API, library, event creator) in the second.
    pub api_publishes: u64,
    pub refusals: u64,
}

/// Totals since the console started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub messages_in: u64,
    pub messages_out: u64,
    pub api_requests: u64,
    pub api_publishes: u64,
    pub refusals: u64,
    pub slow_consumers: u64,
    /// Webhook requests sent, and those that failed (retried or given up).
    pub webhook_attempts: u64,
    pub webhook_failures: u64,
    /// Hub events the console could not take (its queue was full).
    pub dropped_rows: u64,
}

/// The counters of the second in progress and the ring of finished ones.
#[derive(Debug, Default)]
pub struct Samples {
    current: Sample,
    ring: VecDeque<Sample>,
    pub totals: Totals,
    /// The hub's API request count at the last sample (`None` before the first).
    api_requests_seen: Option<u64>,
}

impl Samples {
    /// Count one hub event.
    pub fn count(&mut self, event: &HubEvent) {
        let c = &mut self.current;
        let t = &mut self.totals;
        match event {
            HubEvent::ApiPublish {
                channels,
                recipients,
                ..
            } => {
                c.api_publishes += 1;
                c.messages_in += channels.len() as u64;
                c.messages_out += *recipients as u64;
                t.api_publishes += 1;
                t.messages_in += channels.len() as u64;
                t.messages_out += *recipients as u64;
            }
            HubEvent::ClientEvent { recipients, .. } => {
                c.messages_in += 1;
                c.messages_out += *recipients as u64;
                t.messages_in += 1;
                t.messages_out += *recipients as u64;
            }
            HubEvent::SubscriptionRefused { .. } => {
                c.refusals += 1;
                t.refusals += 1;
            }
            HubEvent::SlowConsumerClosed { .. } => t.slow_consumers += 1,
            _ => {}
        }
    }

    /// Count one webhook attempt report.
    pub fn count_attempt(&mut self, attempt: &Attempt) {
        self.totals.webhook_attempts += 1;
        if attempt.outcome != Outcome::Delivered {
            self.totals.webhook_failures += 1;
        }
    }

    /// Close the current second with the hub's gauges and its API request count (a running
    /// total; the sample gets what was added since the last one) and start the next.
    pub fn tick(&mut self, t: u64, connections: usize, channels: usize, api_requests: u64) {
        let mut s = std::mem::take(&mut self.current);
        s.t = t;
        s.connections = connections;
        s.channels = channels;
        // The console may start after the server answered requests: those are not this
        // second's.
        let since = api_requests.saturating_sub(self.api_requests_seen.unwrap_or(api_requests));
        self.api_requests_seen = Some(api_requests);
        s.api_requests = since;
        self.totals.api_requests += since;
        if self.ring.len() == SAMPLES {
            self.ring.pop_front();
        }
        self.ring.push_back(s);
    }

    /// The finished seconds, oldest first.
    pub fn ring(&self) -> impl Iterator<Item = &Sample> {
        self.ring.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::SocketId;
    use std::sync::Arc;

    #[test]
    fn counts_per_second_and_keeps_five_minutes() {
        let mut s = Samples::default();
        // The server answered 40 API requests before the console started: not counted.
        s.tick(9, 0, 0, 40);
        s.count(&HubEvent::ApiPublish {
            app_id: "a".into(),
            channels: Arc::from(vec![Arc::from("x"), Arc::from("y")]),
            event: "e".into(),
            data: "{}".into(),
            bytes: 2,
            recipients: 5,
            except: None,
        });
        s.count(&HubEvent::SubscriptionRefused {
            app_id: "a".into(),
            socket_id: SocketId(1),
            channel: "private-x".into(),
            reason: "bad".into(),
        });
        s.tick(10, 3, 2, 47);
        s.tick(11, 3, 2, 47);
        assert_eq!(s.ring().next().unwrap().api_requests, 0);
        let ring: Vec<Sample> = s.ring().skip(1).copied().collect();
        assert_eq!(
            ring[0],
            Sample {
                t: 10,
                connections: 3,
                channels: 2,
                messages_in: 2,
                messages_out: 5,
                api_requests: 7,
                api_publishes: 1,
                refusals: 1
            }
        );
        assert_eq!((ring[1].messages_in, ring[1].api_requests), (0, 0));
        assert_eq!((s.totals.refusals, s.totals.api_requests), (1, 7));
        for t in 0..400 {
            s.tick(t, 0, 0, 47);
        }
        assert_eq!(s.ring().count(), SAMPLES);
        assert_eq!(s.ring().next().unwrap().t, 100);
    }
}
