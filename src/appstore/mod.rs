//! Where the apps come from (the command line, an apps file, a PostgreSQL table) and how a
//! running server takes up a changed set: `reload_apps_from_source` loads the source again and
//! hands the whole new set to the live table; a source that fails to load leaves the apps in
//! use as they are and says why.

pub mod commands;
mod file;
mod postgres;
mod settings;
pub(crate) mod watch;

pub use file::AppsFileError;
pub use postgres::PgSettings;

use crate::apps::App;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where this node's apps come from.
// Built once at start: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum AppSource {
    /// One app from the flags or the environment (or the development app): fixed.
    Flags,
    /// An apps file, read again on SIGHUP.
    File {
        path: PathBuf,
        /// The node's settings, for what an entry leaves out.
        base: App,
    },
    /// The PostgreSQL table, followed live (LISTEN/NOTIFY plus a periodic full reload).
    Database {
        settings: PgSettings,
        /// The node's settings, for NULL columns.
        base: App,
        /// The safety-net full reload.
        reload_every: Duration,
    },
}

/// The live app table a reload replaces (the hub, or a test's stand-in).
pub(crate) trait LiveApps: Send + Sync {
    /// The apps in use now.
    fn current(&self) -> Vec<Arc<App>>;
    /// Put this set in place (closing connections of removed and disabled apps); a
    /// one-line summary of what changed, empty when nothing did.
    fn replace(&self, apps: Vec<App>) -> String;
}

/// Read and check an apps file (settings an entry leaves out come from `base`).
pub(crate) fn load_file(path: &std::path::Path, base: &App) -> Result<Vec<App>, AppsFileError> {
    file::load(path, base)
}

/// Read the source once: the apps file or the database (created if missing). An
/// unreachable database or a bad file is an error for the caller to exit with.
pub async fn load_initial(source: &AppSource) -> Result<Vec<App>, String> {
    match source {
        AppSource::Flags => Ok(Vec::new()),
        AppSource::File { path, base } => file::load(path, base).map_err(|e| e.to_string()),
        AppSource::Database { settings, base, .. } => {
            let (client, _) = settings.connect().await?;
            postgres::ensure_schema(&client).await.map_err(|e| {
                format!(
                    "apps database {}: cannot create the table: {e}",
                    settings.target()
                )
            })?;
            let loaded = postgres::load(&client, base).await.map_err(|e| {
                format!(
                    "apps database {}: cannot read the apps: {e}",
                    settings.target()
                )
            })?;
            for (id, why) in &loaded.bad {
                tracing::error!(
                    "apps database {}: app \"{id}\" skipped: {why}",
                    settings.target()
                );
            }
            if loaded.apps.is_empty() {
                tracing::warn!(
                    "apps database {}: no apps yet; add one with `rf-broadcast apps add --id ID --key KEY`",
                    settings.target()
                );
            }
            Ok(loaded.apps)
        }
    }
}

/// Load `source` again and put the result in place. On failure the apps in use stay and
/// the reason is logged (and returned).
pub(crate) async fn reload_apps_from_source(
    live: &dyn LiveApps,
    source: &AppSource,
) -> Result<String, String> {
    let apps = match source {
        AppSource::Flags => return Ok(String::new()),
        AppSource::File { path, base } => file::load(path, base).map_err(|e| e.to_string()),
        AppSource::Database { settings, base, .. } => match settings.connect().await {
            Ok((client, _)) => postgres::load(&client, base)
                .await
                .map(|loaded| keep_good_versions(loaded, live, settings))
                .map_err(|e| format!("apps database {}: {e}", settings.target())),
            Err(e) => Err(e),
        },
    };
    apply(live, apps)
}

/// Put a loaded set in place, or log why it is not.
pub(crate) fn apply(live: &dyn LiveApps, apps: Result<Vec<App>, String>) -> Result<String, String> {
    match apps {
        Ok(apps) => {
            let summary = live.replace(apps);
            if !summary.is_empty() {
                tracing::info!("apps reloaded: {summary}");
            }
            Ok(summary)
        }
        Err(why) => {
            tracing::error!(
                "apps not reloaded, keeping the {} app(s) in use: {why}",
                live.current().len()
            );
            Err(why)
        }
    }
}

/// The good rows, plus the version in use of each app whose row is now bad (a typo in one
/// row must not take a working app down).
fn keep_good_versions(
    loaded: postgres::Loaded,
    live: &dyn LiveApps,
    settings: &PgSettings,
) -> Vec<App> {
    let mut apps = loaded.apps;
    if loaded.bad.is_empty() {
        return apps;
    }
    let current = live.current();
    for (id, why) in loaded.bad {
        match current.iter().find(|a| a.id == id) {
            Some(app) => {
                tracing::error!(
                    "apps database {}: app \"{id}\" has a bad row, keeping its previous settings: {why}",
                    settings.target()
                );
                apps.push(App::clone(app));
            }
            None => tracing::error!(
                "apps database {}: app \"{id}\" skipped: {why}",
                settings.target()
            ),
        }
    }
    apps
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use parking_lot::Mutex;

    /// A live table that records what it was given.
    #[derive(Default)]
    pub(crate) struct Table(pub Mutex<Vec<Arc<App>>>);

    impl LiveApps for Table {
        fn current(&self) -> Vec<Arc<App>> {
            self.0.lock().clone()
        }
        fn replace(&self, apps: Vec<App>) -> String {
            let ids: Vec<String> = apps.iter().map(|a| a.id.clone()).collect();
            *self.0.lock() = apps.into_iter().map(Arc::new).collect();
            ids.join(",")
        }
    }

    #[tokio::test]
    async fn a_bad_file_on_reload_keeps_the_apps_in_use() {
        let dir = std::env::temp_dir().join(format!("rf-reload-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("apps.json");
        std::fs::write(&path, r#"[{"id":"1","key":"k1","secret":"s1"}]"#).unwrap();
        let source = AppSource::File {
            path: path.clone(),
            base: App::default(),
        };
        let table = Table::default();
        assert_eq!(reload_apps_from_source(&table, &source).await.unwrap(), "1");
        std::fs::write(&path, r#"[{"id":"1","key":"k1"}]"#).unwrap();
        let e = reload_apps_from_source(&table, &source).await.unwrap_err();
        assert!(e.contains("missing field `secret`"), "{e}");
        assert_eq!(table.current().len(), 1);
        assert_eq!(table.current()[0].secret, "s1");
        std::fs::write(
            &path,
            r#"[{"id":"1","key":"k1","secret":"new"},{"id":"2","key":"k2","secret":"s2"}]"#,
        )
        .unwrap();
        assert_eq!(
            reload_apps_from_source(&table, &source).await.unwrap(),
            "1,2"
        );
        assert_eq!(table.current()[0].secret, "new");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
