//! What an operator needs to see about the Redis the adapter uses: which server it is (host
//! and port, never the password) for every warning, a start-up check for `--redis-required`,
//! and the TLS provider `rediss://` URLs need.

use std::time::Duration;

/// How long `--redis-required` waits for Redis at start (the issue allows 10 s in all).
pub const REQUIRED_WITHIN: Duration = Duration::from_secs(5);

/// `host:port` (or the socket path) of a Redis URL, for messages; never the password.
pub fn target(url: &str) -> String {
    match redis::Client::open(url) {
        Ok(client) => {
            let addr = client.get_connection_info().addr();
            match addr {
                redis::ConnectionAddr::TcpTls { .. } => format!("{addr} (TLS)"),
                _ => addr.to_string(),
            }
        }
        Err(_) => "the configured Redis".into(),
    }
}

/// Check that `url` is a Redis URL this build can use (rediss:// included).
pub fn check_url(url: &str) -> Result<(), String> {
    install_tls_provider();
    redis::Client::open(url).map(|_| ()).map_err(|e| {
        // The redis crate's message may quote the URL: say what is wrong without it.
        let kind = format!("{:?}", e.kind());
        format!("not a usable Redis URL ({kind}): expected redis://[user:password@]host:port[/db], rediss://... or unix:///path")
    })
}

/// rustls needs a process-wide crypto provider before the first `rediss://` connection.
pub fn install_tls_provider() {
    // Already installed (by us or by the embedding program): keep that one.
    // ring rather than aws-lc-rs: no C/cmake build. rustls 0.23.48 deprecates it for lacking
    // post-quantum key exchange, which a Redis link inside a private network can do without.
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let _ = provider.install_default();
}

/// Connect and PING within `within`; the error names the server.
pub async fn require(url: &str, within: Duration) -> Result<(), String> {
    install_tls_provider();
    let shown = target(url);
    let client = redis::Client::open(url).map_err(|e| format!("Redis at {shown}: {e}"))?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(within))
        .set_response_timeout(Some(within));
    let attempt = async {
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(within, attempt).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!(
            "Redis at {shown} is unreachable and --redis-required is set: {e}"
        )),
        Err(_) => Err(format!(
            "Redis at {shown} did not answer within {within:?} and --redis-required is set"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_never_show_the_password() {
        assert_eq!(
            target("redis://:hunter2@redis.internal:6380/0"),
            "redis.internal:6380"
        );
        assert_eq!(
            target("rediss://u:hunter2@r.example.com:6390"),
            "r.example.com:6390 (TLS)"
        );
        assert!(check_url("rediss://127.0.0.1:1").is_ok());
        let e = check_url("redis://:pw@[bad").unwrap_err();
        assert!(!e.contains("pw"), "{e}");
    }

    #[tokio::test]
    async fn require_names_the_server_and_is_quick() {
        // Port 1 on loopback: nothing listens there.
        let started = std::time::Instant::now();
        let e = require("redis://:pw@127.0.0.1:1", Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(e.contains("127.0.0.1:1"), "{e}");
        assert!(!e.contains("pw@"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
