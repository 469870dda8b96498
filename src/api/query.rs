//! The one decoded query-string type: the HTTP API's parameters, the signature check's input,
//! the WebSocket upgrade's `protocol=`, and the development routes' form bodies all go through
//! [`Query`]. Lookup, decoding (`+` is a space, `%XX` decoded) and comma lists (`info=`) are
//! written here once.

/// A decoded query string (or form body), pairs in the order they came.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Decode a raw query string (`a=1&b=x+y`); a key without `=` has the empty value.
    pub fn parse(raw: &str) -> Query {
        let pairs = raw
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(k), decode(v))
            })
            .collect();
        Query { pairs }
    }

    /// Decode a form body (`application/x-www-form-urlencoded`) strictly: `None` when a key
    /// or value does not decode to UTF-8 (a query string is decoded leniently instead).
    pub fn parse_form(raw: &str) -> Option<Query> {
        let mut pairs = Vec::new();
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            pairs.push((decode_strict(k)?, decode_strict(v)?));
        }
        Some(Query { pairs })
    }

    /// The query of a request URI.
    pub fn of(uri: &axum::http::Uri) -> Query {
        Query::parse(uri.query().unwrap_or(""))
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The comma-separated items of `key` (`info=user_count,subscription_count`), trimmed,
    /// empty items dropped; none when the key is absent.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.get(key).map(split_list).unwrap_or_default()
    }

    /// Every pair, decoded, in order (what a signature is computed over).
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The pairs as owned strings.
    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.pairs
    }
}

/// Split a comma list (`a, b,,c` → `a`, `b`, `c`).
pub fn split_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn decode_strict(s: &str) -> Option<String> {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pairs_in_order() {
        let q = Query::parse(
            "info=subscription_count%2Cuser_count&filter_by_prefix=presence-&x=a+b&flag",
        );
        let pairs: Vec<_> = q.pairs().collect();
        assert_eq!(
            pairs,
            [
                ("info", "subscription_count,user_count"),
                ("filter_by_prefix", "presence-"),
                ("x", "a b"),
                ("flag", ""),
            ]
        );
        assert_eq!(q.get("x"), Some("a b"));
        assert_eq!(q.get("missing"), None);
    }

    #[test]
    fn forms_decode_strictly() {
        let q = Query::parse_form("socket_id=1.2&channel_name=private-a%2Bb+c").unwrap();
        assert_eq!(q.get("channel_name"), Some("private-a+b c"));
        assert!(Query::parse_form("a=%FF").is_none());
        assert_eq!(Query::parse("a=%FF").get("a"), Some("\u{fffd}"));
    }

    #[test]
    fn splits_lists() {
        let q = Query::parse("info=user_count,%20subscription_count,,&a=1&a=2");
        assert_eq!(q.list("info"), ["user_count", "subscription_count"]);
        assert!(q.list("none").is_empty());
        assert_eq!(q.get("a"), Some("1"), "the first value wins");
        assert_eq!(split_list(" a ,b"), ["a", "b"]);
    }
}
