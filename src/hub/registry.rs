//! The live app table and each app's connections: register a connection under its app's
//! quota, forget it, find it, and swap the whole table when the apps are reloaded.
//!
//! An [`AppHub`] is one app's share of the hub. Its `App` (credentials, limits) sits behind an
//! `ArcSwap` so a reload changes settings for the next request without touching the app's
//! channels or connections; a removed app's `AppHub` lives on only until its connections,
//! closed by the reload, are gone.

use super::channels::Shard;
use super::connection::{CloseRequest, Connection, SocketId};
use super::events::HubEvent;
use super::recovery::Lineages;
use super::sparse::shrink_if_sparse;
use super::{Hub, Node};
use crate::apps::{App, Apps};
use crate::protocol::ErrorCode;
use arc_swap::ArcSwap;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub(super) const SHARDS: usize = 32;

/// One app's share of the hub.
pub struct AppHub {
    /// The app's id, fixed for the `AppHub`'s life (the table is keyed by it).
    pub(super) id: Arc<str>,
    /// The app's current settings; swapped by a reload.
    pub(super) app: ArcSwap<App>,
    pub(super) node: Arc<Node>,
    /// Channels by name, sharded by name hash so publishes to different channels never meet.
    pub(super) shards: Box<[Shard]>,
    /// Connections signed in (`pusher:signin`), by user id.
    pub(super) users: Mutex<HashMap<Arc<str>, Vec<Arc<Connection>>>>,
    /// Users signed in on other nodes: user id → the nodes that reported them.
    pub(super) remote_users: Mutex<HashMap<Arc<str>, Vec<Arc<str>>>>,
    /// Who watches whom: watched user id → watcher connections.
    pub(super) watchers: Mutex<HashMap<Arc<str>, Vec<Arc<Connection>>>>,
    /// Every live connection of this app, by socket id (heartbeats, terminate, shutdown).
    pub(super) connections: Mutex<HashMap<SocketId, Arc<Connection>>>,
    /// `connections.len()` without the lock (the quota check).
    connection_count: AtomicUsize,
    /// Missed-message recovery: live and parked lineages, the app's buffered bytes.
    pub(super) lineages: Mutex<Lineages>,
}

impl AppHub {
    pub(super) fn new(node: Arc<Node>, app: Arc<App>) -> Arc<AppHub> {
        Arc::new(AppHub {
            id: Arc::from(app.id.as_str()),
            app: ArcSwap::new(app),
            node,
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            users: Mutex::new(HashMap::new()),
            remote_users: Mutex::new(HashMap::new()),
            watchers: Mutex::new(HashMap::new()),
            connections: Mutex::new(HashMap::new()),
            connection_count: AtomicUsize::new(0),
            lineages: Mutex::new(Lineages::default()),
        })
    }

    /// The app's current settings.
    pub fn app(&self) -> Arc<App> {
        self.app.load_full()
    }

    /// Register a new connection; `Err` when the app is over its connection quota.
    pub(super) fn connect(
        self: &Arc<Self>,
        lineage: Option<Arc<str>>,
        ip: Option<IpAddr>,
    ) -> Result<Arc<Connection>, ErrorCode> {
        let app = self.app();
        let count = self.connection_count.fetch_add(1, Ordering::Relaxed);
        if app.max_connections.is_some_and(|max| count >= max) {
            self.connection_count.fetch_sub(1, Ordering::Relaxed);
            return Err(ErrorCode::OverConnectionQuota);
        }
        self.node.connections_total.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Connection::new(
            self.clone(),
            self.node.settings.max_queued_frames,
            lineage,
        ));
        self.connections.lock().insert(conn.socket_id, conn.clone());
        self.lineage_connected(&conn);
        self.node.emit(|| HubEvent::ConnectionOpened {
            app_id: self.id.clone(),
            socket_id: conn.socket_id,
            ip,
        });
        Ok(conn)
    }

    /// Forget a connection: leave every channel, sign it out, drop it from the counts.
    pub(super) fn disconnect(&self, conn: &Arc<Connection>) {
        {
            let mut connections = self.connections.lock();
            if connections.remove(&conn.socket_id).is_none() {
                return;
            }
            shrink_if_sparse(&mut *connections);
        }
        let state = std::mem::take(&mut *conn.state.lock());
        for sub in &state.subscriptions {
            self.leave(conn, &sub.channel, sub.user_id.as_deref());
        }
        if let Some(user) = &state.user {
            self.sign_out(conn, user, &state.watchlist);
        }
        self.lineage_disconnected(conn, state.lineage);
        self.connection_count.fetch_sub(1, Ordering::Relaxed);
        self.node.connections_total.fetch_sub(1, Ordering::Relaxed);
        self.node.emit(|| {
            let (code, why) = match conn.ending() {
                Some(e) => (e.code, e.why),
                None => (None, "the client or the network went away without a close"),
            };
            HubEvent::ConnectionClosed {
                app_id: self.id.clone(),
                socket_id: conn.socket_id,
                code,
                why,
            }
        });
    }

    /// Ask every connection of this app to close.
    fn close_all(&self, request: &CloseRequest) {
        let conns: Vec<Arc<Connection>> = self.connections.lock().values().cloned().collect();
        for c in conns {
            c.close(request.clone());
        }
    }
}

/// What a reload changed, by app id.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AppsReload {
    pub added: Vec<String>,
    /// Gone from the new set: their connections were closed with 4001.
    pub removed: Vec<String>,
    /// Present in both with other settings (a newly disabled app's connections got 4003).
    pub changed: Vec<String>,
}

/// The apps of this node, by id and by key, in configuration order.
pub(super) struct AppTable {
    in_order: Vec<Arc<AppHub>>,
    by_id: HashMap<String, Arc<AppHub>>,
    by_key: HashMap<String, Arc<AppHub>>,
}

impl AppTable {
    pub(super) fn new(node: &Arc<Node>, apps: Apps) -> AppTable {
        let hubs = apps
            .iter()
            .map(|app| AppHub::new(node.clone(), app.clone()))
            .collect();
        AppTable::of(hubs)
    }

    fn of(in_order: Vec<Arc<AppHub>>) -> AppTable {
        let by_id = in_order
            .iter()
            .map(|ah| (ah.id.to_string(), ah.clone()))
            .collect();
        let by_key = in_order
            .iter()
            .map(|ah| (ah.app().key.clone(), ah.clone()))
            .collect();
        AppTable {
            in_order,
            by_id,
            by_key,
        }
    }
}

impl Hub {
    /// One app's share of the hub, by app id.
    pub(crate) fn app(&self, app_id: &str) -> Option<Arc<AppHub>> {
        self.apps.read().by_id.get(app_id).cloned()
    }

    /// Run `f` on an app's share, or answer `T::default()` for an unknown app.
    pub(super) fn with_app<T: Default>(
        &self,
        app_id: &str,
        f: impl FnOnce(&Arc<AppHub>) -> T,
    ) -> T {
        match self.app(app_id) {
            Some(ah) => f(&ah),
            None => T::default(),
        }
    }

    /// The apps as they are now, in configuration order.
    pub(crate) fn apps(&self) -> Apps {
        Apps::from_arcs(
            self.apps
                .read()
                .in_order
                .iter()
                .map(|ah| ah.app())
                .collect(),
        )
    }

    /// An app by its key (the WebSocket path's `{key}`).
    pub(crate) fn app_by_key(&self, key: &str) -> Option<Arc<App>> {
        self.apps.read().by_key.get(key).map(|ah| ah.app())
    }

    /// An app by its id (the HTTP API path's `{app_id}`).
    pub(crate) fn app_by_id(&self, app_id: &str) -> Option<Arc<App>> {
        self.app(app_id).map(|ah| ah.app())
    }

    /// Every app's share, in configuration order (the ticker, shutdown).
    pub(super) fn app_hubs(&self) -> Vec<Arc<AppHub>> {
        self.apps.read().in_order.clone()
    }

    /// Replace the apps with a new set: added apps work at once, removed apps' connections
    /// close with 4001, newly disabled apps' with 4003, changed settings (secrets, limits) apply
    /// to the next request, and unchanged apps are not touched.
    pub fn reload_apps(&self, apps: Vec<App>) -> AppsReload {
        let mut report = AppsReload::default();
        let mut closing: Vec<(Arc<AppHub>, CloseRequest)> = Vec::new();
        {
            let mut table = self.apps.write();
            let mut hubs = Vec::with_capacity(apps.len());
            for app in apps {
                match table.by_id.get(&app.id) {
                    Some(ah) => {
                        let old = ah.app();
                        if *old != app {
                            report.changed.push(app.id.clone());
                            if old.enabled && !app.enabled {
                                closing.push((
                                    ah.clone(),
                                    CloseRequest {
                                        code: ErrorCode::AppDisabled,
                                        message: "Application disabled",
                                        send_error: true,
                                    },
                                ));
                            }
                            ah.app.store(Arc::new(app));
                        }
                        hubs.push(ah.clone());
                    }
                    None => {
                        report.added.push(app.id.clone());
                        hubs.push(AppHub::new(self.node.clone(), Arc::new(app)));
                    }
                }
            }
            for ah in &table.in_order {
                if !hubs.iter().any(|h| h.id == ah.id) {
                    report.removed.push(ah.id.to_string());
                    closing.push((
                        ah.clone(),
                        CloseRequest {
                            code: ErrorCode::AppDoesNotExist,
                            message: "Application does not exist",
                            send_error: true,
                        },
                    ));
                }
            }
            *table = AppTable::of(hubs);
        }
        for (ah, request) in closing {
            ah.close_all(&request);
        }
        report
    }

    /// Register a new connection of `app`; `Err` when the app is unknown or over its quota.
    #[cfg(test)]
    pub(crate) fn connect(&self, app: &App) -> Result<Arc<Connection>, ErrorCode> {
        self.connect_lineage(app, None)
    }

    /// Register a new connection that came with a lineage id (missed-message recovery).
    #[cfg(test)]
    pub(crate) fn connect_lineage(
        &self,
        app: &App,
        lineage: Option<Arc<str>>,
    ) -> Result<Arc<Connection>, ErrorCode> {
        self.connect_from(app, lineage, None)
    }

    /// Register a new connection from a client at `ip` (when the server knows it).
    pub(crate) fn connect_from(
        &self,
        app: &App,
        lineage: Option<Arc<str>>,
        ip: Option<IpAddr>,
    ) -> Result<Arc<Connection>, ErrorCode> {
        self.app(&app.id)
            .ok_or(ErrorCode::AppDoesNotExist)?
            .connect(lineage, ip)
    }

    /// Forget a connection: leave every channel (with `member_removed` where it was a user's
    /// last connection), sign it out, drop it from the counts.
    pub(crate) fn disconnect(&self, conn: &Arc<Connection>) {
        conn.app_hub().disconnect(conn);
    }

    /// A connection of this app by socket id.
    pub(crate) fn connection(&self, app_id: &str, socket_id: SocketId) -> Option<Arc<Connection>> {
        self.app(app_id)?
            .connections
            .lock()
            .get(&socket_id)
            .cloned()
    }

    /// Live connections on this node, all apps.
    pub(crate) fn connection_count(&self) -> usize {
        self.node.connections_total.load(Ordering::Relaxed)
    }

    /// Every live connection on this node (for shutdown).
    pub(crate) fn all_connections(&self) -> Vec<Arc<Connection>> {
        self.app_hubs()
            .iter()
            .flat_map(|a| a.connections.lock().values().cloned().collect::<Vec<_>>())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::HubSettings;

    fn hub(apps: Vec<App>) -> Arc<Hub> {
        Hub::new(Apps::new(apps), HubSettings::default())
    }

    #[test]
    fn quota_counts_and_frees_connections() {
        let app = App {
            max_connections: Some(2),
            ..App::new("a", "ka", "sa")
        };
        let hub = hub(vec![app.clone()]);
        let c1 = hub.connect(&app).unwrap();
        let _c2 = hub.connect(&app).unwrap();
        assert_eq!(
            hub.connect(&app).unwrap_err(),
            ErrorCode::OverConnectionQuota
        );
        assert_eq!(hub.connection_count(), 2);
        hub.disconnect(&c1);
        hub.disconnect(&c1); // twice is harmless
        assert_eq!(hub.connection_count(), 1);
        assert!(hub.connect(&app).is_ok());
        assert!(hub.connect(&App::new("x", "kx", "sx")).is_err());
    }

    #[test]
    fn reload_adds_removes_and_disables() {
        let a = App::new("a", "ka", "sa");
        let b = App::new("b", "kb", "sb");
        let c = App::new("c", "kc", "sc");
        let hub = hub(vec![a.clone(), b.clone(), c.clone()]);
        let ca = hub.connect(&a).unwrap();
        let cb = hub.connect(&b).unwrap();
        let cc = hub.connect(&c).unwrap();
        let b2 = App {
            enabled: false,
            ..b.clone()
        };
        let c2 = App {
            secret: "new".into(),
            ..c.clone()
        };
        let d = App::new("d", "kd", "sd");
        let report = hub.reload_apps(vec![c2, b2, d]);
        assert_eq!(report.added, vec!["d".to_string()]);
        assert_eq!(report.removed, vec!["a".to_string()]);
        assert_eq!(report.changed, vec!["c".to_string(), "b".to_string()]);
        assert_eq!(ca.close_request().unwrap().code, ErrorCode::AppDoesNotExist);
        assert_eq!(cb.close_request().unwrap().code, ErrorCode::AppDisabled);
        assert_eq!(cc.close_request(), None);
        assert_eq!(
            cc.app().secret,
            "new",
            "a live connection sees the new secret"
        );
        assert!(hub.app_by_key("ka").is_none());
        assert_eq!(hub.app_by_key("kd").unwrap().id, "d");
        let ids: Vec<String> = hub.apps().iter().map(|a| a.id.clone()).collect();
        assert_eq!(ids, ["c", "b", "d"]);
    }
}
