//! Who may use the console: the token, the login cookie it is exchanged for, and the limit on
//! wrong tokens.
//!
//! Without a token (loopback only) everyone who reaches the listener is let in. With one,
//! a request must carry `Authorization: Bearer <token>` or the cookie the login form set.
//! Tokens are compared as keyed digests of equal length with `subtle`, so neither the
//! content nor the length of the real token shows in the timing. The cookie is not the token:
//! it is `issued.hex(HMAC(token, issued))`, valid for the session TTL, so it stops working
//! when the token changes. Each client address may get the token wrong a few times per
//! window; after that it gets 429 without the token being looked at.

use super::ConsoleSettings;
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use sha2::Sha256;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;

/// The login cookie's name.
pub const COOKIE: &str = "rf_console_session";

/// Client addresses whose failures are remembered at most; beyond it, old windows are
/// forgotten first and then every failure counts against one shared budget.
const MAX_TRACKED_ADDRESSES: usize = 10_000;

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key size");
    m.update(message);
    m.finalize().into_bytes().into()
}

/// Why a request is not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No credentials, or wrong ones: 401.
    Unauthorized,
    /// Too many wrong tokens from this address: 429 with a retry delay in seconds.
    TooManyAttempts(u64),
}

struct Failures {
    count: u32,
    since: Instant,
}

/// The console's access rules.
pub struct Access {
    token: Option<String>,
    /// Random per process: tokens are compared as `HMAC(compare_key, token)`.
    compare_key: [u8; 32],
    max_failures: u32,
    window: Duration,
    session_ttl: Duration,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

impl Access {
    pub fn new(settings: &ConsoleSettings) -> Access {
        Access {
            token: settings.token.clone(),
            compare_key: rand::random(),
            max_failures: settings.auth_failures.max(1),
            window: settings.auth_window,
            session_ttl: settings.session_ttl,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a token is required at all.
    pub fn required(&self) -> bool {
        self.token.is_some()
    }

    /// Let a request in by its `Authorization` and `Cookie` headers, from `peer`.
    pub fn check(
        &self,
        authorization: Option<&str>,
        cookies: Option<&str>,
        peer: IpAddr,
    ) -> Result<(), Denied> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        if let Some(value) = cookies.and_then(|c| cookie_value(c, COOKIE)) {
            if self.session_valid(token, value) {
                return Ok(());
            }
        }
        match authorization.and_then(bearer) {
            Some(given) => self.try_token(token, given, peer),
            None => Err(Denied::Unauthorized),
        }
    }

    /// The login form: on the right token, the cookie value to set.
    pub fn login(&self, given: &str, peer: IpAddr) -> Result<String, Denied> {
        let Some(token) = &self.token else {
            return Ok(String::new());
        };
        self.try_token(token, given, peer)?;
        Ok(self.session_for(token, unix_now()))
    }

    fn try_token(&self, token: &str, given: &str, peer: IpAddr) -> Result<(), Denied> {
        if let Some(wait) = self.blocked(peer) {
            return Err(Denied::TooManyAttempts(wait));
        }
        let want = mac(&self.compare_key, token.as_bytes());
        let got = mac(&self.compare_key, given.as_bytes());
        if bool::from(want.ct_eq(&got)) {
            Ok(())
        } else {
            self.failed(peer);
            Err(Denied::Unauthorized)
        }
    }

    /// Seconds until `peer` may try again, when it is over its limit.
    fn blocked(&self, peer: IpAddr) -> Option<u64> {
        let failures = self.failures.lock();
        let f = failures.get(&peer)?;
        let elapsed = f.since.elapsed();
        (f.count >= self.max_failures && elapsed < self.window)
            .then(|| (self.window - elapsed).as_secs().max(1))
    }

    fn failed(&self, peer: IpAddr) {
        let mut failures = self.failures.lock();
        if failures.len() >= MAX_TRACKED_ADDRESSES && !failures.contains_key(&peer) {
            let window = self.window;
            failures.retain(|_, f| f.since.elapsed() < window);
        }
        // Still full: every new address shares the unspecified address's budget.
        let key = if failures.len() >= MAX_TRACKED_ADDRESSES && !failures.contains_key(&peer) {
            IpAddr::from([0, 0, 0, 0])
        } else {
            peer
        };
        let f = failures.entry(key).or_insert(Failures {
            count: 0,
            since: Instant::now(),
        });
        if f.since.elapsed() >= self.window {
            *f = Failures {
                count: 0,
                since: Instant::now(),
            };
        }
        f.count += 1;
    }

    fn session_for(&self, token: &str, issued: u64) -> String {
        let sig = mac(
            token.as_bytes(),
            format!("rf-console-session:{issued}").as_bytes(),
        );
        format!("{issued}.{}", hex::encode(sig))
    }

    fn session_valid(&self, token: &str, value: &str) -> bool {
        let Some((issued, _)) = value.split_once('.') else {
            return false;
        };
        let Ok(issued) = issued.parse::<u64>() else {
            return false;
        };
        let now = unix_now();
        if issued > now + 60 || now - issued.min(now) > self.session_ttl.as_secs() {
            return false;
        }
        let want = self.session_for(token, issued);
        want.len() == value.len() && bool::from(want.as_bytes().ct_eq(value.as_bytes()))
    }

    /// The `Set-Cookie` value for a session.
    pub fn set_cookie(&self, value: &str) -> String {
        format!(
            "{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
            self.session_ttl.as_secs()
        )
    }
}

/// The `Set-Cookie` value that ends a session.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `Bearer <token>` (scheme case-insensitive).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// One cookie's value from a `Cookie` header.
fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef-token";

    fn access(failures: u32) -> Access {
        Access::new(&ConsoleSettings {
            token: Some(TOKEN.into()),
            auth_failures: failures,
            ..ConsoleSettings::default()
        })
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn no_token_lets_everyone_in() {
        let a = Access::new(&ConsoleSettings::default());
        assert!(!a.required());
        assert_eq!(a.check(None, None, ip(1)), Ok(()));
    }

    #[test]
    fn bearer_and_cookie() {
        let a = access(10);
        assert_eq!(a.check(None, None, ip(1)), Err(Denied::Unauthorized));
        let right = format!("Bearer {TOKEN}");
        assert_eq!(a.check(Some(&right), None, ip(1)), Ok(()));
        assert_eq!(
            a.check(Some(&format!("bearer  {TOKEN} ")), None, ip(1)),
            Ok(())
        );
        assert_eq!(
            a.check(Some("Bearer wrong"), None, ip(1)),
            Err(Denied::Unauthorized)
        );
        assert_eq!(
            a.check(Some(&format!("Basic {TOKEN}")), None, ip(1)),
            Err(Denied::Unauthorized)
        );
        assert_eq!(a.login("nope", ip(1)), Err(Denied::Unauthorized));
        let session = a.login(TOKEN, ip(1)).unwrap();
        assert!(!session.contains(TOKEN));
        let cookies = format!("other=1; {COOKIE}={session}");
        assert_eq!(a.check(None, Some(&cookies), ip(2)), Ok(()));
        let flipped = if session.ends_with('0') { '1' } else { '0' };
        let forged = format!("{COOKIE}={}{flipped}", &session[..session.len() - 1]);
        assert_eq!(
            a.check(None, Some(&forged), ip(2)),
            Err(Denied::Unauthorized)
        );
        let set = a.set_cookie(&session);
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        // Another token's cookie does not work here.
        let other = Access::new(&ConsoleSettings {
            token: Some("another-token-of-length".into()),
            ..ConsoleSettings::default()
        });
        let foreign = other.login("another-token-of-length", ip(1)).unwrap();
        assert_eq!(
            a.check(None, Some(&format!("{COOKIE}={foreign}")), ip(1)),
            Err(Denied::Unauthorized)
        );
    }

    #[test]
    fn expired_sessions_are_refused() {
        let a = access(10);
        let old = a.session_for(TOKEN, unix_now() - a.session_ttl.as_secs() - 5);
        assert!(!a.session_valid(TOKEN, &old));
        let future = a.session_for(TOKEN, unix_now() + 3600);
        assert!(!a.session_valid(TOKEN, &future));
        assert!(a.session_valid(TOKEN, &a.session_for(TOKEN, unix_now())));
        assert!(!a.session_valid(TOKEN, "garbage"));
    }

    #[test]
    fn wrong_tokens_are_rate_limited_per_address() {
        let a = access(3);
        for _ in 0..3 {
            assert_eq!(a.login("wrong", ip(1)), Err(Denied::Unauthorized));
        }
        // Over the limit: even the right token waits.
        assert!(matches!(a.login(TOKEN, ip(1)), Err(Denied::TooManyAttempts(s)) if s >= 1));
        assert!(matches!(
            a.check(Some("Bearer wrong"), None, ip(1)),
            Err(Denied::TooManyAttempts(_))
        ));
        // Another address is not affected.
        assert!(a.login(TOKEN, ip(2)).is_ok());
    }

    #[test]
    fn a_window_passes() {
        let a = Access::new(&ConsoleSettings {
            token: Some(TOKEN.into()),
            auth_failures: 1,
            auth_window: Duration::from_millis(30),
            ..ConsoleSettings::default()
        });
        assert_eq!(a.login("wrong", ip(1)), Err(Denied::Unauthorized));
        assert!(matches!(
            a.login(TOKEN, ip(1)),
            Err(Denied::TooManyAttempts(_))
        ));
        std::thread::sleep(Duration::from_millis(40));
        assert!(a.login(TOKEN, ip(1)).is_ok());
    }
}
