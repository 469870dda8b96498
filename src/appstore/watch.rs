//! The tasks that keep a running node's apps current: SIGHUP reloads the source, and with the
//! PostgreSQL store a listener reloads on every `NOTIFY` from the table's trigger, plus a full
//! reload every `reload_every` as the safety net. While the database is away the node keeps
//! serving the apps it has and says so, rate-limited, naming the host (never the password).

use super::{apply, keep_good_versions, postgres, reload_apps_from_source, AppSource, LiveApps};
use crate::apps::App;
use crate::ratelog::{held_back, RateLog};
use crate::reload::ReloadHooks;
use std::sync::Arc;
use std::time::Duration;

/// Notifications arriving this close together cause one reload.
const NOTIFY_DEBOUNCE: Duration = Duration::from_millis(20);
/// Longest wait between two attempts to reach the database.
const MAX_RETRY: Duration = Duration::from_secs(5);

/// Start what keeps `live` current for this source: the database listener when the apps are
/// in PostgreSQL. (SIGHUP is [`register_sighup_reload`].)
pub(crate) fn spawn_source_watch(live: Arc<dyn LiveApps>, source: &AppSource) {
    if let AppSource::Database {
        settings,
        base,
        reload_every,
    } = source
    {
        tokio::spawn(database_watch(
            live,
            settings.clone(),
            base.clone(),
            *reload_every,
        ));
    }
}

/// Reload the apps on every SIGHUP: one of the server's reload actions. The reload does I/O
/// (the file, the database), so the action only spawns it.
pub(crate) fn register_sighup_reload(
    reload: &ReloadHooks,
    live: Arc<dyn LiveApps>,
    source: AppSource,
) {
    reload.register("apps", move || {
        if matches!(source, AppSource::Flags) {
            tracing::info!("SIGHUP: the apps come from the command line; nothing to reload");
            return;
        }
        let (live, source) = (live.clone(), source.clone());
        tokio::spawn(async move {
            tracing::info!("SIGHUP: reloading the apps");
            let _ = reload_apps_from_source(live.as_ref(), &source).await;
        });
    });
}

async fn database_watch(
    live: Arc<dyn LiveApps>,
    settings: postgres::PgSettings,
    base: App,
    reload_every: Duration,
) {
    let target = settings.target();
    let outage = RateLog::default();
    let mut retry = Duration::from_millis(250);
    let mut was_down = false;
    loop {
        let connected = match settings.connect().await {
            Ok((client, notes)) => match postgres::listen(&client).await {
                Ok(()) => Ok((client, notes)),
                Err(e) => Err(format!("apps database {target}: cannot LISTEN: {e}")),
            },
            Err(e) => Err(e),
        };
        let (client, mut notes) = match connected {
            Ok(c) => c,
            Err(e) => {
                was_down = true;
                if let Some(n) = outage.allow() {
                    tracing::warn!(
                        "{e}; serving the apps loaded before, retrying{}",
                        held_back(n)
                    );
                }
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(MAX_RETRY);
                continue;
            }
        };
        if was_down {
            tracing::info!("apps database {target}: reachable again; reloading the apps");
        }
        outage.reset();
        retry = Duration::from_millis(250);
        let mut every = tokio::time::interval(reload_every.max(Duration::from_secs(1)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is now: whatever changed while we were away is picked up.
        loop {
            tokio::select! {
                note = notes.recv() => {
                    if note.is_none() {
                        break;
                    }
                    tokio::time::sleep(NOTIFY_DEBOUNCE).await;
                    while notes.try_recv().is_ok() {}
                }
                _ = every.tick() => {}
            }
            let strong = &live;
            match postgres::load(&client, &base).await {
                Ok(loaded) => {
                    let apps = keep_good_versions(loaded, strong.as_ref(), &settings);
                    let _ = apply(strong.as_ref(), Ok(apps));
                }
                Err(e) if client.is_closed() => {
                    tracing::debug!("apps database {target}: {e}");
                    break;
                }
                Err(e) => {
                    let _ = apply(strong.as_ref(), Err(format!("apps database {target}: {e}")));
                }
            }
        }
        was_down = true;
        if let Some(n) = outage.allow() {
            tracing::warn!(
                "apps database {target}: connection lost; serving the apps loaded before, reconnecting{}",
                held_back(n)
            );
        }
        tokio::time::sleep(retry).await;
    }
}
