//! The live debug console: a page and a small JSON/SSE API on a listener of its own, showing
//! every connection, subscription, refusal and event of this node as it happens, with
//! inspectors for channels and connections and an event creator.
//!
//! Off unless `--console` is given. It learns what happens only as an observer of the hub's
//! lifecycle events (`Hub::observe`): one task ([`stream`]) drains a bounded queue, turns each
//! event into a redacted JSON row ([`rows`]), counts it ([`samples`]) and hands the row to the
//! browsers watching; the hub never waits for it, and rows it could not take are counted and
//! reported in the log. What it reads of the hub otherwise goes through read-only views
//! (`hub/inspect.rs`); what it changes (disconnect, publish) goes through the same calls the
//! HTTP API uses.
//!
//! Security ([`auth`], [`server`]): loopback-only without a token; any other address needs
//! `--console-token`, checked in constant time, rate-limited per client address, exchanged
//! for an `HttpOnly; SameSite=Strict` cookie or sent as a bearer token; state-changing
//! requests must come from the console's own origin; the page runs under a self-only CSP with
//! every asset compiled into the binary. No app secret is ever sent to the browser.

mod api;
mod auth;
mod rows;
mod samples;
mod server;
mod stream;

pub use server::{bind, serve};

use std::net::SocketAddr;
use std::time::Duration;

/// Shortest `--console-token` accepted: a token is the only thing between the network and a
/// page that can disconnect clients and publish events.
pub const MIN_TOKEN_LEN: usize = 16;

/// Everything the console needs to know, resolved from the flags.
#[derive(Clone)]
pub struct ConsoleSettings {
    /// Where the console listens (`--console-host`, `--console-port`; 127.0.0.1:9602).
    pub addr: SocketAddr,
    /// The access token (`--console-token`, `RF_CONSOLE_TOKEN`); required off loopback.
    pub token: Option<String>,
    /// Show the payloads of private and presence channels (`--console-show-payloads`).
    pub show_payloads: bool,
    /// Hub events the console's queue holds before it drops (and counts) rows.
    pub queue: usize,
    /// Rows each watching browser may fall behind before it is told it missed some.
    pub stream_buffer: usize,
    /// Recent rows a newly opened page receives first.
    pub backlog_rows: usize,
    /// Payloads are cut to this many bytes in the log.
    pub max_payload_bytes: usize,
    /// Wrong tokens one client address may try per [`ConsoleSettings::auth_window`] before
    /// it gets 429.
    pub auth_failures: u32,
    pub auth_window: Duration,
    /// How long a login cookie is valid.
    pub session_ttl: Duration,
    /// Most rows an inspector answers with (channels, connections).
    pub max_inspect_rows: usize,
}

impl std::fmt::Debug for ConsoleSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSettings")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("show_payloads", &self.show_payloads)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        ConsoleSettings {
            addr: SocketAddr::from(([127, 0, 0, 1], 9602)),
            token: None,
            show_payloads: false,
            queue: 4096,
            stream_buffer: 1024,
            backlog_rows: 200,
            max_payload_bytes: 2048,
            auth_failures: 10,
            auth_window: Duration::from_secs(60),
            session_ttl: Duration::from_secs(12 * 3600),
            max_inspect_rows: 1000,
        }
    }
}

/// Why the console settings cannot be used (checked before anything listens).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsoleConfigError {
    #[error(
        "the debug console listens on {0}, which is not a loopback address: a token is required \
         (--console-token or RF_CONSOLE_TOKEN), or use --console-host 127.0.0.1"
    )]
    TokenRequired(SocketAddr),
    #[error("--console-token must be at least {MIN_TOKEN_LEN} characters")]
    TokenTooShort,
}

impl ConsoleSettings {
    /// Check the rules that must hold before the console listens.
    pub fn check(&self) -> Result<(), ConsoleConfigError> {
        match &self.token {
            Some(t) if t.len() < MIN_TOKEN_LEN => Err(ConsoleConfigError::TokenTooShort),
            Some(_) => Ok(()),
            None if self.addr.ip().is_loopback() => Ok(()),
            None => Err(ConsoleConfigError::TokenRequired(self.addr)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_required_off_loopback() {
        let mut s = ConsoleSettings::default();
        assert_eq!(s.check(), Ok(()));
        s.addr = "0.0.0.0:9602".parse().unwrap();
        assert!(matches!(
            s.check(),
            Err(ConsoleConfigError::TokenRequired(_))
        ));
        assert!(s
            .check()
            .unwrap_err()
            .to_string()
            .contains("token is required"));
        s.token = Some("short".into());
        assert_eq!(s.check(), Err(ConsoleConfigError::TokenTooShort));
        s.token = Some("a-long-enough-token".into());
        assert_eq!(s.check(), Ok(()));
        s.addr = "[::1]:9602".parse().unwrap();
        s.token = None;
        assert_eq!(s.check(), Ok(()));
        assert!(!format!("{s:?}").contains("a-long"));
    }
}
