//! The per-app rate limits of the HTTP and WebSocket edges, off unless set: HTTP API requests
//! per second (`api_request_rate`) and new WebSocket connections per second per client address
//! (`connection_rate_per_ip`, counted by the upgrade handler, refused with 4100). Windows are
//! whole seconds of the Unix clock. Every node counts its own hits; with a cluster counter (the
//! Redis adapter's, `adapter/redis_counter.rs`) the count is the whole cluster's, so a limit
//! holds however requests are spread over nodes. Both limits share the one counter: a window
//! is named by a key (`api#{app_id}`, `conn#{app_id}#{client}`) and a second.
//!
//! Cost per request or upgrade of a limited app: one lock and hash lookup on this node (and a
//! short key string); with the cluster counter also one Redis round trip (a pipelined `INCR` +
//! `EXPIRE`), skipped when this node alone is already over the limit. Unlimited apps pay
//! nothing. When Redis cannot answer (down, or slower than its response timeout) the node falls
//! back to its own count: the limit then holds per node until Redis is back.

use crate::apps::App;
use crate::hub::WindowCounter;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Entries in this node's window table before the ones of past seconds are swept (per-address
/// keys come and go; per-app keys alone never get near it).
const SWEEP_AT: usize = 4096;

/// This node's count: per window key, the current second and the hits in it.
#[derive(Default)]
struct LocalCounter {
    windows: Mutex<HashMap<String, (u64, u64)>>,
}

impl LocalCounter {
    fn hit(&self, key: &str, second: u64) -> u64 {
        let mut windows = self.windows.lock();
        if let Some((s, n)) = windows.get_mut(key) {
            if *s == second {
                *n += 1;
            } else {
                *s = second;
                *n = 1;
            }
            return *n;
        }
        if windows.len() >= SWEEP_AT {
            windows.retain(|_, (s, _)| *s == second);
        }
        windows.insert(key.to_string(), (second, 1));
        1
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.windows.lock().len()
    }
}

/// A hit over its limit: the limit it went over (per second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverRate(pub u32);

/// Admits or refuses API requests and WebSocket upgrades by their app's rates.
#[derive(Default)]
pub struct RateLimiter {
    local: LocalCounter,
    cluster: Option<Arc<dyn WindowCounter>>,
}

impl RateLimiter {
    /// A limiter counting on this node only.
    pub fn local() -> RateLimiter {
        RateLimiter::default()
    }

    /// A limiter counting cluster-wide through `counter`.
    pub fn cluster(counter: Arc<dyn WindowCounter>) -> RateLimiter {
        RateLimiter {
            local: LocalCounter::default(),
            cluster: Some(counter),
        }
    }

    /// Count one API request of `app` against its `api_request_rate`.
    pub async fn admit_api(&self, app: &App) -> Result<(), OverRate> {
        match app.api_request_rate {
            Some(limit) if limit > 0 => self.admit(&format!("api#{}", app.id), limit).await,
            _ => Ok(()),
        }
    }

    /// Count one WebSocket upgrade of `app` from `ip` against its `connection_rate_per_ip`.
    pub async fn admit_connection(&self, app: &App, ip: IpAddr) -> Result<(), OverRate> {
        match app.connection_rate_per_ip {
            Some(limit) if limit > 0 => {
                let key = format!("conn#{}#{}", app.id, client(ip));
                self.admit(&key, limit).await
            }
            _ => Ok(()),
        }
    }

    async fn admit(&self, key: &str, limit: u32) -> Result<(), OverRate> {
        let second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let here = self.local.hit(key, second);
        let count = match &self.cluster {
            // This node's count is a lower bound of the cluster's: no need to ask.
            Some(_) if here > u64::from(limit) => here,
            Some(cluster) => cluster.hit(key, second).await.unwrap_or(here),
            None => here,
        };
        if count > u64::from(limit) {
            return Err(OverRate(limit));
        }
        Ok(())
    }
}

/// The client a connection rate counts: an IPv4 address (also when seen through an IPv6 socket
/// as `::ffff:a.b.c.d`), or an IPv6 address's /64, the block one host or one home network is
/// given (counting single IPv6 addresses would let one client use 2^64 budgets).
fn client(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                format!("{}/64", Ipv6Addr::from(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::CountFuture;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn limited(rate: u32) -> App {
        App {
            api_request_rate: Some(rate),
            connection_rate_per_ip: Some(rate),
            ..App::new("a", "k", "s")
        }
    }

    #[tokio::test]
    async fn counts_per_app_and_refuses_over_the_rate() {
        let limiter = RateLimiter::local();
        let app = limited(3);
        let mut refused = 0;
        for _ in 0..10 {
            if limiter.admit_api(&app).await.is_err() {
                refused += 1;
            }
        }
        // A window boundary may fall inside the loop: at most 3 per window get through.
        assert!((4..=7).contains(&refused), "refused {refused}");
        let other = App {
            id: "b".into(),
            ..limited(3)
        };
        assert!(limiter.admit_api(&other).await.is_ok(), "apps count apart");
        assert!(limiter.admit_api(&App::new("c", "k", "s")).await.is_ok());
        let off = App {
            api_request_rate: Some(0),
            ..App::new("d", "k", "s")
        };
        for _ in 0..100 {
            assert!(limiter.admit_api(&off).await.is_ok(), "0 is off");
        }
    }

    #[tokio::test]
    async fn connections_count_per_app_and_client_apart_from_the_api() {
        let limiter = RateLimiter::local();
        let app = limited(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let mut refused = 0;
        for _ in 0..6 {
            if limiter.admit_connection(&app, a).await == Err(OverRate(2)) {
                refused += 1;
            }
        }
        assert!((2..=4).contains(&refused), "refused {refused}");
        assert!(limiter.admit_connection(&app, b).await.is_ok());
        assert!(limiter.admit_api(&app).await.is_ok(), "the API has its own");
        let unlimited = App::new("u", "k", "s");
        for _ in 0..100 {
            assert!(limiter.admit_connection(&unlimited, a).await.is_ok());
        }
    }

    #[test]
    fn clients_are_ipv4_addresses_and_ipv6_slash_64s() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(client(ip("10.1.2.3")), "10.1.2.3");
        assert_eq!(client(ip("::ffff:10.1.2.3")), "10.1.2.3");
        assert_eq!(client(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(
            client(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            client(ip("2001:db8:1:2::"))
        );
        assert_ne!(client(ip("2001:db8:1:3::1")), client(ip("2001:db8:1:2::1")));
    }

    #[test]
    fn a_new_second_starts_a_new_window_and_old_ones_are_swept() {
        let c = LocalCounter::default();
        assert_eq!(c.hit("a", 1), 1);
        assert_eq!(c.hit("a", 1), 2);
        assert_eq!(c.hit("a", 2), 1);
        for i in 0..SWEEP_AT {
            c.hit(&format!("k{i}"), 2);
        }
        assert_eq!(c.len(), SWEEP_AT + 1);
        c.hit("new", 3);
        assert_eq!(c.len(), 1, "the windows of second 2 are gone");
    }

    /// A cluster counter that reports other nodes' hits on top of ours.
    struct Busy {
        others: u64,
        asked: AtomicU64,
    }

    impl WindowCounter for Busy {
        fn hit<'a>(&'a self, _key: &'a str, _second: u64) -> CountFuture<'a> {
            let n = self.asked.fetch_add(1, Ordering::Relaxed) + 1;
            Box::pin(std::future::ready(Some(self.others + n)))
        }
    }

    struct Down;

    impl WindowCounter for Down {
        fn hit<'a>(&'a self, _key: &'a str, _second: u64) -> CountFuture<'a> {
            Box::pin(std::future::ready(None))
        }
    }

    #[tokio::test]
    async fn the_cluster_count_decides_and_a_missing_one_falls_back() {
        let busy = Arc::new(Busy {
            others: 100,
            asked: AtomicU64::new(0),
        });
        let limiter = RateLimiter::cluster(busy.clone());
        assert_eq!(limiter.admit_api(&limited(50)).await, Err(OverRate(50)));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            limiter.admit_connection(&limited(50), ip).await,
            Err(OverRate(50))
        );
        let down = RateLimiter::cluster(Arc::new(Down));
        assert!(down.admit_api(&limited(1)).await.is_ok());
        assert!(down.admit_connection(&limited(1), ip).await.is_ok());
    }
}
