//! Presence members of one channel: one entry per user id however many connections it has,
//! so `member_added` fires for a user's first connection and `member_removed` for its last.
//!
//! In a cluster a member is also present while any other node (by node id) reports it, so
//! the events fire for the user's first and last connection across all nodes: `sockets`
//! counts this node's connections, `nodes` the other nodes that have the user.

use crate::protocol::MemberData;
use indexmap::IndexMap;
use serde::Serialize;
use serde_json::value::RawValue;
use std::sync::Arc;

struct Member {
    info: Box<RawValue>,
    sockets: u32,
    nodes: Vec<Arc<str>>,
}

impl Member {
    fn present(&self) -> bool {
        self.sockets > 0 || !self.nodes.is_empty()
    }
}

/// What one local join changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Change {
    /// The user's first (or last) connection on this node.
    pub local: bool,
    /// The user's first (or last) connection in the whole cluster.
    pub cluster: bool,
}

#[derive(Default)]
pub(super) struct Presence {
    members: IndexMap<Arc<str>, Member>,
}

/// A copy of a presence channel's members: `(user_id, user_info)` in join order.
#[derive(Debug, Default, Clone)]
pub struct PresenceSnapshot {
    pub members: Vec<(String, Box<RawValue>)>,
}

#[derive(Serialize)]
struct Block<'a> {
    presence: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    ids: Vec<&'a str>,
    hash: IndexMap<&'a str, &'a RawValue>,
    count: usize,
}

impl Presence {
    /// Add one connection of a user; `Err` when a new user would exceed `max_members`.
    pub(super) fn join(&mut self, member: &MemberData, max_members: usize) -> Result<Change, ()> {
        if let Some(m) = self.members.get_mut(member.user_id.as_str()) {
            m.sockets += 1;
            return Ok(Change {
                local: m.sockets == 1,
                cluster: false,
            });
        }
        if self.members.len() >= max_members {
            return Err(());
        }
        self.members.insert(
            Arc::from(member.user_id.as_str()),
            Member {
                info: member.user_info.clone(),
                sockets: 1,
                nodes: Vec::new(),
            },
        );
        Ok(Change {
            local: true,
            cluster: true,
        })
    }

    /// Remove one connection of a user.
    pub(super) fn leave(&mut self, user_id: &str) -> Change {
        let Some(m) = self.members.get_mut(user_id) else {
            return Change {
                local: false,
                cluster: false,
            };
        };
        if m.sockets == 0 {
            return Change {
                local: false,
                cluster: false,
            };
        }
        m.sockets -= 1;
        let local = m.sockets == 0;
        let cluster = !m.present();
        if cluster {
            self.members.shift_remove(user_id);
        }
        Change { local, cluster }
    }

    /// Another node has the user; true when the user is new to the whole cluster.
    pub(super) fn remote_join(&mut self, node: &Arc<str>, user_id: &str, info: &RawValue) -> bool {
        if let Some(m) = self.members.get_mut(user_id) {
            if !m.nodes.iter().any(|n| n == node) {
                m.nodes.push(node.clone());
            }
            return false;
        }
        self.members.insert(
            Arc::from(user_id),
            Member {
                info: info.to_owned(),
                sockets: 0,
                nodes: vec![node.clone()],
            },
        );
        true
    }

    /// Another node no longer has the user; true when it was the user's last anywhere.
    pub(super) fn remote_leave(&mut self, node: &str, user_id: &str) -> bool {
        let Some(m) = self.members.get_mut(user_id) else {
            return false;
        };
        let before = m.nodes.len();
        m.nodes.retain(|n| &**n != node);
        if m.nodes.len() == before || m.present() {
            return false;
        }
        self.members.shift_remove(user_id);
        true
    }

    /// Users that `node` has in this channel.
    pub(super) fn users_on(&self, node: &str) -> Vec<Arc<str>> {
        self.members
            .iter()
            .filter(|(_, m)| m.nodes.iter().any(|n| &**n == node))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Members with a connection on this node: `(user_id, user_info)`.
    pub(super) fn local_members(&self) -> Vec<(String, Box<RawValue>)> {
        self.members
            .iter()
            .filter(|(_, m)| m.sockets > 0)
            .map(|(k, m)| (k.to_string(), m.info.clone()))
            .collect()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.members.len()
    }

    /// Members with at least one connection on this node.
    pub(super) fn local_len(&self) -> usize {
        self.members.values().filter(|m| m.sockets > 0).count()
    }

    pub(super) fn user_ids(&self) -> Vec<String> {
        self.members.keys().map(|k| k.to_string()).collect()
    }

    pub(super) fn snapshot(&self) -> PresenceSnapshot {
        PresenceSnapshot {
            members: self
                .members
                .iter()
                .map(|(k, m)| (k.to_string(), m.info.clone()))
                .collect(),
        }
    }

    /// `{"presence":{"ids":[…],"hash":{id: info},"count":n}}`.
    pub(super) fn snapshot_json(&self) -> String {
        let block = Block {
            presence: Inner {
                ids: self.members.keys().map(|k| &**k).collect(),
                hash: self.members.iter().map(|(k, m)| (&**k, &*m.info)).collect(),
                count: self.members.len(),
            },
        };
        serde_json::to_string(&block).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::parse_member;

    #[test]
    fn counts_users_not_connections() {
        let mut p = Presence::default();
        let a = parse_member(r#"{"user_id":1,"user_info":{"n":"a"}}"#, 128).unwrap();
        let b = parse_member(r#"{"user_id":"2"}"#, 128).unwrap();
        let both = Change {
            local: true,
            cluster: true,
        };
        let neither = Change {
            local: false,
            cluster: false,
        };
        assert_eq!(p.join(&a, 2), Ok(both));
        assert_eq!(p.join(&a, 2), Ok(neither));
        assert_eq!(p.join(&b, 2), Ok(both));
        let c = parse_member(r#"{"user_id":"3"}"#, 128).unwrap();
        assert_eq!(p.join(&c, 2), Err(()));
        assert_eq!(
            p.snapshot_json(),
            r#"{"presence":{"ids":["1","2"],"hash":{"1":{"n":"a"},"2":null},"count":2}}"#
        );
        assert_eq!(p.leave("1"), neither);
        assert_eq!(p.leave("1"), both);
        assert_eq!(p.leave("1"), neither);
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn other_nodes_keep_a_user_present() {
        let mut p = Presence::default();
        let node: Arc<str> = Arc::from("n2");
        let info = crate::protocol::null_raw();
        let a = parse_member(r#"{"user_id":"1"}"#, 128).unwrap();
        assert!(p.remote_join(&node, "1", &info));
        assert!(!p.remote_join(&node, "1", &info));
        // First here, but not first in the cluster.
        assert_eq!(
            p.join(&a, 10),
            Ok(Change {
                local: true,
                cluster: false
            })
        );
        assert_eq!(
            p.leave("1"),
            Change {
                local: true,
                cluster: false
            }
        );
        assert_eq!(p.users_on("n2").len(), 1);
        assert!(p.remote_leave("n2", "1"));
        assert!(p.is_empty());
    }
}
