//! The per-app settings an operator may set in an apps file or a database row, listed once.
//!
//! [`App`] itself stays lenient (`#[serde(default)]`, [`App::new`]) for library users. What an
//! operator writes goes through [`AppEntry`] instead: `id`, `key` and `secret` are required,
//! an unknown field is an error, and a setting left out (or `null`) takes the node's value from
//! the command line. The `app_settings!` list below generates the entry type, how an entry
//! becomes an `App`, and the database columns: a new `App` field an operator may set is one
//! line in that list.

use crate::apps::App;
use serde::{Deserialize, Serialize};

/// The SQL type of a setting's database column.
pub(crate) trait Setting {
    const SQL: &'static str;
}

impl Setting for bool {
    const SQL: &'static str = "BOOLEAN";
}
impl Setting for u32 {
    const SQL: &'static str = "BIGINT";
}
impl Setting for u64 {
    const SQL: &'static str = "BIGINT";
}
impl Setting for usize {
    const SQL: &'static str = "BIGINT";
}
impl Setting for f64 {
    const SQL: &'static str = "DOUBLE PRECISION";
}
impl Setting for String {
    const SQL: &'static str = "TEXT";
}
impl<T: Setting> Setting for Option<T> {
    const SQL: &'static str = T::SQL;
}
/// Lists (origins, webhooks, ...) are stored as JSON.
impl<T> Setting for Vec<T> {
    const SQL: &'static str = "JSONB";
}

macro_rules! app_settings {
    ($($name:ident: $ty:ty,)*) => {
        /// One app as an operator writes it (apps file entry or database row).
        #[derive(Debug, Clone, Default, Deserialize, Serialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct AppEntry {
            pub id: String,
            pub key: String,
            pub secret: String,
            $(
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $name: Option<$ty>,
            )*
        }

        impl AppEntry {
            /// The app: these credentials, the settings given here, the rest from `base`.
            pub fn into_app(self, base: &App) -> App {
                #[allow(unused_mut)]
                let mut app = App {
                    id: self.id,
                    key: self.key,
                    secret: self.secret,
                    ..base.clone()
                };
                $(
                    if let Some(v) = self.$name {
                        app.$name = v;
                    }
                )*
                app
            }
        }

        /// Every setting with the SQL type of its column, in declaration order.
        pub(crate) const SETTINGS: &[(&str, &str)] = &[
            $((stringify!($name), <$ty as Setting>::SQL),)*
        ];
    };
}

// The settings of `App` an operator may set per app: one line each.
app_settings! {
    enabled: bool,
    client_events: bool,
    subscription_count: bool,
    max_connections: Option<usize>,
    activity_timeout: u64,
    pong_timeout: u64,
    max_channel_name_len: usize,
    max_event_name_len: usize,
    max_event_bytes: usize,
    max_channels_per_event: usize,
    max_batch_events: usize,
    max_presence_members: usize,
    max_presence_member_bytes: usize,
    max_user_id_len: usize,
    client_event_rate: u32,
    max_channels_per_connection: usize,
    cache_ttl: u64,
    max_watchlist: usize,
    allowed_origins: Vec<String>,
    api_request_rate: Option<u32>,
    connection_rate_per_ip: Option<u32>,
    recovery_window: u64,
    recovery_channels: Vec<String>,
    recovery_max_events: usize,
    recovery_max_bytes: usize,
    webhooks: Vec<crate::apps::webhook_targets::Target>,
}

/// Which required credential is wrong, if any.
pub(crate) fn check_credentials(app: &App) -> Result<(), (&'static str, &'static str)> {
    if app.id.trim().is_empty() {
        return Err(("id", "must not be empty"));
    }
    if app.key.trim().is_empty() {
        return Err(("key", "must not be empty"));
    }
    if app.key.contains(':') {
        return Err(("key", "must not contain ':'"));
    }
    if app.secret.is_empty() {
        return Err(("secret", "must not be empty"));
    }
    Ok(())
}

/// The names an operator may set with `apps set`: the credentials that can change, and every
/// setting.
pub(crate) fn settable(field: &str) -> bool {
    field == "key" || field == "secret" || SETTINGS.iter().any(|(name, _)| *name == field)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(json: &str) -> Result<AppEntry, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn credentials_are_required_and_unknown_fields_rejected() {
        let e = entry(r#"{"id":"a","key":"k"}"#).unwrap_err();
        assert!(e.contains("missing field `secret`"), "{e}");
        let e = entry(r#"{"id":"a","key":"k","secret":"s","max_conections":5}"#).unwrap_err();
        assert!(e.contains("unknown field `max_conections`"), "{e}");
        assert!(entry(r#"{"id":"a","key":"k","secret":"s"}"#).is_ok());
    }

    #[test]
    fn left_out_settings_come_from_the_base() {
        let base = App {
            client_event_rate: 77,
            max_connections: Some(5),
            ..App::default()
        };
        let app = entry(
            r#"{"id":"a","key":"k","secret":"s","enabled":false,"max_connections":null,"cache_ttl":9}"#,
        )
        .unwrap()
        .into_app(&base);
        assert_eq!((app.id.as_str(), app.key.as_str()), ("a", "k"));
        assert_eq!(app.secret, "s");
        assert!(!app.enabled);
        assert_eq!(app.cache_ttl, 9);
        assert_eq!(app.client_event_rate, 77);
        assert_eq!(app.max_connections, Some(5));
        let app = entry(r#"{"id":"a","key":"k","secret":"s","max_connections":3}"#)
            .unwrap()
            .into_app(&base);
        assert_eq!(app.max_connections, Some(3));
    }

    #[test]
    fn every_setting_has_a_column_type_and_is_settable() {
        assert!(SETTINGS.len() >= 18);
        for (name, sql) in SETTINGS {
            assert!(settable(name));
            assert!(!sql.is_empty());
        }
        assert!(settable("secret") && settable("key"));
        assert!(!settable("id") && !settable("nope"));
        assert!(SETTINGS.contains(&("max_connections", "BIGINT")));
        assert!(SETTINGS.contains(&("enabled", "BOOLEAN")));
        assert!(SETTINGS.contains(&("allowed_origins", "JSONB")));
    }

    #[test]
    fn every_setting_is_in_the_configuration_reference_and_the_readme() {
        let doc = include_str!("../../docs/operations.md");
        let table = doc
            .split("## Configuration reference")
            .nth(1)
            .expect("docs/operations.md has the configuration reference");
        let readme = include_str!("../../README.md");
        for (name, sql) in SETTINGS {
            // The "apps file / column" cell: `name` (`SQL`...).
            let cell = format!("| `{name}` (`{sql}");
            assert!(
                table.contains(&cell),
                "docs/operations.md's configuration reference lacks the per-app setting \
                 {name} ({sql}): add a row with `{cell}`"
            );
            assert!(
                readme.contains(&format!("`{name}`")),
                "README.md's apps table lacks {name}"
            );
        }
    }

    #[test]
    fn credentials_are_checked() {
        assert!(check_credentials(&App::new("a", "k", "s")).is_ok());
        assert_eq!(
            check_credentials(&App::new("", "k", "s")).unwrap_err().0,
            "id"
        );
        assert_eq!(
            check_credentials(&App::new("a", "k:x", "s")).unwrap_err().0,
            "key"
        );
        assert_eq!(
            check_credentials(&App::new("a", "k", "")).unwrap_err().0,
            "secret"
        );
    }
}
