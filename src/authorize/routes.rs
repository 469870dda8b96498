//! Channel route patterns, Laravel's way: `orders.{id}` matches `orders.42` and hands the
//! callback `id = "42"`. A `{name}` stands for one or more characters other than `.`; the rest
//! of the pattern must match literally (Laravel builds a regular expression from the pattern
//! without escaping it, so its `.` matches any character; here a `.` is a dot). Patterns are
//! matched against the channel name without its `private-encrypted-`, `private-` or
//! `presence-` prefix (one prefix is removed, in that order, as Laravel does).

use std::fmt;

/// The named parameters a route pattern captured from a channel name, in pattern order.
///
/// ```
/// use rf_broadcast::ChannelParams;
///
/// // What the route `orders.{id}` hands its callback for `private-orders.42`:
/// # let params = rf_broadcast::ChannelParams::from_pairs([("id", "42")]);
/// assert_eq!(params.get("id"), Some("42"));
/// assert_eq!(params.get("other"), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelParams(Vec<(String, String)>);

impl ChannelParams {
    /// The value captured for `{name}`, if the pattern has such a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every `(name, value)` pair, in the order the pattern names them.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Parameters built by hand (for tests of an app's callbacks).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> ChannelParams {
        ChannelParams(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// Why a route pattern was rejected when the authorizer was built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PatternError(String);

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(String),
    Param(String),
}

/// A compiled route pattern.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    source: String,
    tokens: Vec<Token>,
}

impl Pattern {
    /// Compile `orders.{id}`: literals and `{name}` parameters (names of ASCII letters, digits
    /// and `_`, each used once). An empty pattern, an unclosed `{` or a stray `}` is an error.
    pub(crate) fn parse(source: &str) -> Result<Pattern, PatternError> {
        let err = |why: &str| Err(PatternError(format!("channel route '{source}': {why}")));
        if source.is_empty() {
            return err("the pattern is empty");
        }
        let mut tokens = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        let mut rest = source;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                None => {
                    tokens.push(Token::Literal(rest.to_string()));
                    rest = "";
                }
                Some(i) if rest.as_bytes()[i] == b'}' => return err("'}' without '{'"),
                Some(i) => {
                    if i > 0 {
                        tokens.push(Token::Literal(rest[..i].to_string()));
                    }
                    let after = &rest[i + 1..];
                    let Some(end) = after.find('}') else {
                        return err("'{' without '}'");
                    };
                    let name = &after[..end];
                    if name.is_empty()
                        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    {
                        return err("a parameter name is letters, digits and '_'");
                    }
                    if names.contains(&name) {
                        return err("a parameter name is used twice");
                    }
                    names.push(name);
                    tokens.push(Token::Param(name.to_string()));
                    rest = &after[end + 1..];
                }
            }
        }
        Ok(Pattern {
            source: source.to_string(),
            tokens,
        })
    }

    /// The pattern as written.
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// Match a whole channel name (prefix already removed); the parameters on success.
    /// Parameters take as much as they can (like the regular expression Laravel builds), and
    /// the search is memoised, so its cost is bounded by tokens × length², whatever the input.
    pub(crate) fn matches(&self, name: &str) -> Option<ChannelParams> {
        let mut failed = vec![false; (self.tokens.len() + 1) * (name.len() + 1)];
        let mut captures = Vec::new();
        if self.match_from(0, name, 0, &mut failed, &mut captures) {
            captures.reverse();
            Some(ChannelParams(captures))
        } else {
            None
        }
    }

    fn match_from(
        &self,
        token: usize,
        name: &str,
        at: usize,
        failed: &mut [bool],
        captures: &mut Vec<(String, String)>,
    ) -> bool {
        let key = token * (name.len() + 1) + at;
        if failed[key] {
            return false;
        }
        let ok = match self.tokens.get(token) {
            None => at == name.len(),
            Some(Token::Literal(lit)) => {
                name[at..].starts_with(lit.as_str())
                    && self.match_from(token + 1, name, at + lit.len(), failed, captures)
            }
            Some(Token::Param(param)) => {
                // One or more bytes up to the next '.' (or the end); longest first.
                let segment = name[at..].find('.').unwrap_or(name.len() - at);
                (1..=segment).rev().any(|len| {
                    // Channel names are ASCII once validated; skip non-boundaries anyway.
                    name.is_char_boundary(at + len)
                        && self.match_from(token + 1, name, at + len, failed, captures)
                        && {
                            captures.push((param.clone(), name[at..at + len].to_string()));
                            true
                        }
                })
            }
        };
        if !ok {
            failed[key] = true;
        }
        ok
    }
}

/// The channel's kind for authorization and its name as routes see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Guarded<'a> {
    /// `private-…` and `private-encrypted-…` (their cache variants too).
    Private { routed: &'a str, encrypted: bool },
    /// `presence-…`.
    Presence { routed: &'a str },
}

/// Split a channel name into its kind and the name routes match; `None` for a channel that
/// needs no authorization (public, cache, `#server-to-user-`).
pub(crate) fn guarded(channel: &str) -> Option<Guarded<'_>> {
    if let Some(rest) = channel.strip_prefix("private-encrypted-") {
        Some(Guarded::Private {
            routed: rest,
            encrypted: true,
        })
    } else if let Some(rest) = channel.strip_prefix("private-") {
        Some(Guarded::Private {
            routed: rest,
            encrypted: false,
        })
    } else {
        channel
            .strip_prefix("presence-")
            .map(|rest| Guarded::Presence { routed: rest })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> Option<Vec<(String, String)>> {
        Pattern::parse(pattern).unwrap().matches(name).map(|p| p.0)
    }

    fn pairs(list: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(
            list.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn literal_patterns_match_exactly() {
        assert_eq!(m("orders", "orders"), pairs(&[]));
        assert_eq!(m("orders", "orders2"), None);
        assert_eq!(m("orders", "order"), None);
        assert_eq!(m("orders.list", "orders.list"), pairs(&[]));
        // A '.' is a dot, not "any character" (Laravel's unescaped regex would accept this).
        assert_eq!(m("orders.list", "ordersxlist"), None);
    }

    #[test]
    fn parameters_capture_one_dot_free_segment() {
        assert_eq!(m("orders.{id}", "orders.42"), pairs(&[("id", "42")]));
        assert_eq!(m("orders.{id}", "orders.4.2"), None);
        assert_eq!(m("orders.{id}", "orders."), None);
        assert_eq!(m("orders.{id}", "orders"), None);
        assert_eq!(
            m("chat.{room}.{user}", "chat.lobby.ada"),
            pairs(&[("room", "lobby"), ("user", "ada")])
        );
        assert_eq!(
            m("{anything}", "x-y_z=1@2,3;4"),
            pairs(&[("anything", "x-y_z=1@2,3;4")])
        );
        assert_eq!(m("{anything}", "a.b"), None);
    }

    #[test]
    fn parameters_inside_a_segment_are_greedy_like_the_regex() {
        assert_eq!(m("user-{id}", "user-7"), pairs(&[("id", "7")]));
        assert_eq!(
            m("{a}-{b}", "x-y-z"),
            pairs(&[("a", "x-y"), ("b", "z")]),
            "the first parameter takes as much as it can"
        );
        assert_eq!(m("{a}{b}", "xy"), pairs(&[("a", "x"), ("b", "y")]));
        assert_eq!(m("{a}{b}", "x"), None, "each parameter needs a character");
    }

    #[test]
    fn adversarial_names_stay_cheap() {
        let p = Pattern::parse("{a}{b}{c}{d}{e}{f}{g}{h}x").unwrap();
        let name = "y".repeat(200);
        let start = std::time::Instant::now();
        assert!(p.matches(&name).is_none());
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in [
            "",
            "orders.{id",
            "orders.id}",
            "orders.{}",
            "a.{x y}",
            "{id}.{id}",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
        let e = Pattern::parse("orders.{id").unwrap_err();
        assert!(e.to_string().contains("orders.{id"), "{e}");
    }

    #[test]
    fn prefixes_are_removed_once_in_laravel_order() {
        assert_eq!(
            guarded("private-orders.1"),
            Some(Guarded::Private {
                routed: "orders.1",
                encrypted: false
            })
        );
        assert_eq!(
            guarded("private-encrypted-vault"),
            Some(Guarded::Private {
                routed: "vault",
                encrypted: true
            })
        );
        assert_eq!(
            guarded("presence-room.1"),
            Some(Guarded::Presence { routed: "room.1" })
        );
        assert_eq!(
            guarded("private-cache-x"),
            Some(Guarded::Private {
                routed: "cache-x",
                encrypted: false
            })
        );
        assert_eq!(
            guarded("presence-private-x"),
            Some(Guarded::Presence {
                routed: "private-x"
            })
        );
        assert_eq!(guarded("orders"), None);
        assert_eq!(guarded("cache-orders"), None);
        assert_eq!(guarded("#server-to-user-1"), None);
    }

    #[test]
    fn params_accessors() {
        let p = Pattern::parse("a.{x}.{y}")
            .unwrap()
            .matches("a.1.2")
            .unwrap();
        assert_eq!(p.get("x"), Some("1"));
        assert_eq!(p.get("y"), Some("2"));
        assert_eq!(p.get("z"), None);
        assert_eq!(p.iter().collect::<Vec<_>>(), vec![("x", "1"), ("y", "2")]);
        assert_eq!(Pattern::parse("a.{x}").unwrap().source(), "a.{x}");
    }
}
