//! Publishing through the signed HTTP API (`POST /apps/{id}/events`) over keep-alive
//! connections. Servers that close the connection after every reply (soketi) are handled by
//! the client pool reconnecting, and a request that failed before it was sent is retried.

use std::time::{Duration, Instant};

use crate::auth::signed_query;
use crate::target::Target;

pub struct Publisher {
    client: reqwest::Client,
    url: String,
    path: String,
    target: Target,
}

#[derive(Debug)]
pub enum PubError {
    /// The server answered, but not with success (status, or soketi's 200 with an error body).
    Rejected(String),
    /// Transport failure (connect, reset, timeout).
    Transport(String),
}

impl Publisher {
    pub fn new(target: &Target) -> Publisher {
        let client = reqwest::Client::builder()
            .http1_only()
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(10))
            .no_proxy()
            .build()
            .expect("http client");
        let path = target.events_path();
        Publisher {
            client,
            url: format!("http://{}{}", target.http.authority, path),
            path,
            target: target.clone(),
        }
    }

    /// Publishes event `bench` with `data` (a string with no characters needing JSON escapes)
    /// on one channel; returns the HTTP round-trip time.
    pub async fn publish(&self, channel: &str, data: &str) -> Result<Duration, PubError> {
        let body = format!(r#"{{"name":"bench","channels":["{channel}"],"data":"{data}"}}"#);
        let ts = crate::sys::now_us() / 1_000_000;
        let q = signed_query(&self.target.creds, "POST", &self.path, body.as_bytes(), ts);
        let url = format!("{}?{}", self.url, q);
        let mut attempt = 0;
        loop {
            let t0 = Instant::now();
            let res = self
                .client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await;
            match res {
                Ok(resp) => {
                    let status = resp.status();
                    let bytes = resp
                        .bytes()
                        .await
                        .map_err(|e| PubError::Transport(e.to_string()))?;
                    let rtt = t0.elapsed();
                    if status.is_success() && !contains(&bytes, b"\"error\"") {
                        return Ok(rtt);
                    }
                    return Err(PubError::Rejected(format!(
                        "{} {}",
                        status.as_u16(),
                        String::from_utf8_lossy(&bytes[..bytes.len().min(120)])
                    )));
                }
                Err(e) => {
                    // Only a failed connect is retried: the request never reached the server, so
                    // a retry cannot duplicate the event. (A pooled connection that the server had
                    // closed before the request was written is retried by the pool itself.)
                    attempt += 1;
                    if attempt <= 2 && e.is_connect() {
                        continue;
                    }
                    return Err(PubError::Transport(short(&e)));
                }
            }
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn short(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timeout".into();
    }
    if e.is_connect() {
        return "connect".into();
    }
    let mut last = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        last = s.to_string();
        src = s.source();
    }
    last
}
