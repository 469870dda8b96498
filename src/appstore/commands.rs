//! `rf-broadcast apps ...`: manage the PostgreSQL app store from the command line (add, list,
//! remove, rotate a secret, set a setting). Each command creates the table when it is missing;
//! the table's trigger tells every running node, which picks the change up within a second.

use super::postgres::{self, PgSettings};
use crate::apps::App;
use crate::env::Env;
use serde_json::Value;

/// `apps` and its subcommands.
#[derive(Debug, Clone, clap::Args)]
pub struct AppsCommand {
    /// PostgreSQL URL of the app store [env: RF_APPS_DATABASE_URL, or Laravel's DB_URL /
    /// DB_HOST, DB_PORT, DB_DATABASE, DB_USERNAME, DB_PASSWORD when DB_CONNECTION=pgsql]
    #[arg(long, global = true)]
    pub apps_database_url: Option<String>,
    #[command(subcommand)]
    pub action: AppsAction,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum AppsAction {
    /// Add an app; a strong random secret (and key) when left out, printed once.
    Add {
        #[arg(long)]
        id: String,
        #[arg(long)]
        key: Option<String>,
        #[arg(long)]
        secret: Option<String>,
    },
    /// List the apps (secrets masked).
    List,
    /// Remove an app: its connections are closed with 4001 on every node.
    Remove { id: String },
    /// Give an app a new random secret, printed once; the old one stops working at once.
    RotateSecret { id: String },
    /// Set one field: `key`, `secret`, or a per-app setting (`enabled false`,
    /// `max_connections 500`); the value `null` resets a setting to the node's default.
    Set {
        id: String,
        field: String,
        value: String,
    },
}

/// Bytes of randomness in a generated secret (64 hex digits).
const SECRET_BYTES: usize = 32;
/// Bytes of randomness in a generated key (40 hex digits).
const KEY_BYTES: usize = 20;

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    // The thread RNG is a CSPRNG seeded from the operating system.
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Which database: the subcommand's flag, the server's flag, `RF_APPS_DATABASE_URL`, or
/// Laravel's `DB_*` names.
pub(crate) fn database(flag: Option<String>, env: &dyn Env) -> Result<PgSettings, String> {
    if let Some(url) = flag.or_else(|| env.var("RF_APPS_DATABASE_URL")) {
        return PgSettings::parse(&url).map_err(|e| format!("invalid --apps-database-url: {e}"));
    }
    match PgSettings::from_laravel(env) {
        Some(s) => s.map_err(|e| format!("invalid Laravel DB_* settings: {e}")),
        None => Err(
            "no apps database: pass --apps-database-url postgres://... or set RF_APPS_DATABASE_URL"
                .into(),
        ),
    }
}

/// Run an `apps` command; the process exit code (0 done, 1 refused, 2 cannot run).
pub fn run(cmd: AppsCommand, server_flag: Option<String>, env: &dyn Env) -> i32 {
    let settings = match database(cmd.apps_database_url.or(server_flag), env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rf-broadcast: {e}");
            return 2;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rf-broadcast: cannot start the runtime: {e}");
            return 2;
        }
    };
    rt.block_on(async move {
        let client = match settings.connect().await {
            Ok((client, _)) => client,
            Err(e) => {
                eprintln!("rf-broadcast: {e}");
                return 2;
            }
        };
        if let Err(e) = postgres::ensure_schema(&client).await {
            eprintln!(
                "rf-broadcast: apps database {}: cannot create the table: {e}",
                settings.target()
            );
            return 2;
        }
        match action(&client, cmd.action).await {
            Ok(out) => {
                print!("{out}");
                0
            }
            Err(e) => {
                eprintln!("rf-broadcast: {e}");
                1
            }
        }
    })
}

async fn action(client: &tokio_postgres::Client, action: AppsAction) -> Result<String, String> {
    match action {
        AppsAction::Add { id, key, secret } => {
            let generated = secret.is_none();
            let app = App::new(
                id,
                key.unwrap_or_else(|| random_hex(KEY_BYTES)),
                secret.unwrap_or_else(|| random_hex(SECRET_BYTES)),
            );
            if let Err((field, why)) = super::settings::check_credentials(&app) {
                return Err(format!("--{field} {why}"));
            }
            postgres::insert(client, &app).await?;
            let mut out = format!(
                "added app \"{}\"\n  key:    {}\n  secret: {}\n",
                app.id, app.key, app.secret
            );
            if generated {
                out.push_str("The secret is shown only now: store it (PUSHER_APP_SECRET).\n");
            }
            Ok(out)
        }
        AppsAction::List => {
            let rows = postgres::rows(client).await.map_err(|e| e.to_string())?;
            Ok(list(&rows))
        }
        AppsAction::Remove { id } => match postgres::delete(client, &id).await {
            Ok(true) => Ok(format!("removed app \"{id}\"\n")),
            Ok(false) => Err(format!("no app with id \"{id}\"")),
            Err(e) => Err(e.to_string()),
        },
        AppsAction::RotateSecret { id } => {
            let secret = random_hex(SECRET_BYTES);
            match postgres::set(client, &id, "secret", Value::String(secret.clone())).await? {
                true => Ok(format!(
                    "new secret for app \"{id}\": {secret}\nThe secret is shown only now; the old one no longer works.\n"
                )),
                false => Err(format!("no app with id \"{id}\"")),
            }
        }
        AppsAction::Set { id, field, value } => {
            // JSON when it parses (numbers, booleans, null, lists), else the text itself.
            let parsed = serde_json::from_str(&value).unwrap_or(Value::String(value));
            match postgres::set(client, &id, &field, parsed).await? {
                true => Ok(format!("app \"{id}\": {field} set\n")),
                false => Err(format!("no app with id \"{id}\"")),
            }
        }
    }
}

/// A secret for display: never more than its first 4 characters, and those only when it is
/// long enough that they give nothing away.
fn mask(secret: &str) -> String {
    if secret.chars().count() >= 16 {
        format!("{}…", secret.chars().take(4).collect::<String>())
    } else {
        "********".into()
    }
}

/// One line per app: id, key, masked secret, and the settings that are set.
fn list(rows: &[Value]) -> String {
    let field = |row: &Value, name: &str| {
        row.get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let lines: Vec<[String; 4]> = rows
        .iter()
        .map(|row| {
            let settings: Vec<String> = row
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, v)| !v.is_null() && !matches!(k.as_str(), "id" | "key" | "secret"))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            [
                field(row, "id"),
                field(row, "key"),
                mask(&field(row, "secret")),
                settings.join(" "),
            ]
        })
        .collect();
    let mut out = String::new();
    let header = ["ID", "KEY", "SECRET", "SETTINGS"].map(String::from);
    let width = |i: usize| {
        lines
            .iter()
            .chain(std::iter::once(&header))
            .map(|l| l[i].chars().count())
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    for l in std::iter::once(&header).chain(lines.iter()) {
        let line = format!("{:w0$}  {:w1$}  {:w2$}  {}", l[0], l[1], l[2], l[3]);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if lines.is_empty() {
        out.push_str("(no apps; add one with `rf-broadcast apps add --id ID`)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_generated_strong() {
        assert_eq!(mask("short"), "********");
        let s = random_hex(SECRET_BYTES);
        assert_eq!(s.len(), 64);
        assert_ne!(s, random_hex(SECRET_BYTES));
        assert_eq!(mask(&s), format!("{}…", &s[..4]));
        let rows = vec![
            serde_json::json!({"id":"a","key":"k","secret":s,"enabled":false,"cache_ttl":null}),
        ];
        let text = list(&rows);
        assert!(text.contains("enabled=false"), "{text}");
        assert!(!text.contains("cache_ttl"), "{text}");
        assert!(!text.contains(&s[4..]), "{text}");
    }

    #[test]
    fn the_database_comes_from_flag_env_or_laravel() {
        let none = |_: &str| None;
        assert!(database(None, &none)
            .unwrap_err()
            .contains("--apps-database-url"));
        assert_eq!(
            database(Some("postgres://h/db".into()), &none)
                .unwrap()
                .target(),
            "h:5432/db"
        );
        let env = |n: &str| (n == "RF_APPS_DATABASE_URL").then(|| "postgres://e/db".to_string());
        assert_eq!(database(None, &env).unwrap().target(), "e:5432/db");
        assert!(database(Some("redis://x".into()), &none).is_err());
    }
}
