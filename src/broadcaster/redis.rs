//! The clustered broadcaster: a hub joined to the other nodes by the Redis adapter, so a
//! broadcast reaches every node's subscribers and presence answers for the cluster. The Redis
//! transport itself is `adapter/redis.rs`; this is only its library face.

use super::Broadcaster;
use crate::adapter::redis::{RedisAdapter, RedisSettings};
use crate::adapter::redis_counter::RedisCounter;
use crate::api::{AppState, ServerOptions};
use crate::apps::{App, Apps};
use crate::hub::{Hub, HubSettings};
use std::sync::Arc;

/// A [`Broadcaster`] whose hub is joined to other nodes over Redis: broadcasts reach every
/// node's subscribers, presence answers for the cluster. Create it inside a tokio runtime.
#[derive(Clone)]
pub struct RedisBroadcaster {
    hub: Arc<Hub>,
    adapter: Arc<RedisAdapter>,
    /// API request and connection rates counted cluster-wide.
    rate_counter: Arc<RedisCounter>,
}

impl RedisBroadcaster {
    pub fn new(
        apps: Vec<App>,
        settings: HubSettings,
        redis: RedisSettings,
    ) -> Result<RedisBroadcaster, String> {
        let hub = Hub::new(Apps::new(apps), settings);
        let rate_counter = Arc::new(RedisCounter::new(&redis.url, &redis.prefix)?);
        let adapter = RedisAdapter::start(&hub, redis)?;
        Ok(RedisBroadcaster {
            hub,
            adapter,
            rate_counter,
        })
    }

    pub fn adapter(&self) -> &Arc<RedisAdapter> {
        &self.adapter
    }
}

impl Broadcaster for RedisBroadcaster {
    fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    fn app_state(&self, options: ServerOptions) -> AppState {
        AppState::new(self.hub.clone(), options).with_rate_counter(self.rate_counter.clone())
    }
}
