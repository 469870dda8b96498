//! Channel figures for the HTTP API (`/channels`, `/channels/{c}`, `/channels/{c}/users`):
//! this node's view, and the cluster's (this node's plus the subscription counts the other
//! nodes report through the adapter; user counts come from the presence mirror, which is
//! already cluster-wide).

use super::channels::ChannelState;
use super::presence::PresenceSnapshot;
use super::Hub;
use axum::extract::ws::Utf8Bytes;
use indexmap::IndexMap;
use std::sync::Arc;
use std::time::Instant;

/// Channel figures for the HTTP API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelStats {
    pub subscription_count: usize,
    pub user_count: Option<usize>,
    /// A cache channel's cached frame and its seconds to live.
    pub cache: Option<(Utf8Bytes, u64)>,
}

impl ChannelStats {
    fn of(state: &ChannelState) -> ChannelStats {
        ChannelStats {
            subscription_count: state.subscribers.len(),
            user_count: state.presence.as_ref().map(|p| p.len()),
            cache: state.live_cache().and_then(|f| {
                let (_, expires) = state.cache.as_ref()?;
                let ttl = expires.saturating_duration_since(Instant::now()).as_secs();
                Some((f.clone(), ttl))
            }),
        }
    }
}

impl Hub {
    /// Channels with subscribers on this node whose names start with `prefix`.
    pub(crate) fn channels(&self, app_id: &str, prefix: &str) -> Vec<(Arc<str>, ChannelStats)> {
        self.with_app(app_id, |ah| {
            let mut out = Vec::new();
            for shard in ah.shards.iter() {
                for (name, state) in shard.read().iter() {
                    if !state.subscribers.is_empty() && name.starts_with(prefix) {
                        out.push((name.clone(), ChannelStats::of(state)));
                    }
                }
            }
            out
        })
    }

    /// One channel's figures on this node (zero when nobody is subscribed).
    pub(crate) fn channel(&self, app_id: &str, channel: &str) -> ChannelStats {
        self.with_app(app_id, |ah| {
            ah.shard(channel)
                .read()
                .get(channel)
                .map(ChannelStats::of)
                .unwrap_or_default()
        })
    }

    /// Distinct user ids in a presence channel (cluster-wide), in join order.
    pub(crate) fn presence_users(&self, app_id: &str, channel: &str) -> Vec<String> {
        self.with_app(app_id, |ah| {
            ah.shard(channel)
                .read()
                .get(channel)
                .and_then(|s| s.presence.as_ref())
                .map(|p| p.user_ids())
                .unwrap_or_default()
        })
    }

    /// The members of a presence channel (cluster-wide) with their info.
    pub(crate) fn presence_snapshot(&self, app_id: &str, channel: &str) -> PresenceSnapshot {
        self.with_app(app_id, |ah| {
            ah.shard(channel)
                .read()
                .get(channel)
                .and_then(|s| s.presence.as_ref())
                .map(|p| p.snapshot())
                .unwrap_or_default()
        })
    }

    /// Every channel occupied anywhere in the cluster whose name starts with `prefix`.
    pub(crate) async fn cluster_channels(
        &self,
        app_id: &str,
        prefix: &str,
    ) -> Vec<(Arc<str>, ChannelStats)> {
        let mut all: IndexMap<Arc<str>, ChannelStats> =
            self.channels(app_id, prefix).into_iter().collect();
        for (name, subs) in self.adapter().remote_channels(app_id, prefix).await {
            if !name.starts_with(prefix) || subs == 0 {
                continue;
            }
            let name: Arc<str> = Arc::from(name);
            let stats = all
                .entry(name.clone())
                .or_insert_with(|| self.channel(app_id, &name));
            stats.subscription_count += subs;
        }
        all.into_iter().collect()
    }

    /// One channel's figures across the cluster.
    pub(crate) async fn cluster_channel(&self, app_id: &str, channel: &str) -> ChannelStats {
        let mut stats = self.channel(app_id, channel);
        for (name, subs) in self.adapter().remote_channels(app_id, channel).await {
            if name == channel {
                stats.subscription_count += subs;
            }
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::ChannelStats;
    use crate::apps::{App, Apps};
    use crate::hub::{Adapter, ClusterEvent, Hub, HubSettings, Remote};
    use crate::protocol::MemberData;
    use serde_json::value::RawValue;
    use std::sync::Arc;

    fn hub() -> (Arc<Hub>, App) {
        let app = App::new("a", "k", "s");
        (
            Hub::new(Apps::new(vec![app.clone()]), HubSettings::default()),
            app,
        )
    }

    fn member(id: &str, info: &str) -> Option<MemberData> {
        Some(MemberData {
            user_id: id.into(),
            user_info: RawValue::from_string(info.into()).unwrap(),
        })
    }

    /// Names and subscription counts, sorted by name.
    fn counts(list: Vec<(Arc<str>, ChannelStats)>) -> Vec<(String, usize, Option<usize>)> {
        let mut v: Vec<_> = list
            .into_iter()
            .map(|(n, s)| (n.to_string(), s.subscription_count, s.user_count))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn this_nodes_channels_with_their_counts_and_members() {
        let (hub, app) = hub();
        let c1 = hub.connect(&app).unwrap();
        let c2 = hub.connect(&app).unwrap();
        hub.subscribe(&c1, "news", None).unwrap();
        hub.subscribe(&c2, "news", None).unwrap();
        hub.subscribe(&c1, "other", None).unwrap();
        hub.subscribe(&c2, "presence-room", member("u2", r#"{"n":2}"#))
            .unwrap();
        hub.subscribe(&c1, "presence-room", member("u1", r#"{"n":1}"#))
            .unwrap();

        assert_eq!(
            counts(hub.channels("a", "")),
            vec![
                ("news".into(), 2, None),
                ("other".into(), 1, None),
                ("presence-room".into(), 2, Some(2)),
            ]
        );
        assert_eq!(
            counts(hub.channels("a", "presence-")),
            vec![("presence-room".into(), 2, Some(2))]
        );
        assert_eq!(hub.channel("a", "news").subscription_count, 2);
        assert_eq!(hub.channel("a", "nobody-here"), ChannelStats::default());
        assert!(hub.channels("no-such-app", "").is_empty());
        assert_eq!(hub.channel("no-such-app", "news"), ChannelStats::default());

        // Presence: ids in join order, with their info.
        assert_eq!(hub.presence_users("a", "presence-room"), ["u2", "u1"]);
        let snap = hub.presence_snapshot("a", "presence-room");
        let members: Vec<(String, String)> = snap
            .members
            .iter()
            .map(|(id, info)| (id.clone(), info.get().to_string()))
            .collect();
        assert_eq!(
            members,
            [
                ("u2".to_string(), r#"{"n":2}"#.to_string()),
                ("u1".to_string(), r#"{"n":1}"#.to_string())
            ]
        );
        assert!(hub.presence_users("a", "news").is_empty());

        // A vacated channel is no longer listed; one leaving member is no longer counted.
        hub.unsubscribe(&c1, "other");
        hub.unsubscribe(&c1, "presence-room");
        assert_eq!(
            counts(hub.channels("a", "")),
            vec![
                ("news".into(), 2, None),
                ("presence-room".into(), 1, Some(1)),
            ]
        );
        assert_eq!(hub.presence_users("a", "presence-room"), ["u2"]);
    }

    #[test]
    fn a_cache_channel_reports_its_event_and_time_to_live() {
        let app = App {
            cache_ttl: 60,
            ..App::new("a", "k", "s")
        };
        let hub = Hub::new(Apps::new(vec![app.clone()]), HubSettings::default());
        assert_eq!(hub.channel("a", "cache-price").cache, None);
        hub.publish("a", &["cache-price"], "price", r#"{"p":1}"#, None);
        let (frame, ttl) = hub.channel("a", "cache-price").cache.unwrap();
        assert!(frame.as_str().contains(r#""event":"price""#), "{frame}");
        assert!((59..=60).contains(&ttl), "{ttl}");
        // Cached but nobody subscribed: not an occupied channel.
        assert!(hub.channels("a", "").is_empty());
    }

    /// Other nodes as an adapter reports them (whatever the prefix asked).
    struct OtherNodes(Vec<(String, usize)>);

    impl Adapter for OtherNodes {
        fn send(&self, _app_id: &str, _event: ClusterEvent) {}
        fn remote_channels(&self, _app_id: &str, _prefix: &str) -> Remote<Vec<(String, usize)>> {
            Box::pin(std::future::ready(self.0.clone()))
        }
    }

    #[tokio::test]
    async fn the_cluster_view_adds_the_other_nodes_counts() {
        let (hub, app) = hub();
        hub.set_adapter(Arc::new(OtherNodes(vec![
            ("news".into(), 3),
            ("remote-only".into(), 2),
            ("empty-there".into(), 0),
            ("presence-room".into(), 1),
        ])));
        let c = hub.connect(&app).unwrap();
        hub.subscribe(&c, "news", None).unwrap();
        hub.subscribe(&c, "presence-room", member("u1", "{}"))
            .unwrap();
        // The other node's member is in the presence mirror: user counts are cluster-wide.
        let info = RawValue::from_string("{}".into()).unwrap();
        hub.remote_member_added("a", "presence-room", &Arc::from("node-2"), "u9", &info);

        assert_eq!(
            counts(hub.cluster_channels("a", "").await),
            vec![
                ("news".into(), 4, None),
                ("presence-room".into(), 2, Some(2)),
                ("remote-only".into(), 2, None),
            ]
        );
        // The prefix binds what the other nodes answer too.
        assert_eq!(
            counts(hub.cluster_channels("a", "new").await),
            vec![("news".into(), 4, None)]
        );
        assert_eq!(hub.cluster_channel("a", "news").await.subscription_count, 4);
        assert_eq!(
            hub.cluster_channel("a", "remote-only")
                .await
                .subscription_count,
            2
        );
        assert_eq!(
            hub.cluster_channel("a", "nowhere").await,
            ChannelStats::default()
        );
        // This node's own view is unchanged.
        assert_eq!(hub.channel("a", "news").subscription_count, 1);
    }
}
