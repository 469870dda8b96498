//! The binary's start-up steps around the apps and Redis: load the apps from the database
//! (an unreachable one stops the start), check Redis when `--redis-required`, warn when the
//! public development credentials are in use, and, once the hub runs, start what keeps its
//! apps current (a SIGHUP reload action, the database listener).

use crate::adapter::redis::RedisAdapter;
use crate::apps::App;
use crate::appstore::{self, AppSource, LiveApps};
use crate::config::Config;
use crate::hub::Hub;
use crate::reload::ReloadHooks;
use std::sync::Arc;

/// Everything that must succeed before the server listens; an error is for exit code 2.
pub async fn prepare(config: &mut Config) -> Result<(), String> {
    if let AppSource::Database { settings, .. } = &config.apps_source {
        config.apps = appstore::load_initial(&config.apps_source).await?;
        tracing::info!(
            "apps: {} app(s) from the database {}, followed live",
            config.apps.len(),
            settings.target()
        );
    }
    if let AppSource::File { path, .. } = &config.apps_source {
        tracing::info!(
            "apps: {} app(s) from {} (SIGHUP re-reads it)",
            config.apps.len(),
            path.display()
        );
    }
    if config.dev_credentials {
        tracing::warn!(
            "no app configured: running with the PUBLIC development credentials app-id / app-key / \
             app-secret, which anyone can use to publish. Set --app-id/--app-key/--app-secret, \
             --apps-file or --apps-database-url for anything but development."
        );
    }
    if let (Some(redis), true) = (&config.redis, config.redis_required) {
        crate::redis_probe::require(&redis.url, crate::redis_probe::REQUIRED_WITHIN).await?;
        tracing::info!(
            "redis adapter: {} reachable",
            crate::redis_probe::target(&redis.url)
        );
    }
    Ok(())
}

/// Keep the hub's apps current: SIGHUP reloads the source, and the database store is
/// followed live. Call it once the hub exists, inside the runtime.
pub fn spawn_app_reloads(
    hub: &Arc<Hub>,
    adapter: Option<Arc<RedisAdapter>>,
    source: &AppSource,
    reload: &ReloadHooks,
) {
    let live: Arc<dyn LiveApps> = Arc::new(HubApps {
        hub: hub.clone(),
        adapter,
    });
    appstore::watch::register_sighup_reload(reload, live.clone(), source.clone());
    appstore::watch::spawn_source_watch(live, source);
}

/// The hub's live app table, and the Redis adapter that must follow its changes.
struct HubApps {
    hub: Arc<Hub>,
    adapter: Option<Arc<RedisAdapter>>,
}

impl LiveApps for HubApps {
    fn current(&self) -> Vec<Arc<App>> {
        self.hub.apps().iter().cloned().collect()
    }

    fn replace(&self, apps: Vec<App>) -> String {
        let report = self.hub.reload_apps(apps);
        if !(report.added.is_empty() && report.removed.is_empty()) {
            if let Some(adapter) = &self.adapter {
                adapter.apps_changed();
            }
        }
        let mut parts = Vec::new();
        for (what, ids) in [
            ("added", &report.added),
            ("removed (connections closed 4001)", &report.removed),
            ("changed", &report.changed),
        ] {
            if !ids.is_empty() {
                parts.push(format!("{what}: {}", ids.join(", ")));
            }
        }
        parts.join("; ")
    }
}
