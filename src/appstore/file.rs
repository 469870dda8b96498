//! The apps file: a JSON list (or `{"apps": [...]}`), or TOML (`[[apps]]`) when the name ends
//! in `.toml`, read strictly.
//!
//! Every entry needs `id`, `key` and `secret`; an unknown field, a duplicate id or a duplicate
//! key is an error; nothing falls back to the development credentials. An error names the
//! file, the entry (index and id) and the field.

use super::settings::{check_credentials, AppEntry};
use crate::apps::App;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// Why an apps file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("apps file {file}: {what}")]
pub struct AppsFileError {
    pub file: String,
    pub what: String,
}

/// Read and check the apps file at `path`; settings an entry leaves out come from `base`.
pub(crate) fn load(path: &Path, base: &App) -> Result<Vec<App>, AppsFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| AppsFileError {
        file: path.display().to_string(),
        what: format!("cannot read it: {e}"),
    })?;
    parse(path, &text, base)
}

/// Check the text of an apps file (`path` decides the format and is named in errors).
pub(crate) fn parse(path: &Path, text: &str, base: &App) -> Result<Vec<App>, AppsFileError> {
    let file = path.display().to_string();
    let fail = |what: String| AppsFileError {
        file: file.clone(),
        what,
    };
    let is_toml = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    let doc: Value = if is_toml {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| fail(format!("not TOML: {e}")))?;
        serde_json::to_value(table).map_err(|e| fail(format!("not TOML: {e}")))?
    } else {
        serde_json::from_str(text).map_err(|e| fail(format!("not JSON: {e}")))?
    };
    let list = match doc {
        Value::Array(list) => list,
        Value::Object(mut top) => {
            let list = match top.remove("apps") {
                Some(Value::Array(list)) => list,
                Some(_) => return Err(fail("`apps` must be a list of apps".into())),
                None => return Err(fail("it has no `apps` list".into())),
            };
            if let Some(other) = top.keys().next() {
                return Err(fail(format!(
                    "unknown top-level field `{other}` (only `apps` is allowed)"
                )));
            }
            list
        }
        _ => return Err(fail("expected a list of apps".into())),
    };
    if list.is_empty() {
        return Err(fail("it lists no apps".into()));
    }
    let mut apps = Vec::with_capacity(list.len());
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut keys: HashMap<String, usize> = HashMap::new();
    for (i, value) in list.into_iter().enumerate() {
        let shown_id = value
            .get("id")
            .and_then(Value::as_str)
            .map(|id| format!(" (id \"{id}\")"))
            .unwrap_or_default();
        let at = |what: String| fail(format!("apps[{i}]{shown_id}: {what}"));
        if !value.is_object() {
            return Err(at("expected an object".into()));
        }
        let entry: AppEntry = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.inner().to_string();
            if path == "." || path.is_empty() || inner.contains(&format!("`{path}`")) {
                at(e.into_inner().to_string())
            } else {
                at(format!("field `{path}`: {}", e.into_inner()))
            }
        })?;
        let app = entry.into_app(base);
        if let Err((field, why)) = check_credentials(&app) {
            return Err(at(format!("field `{field}` {why}")));
        }
        if let Some(first) = ids.insert(app.id.clone(), i) {
            return Err(at(format!("field `id`: duplicate of apps[{first}]")));
        }
        if let Some(first) = keys.insert(app.key.clone(), i) {
            return Err(at(format!(
                "field `key`: \"{}\" is also the key of apps[{first}]",
                app.key
            )));
        }
        apps.push(app);
    }
    Ok(apps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Result<Vec<App>, String> {
        parse(Path::new("/etc/apps.json"), text, &App::default()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_good_file_loads_with_defaults_from_the_base() {
        let base = App {
            client_event_rate: 3,
            ..App::default()
        };
        let apps = parse(
            Path::new("a.json"),
            r#"[{"id":"1","key":"k1","secret":"s1"},{"id":"2","key":"k2","secret":"s2","enabled":false}]"#,
            &base,
        )
        .unwrap();
        assert_eq!(apps.len(), 2);
        assert_eq!(apps[0].client_event_rate, 3);
        assert!(apps[0].enabled && !apps[1].enabled);
        let wrapped = json(r#"{"apps":[{"id":"1","key":"k1","secret":"s1"}]}"#).unwrap();
        assert_eq!(wrapped[0].key, "k1");
    }

    #[test]
    fn errors_name_file_entry_and_field() {
        let e =
            json(r#"[{"id":"1","key":"k1","secret":"s1"},{"id":"two","key":"k2"}]"#).unwrap_err();
        assert_eq!(
            e,
            "apps file /etc/apps.json: apps[1] (id \"two\"): missing field `secret`"
        );
        let e = json(r#"[{"id":"1","key":"k1","secret":"s1","max_conections":1}]"#).unwrap_err();
        assert!(
            e.starts_with(
                "apps file /etc/apps.json: apps[0] (id \"1\"): unknown field `max_conections`"
            ),
            "{e}"
        );
        let e =
            json(r#"[{"id":"1","key":"k1","secret":"s1","max_connections":"many"}]"#).unwrap_err();
        assert!(
            e.starts_with("apps file /etc/apps.json: apps[0] (id \"1\"): field `max_connections`: invalid type"),
            "{e}"
        );
        let e = json(r#"[{"key":"k1","secret":"s1"}]"#).unwrap_err();
        assert!(e.ends_with("apps[0]: missing field `id`"), "{e}");
        let e = json(r#"[{"id":"1","key":"k:1","secret":"s1"}]"#).unwrap_err();
        assert!(e.ends_with("field `key` must not contain ':'"), "{e}");
        let e = json(r#"[{"id":"1","key":"k1","secret":""}]"#).unwrap_err();
        assert!(e.ends_with("field `secret` must not be empty"), "{e}");
    }

    #[test]
    fn duplicates_are_refused() {
        let e = json(r#"[{"id":"1","key":"k1","secret":"s"},{"id":"1","key":"k2","secret":"s"}]"#)
            .unwrap_err();
        assert!(
            e.ends_with("apps[1] (id \"1\"): field `id`: duplicate of apps[0]"),
            "{e}"
        );
        let e = json(r#"[{"id":"1","key":"k1","secret":"s"},{"id":"2","key":"k1","secret":"s"}]"#)
            .unwrap_err();
        assert!(e.contains("apps[1] (id \"2\"): field `key`"), "{e}");
    }

    #[test]
    fn malformed_and_empty_files_are_refused() {
        assert!(json("[").unwrap_err().contains("not JSON"));
        assert!(json("[]").unwrap_err().contains("lists no apps"));
        assert!(json("5").unwrap_err().contains("expected a list"));
        assert!(json("[5]")
            .unwrap_err()
            .contains("apps[0]: expected an object"));
        assert!(json(r#"{"apps":[],"x":1}"#).is_err());
        assert!(
            json(r#"{"apps":[{"id":"1","key":"k","secret":"s"}],"x":1}"#)
                .unwrap_err()
                .contains("top-level field `x`")
        );
    }

    #[test]
    fn toml_by_extension() {
        let text = r#"
[[apps]]
id = "1"
key = "k1"
secret = "s1"
max_connections = 10

[[apps]]
id = "2"
key = "k2"
secret = "s2"
enabled = false
"#;
        let apps = parse(Path::new("/etc/apps.TOML"), text, &App::default()).unwrap();
        assert_eq!(apps.len(), 2);
        assert_eq!(apps[0].max_connections, Some(10));
        assert!(!apps[1].enabled);
        let e = parse(
            Path::new("x.toml"),
            "[[apps]]\nid = \"1\"\nkey = \"k\"\n",
            &App::default(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "apps file x.toml: apps[0] (id \"1\"): missing field `secret`"
        );
        let e = parse(
            Path::new("x.toml"),
            "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\nactivity_timeout = -1\n",
            &App::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("field `activity_timeout`"), "{e}");
        assert!(parse(Path::new("x.toml"), "apps = [", &App::default())
            .unwrap_err()
            .to_string()
            .contains("not TOML"));
    }
}
