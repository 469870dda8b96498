//! The hub: every channel, subscriber, presence member, cached event and signed-in user of
//! this node, and the fan-out from a publish to each subscriber's queue.
//!
//! State is split per app ([`AppHub`]) and, within an app, into shards keyed by channel-name
//! hash, each behind its own `RwLock`: a publish takes one shard's read lock, encodes nothing
//! (the frame arrives encoded once) and pushes a reference-counted clone of the same buffer into
//! each subscriber's queue. No lock is held across an `.await`; nothing here awaits except the
//! cluster-wide queries in `stats.rs`.
//!
//! The hub knows nothing of how other nodes are reached: everything that must reach them is a
//! [`ClusterEvent`] handed to its [`Adapter`] (`cluster.rs`, the hub's outbound port), and what
//! other nodes send comes back in through `deliver` and the `remote_*` methods (`remote.rs`).
//! Everything that happens is also a [`HubEvent`] for observers (`events.rs`): webhooks,
//! metrics and the debug console learn of the hub only that way.
//!
//! One job per file:
//! - `registry.rs`: the live app table, connections and their quotas, app reload;
//! - `channels.rs`: subscribe, leave, publish and the one fan-out;
//! - `presence.rs`: one presence channel's members;
//! - `users.rs`: sign-in, watchlists, terminate;
//! - `remote.rs`: the mirror of what other nodes reported;
//! - `tick.rs`: the once-a-second sweep (heartbeats, throttled counts, cache expiry);
//! - `stats.rs`: channel figures for the HTTP API, merged across the cluster;
//! - `recovery.rs`: missed-message recovery (buffers, cursors, replay);
//! - `replay.rs`: recovery whose missed events live in the cluster (pending subscribers);
//! - `sparse.rs`: collections emptied after a flood give their memory back;
//! - `connection.rs`: one connection's queue and state; `cluster.rs`, `events.rs` and
//!   `window_counter.rs`: the ports out of the hub (other nodes, observers, a cluster-wide
//!   count).
//!
//! # Lock order
//!
//! Locks are taken in this order and never the other way round; a lock further down may be
//! taken while one further up is held, never the reverse:
//! 1. the app table (`Hub::apps`): held only to look up or swap an [`AppHub`], never while
//!    taking any other lock (the `Arc<AppHub>` is cloned out);
//! 2. `Connection::state` (what a connection is subscribed to, its user): held only to read or
//!    update that connection's own record, released before any shard or user map is touched;
//! 3. a channel shard (`AppHub::shards[n]`), one at a time;
//! 4. the user maps of an app: `users`, then `remote_users`; `watchers` alone, never together
//!    with another map; `connections` alone; `lineages` (recovery) alone;
//! 5. a connection's outbox (`Connection::push`): the innermost lock, taken under any of the
//!    above (fan-out pushes while holding the shard or user map it walks).
//!
//! Observers are fed by `try_send` (no lock of theirs is ever awaited), so emitting an event
//! under a shard lock keeps the per-channel order of events without blocking anyone.

mod channels;
mod cluster;
pub mod connection;
pub mod events;
pub(crate) mod inspect;
mod presence;
mod recovery;
mod registry;
mod remote;
mod replay;
mod sparse;
pub(crate) use sparse::shrink_if_sparse;
mod stats;
mod tick;
mod users;
mod window_counter;

pub use channels::SubscribeError;
pub use cluster::{
    Adapter, Checkpoint, ClusterEvent, LocalAdapter, RecoverAnswer, RecoverRequest, Remote,
    Sequence, StoredEvent, StreamPosition,
};
pub use connection::{CloseRequest, Connection, SocketId};
pub use events::{HubEvent, MemberChange, ObserverHandle};
pub use recovery::valid_lineage;
pub use registry::AppsReload;
pub use users::SignInError;
pub use window_counter::{CountFuture, WindowCounter};

use crate::apps::Apps;
use events::Events;
use parking_lot::RwLock;
use registry::AppTable;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// Node-wide settings of the hub.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// Frames a connection may have queued before it is closed with 4100 (slow consumer).
    pub max_queued_frames: usize,
}

impl Default for HubSettings {
    fn default() -> Self {
        HubSettings {
            max_queued_frames: 1_000,
        }
    }
}

/// What every app of this node shares: settings, the two ports out (adapter, observers) and
/// node-wide counts. Each [`AppHub`] holds it, so code that has a connection has everything.
pub(crate) struct Node {
    settings: HubSettings,
    /// Set once before serving (`Hub::set_adapter`); the local adapter when never set.
    adapter: OnceLock<Arc<dyn Adapter>>,
    /// Lifecycle events for observers (webhooks, metrics, the debug console).
    events: Events,
    /// Live connections of all apps (the per-app count is on the `AppHub`).
    connections_total: AtomicUsize,
    /// Whether the once-a-second ticker runs (it must run exactly once per hub).
    ticker_started: AtomicBool,
    /// Sweeps the ticker ran: one a second when exactly one ticker runs.
    ticks: AtomicU64,
    /// HTTP API requests this node answered (any endpoint, any status), for the console.
    api_requests: AtomicU64,
}

impl Node {
    fn adapter(&self) -> &Arc<dyn Adapter> {
        self.adapter.get_or_init(|| Arc::new(LocalAdapter))
    }

    /// Hand an event to the adapter for the other nodes; built only when there are any.
    fn tell_cluster(&self, app_id: &str, event: impl FnOnce() -> ClusterEvent) {
        let adapter = self.adapter();
        if adapter.is_cluster() {
            adapter.send(app_id, event());
        }
    }

    /// Emit a lifecycle event to the observers; `event` is only called when there are any.
    #[inline]
    fn emit(&self, event: impl FnOnce() -> HubEvent) {
        self.events.emit(event);
    }
}

/// The state of one node.
pub struct Hub {
    /// The live app table: read on every upgrade and API request, swapped by `reload_apps`.
    apps: RwLock<AppTable>,
    node: Arc<Node>,
}

impl Hub {
    pub fn new(apps: Apps, settings: HubSettings) -> Arc<Hub> {
        let node = Arc::new(Node {
            settings,
            adapter: OnceLock::new(),
            events: Events::default(),
            connections_total: AtomicUsize::new(0),
            ticker_started: AtomicBool::new(false),
            ticks: AtomicU64::new(0),
            api_requests: AtomicU64::new(0),
        });
        Arc::new(Hub {
            apps: RwLock::new(AppTable::new(&node, apps)),
            node,
        })
    }

    /// Set the adapter (once, before serving). Without one the hub is a single node.
    pub fn set_adapter(&self, adapter: Arc<dyn Adapter>) {
        let _ = self.node.adapter.set(adapter);
    }

    pub(crate) fn adapter(&self) -> &Arc<dyn Adapter> {
        self.node.adapter()
    }

    /// Register an observer of the hub's lifecycle events, with a queue of `capacity`
    /// events (see [`events`]).
    pub fn observe(&self, capacity: usize) -> ObserverHandle {
        self.node.events.register(capacity)
    }

    pub fn settings(&self) -> &HubSettings {
        &self.node.settings
    }

    /// Count one HTTP API request (the API's middleware calls it for every request).
    pub(crate) fn count_api_request(&self) {
        self.node.api_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// HTTP API requests this node answered since it started.
    pub(crate) fn api_requests(&self) -> u64 {
        self.node.api_requests.load(Ordering::Relaxed)
    }
}
