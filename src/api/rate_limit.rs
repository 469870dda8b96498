//! The HTTP API's per-app request rate (`api_request_rate`, requests per second; off unless
//! set). Windows are whole seconds of the Unix clock. Every node counts its own requests; with
//! a cluster counter (the hub's `WindowCounter` port; the Redis one is
//! `adapter/redis_counter.rs`) the count is the whole
//! cluster's, so the limit holds however requests are spread over nodes.
//!
//! Cost per request of a limited app: one lock and hash lookup on this node; with the cluster
//! counter also one Redis round trip (a pipelined `INCR` + `EXPIRE`), skipped when this node
//! alone is already over the limit. Unlimited apps pay nothing. When Redis cannot answer (down,
//! or slower than its response timeout) the node falls back to its own count: the limit then
//! holds per node until Redis is back.

use super::ApiError;
use crate::apps::App;
use crate::hub::WindowCounter;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// This node's count: per app, the current window and the hits in it.
#[derive(Default)]
struct LocalCounter {
    windows: Mutex<HashMap<String, (u64, u64)>>,
}

impl LocalCounter {
    fn hit(&self, app_id: &str, second: u64) -> u64 {
        let mut windows = self.windows.lock();
        match windows.get_mut(app_id) {
            Some((s, n)) if *s == second => {
                *n += 1;
                *n
            }
            Some(entry) => {
                *entry = (second, 1);
                1
            }
            None => {
                windows.insert(app_id.to_string(), (second, 1));
                1
            }
        }
    }
}

/// Admits or refuses API requests by their app's `api_request_rate`.
#[derive(Default)]
pub struct ApiRateLimiter {
    local: LocalCounter,
    cluster: Option<Arc<dyn WindowCounter>>,
}

impl ApiRateLimiter {
    /// A limiter counting on this node only.
    pub fn local() -> ApiRateLimiter {
        ApiRateLimiter::default()
    }

    /// A limiter counting cluster-wide through `counter`.
    pub fn cluster(counter: Arc<dyn WindowCounter>) -> ApiRateLimiter {
        ApiRateLimiter {
            local: LocalCounter::default(),
            cluster: Some(counter),
        }
    }

    /// Count one request of `app`; refused (429) when the app is over its rate this second.
    pub async fn admit(&self, app: &App) -> Result<(), ApiError> {
        let Some(limit) = app.api_request_rate else {
            return Ok(());
        };
        let second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let here = self.local.hit(&app.id, second);
        let count = match &self.cluster {
            // This node's count is a lower bound of the cluster's: no need to ask.
            Some(_) if here > u64::from(limit) => here,
            Some(cluster) => cluster.hit(&app.id, second).await.unwrap_or(here),
            None => here,
        };
        if count > u64::from(limit) {
            return Err(ApiError::TooManyRequests(format!(
                "Too many requests: the app allows {limit} API requests per second"
            )));
        }
        Ok(())
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
            ..App::new("a", "k", "s")
        }
    }

    #[tokio::test]
    async fn counts_per_app_and_refuses_over_the_rate() {
        let limiter = ApiRateLimiter::local();
        let app = limited(3);
        let mut refused = 0;
        for _ in 0..10 {
            if limiter.admit(&app).await.is_err() {
                refused += 1;
            }
        }
        // A window boundary may fall inside the loop: at most 3 per window get through.
        assert!((4..=7).contains(&refused), "refused {refused}");
        let other = App {
            id: "b".into(),
            ..limited(3)
        };
        assert!(limiter.admit(&other).await.is_ok(), "apps count apart");
        assert!(limiter.admit(&App::new("c", "k", "s")).await.is_ok());
    }

    #[test]
    fn a_new_second_starts_a_new_window() {
        let c = LocalCounter::default();
        assert_eq!(c.hit("a", 1), 1);
        assert_eq!(c.hit("a", 1), 2);
        assert_eq!(c.hit("a", 2), 1);
    }

    /// A cluster counter that reports other nodes' hits on top of ours.
    struct Busy {
        others: u64,
        asked: AtomicU64,
    }

    impl WindowCounter for Busy {
        fn hit<'a>(&'a self, _app: &'a str, _second: u64) -> CountFuture<'a> {
            let n = self.asked.fetch_add(1, Ordering::Relaxed) + 1;
            Box::pin(std::future::ready(Some(self.others + n)))
        }
    }

    struct Down;

    impl WindowCounter for Down {
        fn hit<'a>(&'a self, _app: &'a str, _second: u64) -> CountFuture<'a> {
            Box::pin(std::future::ready(None))
        }
    }

    #[tokio::test]
    async fn the_cluster_count_decides_and_a_missing_one_falls_back() {
        let busy = Arc::new(Busy {
            others: 100,
            asked: AtomicU64::new(0),
        });
        let limiter = ApiRateLimiter::cluster(busy.clone());
        let err = limiter.admit(&limited(50)).await.unwrap_err();
        assert_eq!(err.status().as_u16(), 429);
        let down = ApiRateLimiter::cluster(Arc::new(Down));
        assert!(down.admit(&limited(1)).await.is_ok());
    }
}
