//! The metrics observer: one task that reads the hub's lifecycle events and turns them into
//! counters (the gauges are read from the hub at scrape time, `Metrics::follow`). It keeps one
//! number per occupied channel (this node's subscribers, from `Subscribed`/`Unsubscribed`),
//! which is how it knows how many connections a member change reached without asking the hub.

use super::Metrics;
use crate::hub::{shrink_if_sparse, Hub, HubEvent, MemberChange, ObserverHandle};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Events the observer's queue holds before the hub drops (and counts) them.
pub const QUEUE: usize = 65_536;

/// Register the metrics observer with `hub` and run it until the hub is gone; the gauges
/// follow the hub.
pub fn observe(hub: &Arc<Hub>, metrics: Arc<Metrics>) {
    metrics.follow(hub);
    let handle = hub.observe(QUEUE);
    tokio::spawn(run(handle, metrics));
}

async fn run(mut handle: ObserverHandle, metrics: Arc<Metrics>) {
    let dropped = handle.dropped_counter();
    let mut tally = Tally::new(metrics.clone());
    let mut reported = 0;
    while let Some(event) = handle.events.recv().await {
        tally.apply(&event);
        let now = dropped.load(Ordering::Relaxed);
        if now > reported {
            metrics.events_dropped.inc_by(now - reported);
            reported = now;
        }
    }
}

/// The observer's state: the metrics, and this node's subscribers per occupied channel.
struct Tally {
    m: Arc<Metrics>,
    subscribers: HashMap<(Arc<str>, Arc<str>), u64>,
}

impl Tally {
    fn new(m: Arc<Metrics>) -> Tally {
        Tally {
            m,
            subscribers: HashMap::new(),
        }
    }

    fn subscribers(&self, app_id: &Arc<str>, channel: &Arc<str>) -> u64 {
        self.subscribers
            .get(&(app_id.clone(), channel.clone()))
            .copied()
            .unwrap_or(0)
    }

    fn sent(&self, app: &str, kind: &str, frames: u64) {
        if frames > 0 {
            self.m
                .messages_sent
                .with_label_values(&[app, kind])
                .inc_by(frames);
        }
    }

    fn apply(&mut self, event: &HubEvent) {
        let m = &self.m;
        match event {
            HubEvent::ConnectionOpened { app_id, .. } => {
                m.connections_opened.with_label_values(&[app_id]).inc();
                // pusher:connection_established
                self.sent(app_id, "internal", 1);
            }
            HubEvent::ConnectionClosed { app_id, code, .. } => {
                let code = code_label(*code);
                m.connections_closed
                    .with_label_values(&[app_id.as_ref(), code.as_ref()])
                    .inc();
            }
            HubEvent::Subscribed {
                app_id, channel, ..
            } => {
                *self
                    .subscribers
                    .entry((app_id.clone(), channel.clone()))
                    .or_default() += 1;
                // pusher_internal:subscription_succeeded
                self.sent(app_id, "internal", 1);
            }
            HubEvent::Unsubscribed {
                app_id, channel, ..
            } => {
                let key = (app_id.clone(), channel.clone());
                if let Some(n) = self.subscribers.get_mut(&key) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.subscribers.remove(&key);
                        shrink_if_sparse(&mut self.subscribers);
                    }
                }
            }
            HubEvent::ChannelOccupied { .. } | HubEvent::ChannelVacated { .. } => {}
            HubEvent::MemberAdded(change) | HubEvent::MemberRemoved(change) => self.member(change),
            HubEvent::ClientEvent {
                app_id,
                data,
                recipients,
                ..
            } => {
                m.messages_received
                    .with_label_values(&[app_id, "client_event"])
                    .inc();
                let bytes = data.len() as u64;
                m.bytes_received
                    .with_label_values(&[app_id, "client_event"])
                    .inc_by(bytes);
                let recipients = *recipients as u64;
                self.sent(app_id, "client_event", recipients);
                if recipients > 0 {
                    m.bytes_sent
                        .with_label_values(&[app_id, "client_event"])
                        .inc_by(bytes * recipients);
                }
            }
            HubEvent::ApiPublish {
                app_id,
                bytes,
                recipients,
                ..
            } => {
                let (bytes, recipients) = (*bytes as u64, *recipients as u64);
                m.messages_received
                    .with_label_values(&[app_id, "api_event"])
                    .inc();
                m.bytes_received
                    .with_label_values(&[app_id, "api_event"])
                    .inc_by(bytes);
                self.sent(app_id, "api_event", recipients);
                if recipients > 0 {
                    m.bytes_sent
                        .with_label_values(&[app_id, "api_event"])
                        .inc_by(bytes * recipients);
                }
            }
            HubEvent::CacheMiss { app_id, .. } => self.sent(app_id, "internal", 1),
            HubEvent::SubscriptionCount { .. } => {}
            HubEvent::SubscriptionRefused { app_id, reason, .. } => m.refused(app_id, reason),
            HubEvent::SlowConsumerClosed { app_id, .. } => {
                m.slow_consumer_closes.with_label_values(&[app_id]).inc();
            }
        }
    }

    /// A member change: `member_added` / `member_removed` went to the channel's subscribers
    /// here when the change was cluster-wide (the joiner is not yet, and the leaver no longer,
    /// among them).
    fn member(&self, change: &MemberChange) {
        let app = &change.app_id;
        if change.cluster {
            self.sent(app, "internal", self.subscribers(app, &change.channel));
        }
    }
}

/// The `code` label of a close. A client picks its own close code, so only the codes with a
/// meaning here become labels (WebSocket's 1000-1015 and Pusher's 4000-4399); any other is
/// `other`, and no code (the socket dropped, or an empty close frame) is `none`: a client
/// cannot grow the series without bound.
fn code_label(code: Option<u16>) -> std::borrow::Cow<'static, str> {
    match code {
        None => "none".into(),
        Some(c @ (1000..=1015 | 4000..=4399)) => c.to_string().into(),
        Some(_) => "other".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::SocketId;

    fn value(m: &Metrics, text_line_start: &str) -> f64 {
        m.render()
            .lines()
            .find(|l| l.starts_with(text_line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    fn a() -> Arc<str> {
        Arc::from("a")
    }

    fn ch() -> Arc<str> {
        Arc::from("presence-x")
    }

    fn subscribed(n: u64) -> HubEvent {
        HubEvent::Subscribed {
            app_id: a(),
            socket_id: SocketId(n),
            channel: ch(),
        }
    }

    #[test]
    fn lifecycle_events_move_the_series() {
        let m = Metrics::new();
        let mut t = Tally::new(m.clone());
        for n in 1..=3 {
            t.apply(&HubEvent::ConnectionOpened {
                app_id: a(),
                socket_id: SocketId(n),
                ip: None,
            });
        }
        t.apply(&HubEvent::ChannelOccupied {
            app_id: a(),
            channel: ch(),
        });
        t.apply(&subscribed(1));
        t.apply(&subscribed(2));
        t.apply(&HubEvent::MemberAdded(MemberChange {
            app_id: a(),
            channel: ch(),
            user_id: Arc::from("u3"),
            here: true,
            cluster: true,
        }));
        t.apply(&subscribed(3));
        t.apply(&HubEvent::ClientEvent {
            app_id: a(),
            channel: ch(),
            event: Arc::from("client-x"),
            data: Arc::from("12345"),
            socket_id: SocketId(1),
            user_id: None,
            recipients: 2,
        });
        t.apply(&HubEvent::ApiPublish {
            app_id: a(),
            channels: Arc::from(vec![ch()]),
            event: Arc::from("e"),
            data: Arc::from("0123456789"),
            bytes: 10,
            recipients: 3,
            except: None,
        });
        t.apply(&HubEvent::ConnectionClosed {
            app_id: a(),
            socket_id: SocketId(3),
            code: Some(4100),
            why: "slow",
        });
        t.apply(&HubEvent::ConnectionClosed {
            app_id: a(),
            socket_id: SocketId(2),
            code: None,
            why: "client",
        });
        t.apply(&HubEvent::ConnectionClosed {
            app_id: a(),
            socket_id: SocketId(4),
            code: Some(3999),
            why: "closed by the client",
        });

        let v = |s: &str| value(&m, s);
        assert_eq!(v(r#"rf_broadcast_connections_opened_total{app="a"}"#), 3.0);
        assert_eq!(
            v(r#"rf_broadcast_connections_closed_total{app="a",code="4100"}"#),
            1.0
        );
        assert_eq!(
            v(r#"rf_broadcast_connections_closed_total{app="a",code="none"}"#),
            1.0
        );
        // The gauges are the hub's, not the events' (none followed here).
        assert_eq!(v(r#"rf_broadcast_connections{app="a"}"#), 0.0);
        assert_eq!(
            v(r#"rf_broadcast_connections_closed_total{app="a",code="other"}"#),
            1.0
        );
        // 3 subscribers, the sender excluded.
        assert_eq!(
            v(r#"rf_broadcast_messages_sent_total{app="a",kind="client_event"}"#),
            2.0
        );
        assert_eq!(
            v(r#"rf_broadcast_event_bytes_sent_total{app="a",kind="client_event"}"#),
            10.0
        );
        assert_eq!(
            v(r#"rf_broadcast_messages_sent_total{app="a",kind="api_event"}"#),
            3.0
        );
        assert_eq!(
            v(r#"rf_broadcast_event_bytes_received_total{app="a",kind="api_event"}"#),
            10.0
        );
        // 3 connection_established + 3 subscription_succeeded + member_added to 2 subscribers.
        assert_eq!(
            v(r#"rf_broadcast_messages_sent_total{app="a",kind="internal"}"#),
            8.0
        );
    }

    #[tokio::test]
    async fn the_observer_follows_a_real_hub() {
        let hub = Hub::new(
            crate::apps::Apps::new(vec![crate::apps::App::new("a", "k", "s")]),
            Default::default(),
        );
        let m = Metrics::new();
        observe(&hub, m.clone());
        let app = hub.app_by_id("a").unwrap();
        let conn = hub.connect(&app).unwrap();
        hub.subscribe(&conn, "news", None).unwrap();
        hub.publish("a", &["news"], "e", "{}", None);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while value(
            &m,
            r#"rf_broadcast_messages_sent_total{app="a",kind="api_event"}"#,
        ) < 1.0
        {
            assert!(tokio::time::Instant::now() < deadline, "{}", m.render());
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(value(&m, r#"rf_broadcast_connections{app="a"}"#), 1.0);
        assert_eq!(value(&m, r#"rf_broadcast_subscriptions{app="a"}"#), 1.0);
    }

    /// The gauges are read from the hub at scrape time: exact even when every event was
    /// missed (a flood filled the observer's queue; here there is no observer at all).
    #[test]
    fn gauges_are_the_hubs_whatever_the_events_missed() {
        let hub = Hub::new(
            crate::apps::Apps::new(vec![crate::apps::App::new("a", "k", "s")]),
            Default::default(),
        );
        let m = Metrics::new();
        m.follow(&hub);
        let app = hub.app_by_id("a").unwrap();
        let c1 = hub.connect(&app).unwrap();
        let c2 = hub.connect(&app).unwrap();
        for i in 0..1_000 {
            hub.subscribe(&c1, &format!("c{i}"), None).unwrap();
        }
        let member = crate::protocol::MemberData {
            user_id: "u1".into(),
            user_info: serde_json::value::RawValue::from_string("{}".into()).unwrap(),
        };
        hub.subscribe(&c2, "presence-x", Some(member.clone()))
            .unwrap();
        hub.subscribe(&c2, "c0", None).unwrap();
        let v = |s: &str| value(&m, s);
        assert_eq!(v(r#"rf_broadcast_connections{app="a"}"#), 2.0);
        assert_eq!(v(r#"rf_broadcast_subscriptions{app="a"}"#), 1_002.0);
        assert_eq!(v(r#"rf_broadcast_channels_occupied{app="a"}"#), 1_001.0);
        assert_eq!(v(r#"rf_broadcast_presence_members{app="a"}"#), 1.0);
        for i in 0..1_000 {
            hub.unsubscribe(&c1, &format!("c{i}"));
        }
        hub.disconnect(&c2);
        assert_eq!(v(r#"rf_broadcast_connections{app="a"}"#), 1.0);
        assert_eq!(v(r#"rf_broadcast_subscriptions{app="a"}"#), 0.0);
        assert_eq!(v(r#"rf_broadcast_channels_occupied{app="a"}"#), 0.0);
        assert_eq!(v(r#"rf_broadcast_presence_members{app="a"}"#), 0.0);
        // Metrics do not keep the hub alive.
        drop(c1);
        drop(app);
        drop(hub);
        assert_eq!(v(r#"rf_broadcast_connections{app="a"}"#), 1.0);
    }
}
