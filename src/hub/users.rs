//! Users: sign-in (`pusher:signin`), watchlists (`online` / `offline` of watched users) and
//! `terminate_connections`.
//!
//! A user is online while any connection anywhere in the cluster is signed in as it: this
//! node's connections are in `AppHub::users`, other nodes' reports in `remote_users`
//! (`remote.rs`); watchers hear `online` on the first and `offline` on the last.

use super::cluster::ClusterEvent;
use super::connection::{CloseRequest, Connection};
use super::registry::AppHub;
use super::sparse::shrink_if_sparse;
use super::Hub;
use crate::protocol::{self, ErrorCode};
use std::sync::Arc;

/// Why a sign-in was not recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    #[error("The connection is already signed in as another user")]
    AlreadySignedIn,
}

impl AppHub {
    fn sign_in(
        &self,
        conn: &Arc<Connection>,
        user_id: &str,
        watchlist: &[String],
    ) -> Result<(), SignInError> {
        let user: Arc<str> = Arc::from(user_id);
        let watch: Vec<Arc<str>> = watchlist
            .iter()
            .take(self.app().max_watchlist)
            .map(|s| Arc::from(s.as_str()))
            .collect();
        {
            let mut state = conn.state.lock();
            match &state.user {
                Some(existing) if **existing == *user_id => return Ok(()),
                Some(_) => return Err(SignInError::AlreadySignedIn),
                None => {}
            }
            state.user = Some(user.clone());
            state.watchlist = watch.clone();
        }
        let first = {
            let mut users = self.users.lock();
            let conns = users.entry(user.clone()).or_default();
            conns.push(conn.clone());
            conns.len() == 1
        };
        if !watch.is_empty() {
            let mut watchers = self.watchers.lock();
            for w in &watch {
                watchers.entry(w.clone()).or_default().push(conn.clone());
            }
            drop(watchers);
            let users = self.users.lock();
            let remote = self.remote_users.lock();
            let (online, offline): (Vec<&str>, Vec<&str>) = watch
                .iter()
                .map(|w| &**w)
                .partition(|w| users.contains_key(*w) || remote.contains_key(*w));
            conn.push(protocol::watchlist_events(&online, &offline));
        }
        if first {
            if !self.remote_users.lock().contains_key(user_id) {
                self.notify_watchers(user_id, true);
            }
            self.node
                .tell_cluster(&self.id, || ClusterEvent::UserOnline {
                    user_id: user_id.to_string(),
                });
        }
        Ok(())
    }

    /// Forget `conn`'s sign-in as `user` (it is going away).
    pub(super) fn sign_out(&self, conn: &Arc<Connection>, user: &Arc<str>, watch: &[Arc<str>]) {
        let last = {
            let mut users = self.users.lock();
            match users.get_mut(user) {
                Some(conns) => {
                    conns.retain(|c| c.socket_id != conn.socket_id);
                    let last = conns.is_empty();
                    if last {
                        users.remove(user);
                        shrink_if_sparse(&mut *users);
                    }
                    last
                }
                None => false,
            }
        };
        if !watch.is_empty() {
            let mut watchers = self.watchers.lock();
            for w in watch {
                if let Some(list) = watchers.get_mut(w) {
                    list.retain(|c| c.socket_id != conn.socket_id);
                    if list.is_empty() {
                        watchers.remove(w);
                        shrink_if_sparse(&mut *watchers);
                    }
                }
            }
        }
        if last {
            if !self.remote_users.lock().contains_key(user) {
                self.notify_watchers(user, false);
            }
            self.node
                .tell_cluster(&self.id, || ClusterEvent::UserOffline {
                    user_id: user.to_string(),
                });
        }
    }

    /// Tell the watchers of `user_id` that it came online or went offline.
    pub(super) fn notify_watchers(&self, user_id: &str, online: bool) {
        let watchers = self.watchers.lock();
        if let Some(list) = watchers.get(user_id) {
            let frame = if online {
                protocol::watchlist_events(&[user_id], &[])
            } else {
                protocol::watchlist_events(&[], &[user_id])
            };
            for c in list {
                c.push(frame.clone());
            }
        }
    }

    /// Close every connection of this node signed in as `user_id` (4009). Returns how many.
    pub(super) fn terminate_local(&self, user_id: &str) -> usize {
        let conns: Vec<Arc<Connection>> =
            self.users.lock().get(user_id).cloned().unwrap_or_default();
        for c in &conns {
            c.close(CloseRequest {
                code: ErrorCode::Unauthorized,
                message: "You got disconnected by the app.",
                send_error: true,
            });
        }
        conns.len()
    }
}

impl Hub {
    /// Record a successful sign-in. Sends the watchlist's current status to this connection
    /// and `online` to watchers of this user when it is the user's first connection.
    pub(crate) fn sign_in(
        &self,
        conn: &Arc<Connection>,
        user_id: &str,
        watchlist: &[String],
    ) -> Result<(), SignInError> {
        conn.app_hub().sign_in(conn, user_id, watchlist)
    }

    /// `terminate_connections`: close every connection signed in as `user_id`, on this node
    /// and (through the adapter) on every other. Returns how many closed here.
    pub(crate) fn terminate_user(&self, app_id: &str, user_id: &str) -> usize {
        let n = self.terminate_local(app_id, user_id);
        self.node.tell_cluster(app_id, || ClusterEvent::Terminate {
            user_id: user_id.to_string(),
        });
        n
    }

    /// Another node was asked to terminate `user_id`: close this node's connections of it.
    pub(crate) fn terminate_local(&self, app_id: &str, user_id: &str) -> usize {
        self.with_app(app_id, |ah| ah.terminate_local(user_id))
    }

    /// Signed-in user ids of this app on this node.
    pub(crate) fn signed_in_users(&self, app_id: &str) -> Vec<String> {
        self.with_app(app_id, |ah| {
            ah.users.lock().keys().map(|k| k.to_string()).collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::apps::{App, Apps};
    use crate::hub::{Hub, HubSettings};
    use crate::protocol::ErrorCode;

    #[test]
    fn watchers_hear_first_sign_in_and_last_sign_out() {
        let app = App::new("a", "k", "s");
        let hub = Hub::new(Apps::new(vec![app.clone()]), HubSettings::default());
        let watcher = hub.connect(&app).unwrap();
        hub.sign_in(&watcher, "w", &["u".into()]).unwrap();
        let offline = watcher.pop().unwrap().to_string();
        assert!(offline.contains("offline"), "{offline}");
        let u1 = hub.connect(&app).unwrap();
        let u2 = hub.connect(&app).unwrap();
        hub.sign_in(&u1, "u", &[]).unwrap();
        hub.sign_in(&u2, "u", &[]).unwrap();
        assert!(hub.sign_in(&u2, "other", &[]).is_err());
        let online = watcher.pop().unwrap().to_string();
        assert!(online.contains("online"), "{online}");
        assert!(watcher.pop().is_err(), "one online for two connections");
        hub.disconnect(&u1);
        assert!(watcher.pop().is_err());
        hub.disconnect(&u2);
        assert!(watcher.pop().unwrap().to_string().contains("offline"));
        let mut users = hub.signed_in_users("a");
        users.sort();
        assert_eq!(users, ["w"]);
    }

    #[test]
    fn terminate_closes_the_users_connections_only() {
        let app = App::new("a", "k", "s");
        let hub = Hub::new(Apps::new(vec![app.clone()]), HubSettings::default());
        let u = hub.connect(&app).unwrap();
        let other = hub.connect(&app).unwrap();
        hub.sign_in(&u, "u", &[]).unwrap();
        assert_eq!(hub.terminate_user("a", "u"), 1);
        assert_eq!(u.close_request().unwrap().code, ErrorCode::Unauthorized);
        assert_eq!(other.close_request(), None);
    }
}
