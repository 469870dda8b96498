//! The PostgreSQL app store: where the database is, its table, and the queries the server and
//! the `apps` subcommands run on it.
//!
//! One table, `rf_broadcast_apps`: `id` (primary key), `key` (unique), `secret`, one nullable
//! column per setting of `settings.rs` (NULL: the node's value from the command line), and
//! `updated_at`. A trigger sends `NOTIFY rf_broadcast_apps` on every change, however it is
//! made (the subcommands, an admin panel, plain SQL), so every node reloads at once. The schema
//! is created, and columns added by a newer version appended, under an advisory lock, so
//! nodes starting together do not race.

use super::settings::{check_credentials, AppEntry, SETTINGS};
use crate::apps::App;
use crate::env::Env;
use futures_util::StreamExt;
use serde_json::Value;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, NoTls};

/// The table holding the apps.
pub(crate) const TABLE: &str = "rf_broadcast_apps";
/// The channel its trigger notifies on.
pub(crate) const CHANNEL: &str = "rf_broadcast_apps";
/// How long a connection attempt may take unless the URL says otherwise (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Advisory lock key taken while the schema is created or extended.
const SCHEMA_LOCK: i64 = 0x7266_6263_6173_7401;

/// Where the apps database is.
#[derive(Clone)]
pub struct PgSettings {
    config: tokio_postgres::Config,
}

impl fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgSettings({})", self.target())
    }
}

impl PgSettings {
    /// From a `postgres://` / `postgresql://` URL or a `key=value` connection string.
    pub fn parse(url: &str) -> Result<PgSettings, String> {
        let lower = url.to_ascii_lowercase();
        if lower.contains("://")
            && !(lower.starts_with("postgres://") || lower.starts_with("postgresql://"))
        {
            return Err("expected a postgres:// or postgresql:// URL".into());
        }
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|e| format!("not a PostgreSQL connection URL: {e}"))?;
        Ok(PgSettings::from_config(config))
    }

    fn from_config(mut config: tokio_postgres::Config) -> PgSettings {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("rf-broadcast");
        }
        PgSettings { config }
    }

    /// From Laravel's `DB_*` names, when `DB_CONNECTION` is `pgsql`: `DB_URL` (or
    /// `DATABASE_URL`) if set, else `DB_HOST`, `DB_PORT`, `DB_DATABASE`, `DB_USERNAME`,
    /// `DB_PASSWORD`. `None` when they name no PostgreSQL database.
    pub fn from_laravel(env: &dyn Env) -> Option<Result<PgSettings, String>> {
        if !env
            .var("DB_CONNECTION")
            .is_some_and(|c| c.eq_ignore_ascii_case("pgsql"))
        {
            return None;
        }
        if let Some(url) = env.var("DB_URL").or_else(|| env.var("DATABASE_URL")) {
            return Some(PgSettings::parse(&url));
        }
        let mut config = tokio_postgres::Config::new();
        config.host(env.var("DB_HOST").as_deref().unwrap_or("127.0.0.1"));
        if let Some(port) = env.var("DB_PORT") {
            match port.parse() {
                Ok(p) => {
                    config.port(p);
                }
                Err(_) => return Some(Err(format!("DB_PORT is not a port: {port}"))),
            }
        }
        config.dbname(env.var("DB_DATABASE").as_deref().unwrap_or("laravel"));
        config.user(env.var("DB_USERNAME").as_deref().unwrap_or("root"));
        if let Some(p) = env.var("DB_PASSWORD") {
            config.password(p);
        }
        Some(Ok(PgSettings::from_config(config)))
    }

    /// `host:port/database`, for messages: never the password.
    pub fn target(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let db = self
            .config
            .get_dbname()
            .or(self.config.get_user())
            .unwrap_or("postgres");
        format!("{host}:{port}/{db}")
    }

    /// Connect; the connection is driven by a task of its own, which forwards notifications
    /// and ends (closing the receiver) when the connection does.
    pub(crate) async fn connect(&self) -> Result<(Client, mpsc::UnboundedReceiver<()>), String> {
        let (client, mut connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| format!("cannot reach the apps database at {}: {e}", self.target()))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let target = self.target();
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => {
                        if tx.send(()).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!("apps database {target}: connection ended: {e}");
                        return;
                    }
                }
            }
        });
        Ok((client, rx))
    }
}

/// `"name"` with embedded quotes doubled: a safe SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Create the table, its missing columns and the notify trigger (idempotent).
pub(crate) async fn ensure_schema(client: &Client) -> Result<(), tokio_postgres::Error> {
    let t = ident(TABLE);
    let mut sql = format!(
        "BEGIN;
         SELECT pg_advisory_xact_lock({SCHEMA_LOCK});
         CREATE TABLE IF NOT EXISTS {t} (
             \"id\" TEXT PRIMARY KEY,
             \"key\" TEXT NOT NULL UNIQUE,
             \"secret\" TEXT NOT NULL,
             \"updated_at\" TIMESTAMPTZ NOT NULL DEFAULT now()
         );\n"
    );
    for (name, ty) in SETTINGS {
        sql.push_str(&format!(
            "ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {} {ty};\n",
            ident(name)
        ));
    }
    let func = ident(&format!("{TABLE}_notify"));
    let trigger = ident(&format!("{TABLE}_changed"));
    sql.push_str(&format!(
        "CREATE OR REPLACE FUNCTION {func}() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM pg_notify('{CHANNEL}', ''); RETURN NULL; END $$;
         DROP TRIGGER IF EXISTS {trigger} ON {t};
         CREATE TRIGGER {trigger} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {t}
             FOR EACH STATEMENT EXECUTE FUNCTION {func}();
         COMMIT;"
    ));
    client.batch_execute(&sql).await
}

/// Start receiving the trigger's notifications on this connection.
pub(crate) async fn listen(client: &Client) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(&format!("LISTEN {}", ident(CHANNEL)))
        .await
}

/// The column list every app query reads: credentials and settings.
fn columns() -> String {
    let mut cols = vec![ident("id"), ident("key"), ident("secret")];
    cols.extend(SETTINGS.iter().map(|(name, _)| ident(name)));
    cols.join(", ")
}

/// Every row as JSON (NULL settings as `null`), ordered by id.
pub(crate) async fn rows(client: &Client) -> Result<Vec<Value>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT row_to_json(t)::text FROM (SELECT {} FROM {}) t ORDER BY t.\"id\"",
        columns(),
        ident(TABLE)
    );
    let mut out = Vec::new();
    for row in client.query(&sql, &[]).await? {
        let text: String = row.get(0);
        // Postgres produced it: it is JSON.
        if let Ok(v) = serde_json::from_str(&text) {
            out.push(v);
        }
    }
    Ok(out)
}

/// One row as an app: settings that are NULL come from `base`.
pub(crate) fn row_to_app(row: Value, base: &App) -> Result<App, String> {
    let entry: AppEntry = serde_path_to_error::deserialize(row).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner().to_string();
        if path == "." || path.is_empty() || inner.contains(&format!("`{path}`")) {
            e.into_inner().to_string()
        } else {
            format!("column `{path}`: {}", e.into_inner())
        }
    })?;
    let app = entry.into_app(base);
    check_credentials(&app).map_err(|(field, why)| format!("column `{field}` {why}"))?;
    Ok(app)
}

/// The apps in the database: the good rows as apps, the bad ones as (id, why).
pub(crate) struct Loaded {
    pub apps: Vec<App>,
    pub bad: Vec<(String, String)>,
}

pub(crate) async fn load(client: &Client, base: &App) -> Result<Loaded, tokio_postgres::Error> {
    let mut loaded = Loaded {
        apps: Vec::new(),
        bad: Vec::new(),
    };
    for row in rows(client).await? {
        let id = row
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match row_to_app(row, base) {
            Ok(app) => loaded.apps.push(app),
            Err(why) => loaded.bad.push((id, why)),
        }
    }
    Ok(loaded)
}

/// Add an app. Fails when the id or the key is taken.
pub(crate) async fn insert(client: &Client, app: &App) -> Result<(), String> {
    let sql = format!(
        "INSERT INTO {} (\"id\", \"key\", \"secret\") VALUES ($1, $2, $3)",
        ident(TABLE)
    );
    client
        .execute(&sql, &[&app.id, &app.key, &app.secret])
        .await
        .map_err(|e| unique_message(&e, app))?;
    Ok(())
}

fn unique_message(e: &tokio_postgres::Error, app: &App) -> String {
    match e.as_db_error() {
        Some(db) if db.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION => {
            if db.constraint().is_some_and(|c| c.ends_with("_pkey")) {
                format!("an app with id \"{}\" already exists", app.id)
            } else {
                format!("another app already has the key \"{}\"", app.key)
            }
        }
        _ => e.to_string(),
    }
}

/// Remove an app; false when there was none with this id.
pub(crate) async fn delete(client: &Client, id: &str) -> Result<bool, tokio_postgres::Error> {
    let sql = format!("DELETE FROM {} WHERE \"id\" = $1", ident(TABLE));
    Ok(client.execute(&sql, &[&id]).await? > 0)
}

/// One row as JSON, if there is one with this id.
pub(crate) async fn row(client: &Client, id: &str) -> Result<Option<Value>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT row_to_json(t)::text FROM (SELECT {} FROM {} WHERE \"id\" = $1) t",
        columns(),
        ident(TABLE)
    );
    let found = client.query_opt(&sql, &[&id]).await?;
    Ok(found.and_then(|r| serde_json::from_str(&r.get::<_, String>(0)).ok()))
}

/// Set one column (a credential or a setting; `null` resets a setting to the node's value)
/// after checking the whole row would still be a valid app. False when there is no such app.
pub(crate) async fn set(
    client: &Client,
    id: &str,
    field: &str,
    value: Value,
) -> Result<bool, String> {
    if !super::settings::settable(field) {
        let mut names: Vec<&str> = vec!["key", "secret"];
        names.extend(SETTINGS.iter().map(|(n, _)| *n));
        return Err(format!(
            "unknown field `{field}`; one of: {}",
            names.join(", ")
        ));
    }
    if value.is_null() && (field == "key" || field == "secret") {
        return Err(format!("`{field}` cannot be null"));
    }
    let Some(mut current) = row(client, id).await.map_err(|e| e.to_string())? else {
        return Ok(false);
    };
    if let Some(obj) = current.as_object_mut() {
        obj.insert(field.to_string(), value.clone());
    }
    let app = row_to_app(current, &App::default())?;
    let t = ident(TABLE);
    let col = ident(field);
    let sql = format!(
        "UPDATE {t} SET {col} = (json_populate_record(NULL::{t}, $1::text::json)).{col},
                        \"updated_at\" = now()
         WHERE \"id\" = $2"
    );
    let patch = serde_json::json!({ field: value }).to_string();
    client
        .execute(&sql, &[&patch, &id])
        .await
        .map_err(|e| unique_message(&e, &app))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_targets_never_show_the_password() {
        let s = PgSettings::parse("postgres://u:hunter2@db.internal:6543/apps").unwrap();
        assert_eq!(s.target(), "db.internal:6543/apps");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(PgSettings::parse("mysql://u@h/db").is_err());
        assert!(PgSettings::parse("postgres://h:notaport/db").is_err());
        assert_eq!(
            PgSettings::parse("host=127.0.0.1 dbname=x")
                .unwrap()
                .target(),
            "127.0.0.1:5432/x"
        );
    }

    #[test]
    fn laravel_names_only_for_pgsql() {
        use std::collections::HashMap;
        let vars: HashMap<&str, &str> = [
            ("DB_CONNECTION", "pgsql"),
            ("DB_HOST", "pg.internal"),
            ("DB_PORT", "5433"),
            ("DB_DATABASE", "shop"),
            ("DB_PASSWORD", "secret!"),
        ]
        .into_iter()
        .collect();
        let env = |n: &str| vars.get(n).map(|v| v.to_string());
        let s = PgSettings::from_laravel(&env).unwrap().unwrap();
        assert_eq!(s.target(), "pg.internal:5433/shop");
        let mysql = |n: &str| (n == "DB_CONNECTION").then(|| "mysql".to_string());
        assert!(PgSettings::from_laravel(&mysql).is_none());
        let url = |n: &str| match n {
            "DB_CONNECTION" => Some("pgsql".to_string()),
            "DB_URL" => Some("postgresql://u:p@h2/d2".to_string()),
            _ => None,
        };
        assert_eq!(
            PgSettings::from_laravel(&url).unwrap().unwrap().target(),
            "h2:5432/d2"
        );
    }

    #[test]
    fn bad_rows_say_which_column() {
        let base = App::default();
        let ok = serde_json::json!({"id":"a","key":"k","secret":"s","max_connections":null,"enabled":false});
        let app = row_to_app(ok, &base).unwrap();
        assert!(!app.enabled);
        let bad = serde_json::json!({"id":"a","key":"k","secret":"s","activity_timeout":-5});
        assert!(row_to_app(bad, &base)
            .unwrap_err()
            .starts_with("column `activity_timeout`"));
        let empty = serde_json::json!({"id":"a","key":"k","secret":""});
        assert_eq!(
            row_to_app(empty, &base).unwrap_err(),
            "column `secret` must not be empty"
        );
    }
}
