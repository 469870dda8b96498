//! The hub's port for a cluster-wide count per window key and second ([`WindowCounter`]): the
//! rate limits (API requests, new connections) count through it (`api/rate_limit.rs`) and the
//! Redis transport implements
//! it (`adapter/redis_counter.rs`); the server wires one to the other. It lives here, next to
//! the hub's other ports out (`cluster.rs`), so both sides see it and the adapter never
//! imports the API.

use std::future::Future;
use std::pin::Pin;

/// A future a counter hands back.
pub type CountFuture<'a> = Pin<Box<dyn Future<Output = Option<u64>> + Send + 'a>>;

/// A cluster-wide count of hits per window key and second.
pub trait WindowCounter: Send + Sync + 'static {
    /// Count one hit of the window `key` in the second `second` and answer the count so far,
    /// or `None` when the count cannot be had now (the caller falls back to its own).
    fn hit<'a>(&'a self, key: &'a str, second: u64) -> CountFuture<'a>;
}
