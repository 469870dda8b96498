//! The clustered broadcaster: a hub joined to the other nodes by the Redis adapter, so a
//! broadcast reaches every node's subscribers and presence answers for the cluster. The Redis
//! transport itself is `adapter/redis.rs`; this is only its library face.

use super::Broadcaster;
use crate::adapter::redis::{RedisAdapter, RedisSettings};
use crate::apps::{App, Apps};
use crate::hub::{Hub, HubSettings};
use std::sync::Arc;

/// A [`Broadcaster`] whose hub is joined to other nodes over Redis: broadcasts reach every
/// node's subscribers, presence answers for the cluster. Create it inside a tokio runtime.
#[derive(Clone)]
pub struct RedisBroadcaster {
    hub: Arc<Hub>,
    adapter: Arc<RedisAdapter>,
}

impl RedisBroadcaster {
    pub fn new(
        apps: Vec<App>,
        settings: HubSettings,
        redis: RedisSettings,
    ) -> Result<RedisBroadcaster, String> {
        let hub = Hub::new(Apps::new(apps), settings);
        let adapter = RedisAdapter::start(&hub, redis)?;
        Ok(RedisBroadcaster { hub, adapter })
    }

    pub fn adapter(&self) -> &Arc<RedisAdapter> {
        &self.adapter
    }
}

impl Broadcaster for RedisBroadcaster {
    fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}
