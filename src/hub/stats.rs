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
