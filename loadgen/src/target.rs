//! Where the load goes: the WebSocket base URLs (subscribers round-robin over them, for a
//! multi-node run), the HTTP API base URL for publishing, and the app credentials. Refuses any
//! host that is not on the loopback interface.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::auth::Creds;

#[derive(Clone, Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// `host:port` as written, for the Host header and the request URL.
    pub authority: String,
}

#[derive(Clone, Debug)]
pub struct Target {
    pub ws: Vec<Endpoint>,
    pub http: Endpoint,
    pub creds: Creds,
    /// Connect with a lineage path (`/l/{id}/app/{key}`), one id per connection.
    pub lineage: bool,
}

impl Target {
    pub fn new(urls: &[String], publish_url: Option<&str>, creds: Creds) -> Result<Target, String> {
        if urls.is_empty() {
            return Err("at least one --url is needed".into());
        }
        let ws = urls
            .iter()
            .map(|u| parse(u))
            .collect::<Result<Vec<_>, _>>()?;
        let http = match publish_url {
            Some(u) => parse(u)?,
            None => parse(&format!("http://{}", ws[0].authority))?,
        };
        Ok(Target {
            ws,
            http,
            creds,
            lineage: false,
        })
    }

    /// The endpoint that subscriber number `i` connects to.
    pub fn ws_for(&self, i: usize) -> &Endpoint {
        &self.ws[i % self.ws.len()]
    }

    /// Full WebSocket URL of the app endpoint, as pusher-js opens it (with a fresh lineage
    /// id in front when `lineage` is set).
    pub fn ws_url(&self, ep: &Endpoint) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let lineage = if self.lineage {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            format!("/l/lg-{:x}-{n:08x}", std::process::id())
        } else {
            String::new()
        };
        format!(
            "ws://{}{lineage}/app/{}?protocol=7&client=js&version=8.4.0&flash=false",
            ep.authority, self.creds.key
        )
    }

    pub fn events_path(&self) -> String {
        format!("/apps/{}/events", self.creds.app_id)
    }
}

/// Parses `ws://host:port`, `http://host:port` (or bare `host:port`); loopback hosts only.
pub fn parse(url: &str) -> Result<Endpoint, String> {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url);
    if url.starts_with("wss://") || url.starts_with("https://") {
        return Err(format!(
            "{url}: TLS targets are not supported (loopback only)"
        ));
    }
    let authority = rest.split('/').next().unwrap_or("").to_string();
    let (host, port) = if let Some(h) = authority.strip_prefix('[') {
        let (h, p) = h
            .split_once("]:")
            .ok_or_else(|| format!("{url}: expected [v6]:port"))?;
        (h.to_string(), p)
    } else {
        let (h, p) = authority
            .rsplit_once(':')
            .ok_or_else(|| format!("{url}: expected host:port"))?;
        (h.to_string(), p)
    };
    let port: u16 = port.parse().map_err(|_| format!("{url}: bad port"))?;
    let ip: IpAddr = if host == "localhost" {
        IpAddr::from([127, 0, 0, 1])
    } else {
        host.parse()
            .map_err(|_| format!("{url}: host must be a loopback IP address or localhost"))?
    };
    if !ip.is_loopback() {
        return Err(format!(
            "{url}: refusing non-loopback target {ip}; only 127.0.0.0/8 and ::1 are allowed"
        ));
    }
    Ok(Endpoint {
        addr: SocketAddr::new(ip, port),
        authority,
    })
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn accepts_loopback_and_refuses_others() {
        assert!(parse("ws://127.0.0.1:6001").is_ok());
        assert!(parse("ws://127.0.0.2:6001/x").is_ok());
        assert!(parse("http://localhost:80").is_ok());
        assert!(parse("ws://[::1]:6001").is_ok());
        assert!(parse("ws://10.0.0.1:6001").is_err());
        assert!(parse("ws://192.168.1.1:6001").is_err());
        assert!(parse("ws://example.com:6001").is_err());
        assert!(parse("wss://127.0.0.1:6001").is_err());
    }
}
