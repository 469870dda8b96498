//! Read-only views of the hub: for the debug console's inspectors, the occupied channels of an
//! app with their subscribers and the live connections with what each is subscribed to; for
//! the metrics, each app's gauges, read at scrape time (exact whatever the event observers
//! missed).
//!
//! Each view copies what it needs under the same locks the hub takes (one shard or one
//! connection map at a time, in the documented order) and releases them at once; nothing here
//! changes the hub.

use super::connection::{now_ms, Connection, SocketId};
use super::Hub;
use std::sync::Arc;

/// One occupied channel as the channel inspector shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChannelView {
    pub name: Arc<str>,
    /// This node's subscribers, in subscription order.
    pub subscribers: Vec<SocketId>,
    /// Presence channels: how many distinct users (cluster-wide).
    pub user_count: Option<usize>,
}

/// One live connection as the connection inspector shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnectionView {
    pub socket_id: SocketId,
    pub app_id: Arc<str>,
    /// Subscribed channels, with the presence user id each was joined as.
    pub channels: Vec<(Arc<str>, Option<Arc<str>>)>,
    /// The user it signed in as (`pusher:signin`).
    pub user: Option<Arc<str>>,
    /// Milliseconds since it opened.
    pub age_ms: u64,
    /// Milliseconds since the client last sent anything.
    pub idle_ms: u64,
}

impl ConnectionView {
    fn of(conn: &Connection, now: u64) -> ConnectionView {
        let (last_seen, opened) = conn.activity_ms();
        let state = conn.state.lock();
        ConnectionView {
            socket_id: conn.socket_id,
            app_id: conn.app_hub().id.clone(),
            channels: state
                .subscriptions
                .iter()
                .map(|s| (s.channel.clone(), s.user_id.clone()))
                .collect(),
            user: state.user.clone(),
            age_ms: now.saturating_sub(opened),
            idle_ms: now.saturating_sub(last_seen),
        }
    }
}

/// One app's figures on this node, as the metrics gauges report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Gauges {
    /// Open WebSocket connections.
    pub connections: usize,
    /// Subscriptions (a connection in a channel).
    pub subscriptions: usize,
    /// Channels with a subscriber.
    pub channels: usize,
    /// Presence members with a connection here, summed over channels.
    pub presence_members: usize,
}

impl Hub {
    /// Every app's [`Gauges`], in configuration order. Walks every channel, one shard at a
    /// time under its read lock (a scrape every few seconds, not a hot path).
    pub(crate) fn gauges(&self) -> Vec<(Arc<str>, Gauges)> {
        self.app_hubs()
            .iter()
            .map(|ah| {
                let mut g = Gauges {
                    connections: ah.connections.lock().len(),
                    ..Gauges::default()
                };
                for shard in ah.shards.iter() {
                    for state in shard.read().values() {
                        if !state.subscribers.is_empty() {
                            g.channels += 1;
                            g.subscriptions += state.subscribers.len();
                        }
                        g.presence_members += state.presence.as_ref().map_or(0, |p| p.local_len());
                    }
                }
                (ah.id.clone(), g)
            })
            .collect()
    }

    /// The ids of the apps, in configuration order.
    pub(crate) fn app_ids(&self) -> Vec<Arc<str>> {
        self.app_hubs().iter().map(|ah| ah.id.clone()).collect()
    }

    /// The channels of an app with subscribers on this node, sorted by name, at most `limit`.
    pub(crate) fn channel_views(&self, app_id: &str, limit: usize) -> Vec<ChannelView> {
        self.with_app(app_id, |ah| {
            let mut out = Vec::new();
            for shard in ah.shards.iter() {
                for (name, state) in shard.read().iter() {
                    if state.subscribers.is_empty() {
                        continue;
                    }
                    out.push(ChannelView {
                        name: name.clone(),
                        subscribers: state.subscribers.keys().copied().collect(),
                        user_count: state.presence.as_ref().map(|p| p.len()),
                    });
                }
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            out.truncate(limit);
            out
        })
    }

    /// How many channels have subscribers on this node, all apps.
    pub(crate) fn occupied_channel_count(&self) -> usize {
        self.app_hubs()
            .iter()
            .map(|ah| {
                ah.shards
                    .iter()
                    .map(|s| {
                        s.read()
                            .values()
                            .filter(|c| !c.subscribers.is_empty())
                            .count()
                    })
                    .sum::<usize>()
            })
            .sum()
    }

    /// The live connections of an app on this node, oldest first, at most `limit`.
    pub(crate) fn connection_views(&self, app_id: &str, limit: usize) -> Vec<ConnectionView> {
        let conns: Vec<Arc<Connection>> = self.with_app(app_id, |ah| {
            ah.connections.lock().values().cloned().collect()
        });
        let now = now_ms();
        let mut out: Vec<ConnectionView> =
            conns.iter().map(|c| ConnectionView::of(c, now)).collect();
        out.sort_by(|a, b| b.age_ms.cmp(&a.age_ms).then(a.socket_id.cmp(&b.socket_id)));
        out.truncate(limit);
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::apps::{App, Apps};
    use crate::hub::{Hub, HubSettings};
    use crate::protocol::MemberData;
    use serde_json::value::RawValue;

    #[test]
    fn views_show_channels_members_and_connections() {
        let app = App::new("a", "k", "s");
        let hub = Hub::new(Apps::new(vec![app.clone()]), HubSettings::default());
        let c1 = hub.connect(&app).unwrap();
        let c2 = hub.connect(&app).unwrap();
        hub.subscribe(&c1, "news", None).unwrap();
        let member = MemberData {
            user_id: "u1".into(),
            user_info: RawValue::from_string("{}".into()).unwrap(),
        };
        hub.subscribe(&c2, "presence-room", Some(member)).unwrap();
        hub.subscribe(&c2, "news", None).unwrap();

        let channels = hub.channel_views("a", 100);
        let names: Vec<&str> = channels.iter().map(|c| &*c.name).collect();
        assert_eq!(names, ["news", "presence-room"]);
        assert_eq!(channels[0].subscribers, [c1.socket_id, c2.socket_id]);
        assert_eq!(channels[0].user_count, None);
        assert_eq!(channels[1].user_count, Some(1));
        assert_eq!(hub.channel_views("a", 1).len(), 1);
        assert_eq!(hub.occupied_channel_count(), 2);

        let conns = hub.connection_views("a", 100);
        assert_eq!(conns.len(), 2);
        let v2 = conns.iter().find(|v| v.socket_id == c2.socket_id).unwrap();
        assert_eq!(v2.channels.len(), 2);
        assert_eq!(v2.channels[0].1.as_deref(), Some("u1"));
        assert!(hub.connection_views("nope", 100).is_empty());
        assert_eq!(&*hub.app_ids()[0], "a");

        hub.disconnect(&c1);
        hub.disconnect(&c2);
        assert_eq!(hub.occupied_channel_count(), 0);
    }
}
