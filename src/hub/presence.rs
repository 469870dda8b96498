//! Presence members of one channel: one entry per user id however many connections it has,
//! so `member_added` fires for a user's first connection and `member_removed` for its last.

use crate::protocol::MemberData;
use indexmap::IndexMap;
use serde::Serialize;
use serde_json::value::RawValue;
use std::sync::Arc;

struct Member {
    info: Box<RawValue>,
    sockets: u32,
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
    /// Add one connection of a user. `Ok(true)` when it is the user's first connection;
    /// `Err` when a new user would exceed `max_members`.
    pub(super) fn join(&mut self, member: &MemberData, max_members: usize) -> Result<bool, ()> {
        if let Some(m) = self.members.get_mut(member.user_id.as_str()) {
            m.sockets += 1;
            return Ok(false);
        }
        if self.members.len() >= max_members {
            return Err(());
        }
        self.members.insert(
            Arc::from(member.user_id.as_str()),
            Member {
                info: member.user_info.clone(),
                sockets: 1,
            },
        );
        Ok(true)
    }

    /// Remove one connection of a user; true when it was the user's last.
    pub(super) fn leave(&mut self, user_id: &str) -> bool {
        match self.members.get_mut(user_id) {
            Some(m) if m.sockets > 1 => {
                m.sockets -= 1;
                false
            }
            Some(_) => {
                self.members.shift_remove(user_id);
                true
            }
            None => false,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.members.len()
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

impl PresenceSnapshot {
    /// The same block as `subscription_succeeded` carries.
    pub fn to_json(&self) -> String {
        let block = Block {
            presence: Inner {
                ids: self.members.iter().map(|(k, _)| k.as_str()).collect(),
                hash: self
                    .members
                    .iter()
                    .map(|(k, v)| (k.as_str(), &**v))
                    .collect(),
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
        assert_eq!(p.join(&a, 2), Ok(true));
        assert_eq!(p.join(&a, 2), Ok(false));
        assert_eq!(p.join(&b, 2), Ok(true));
        let c = parse_member(r#"{"user_id":"3"}"#, 128).unwrap();
        assert_eq!(p.join(&c, 2), Err(()));
        assert_eq!(
            p.snapshot_json(),
            r#"{"presence":{"ids":["1","2"],"hash":{"1":{"n":"a"},"2":null},"count":2}}"#
        );
        assert!(!p.leave("1"));
        assert!(p.leave("1"));
        assert!(!p.leave("1"));
        assert_eq!(p.len(), 1);
    }
}
