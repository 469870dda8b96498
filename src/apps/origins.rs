//! Allowed origins of an app: which browser pages may open a WebSocket to it.
//!
//! `allowed_origins` holds patterns; an empty list (the default) or `*` allows any origin.
//! A pattern with a scheme (`https://*.example.com`, `http://localhost:*`) is matched against
//! the whole `Origin` header (`scheme://host[:port]`); one without (`example.com`,
//! `*.example.com`, as Laravel Reverb writes them) against its host alone. `*` stands for any
//! run of characters, dots included; matching ignores ASCII case. A request without an
//! `Origin` header (a server-side client) is refused when the app restricts origins, as Reverb
//! does: such a client can send the header it needs.

/// Whether `origin` (the request's `Origin` header) may connect under `patterns`.
pub fn origin_allowed(patterns: &[String], origin: Option<&str>) -> bool {
    if patterns.is_empty() || patterns.iter().any(|p| p.trim() == "*") {
        return true;
    }
    let Some(origin) = origin.map(str::trim).filter(|o| !o.is_empty()) else {
        return false;
    };
    let origin = origin.to_ascii_lowercase();
    let host = host_of(&origin);
    patterns.iter().any(|p| {
        let p = p.trim().to_ascii_lowercase();
        if p.contains("://") {
            glob(&p, origin.trim_end_matches('/'))
        } else {
            host.is_some_and(|h| glob(&p, h))
        }
    })
}

/// The host of `scheme://host[:port][/...]` (an IPv6 host keeps its brackets).
fn host_of(origin: &str) -> Option<&str> {
    let rest = origin.split_once("://")?.1;
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = if authority.starts_with('[') {
        authority.split_inclusive(']').next().unwrap_or(authority)
    } else {
        authority.split(':').next().unwrap_or(authority)
    };
    (!host.is_empty()).then_some(host)
}

/// `*` matches any run of characters (possibly empty); everything else matches itself.
/// Iterative with one backtrack point, so a hostile pattern or origin costs O(len²) at worst.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(patterns: &[&str], origin: Option<&str>) -> bool {
        let patterns: Vec<String> = patterns.iter().map(|s| s.to_string()).collect();
        origin_allowed(&patterns, origin)
    }

    #[test]
    fn no_patterns_or_a_star_allow_everything() {
        assert!(allowed(&[], None));
        assert!(allowed(&[], Some("https://evil.test")));
        assert!(allowed(&["https://a.test", "*"], None));
    }

    #[test]
    fn full_origin_patterns() {
        let p = ["https://*.example.com", "http://localhost:*"];
        assert!(allowed(&p, Some("https://app.example.com")));
        assert!(allowed(&p, Some("https://a.b.example.com")));
        assert!(allowed(&p, Some("HTTPS://App.Example.com")));
        assert!(allowed(&p, Some("http://localhost:5173")));
        assert!(!allowed(&p, Some("http://app.example.com")), "scheme");
        assert!(!allowed(&p, Some("https://example.com")), "no subdomain");
        assert!(!allowed(&p, Some("https://example.com.evil.test")));
        assert!(!allowed(&p, Some("https://evilexample.com")));
        assert!(!allowed(&p, Some("null")), "opaque origin");
        assert!(!allowed(&p, None), "no Origin header");
    }

    #[test]
    fn host_patterns_as_reverb_writes_them() {
        let p = ["example.com", "*.example.org"];
        assert!(allowed(&p, Some("https://example.com")));
        assert!(allowed(&p, Some("http://example.com:8080")));
        assert!(allowed(&p, Some("https://x.example.org")));
        assert!(!allowed(&p, Some("https://example.org")));
        assert!(!allowed(&p, Some("https://www.example.com")));
        assert!(!allowed(&p, Some("example.com")), "not an origin");
        assert!(allowed(&["[::1]"], Some("http://[::1]:3000")));
    }

    #[test]
    fn glob_edge_cases() {
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "aXbYc"));
        assert!(!glob("a*b*c", "aXbY"));
        assert!(glob("**a", "a"));
        assert!(!glob("a", "ab"));
        // A pathological pattern finishes quickly.
        let text = "a".repeat(2000);
        assert!(!glob(&format!("{}b", "*a".repeat(50)), &text));
    }
}
