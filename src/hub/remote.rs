//! The mirror of other nodes: the presence members and signed-in users each other node
//! reported, by node id, fed by the cluster adapter.
//!
//! With it `member_added` / `member_removed`, watchlist events and member lists are
//! cluster-wide without a round trip: this node's subscribers hear `member_added` when a user
//! becomes present anywhere, `member_removed` when its last connection anywhere goes (each node
//! tells only its own clients, so every client hears it once).

use super::channels::{entry, existing, forget, ChannelState};
use super::events::{HubEvent, MemberChange};
use super::registry::AppHub;
use super::sparse::shrink_if_sparse;
use super::Hub;
use crate::protocol::{self, ChannelInfo, ChannelKind};
use serde_json::value::RawValue;
use std::collections::HashSet;
use std::sync::Arc;

impl AppHub {
    fn remote_member_added(&self, channel: &str, node: &Arc<str>, user_id: &str, info: &RawValue) {
        if ChannelInfo::of(channel).kind != ChannelKind::Presence {
            return;
        }
        let mut shard = self.shard(channel).write();
        let (name, state) = entry(&mut shard, channel);
        let Some(presence) = state.presence.as_mut() else {
            return;
        };
        if presence.remote_join(node, user_id, info) {
            state.fan_out(&protocol::member_added(channel, user_id, info), None);
            self.node.emit(|| {
                HubEvent::MemberAdded(MemberChange {
                    app_id: self.id.clone(),
                    channel: name,
                    user_id: Arc::from(user_id),
                    here: false,
                    cluster: true,
                })
            });
        }
    }

    fn remote_member_removed(&self, channel: &str, node: &str, user_id: &str) {
        let mut shard = self.shard(channel).write();
        let Some((name, state)) = existing(&mut shard, channel) else {
            return;
        };
        self.remote_leave_locked(&name, state, node, user_id);
        if state.is_empty() {
            forget(&mut shard, channel);
        }
    }

    fn remote_leave_locked(
        &self,
        channel: &Arc<str>,
        state: &mut ChannelState,
        node: &str,
        user_id: &str,
    ) {
        let Some(presence) = state.presence.as_mut() else {
            return;
        };
        if presence.remote_leave(node, user_id) {
            state.fan_out(&protocol::member_removed(channel, user_id), None);
            self.node.emit(|| {
                HubEvent::MemberRemoved(MemberChange {
                    app_id: self.id.clone(),
                    channel: channel.clone(),
                    user_id: Arc::from(user_id),
                    here: false,
                    cluster: true,
                })
            });
        }
    }

    fn remote_user_online(&self, node: &Arc<str>, user_id: &str) {
        let notify = {
            let users = self.users.lock();
            let mut remote = self.remote_users.lock();
            let nodes = remote.entry(Arc::from(user_id)).or_default();
            if nodes.iter().any(|n| n == node) {
                return;
            }
            nodes.push(node.clone());
            nodes.len() == 1 && !users.contains_key(user_id)
        };
        if notify {
            self.notify_watchers(user_id, true);
        }
    }

    fn remote_user_offline(&self, node: &str, user_id: &str) {
        let notify = {
            let users = self.users.lock();
            let mut remote = self.remote_users.lock();
            let Some(nodes) = remote.get_mut(user_id) else {
                return;
            };
            let before = nodes.len();
            nodes.retain(|n| &**n != node);
            if nodes.len() == before {
                return;
            }
            let gone = nodes.is_empty();
            if gone {
                remote.remove(user_id);
                shrink_if_sparse(&mut *remote);
            }
            gone && !users.contains_key(user_id)
        };
        if notify {
            self.notify_watchers(user_id, false);
        }
    }

    fn sync_remote_node(
        &self,
        node: &Arc<str>,
        members: &[(String, String, Box<RawValue>)],
        users: &[String],
    ) {
        let keep: HashSet<(&str, &str)> = members
            .iter()
            .map(|(c, u, _)| (c.as_str(), u.as_str()))
            .collect();
        for shard in self.shards.iter() {
            let mut shard = shard.write();
            shard.retain(|name, state| {
                let stale: Vec<Arc<str>> = match &state.presence {
                    Some(p) => p
                        .users_on(node)
                        .into_iter()
                        .filter(|u| !keep.contains(&(&**name, &**u)))
                        .collect(),
                    None => Vec::new(),
                };
                for u in stale {
                    self.remote_leave_locked(name, state, node, &u);
                }
                !state.is_empty()
            });
            shrink_if_sparse(&mut *shard);
        }
        for (channel, user_id, info) in members {
            self.remote_member_added(channel, node, user_id, info);
        }
        let online: HashSet<&str> = users.iter().map(String::as_str).collect();
        let stale: Vec<Arc<str>> = self
            .remote_users
            .lock()
            .iter()
            .filter(|(u, nodes)| nodes.iter().any(|n| n == node) && !online.contains(&***u))
            .map(|(u, _)| u.clone())
            .collect();
        for u in stale {
            self.remote_user_offline(node, &u);
        }
        for u in users {
            self.remote_user_online(node, u);
        }
    }

    fn local_presence(&self) -> Vec<(String, String, Box<RawValue>)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            for (name, state) in shard.read().iter() {
                if let Some(p) = &state.presence {
                    for (u, info) in p.local_members() {
                        out.push((name.to_string(), u, info));
                    }
                }
            }
        }
        out
    }
}

impl Hub {
    /// Another node has `user_id` in a presence channel: remember it, and tell this node's
    /// subscribers `member_added` when the user is new to the whole cluster.
    pub(crate) fn remote_member_added(
        &self,
        app_id: &str,
        channel: &str,
        node: &Arc<str>,
        user_id: &str,
        user_info: &RawValue,
    ) {
        self.with_app(app_id, |ah| {
            ah.remote_member_added(channel, node, user_id, user_info)
        });
    }

    /// Another node no longer has `user_id` in a presence channel; `member_removed` to this
    /// node's subscribers when it was the user's last connection in the cluster.
    pub(crate) fn remote_member_removed(
        &self,
        app_id: &str,
        channel: &str,
        node: &str,
        user_id: &str,
    ) {
        self.with_app(app_id, |ah| {
            ah.remote_member_removed(channel, node, user_id)
        });
    }

    /// Another node signed `user_id` in (its first connection there).
    pub(crate) fn remote_user_online(&self, app_id: &str, node: &Arc<str>, user_id: &str) {
        self.with_app(app_id, |ah| ah.remote_user_online(node, user_id));
    }

    /// Another node signed out `user_id`'s last connection there.
    pub(crate) fn remote_user_offline(&self, app_id: &str, node: &str, user_id: &str) {
        self.with_app(app_id, |ah| ah.remote_user_offline(node, user_id));
    }

    /// Replace what `node` reported for an app with its full state: presence members
    /// `(channel, user_id, user_info)` and signed-in users. Only the differences produce
    /// events. An empty state forgets the node (it died).
    pub(crate) fn sync_remote_node(
        &self,
        app_id: &str,
        node: &Arc<str>,
        members: &[(String, String, Box<RawValue>)],
        users: &[String],
    ) {
        self.with_app(app_id, |ah| ah.sync_remote_node(node, members, users));
    }

    /// Forget everything `node` reported, in every app (the node is gone).
    pub(crate) fn forget_remote_node(&self, node: &Arc<str>) {
        for ah in self.app_hubs() {
            ah.sync_remote_node(node, &[], &[]);
        }
    }

    /// This node's presence members of an app: `(channel, user_id, user_info)`.
    pub(crate) fn local_presence(&self, app_id: &str) -> Vec<(String, String, Box<RawValue>)> {
        self.with_app(app_id, |ah| ah.local_presence())
    }
}

#[cfg(test)]
mod tests {
    use crate::apps::{App, Apps};
    use crate::hub::{Hub, HubEvent, HubSettings};
    use crate::protocol::MemberData;
    use serde_json::value::RawValue;
    use std::sync::Arc;

    fn info() -> Box<RawValue> {
        RawValue::from_string(r#"{"n":1}"#.into()).unwrap()
    }

    #[test]
    fn a_user_on_two_nodes_is_one_member() {
        let app = App::new("a", "k", "s");
        let hub = Hub::new(Apps::new(vec![app.clone()]), HubSettings::default());
        let node: Arc<str> = Arc::from("n2");
        let c = hub.connect(&app).unwrap();
        hub.subscribe(&c, "presence-r", None).unwrap_or(());
        while c.pop().is_ok() {}
        let mut obs = hub.observe(16);
        hub.remote_member_added("a", "presence-r", &node, "u", &info());
        assert!(c.pop().unwrap().to_string().contains("member_added"));
        // The same user joining here is not new to the cluster.
        let c2 = hub.connect(&app).unwrap();
        let member = MemberData {
            user_id: "u".into(),
            user_info: info(),
        };
        hub.subscribe(&c2, "presence-r", Some(member)).unwrap();
        assert!(c.pop().is_err());
        hub.disconnect(&c2);
        assert!(c.pop().is_err(), "still present on n2");
        hub.forget_remote_node(&node);
        assert!(c.pop().unwrap().to_string().contains("member_removed"));
        let events: Vec<HubEvent> = std::iter::from_fn(|| obs.events.try_recv().ok()).collect();
        let members: Vec<(bool, bool, bool)> = events
            .iter()
            .filter_map(|e| match e {
                HubEvent::MemberAdded(m) => Some((true, m.here, m.cluster)),
                HubEvent::MemberRemoved(m) => Some((false, m.here, m.cluster)),
                _ => None,
            })
            .collect();
        assert_eq!(
            members,
            [
                (true, false, true),  // n2 reported it: new to the cluster
                (true, true, false),  // here too now
                (false, true, false), // gone here, still on n2
                (false, false, true), // n2 forgotten: gone from the cluster
            ]
        );
        assert_eq!(hub.local_presence("a").len(), 0);
    }
}
