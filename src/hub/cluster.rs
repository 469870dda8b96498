//! The hub's outbound port to other nodes: what it tells them ([`ClusterEvent`]) and the
//! [`Adapter`] that carries it.
//!
//! The hub delivers every event to this node's subscribers itself, then hands a
//! [`ClusterEvent`] to its adapter. The local adapter (one node) drops it; a cluster adapter
//! (the Redis transport in `adapter/redis.rs`) sends it to the other nodes, whose adapters feed it back into
//! their hub with [`Hub::deliver`](super::Hub::deliver) and the hub's `remote_*` methods. The
//! hub never knows which adapter runs; this port lives in the hub so that imports run one way
//! (adapters depend on the hub, never the reverse).

use super::SocketId;
use axum::extract::ws::Utf8Bytes;
use serde_json::value::RawValue;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A future an adapter hands back for a question to the other nodes.
pub type Remote<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Something that happened on this node that other nodes must see.
#[derive(Debug, Clone)]
pub enum ClusterEvent {
    /// An encoded frame for a channel's subscribers (HTTP publish or client event).
    Publish {
        channel: Arc<str>,
        frame: Utf8Bytes,
        except: Option<SocketId>,
        /// Store it as the channel's cached event (HTTP publishes to cache channels).
        cache: bool,
    },
    /// A user's first connection on this node joined a presence channel.
    MemberAdded {
        channel: Arc<str>,
        user_id: String,
        user_info: Box<RawValue>,
    },
    /// A user's last connection on this node left a presence channel.
    MemberRemoved { channel: Arc<str>, user_id: String },
    /// `terminate_connections` for a user: every node closes its connections of that user.
    Terminate { user_id: String },
    /// A user's first connection on this node signed in (watchlists).
    UserOnline { user_id: String },
    /// A user's last signed-in connection on this node went away.
    UserOffline { user_id: String },
}

/// Carries cluster events to other nodes. Must not block: queue and return.
pub trait Adapter: Send + Sync + 'static {
    fn send(&self, app_id: &str, event: ClusterEvent);

    /// Whether there are other nodes to tell. The hub builds no [`ClusterEvent`] (no channel
    /// name copy, no frame handle) when there are not.
    fn is_cluster(&self) -> bool {
        true
    }

    /// Channels with subscribers on the other nodes whose names start with `prefix`, with
    /// their subscription counts there (summed over nodes). Answers within a bounded time;
    /// nodes that do not answer in time are left out.
    fn remote_channels(&self, _app_id: &str, _prefix: &str) -> Remote<Vec<(String, usize)>> {
        Box::pin(std::future::ready(Vec::new()))
    }
}

/// A single node: there is nobody to tell.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalAdapter;

impl Adapter for LocalAdapter {
    fn send(&self, _app_id: &str, _event: ClusterEvent) {}

    fn is_cluster(&self) -> bool {
        false
    }
}
