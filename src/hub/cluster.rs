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
use std::time::Duration;

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
        /// A recovered channel's API publish on an adapter that [`sequences`](Adapter::sequences):
        /// the adapter gives it the channel's next global offset and delivers it to every node,
        /// this one included (the hub did not deliver it locally).
        sequence: Option<Sequence>,
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

/// How a recovered channel's stream is kept where the adapter keeps it (missed-message
/// recovery across nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sequence {
    /// Events kept per channel (older ones are trimmed).
    pub max_events: usize,
    /// How long the stream outlives its last event.
    pub window: Duration,
}

/// A channel position of missed-message recovery: `epoch` names one life of the channel's
/// stream (0: unknown, "whatever the stream holds from its first event"), `offset` the last
/// event known to be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamPosition {
    pub epoch: u64,
    pub offset: u64,
}

/// An event as the adapter's stream keeps it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub offset: u64,
    pub frame: Utf8Bytes,
    pub except: Option<SocketId>,
}

/// A lineage connection's subscription asks the cluster what it missed.
#[derive(Debug, Clone)]
pub struct RecoverRequest {
    pub app_id: Arc<str>,
    pub lineage: Arc<str>,
    /// The new connection: it becomes the lineage's owner.
    pub socket: SocketId,
    pub channel: Arc<str>,
    /// At most this many events are read.
    pub max_events: usize,
    pub window: Duration,
}

/// What the cluster answered.
#[derive(Debug, Clone, Default)]
pub struct RecoverAnswer {
    /// The lineage's previous connection (its exclusions are not replayed), when known.
    pub old_socket: Option<SocketId>,
    /// The events after the previous connection's cursor up to `head`, when they could all
    /// be read (`None`: nothing to recover, or the cursor cannot be honoured).
    pub missed: Option<Vec<StoredEvent>>,
    /// The stream's head when the answer was read (`epoch` 0: there is no stream); `None`
    /// when it could not be read.
    pub head: Option<StreamPosition>,
}

/// A lineage connection's cursors, stored where a connection of the lineage on any node
/// finds them.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub app_id: Arc<str>,
    pub lineage: Arc<str>,
    pub socket: SocketId,
    /// Per channel: the last offset the client acknowledged.
    pub cursors: Vec<(Arc<str>, StreamPosition)>,
    /// The connection is gone: `Some(true)` for a clean close (forget the lineage),
    /// `Some(false)` for a drop (keep its place for the window), `None` while it lives.
    pub ended: Option<bool>,
    pub window: Duration,
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

    /// `channel` got its first subscriber on this node (`occupied`) or lost its last. Called
    /// under the channel's shard lock, so in order and exactly once per change (unlike the
    /// observers' queues, this never drops): an adapter that routes by interest keeps its
    /// subscriptions from it. Must not block.
    fn interest(&self, _app_id: &str, _channel: &Arc<str>, _occupied: bool) {}

    /// `None` when what other nodes publish to `channel` already reaches this node; otherwise
    /// a future that completes once it does (or the adapter stopped waiting). The hub holds a
    /// new subscriber's queue, its `subscription_succeeded` first, until then: a client misses
    /// nothing published after it was told it is subscribed. Must not block.
    fn ready(&self, _app_id: &str, _channel: &str) -> Option<Remote<()>> {
        None
    }

    /// Whether recovered channels' API publishes get global offsets here (see
    /// [`ClusterEvent::Publish::sequence`]); lineage subscriptions then ask
    /// [`recover`](Adapter::recover) what they missed instead of this node's own buffer.
    fn sequences(&self) -> bool {
        false
    }

    /// Claim the lineage for the new connection and read what its previous connection missed
    /// on the channel. Answers within a bounded time (an empty answer when it cannot).
    fn recover(&self, _request: RecoverRequest) -> Remote<RecoverAnswer> {
        Box::pin(std::future::ready(RecoverAnswer::default()))
    }

    /// Store (or, on a clean close, forget) a lineage connection's cursors. Must not block.
    fn checkpoint(&self, _checkpoint: Checkpoint) {}
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
