//! The single-node broadcaster: all state in this process's hub.

use super::Broadcaster;
use crate::apps::{App, Apps};
use crate::hub::{Hub, HubSettings};
use std::sync::Arc;

/// One node, all state in memory.
#[derive(Clone)]
pub struct MemoryBroadcaster {
    hub: Arc<Hub>,
}

impl MemoryBroadcaster {
    /// A broadcaster for these apps with default hub settings.
    pub fn new(apps: Vec<App>) -> MemoryBroadcaster {
        Self::with_settings(apps, HubSettings::default())
    }

    pub fn with_settings(apps: Vec<App>, settings: HubSettings) -> MemoryBroadcaster {
        MemoryBroadcaster {
            hub: Hub::new(Apps::new(apps), settings),
        }
    }

    /// Wrap an existing hub (for instance one with a cluster adapter set).
    pub fn from_hub(hub: Arc<Hub>) -> MemoryBroadcaster {
        MemoryBroadcaster { hub }
    }
}

impl Broadcaster for MemoryBroadcaster {
    fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}
