//! Cluster adapters: the transports that carry the hub's [`ClusterEvent`]s between nodes.
//!
//! The port they implement ([`Adapter`], [`ClusterEvent`]) belongs to the hub
//! (`hub/cluster.rs`); this folder holds the transports. [`redis`] joins nodes over Redis
//! pub/sub.
//!
//! [`Adapter`]: crate::hub::Adapter
//! [`ClusterEvent`]: crate::hub::ClusterEvent

pub mod redis;
pub mod redis_counter;
