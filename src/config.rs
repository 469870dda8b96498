//! Command-line flags and environment variables, resolved into the apps and server options.
//!
//! Precedence for each setting: the flag, then its `RF_*` variable, then a Laravel `.env` name
//! (`PUSHER_APP_*` or `REVERB_APP_*`; when both families are set, the one named by
//! `BROADCAST_CONNECTION` / `BROADCAST_DRIVER` wins, and `PUSHER_*` when neither names one),
//! then the development default.
//!
//! The apps come from exactly one place: an apps file (`--apps-file`, read strictly by
//! `appstore`), a PostgreSQL table (`--apps-database-url`), or one app from the flags and
//! environment. The development app (`app-id`/`app-key`/`app-secret`) is used only when none of
//! these configures anything; partial credentials are an error, never filled in with it.

use crate::adapter::redis::{RedisSettings, Routing};
use crate::apps::App;
use crate::appstore::commands::AppsCommand;
use crate::appstore::{AppSource, PgSettings};
use crate::console::ConsoleSettings;
pub use crate::env::{Env, ProcessEnv};
use crate::hub::HubSettings;
use crate::server::ServerOptions;
use crate::tls::TlsFiles;
use crate::webhooks::{Kinds, Target, WebhookSettings};
use clap::Parser;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// rf-broadcast: a Pusher-protocol broadcast server (pusher-js, Laravel Echo and the Pusher
/// server SDKs work unchanged).
#[derive(Debug, Parser, Clone)]
#[command(name = "rf-broadcast", version, about, long_about = None)]
pub struct Cli {
    /// Address to listen on [env: RF_HOST, REVERB_SERVER_HOST] [default: 127.0.0.1]
    #[arg(long)]
    pub host: Option<String>,
    /// Port to listen on (0 picks a free one) [env: RF_PORT, REVERB_SERVER_PORT] [default: 6001]
    #[arg(long)]
    pub port: Option<u16>,
    /// App id [env: RF_APP_ID, PUSHER_APP_ID, REVERB_APP_ID] [default: app-id]
    #[arg(long)]
    pub app_id: Option<String>,
    /// App key [env: RF_APP_KEY, PUSHER_APP_KEY, REVERB_APP_KEY] [default: app-key]
    #[arg(long)]
    pub app_key: Option<String>,
    /// App secret [env: RF_APP_SECRET, PUSHER_APP_SECRET, REVERB_APP_SECRET] [default: app-secret]
    #[arg(long)]
    pub app_secret: Option<String>,
    /// Serve under this path prefix, e.g. /ws (pusher-js wsPath, PHP SDK `path`)
    /// [env: RF_PATH_PREFIX, REVERB_SERVER_PATH] [default: none]
    #[arg(long)]
    pub path_prefix: Option<String>,
    /// Apps file: a JSON list of apps, or TOML (`[[apps]]`) when it ends in .toml; every entry
    /// needs id, key and secret (fields as in the README). Re-read on SIGHUP.
    #[arg(long, env = "RF_APPS_FILE")]
    pub apps_file: Option<PathBuf>,
    /// PostgreSQL app store, followed live (table created when missing; manage it with
    /// `rf-broadcast apps`) [env: RF_APPS_DATABASE_URL, or Laravel's DB_URL / DB_HOST, DB_PORT,
    /// DB_DATABASE, DB_USERNAME, DB_PASSWORD when DB_CONNECTION=pgsql and no other apps are set]
    #[arg(long)]
    pub apps_database_url: Option<String>,
    /// Seconds between full reloads of the apps database (changes arrive at once by
    /// LISTEN/NOTIFY; this is the safety net).
    #[arg(long, env = "RF_APPS_RELOAD_INTERVAL", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub apps_reload_interval: u64,
    /// DEVELOPMENT ONLY: answer auth requests (/pusher/auth, /broadcasting/auth, user-auth)
    /// by signing anything, and serve the demo page at /demo.
    #[arg(long, env = "RF_DEV_AUTH")]
    pub dev_auth: bool,
    /// Allow client events (client-*) on private and presence channels.
    #[arg(long, env = "RF_CLIENT_EVENTS", default_value_t = App::default().client_events, action = clap::ArgAction::Set)]
    pub client_events: bool,
    /// Send pusher_internal:subscription_count to subscribers of non-presence channels.
    #[arg(long, env = "RF_SUBSCRIPTION_COUNT")]
    pub subscription_count: bool,
    /// Maximum connections per app (0 = unlimited); over it clients get 4004.
    #[arg(long, env = "RF_MAX_CONNECTIONS", default_value_t = 0)]
    pub max_connections: usize,
    /// activity_timeout sent to clients, seconds; a silent client is pinged after this long.
    #[arg(long, env = "RF_ACTIVITY_TIMEOUT", default_value_t = App::default().activity_timeout, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub activity_timeout: u64,
    /// Seconds to wait for any frame after a server ping before closing with 4201.
    #[arg(long, env = "RF_PONG_TIMEOUT", default_value_t = App::default().pong_timeout, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub pong_timeout: u64,
    /// Client events per second per connection (excess answered with 4301).
    #[arg(long, env = "RF_CLIENT_EVENT_RATE", default_value_t = App::default().client_event_rate)]
    pub client_event_rate: u32,
    /// Largest event data (HTTP or client event), bytes; larger gets 413 / 4301.
    #[arg(long, env = "RF_MAX_EVENT_BYTES", default_value_t = App::default().max_event_bytes)]
    pub max_event_bytes: usize,
    /// Most distinct users in one presence channel.
    #[arg(long, env = "RF_MAX_PRESENCE_MEMBERS", default_value_t = App::default().max_presence_members)]
    pub max_presence_members: usize,
    /// Largest presence channel_data, bytes.
    #[arg(long, env = "RF_MAX_PRESENCE_MEMBER_BYTES", default_value_t = App::default().max_presence_member_bytes)]
    pub max_presence_member_bytes: usize,
    /// Longest channel name.
    #[arg(long, env = "RF_MAX_CHANNEL_NAME", default_value_t = App::default().max_channel_name_len)]
    pub max_channel_name: usize,
    /// Most channels per HTTP event.
    #[arg(long, env = "RF_MAX_CHANNELS_PER_EVENT", default_value_t = App::default().max_channels_per_event)]
    pub max_channels_per_event: usize,
    /// Most events per batch.
    #[arg(long, env = "RF_MAX_BATCH_EVENTS", default_value_t = App::default().max_batch_events)]
    pub max_batch_events: usize,
    /// Most channels one connection may join.
    #[arg(long, env = "RF_MAX_CHANNELS_PER_CONNECTION", default_value_t = App::default().max_channels_per_connection)]
    pub max_channels_per_connection: usize,
    /// Seconds a cache channel keeps its last event.
    #[arg(long, env = "RF_CACHE_TTL", default_value_t = App::default().cache_ttl)]
    pub cache_ttl: u64,
    /// Missed-message recovery window in seconds (0: off); clients opt in with a lineage path.
    #[arg(long, env = "RF_RECOVERY_WINDOW", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub recovery_window: u64,
    /// Channel patterns recovered (`*` wildcard, comma-separated); empty: every channel.
    #[arg(long, env = "RF_RECOVERY_CHANNELS", value_delimiter = ',')]
    pub recovery_channels: Vec<String>,
    /// Most events buffered per recovered channel.
    #[arg(long, env = "RF_RECOVERY_MAX_EVENTS", default_value_t = 100)]
    pub recovery_max_events: usize,
    /// Most bytes of buffered events per app.
    #[arg(long, env = "RF_RECOVERY_MAX_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub recovery_max_bytes: usize,
    /// Largest WebSocket message from a client, bytes; larger closes with 1009.
    #[arg(long, env = "RF_MAX_FRAME_BYTES", default_value_t = 65_536)]
    pub max_frame_bytes: usize,
    /// Largest HTTP API request body, bytes; larger answers 413.
    #[arg(long, env = "RF_MAX_REQUEST_BYTES", default_value_t = 1_048_576)]
    pub max_request_bytes: usize,
    /// Frames queued for one connection before it counts as a slow consumer (closed 4100).
    #[arg(long, env = "RF_MAX_QUEUED_FRAMES", default_value_t = 1_000)]
    pub max_queued_frames: usize,
    /// Seconds shutdown waits for connections to close after sending 4200.
    #[arg(long, env = "RF_SHUTDOWN_GRACE", default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub shutdown_grace: u64,
    /// Kernel send buffer per client socket, bytes (0 = the kernel's autotuning, up to
    /// tcp_wmem's max, 4 MiB here). Bounds what a client that stops reading pins in the kernel
    /// and how long it takes to overflow its queue; Linux doubles the value.
    #[arg(long, env = "RF_SOCKET_SEND_BUFFER", default_value_t = 131_072)]
    pub socket_send_buffer: u32,
    /// Worker threads (0 = one per core).
    #[arg(long, env = "RF_WORKERS", default_value_t = 0)]
    pub workers: usize,
    /// Log filter (error, warn, info, debug, trace, or a tracing filter).
    #[arg(long, env = "RF_LOG", default_value = "info")]
    pub log_level: String,
    /// How nodes are joined: `local` (one node) or `redis` (several nodes over Redis pub/sub).
    #[arg(long, env = "RF_ADAPTER", default_value = "local", value_parser = ["local", "redis"])]
    pub adapter: String,
    /// Redis URL for `--adapter redis` [env: RF_REDIS_URL, REDIS_URL, or Laravel's
    /// REDIS_HOST, REDIS_PORT, REDIS_USERNAME, REDIS_PASSWORD] [default: redis://127.0.0.1:6379]
    #[arg(long)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis channel, so deployments sharing one Redis never meet.
    #[arg(long, env = "RF_REDIS_PREFIX", default_value = "rf-broadcast")]
    pub redis_prefix: String,
    /// Redis pub/sub channels per app (events of a channel go to hash(channel) mod this).
    #[arg(long, env = "RF_REDIS_PARTITIONS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub redis_partitions: u32,
    /// Redis Sentinel master name: --redis-url then names the sentinels
    /// (`redis://h1:26379,h2:26379`) and the node follows the primary they name. Also given by
    /// a `redis+sentinel://h1:26379,h2:26379/MASTER` URL.
    #[arg(long, env = "RF_REDIS_SENTINEL", value_name = "MASTER")]
    pub redis_sentinel: Option<String>,
    /// A Redis Cluster seed node (repeat once per seed): sharded pub/sub (SPUBLISH/SSUBSCRIBE,
    /// Redis 7) instead of the one server of --redis-url.
    #[arg(long = "redis-cluster-url", value_name = "URL")]
    pub redis_cluster_urls: Vec<String>,
    /// Which Redis channels carry a Pusher channel's events: `partition` (every node receives
    /// every event of the app) or `channel` (one Redis channel per Pusher channel, subscribed
    /// only by the nodes with subscribers for it). Every node must use the same value.
    #[arg(long, env = "RF_REDIS_ROUTING", default_value = "partition", value_parser = ["partition", "channel"])]
    pub redis_routing: String,
    /// `--redis-routing channel`: milliseconds a channel stays subscribed in Redis after its
    /// last local subscriber left.
    #[arg(long, env = "RF_REDIS_UNSUBSCRIBE_LINGER", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub redis_unsubscribe_linger: u64,
    /// `--redis-routing channel`: the longest, in milliseconds, a new subscriber's
    /// subscription_succeeded waits for Redis to confirm the channel's SUBSCRIBE.
    #[arg(long, env = "RF_REDIS_SUBSCRIBE_WAIT", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub redis_subscribe_wait: u64,
    /// `--redis-routing channel`: channel names per SUBSCRIBE/UNSUBSCRIBE command.
    #[arg(long, env = "RF_REDIS_SUBSCRIBE_BATCH", default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub redis_subscribe_batch: u64,
    /// Seconds between this node's heartbeats to the other nodes.
    #[arg(long, env = "RF_NODE_HEARTBEAT", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub node_heartbeat: u64,
    /// Seconds without a heartbeat after which a node counts as dead and its presence
    /// members are removed (must exceed --node-heartbeat).
    #[arg(long, env = "RF_NODE_EXPIRY", default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..=86_400))]
    pub node_expiry: u64,

    // --- Webhooks (README "Webhooks") ---
    /// Webhook receiver of the single app (repeatable; comma-separated in the env var).
    #[arg(long = "webhook-url", env = "RF_WEBHOOK_URL", value_delimiter = ',')]
    pub webhook_urls: Vec<String>,
    /// Kinds sent to --webhook-url receivers (comma-separated) [default: every kind but
    /// subscription_count]
    #[arg(long, env = "RF_WEBHOOK_EVENTS")]
    pub webhook_events: Option<String>,
    /// How long channel_vacated / member_removed wait for a rejoin that cancels them.
    #[arg(long, env = "RF_WEBHOOK_DELAY", default_value = "3s", value_parser = crate::webhooks::config::parse_duration)]
    pub webhook_delay: Duration,
    /// How long events are gathered per receiver before a request goes (0 = at once).
    #[arg(long, env = "RF_WEBHOOK_BATCH_WINDOW", default_value = "250ms", value_parser = crate::webhooks::config::parse_duration)]
    pub webhook_batch_window: Duration,
    /// Most events in one webhook request.
    #[arg(long, env = "RF_WEBHOOK_BATCH_MAX", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub webhook_batch_max: u64,
    /// How long a failing webhook request is retried before its events are given up.
    #[arg(long, env = "RF_WEBHOOK_RETRY_FOR", default_value = "5m", value_parser = crate::webhooks::config::parse_duration)]
    pub webhook_retry_for: Duration,
    /// First wait before a retry; doubles (with jitter) up to --webhook-retry-max-backoff.
    #[arg(long, env = "RF_WEBHOOK_RETRY_MIN_BACKOFF", default_value = "1s", value_parser = crate::webhooks::config::parse_duration)]
    pub webhook_retry_min_backoff: Duration,
    /// Longest wait between two retries.
    #[arg(long, env = "RF_WEBHOOK_RETRY_MAX_BACKOFF", default_value = "60s", value_parser = crate::webhooks::config::parse_duration)]
    pub webhook_retry_max_backoff: Duration,
    /// A receiver must answer 2xx within this, or the attempt counts as failed.
    #[arg(long, env = "RF_WEBHOOK_TIMEOUT", default_value = "4s", value_parser = crate::webhooks::config::parse_duration)]
    pub webhook_timeout: Duration,
    /// Events queued per receiver; beyond it new events are dropped (counted, logged).
    #[arg(long, env = "RF_WEBHOOK_QUEUE", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub webhook_queue: u64,
    /// With `--adapter redis`: webhook events the cluster's Redis stream holds pending at most;
    /// beyond it new ones are dropped (counted, logged).
    #[arg(long, env = "RF_WEBHOOK_CLUSTER_MAX_PENDING", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub webhook_cluster_max_pending: u64,
    /// Requests in flight per receiver.
    #[arg(long, env = "RF_WEBHOOK_MAX_IN_FLIGHT", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub webhook_max_in_flight: u64,
    /// How long shutdown waits for queued webhooks to be delivered.
    #[arg(long, env = "RF_WEBHOOK_FLUSH_TIMEOUT", default_value = "10s", value_parser = crate::webhooks::config::parse_duration)]
    pub webhook_flush_timeout: Duration,
    // --- Listener, TLS and drain (src/listener, src/tls.rs, main.rs) ---
    /// Seconds a socket has for each HTTP request (TLS handshake, headers, body) before it
    /// upgrades, counted from the accept or the previous answer; late sockets are closed.
    #[arg(long, env = "RF_HANDSHAKE_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub handshake_timeout: u64,
    /// Open sockets from one client IP (0 = unlimited); more are closed at accept. Behind a
    /// proxy every client has the proxy's address: raise it or set 0.
    #[arg(long, env = "RF_MAX_CONNECTIONS_PER_IP", default_value_t = 1_000)]
    pub max_connections_per_ip: usize,
    /// Sockets that have not become WebSocket connections yet (mid-TLS, mid-request, or idle
    /// HTTP keep-alive), node-wide (0 = unlimited); more are closed at accept.
    #[arg(long, env = "RF_MAX_PENDING_HANDSHAKES", default_value_t = 4_096)]
    pub max_pending_handshakes: usize,
    /// New WebSocket connections per second per app and client IP (an IPv6 /64 counts as one),
    /// cluster-wide with --adapter redis (0 = off); more get 4100 (clients retry in a second).
    #[arg(long, env = "RF_CONNECTION_RATE_PER_IP", default_value_t = 0)]
    pub connection_rate_per_ip: u32,
    /// Seconds after SIGTERM during which /ready answers 503 but new connections are still
    /// served (set it to the load balancer's health-check interval); then clients get 4200.
    #[arg(long, env = "RF_DRAIN_DELAY", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub drain_delay: u64,
    /// PEM certificate chain: serve https:// and wss:// on the port (needs --tls-key;
    /// SIGHUP reloads both).
    #[arg(long, env = "RF_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "RF_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Origins whose pages may connect, comma-separated globs (`https://*.example.com`,
    /// `example.com`); others get 4009. Empty: any origin.
    #[arg(long, env = "RF_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// HTTP API requests per second per app (cluster-wide with --adapter redis); beyond it
    /// 429 with Retry-After. 0 = no limit.
    #[arg(long, env = "RF_API_REQUEST_RATE", default_value_t = 0)]
    pub api_request_rate: u32,
    /// Serve Prometheus metrics at GET /metrics on their own listener.
    #[arg(long, env = "RF_METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics: bool,
    /// Address of the metrics listener [env: RF_METRICS_HOST] [default: 127.0.0.1]
    #[arg(long)]
    pub metrics_host: Option<String>,
    /// Port of the metrics listener (0 picks a free one) [env: RF_METRICS_PORT] [default: 9601]
    #[arg(long)]
    pub metrics_port: Option<u16>,
    /// With `--adapter redis`: refuse to start (exit 2) when Redis cannot be reached, instead
    /// of serving this node's clients alone until it can.
    #[arg(long, env = "RF_REDIS_REQUIRED")]
    pub redis_required: bool,
    #[command(subcommand)]
    pub command: Option<Command>,

    // The debug console (src/console/): off unless --console.
    /// Serve the live debug console on its own listener (--console-host:--console-port).
    #[arg(long, env = "RF_CONSOLE")]
    pub console: bool,
    /// Address of the debug console; anything but loopback needs --console-token.
    #[arg(long, env = "RF_CONSOLE_HOST", default_value = "127.0.0.1")]
    pub console_host: String,
    /// Port of the debug console (0 picks a free one).
    #[arg(long, env = "RF_CONSOLE_PORT", default_value_t = 9602)]
    pub console_port: u16,
    /// Token every console request must carry (login form cookie or Authorization: Bearer);
    /// at least 16 characters.
    #[arg(long, env = "RF_CONSOLE_TOKEN", hide_env_values = true)]
    pub console_token: Option<String>,
    /// Show the payloads of private and presence channels in the console's log.
    #[arg(long, env = "RF_CONSOLE_SHOW_PAYLOADS")]
    pub console_show_payloads: bool,
    /// Hub events the console's queue holds; beyond it rows are dropped (and counted).
    #[arg(long, env = "RF_CONSOLE_QUEUE", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(16..=1_000_000))]
    pub console_queue: u64,
    /// Wrong console tokens one client address may send per minute before it gets 429.
    #[arg(long, env = "RF_CONSOLE_AUTH_FAILURES", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub console_auth_failures: u32,
}

/// Subcommands (without one, the server runs).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Manage the apps in the PostgreSQL app store.
    Apps(AppsCommand),
}

/// Where the metrics listener goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsListen {
    pub addr: SocketAddr,
    /// Set by a flag or variable: failing to bind it is fatal. The default address is
    /// best-effort (a second node on the same machine logs a warning and serves on).
    pub explicit: bool,
}

/// Everything the binary needs, resolved and checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    /// The apps at start (empty with the database store until it is loaded).
    pub apps: Vec<App>,
    /// Where the apps come from, for reloads.
    pub apps_source: AppSource,
    /// No app is configured: the public development app is in use.
    pub dev_credentials: bool,
    pub hub: HubSettings,
    pub server: ServerOptions,
    pub workers: usize,
    /// Kernel send buffer per client socket (0: autotuning).
    pub socket_send_buffer: u32,
    pub log_level: String,
    /// Set when `--adapter redis`.
    pub redis: Option<RedisSettings>,
    pub webhooks: WebhookSettings,
    /// Exit at start when Redis cannot be reached.
    pub redis_required: bool,
    /// Set when `--console`.
    pub console: Option<ConsoleSettings>,
    /// How long after SIGTERM new connections are still served before clients get 4200.
    pub drain_delay: Duration,
    /// Built-in TLS, when `--tls-cert` and `--tls-key` are given.
    pub tls: Option<TlsFiles>,
    /// The metrics listener; `None` with `--metrics false`.
    pub metrics: Option<MetricsListen>,
}

/// A configuration mistake: printed on one line, exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid {0}: {1}")]
    Invalid(&'static str, String),
    #[error(transparent)]
    AppsFile(#[from] crate::appstore::AppsFileError),
    #[error("{0}")]
    Apps(String),
}

/// The Laravel families in the order they are consulted.
fn laravel_families(env: &dyn Env) -> [&'static str; 2] {
    let conn = env
        .var("BROADCAST_CONNECTION")
        .or_else(|| env.var("BROADCAST_DRIVER"))
        .unwrap_or_default();
    if conn.eq_ignore_ascii_case("reverb") {
        ["REVERB", "PUSHER"]
    } else {
        ["PUSHER", "REVERB"]
    }
}

fn pick(flag: Option<String>, env: &dyn Env, names: &[String], default: &str) -> String {
    flag.or_else(|| names.iter().find_map(|n| env.var(n)))
        .unwrap_or_else(|| default.to_string())
}

impl Cli {
    /// Resolve flags, env vars and defaults into a checked configuration.
    pub fn resolve(self, env: &dyn Env) -> Result<Config, ConfigError> {
        let fam = laravel_families(env);
        let cred = |flag: Option<String>, what: &str| {
            let names = [
                format!("RF_APP_{what}"),
                format!("{}_APP_{what}", fam[0]),
                format!("{}_APP_{what}", fam[1]),
            ];
            flag.or_else(|| names.iter().find_map(|n| env.var(n)))
        };
        let host = pick(
            self.host.clone(),
            env,
            &["RF_HOST".into(), "REVERB_SERVER_HOST".into()],
            "127.0.0.1",
        );
        let port = match self.port {
            Some(p) => p,
            None => {
                let raw = pick(
                    None,
                    env,
                    &["RF_PORT".into(), "REVERB_SERVER_PORT".into()],
                    "6001",
                );
                raw.parse()
                    .map_err(|_| ConfigError::Invalid("port", raw.clone()))?
            }
        };
        let ip: IpAddr = if host == "localhost" {
            IpAddr::from([127, 0, 0, 1])
        } else {
            host.parse()
                .map_err(|_| ConfigError::Invalid("host (an IP address)", host.clone()))?
        };

        let template = App {
            client_events: self.client_events,
            subscription_count: self.subscription_count,
            max_connections: (self.max_connections > 0).then_some(self.max_connections),
            activity_timeout: self.activity_timeout,
            pong_timeout: self.pong_timeout,
            max_channel_name_len: self.max_channel_name,
            max_event_bytes: self.max_event_bytes,
            max_channels_per_event: self.max_channels_per_event,
            max_batch_events: self.max_batch_events,
            max_presence_members: self.max_presence_members,
            max_presence_member_bytes: self.max_presence_member_bytes,
            client_event_rate: self.client_event_rate,
            max_channels_per_connection: self.max_channels_per_connection,
            cache_ttl: self.cache_ttl,
            allowed_origins: self
                .allowed_origins
                .iter()
                .map(|o| o.trim().to_string())
                .filter(|o| !o.is_empty())
                .collect(),
            api_request_rate: (self.api_request_rate > 0).then_some(self.api_request_rate),
            connection_rate_per_ip: (self.connection_rate_per_ip > 0)
                .then_some(self.connection_rate_per_ip),
            recovery_window: self.recovery_window,
            recovery_channels: self.recovery_channels.clone(),
            recovery_max_events: self.recovery_max_events,
            recovery_max_bytes: self.recovery_max_bytes,
            ..App::default()
        };
        let webhooks = self.webhook_targets()?;
        let creds = [
            ("id", cred(self.app_id.clone(), "ID")),
            ("key", cred(self.app_key.clone(), "KEY")),
            ("secret", cred(self.app_secret.clone(), "SECRET")),
        ];
        let app_flags =
            self.app_id.is_some() || self.app_key.is_some() || self.app_secret.is_some();
        let database = match self
            .apps_database_url
            .clone()
            .or_else(|| env.var("RF_APPS_DATABASE_URL"))
        {
            Some(url) => Some(
                PgSettings::parse(&url)
                    .map_err(|e| ConfigError::Invalid("--apps-database-url", e))?,
            ),
            // Laravel's DB_* only when nothing else names the apps.
            None if self.apps_file.is_none() && creds.iter().all(|(_, v)| v.is_none()) => {
                PgSettings::from_laravel(env)
                    .transpose()
                    .map_err(|e| ConfigError::Invalid("Laravel DB_* settings", e))?
            }
            None => None,
        };
        if (self.apps_file.is_some() || database.is_some()) && app_flags {
            return Err(ConfigError::Apps(
                "--app-id/--app-key/--app-secret cannot be combined with --apps-file or --apps-database-url".into(),
            ));
        }
        let mut dev_credentials = false;
        let (apps, apps_source) = match (&self.apps_file, database) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Apps(
                    "--apps-file and --apps-database-url cannot be combined: choose one".into(),
                ))
            }
            (Some(path), None) => (
                crate::appstore::load_file(path, &template)?,
                AppSource::File {
                    path: path.clone(),
                    base: template,
                },
            ),
            (None, Some(settings)) => (
                Vec::new(),
                AppSource::Database {
                    settings,
                    base: template,
                    reload_every: Duration::from_secs(self.apps_reload_interval),
                },
            ),
            (None, None) if creds.iter().all(|(_, v)| v.is_none()) => {
                dev_credentials = true;
                (vec![template], AppSource::Flags)
            }
            (None, None) => {
                if let Some((what, _)) = creds.iter().find(|(_, v)| v.is_none()) {
                    let upper = what.to_ascii_uppercase();
                    return Err(ConfigError::Apps(format!(
                        "app {what} missing: with any of --app-id/--app-key/--app-secret (or their env vars) set, all three are needed (--app-{what}, RF_APP_{upper}, PUSHER_APP_{upper} or REVERB_APP_{upper}); the development credentials are used only when none is set"
                    )));
                }
                let [(_, id), (_, key), (_, secret)] = creds;
                (
                    vec![App {
                        id: id.unwrap_or_default(),
                        key: key.unwrap_or_default(),
                        secret: secret.unwrap_or_default(),
                        ..template
                    }],
                    AppSource::Flags,
                )
            }
        };
        let mut apps = apps;
        if matches!(apps_source, AppSource::Flags) {
            for app in &mut apps {
                app.webhooks = webhooks.clone();
            }
        } else if !webhooks.is_empty() {
            return Err(ConfigError::Invalid(
                "webhook url",
                "--webhook-url is for the single app; with --apps-file or --apps-database-url give each app \"webhooks\"".into(),
            ));
        }
        let path_prefix = pick(
            self.path_prefix.clone(),
            env,
            &["RF_PATH_PREFIX".into(), "REVERB_SERVER_PATH".into()],
            "",
        );
        if !path_prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b))
        {
            return Err(ConfigError::Invalid(
                "path prefix (letters, digits, / - _ . ~)",
                path_prefix,
            ));
        }
        for app in &apps {
            if app.id.is_empty() || app.key.is_empty() || app.secret.is_empty() {
                return Err(ConfigError::Invalid(
                    "app",
                    "id, key and secret must not be empty".into(),
                ));
            }
            if app.key.contains(':') {
                return Err(ConfigError::Invalid(
                    "app key",
                    "must not contain ':'".into(),
                ));
            }
        }
        let redis = match self.adapter.as_str() {
            "redis" => {
                if self.node_expiry <= self.node_heartbeat {
                    return Err(ConfigError::Invalid(
                        "node expiry",
                        "--node-expiry must be longer than --node-heartbeat".into(),
                    ));
                }
                let mut url = redis_url(self.redis_url.clone(), env)?;
                let mut sentinel = self.redis_sentinel.clone();
                if let Some(rest) = url.strip_prefix("redis+sentinel://") {
                    let (hosts, master) = rest.split_once('/').unwrap_or((rest, ""));
                    if master.is_empty() && sentinel.is_none() {
                        return Err(ConfigError::Invalid(
                            "Redis Sentinel URL",
                            format!("{url}: name the master after the hosts (/mymaster)"),
                        ));
                    }
                    if !master.is_empty() {
                        sentinel = Some(master.to_string());
                    }
                    url = format!("redis://{hosts}");
                }
                if let Some(bad) = self
                    .redis_cluster_urls
                    .iter()
                    .find(|u| !(u.starts_with("redis://") || u.starts_with("rediss://")))
                {
                    return Err(ConfigError::Invalid("Redis Cluster URL", bad.clone()));
                }
                Some(RedisSettings {
                    url,
                    prefix: self.redis_prefix.clone(),
                    partitions: self.redis_partitions,
                    heartbeat: Duration::from_secs(self.node_heartbeat),
                    node_expiry: Duration::from_secs(self.node_expiry),
                    routing: match self.redis_routing.as_str() {
                        "channel" => Routing::Channel,
                        _ => Routing::Partition,
                    },
                    unsubscribe_linger: Duration::from_millis(self.redis_unsubscribe_linger),
                    subscribe_wait: Duration::from_millis(self.redis_subscribe_wait),
                    subscribe_batch: self.redis_subscribe_batch as usize,
                    cluster_urls: self.redis_cluster_urls.clone(),
                    sentinel,
                    ..RedisSettings::default()
                })
            }
            _ => None,
        };
        let webhooks = self.webhook_settings();
        if self.redis_required && redis.is_none() {
            return Err(ConfigError::Apps(
                "--redis-required needs --adapter redis".into(),
            ));
        }
        let console = self.console_settings()?;
        let metrics = self.metrics_listen(env)?;
        Ok(Config {
            console,
            webhooks,
            metrics,
            redis,
            redis_required: self.redis_required,
            addr: SocketAddr::new(ip, port),
            apps,
            apps_source,
            dev_credentials,
            hub: HubSettings {
                max_queued_frames: self.max_queued_frames.max(1),
            },
            server: ServerOptions {
                max_frame_bytes: self.max_frame_bytes.max(1024),
                max_request_bytes: self.max_request_bytes.max(1024),
                dev_auth: self.dev_auth,
                shutdown_grace: Duration::from_secs(self.shutdown_grace),
                path_prefix,
                handshake_timeout: Duration::from_secs(self.handshake_timeout),
                max_connections_per_ip: self.max_connections_per_ip,
                max_pending_handshakes: self.max_pending_handshakes,
            },
            drain_delay: Duration::from_secs(self.drain_delay),
            tls: match (self.tls_cert, self.tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
                _ => None,
            },
            workers: self.workers,
            socket_send_buffer: self.socket_send_buffer,
            log_level: self.log_level,
        })
    }
}

impl Cli {
    /// The debug console's settings when `--console`; a non-loopback address without a token
    /// is an error here, so the process exits before anything listens.
    fn console_settings(&self) -> Result<Option<ConsoleSettings>, ConfigError> {
        if !self.console {
            return Ok(None);
        }
        let host = if self.console_host == "localhost" {
            IpAddr::from([127, 0, 0, 1])
        } else {
            self.console_host.parse().map_err(|_| {
                ConfigError::Invalid("console host (an IP address)", self.console_host.clone())
            })?
        };
        let settings = ConsoleSettings {
            addr: SocketAddr::new(host, self.console_port),
            token: self.console_token.clone().filter(|t| !t.is_empty()),
            show_payloads: self.console_show_payloads,
            queue: self.console_queue as usize,
            auth_failures: self.console_auth_failures,
            ..ConsoleSettings::default()
        };
        settings
            .check()
            .map_err(|e| ConfigError::Invalid("debug console", e.to_string()))?;
        Ok(Some(settings))
    }

    /// The single app's webhook targets from `--webhook-url` / `--webhook-events`.
    fn webhook_targets(&self) -> Result<Vec<Target>, ConfigError> {
        let kinds = match &self.webhook_events {
            Some(list) => Kinds::parse(list.split(','))
                .map_err(|e| ConfigError::Invalid("webhook events", e))?,
            None => Kinds::default_set(),
        };
        self.webhook_urls
            .iter()
            .filter(|u| !u.trim().is_empty())
            .map(|u| {
                Target::new(u.trim(), kinds).map_err(|e| ConfigError::Invalid("webhook url", e))
            })
            .collect()
    }

    fn webhook_settings(&self) -> WebhookSettings {
        WebhookSettings {
            delay: self.webhook_delay,
            batch_window: self.webhook_batch_window,
            batch_max: self.webhook_batch_max as usize,
            retry_for: self.webhook_retry_for,
            retry_min_backoff: self
                .webhook_retry_min_backoff
                .max(Duration::from_millis(10)),
            retry_max_backoff: self
                .webhook_retry_max_backoff
                .max(self.webhook_retry_min_backoff),
            timeout: self.webhook_timeout.max(Duration::from_millis(100)),
            queue: self.webhook_queue as usize,
            max_in_flight: self.webhook_max_in_flight as usize,
            cluster_max_pending: self.webhook_cluster_max_pending as usize,
            flush_timeout: self.webhook_flush_timeout,
            ..WebhookSettings::default()
        }
    }

    fn metrics_listen(&self, env: &dyn Env) -> Result<Option<MetricsListen>, ConfigError> {
        if !self.metrics {
            return Ok(None);
        }
        let host = self
            .metrics_host
            .clone()
            .or_else(|| env.var("RF_METRICS_HOST"));
        let port = match self.metrics_port {
            Some(p) => Some(p),
            None => match env.var("RF_METRICS_PORT") {
                Some(raw) => Some(
                    raw.parse()
                        .map_err(|_| ConfigError::Invalid("metrics port", raw.clone()))?,
                ),
                None => None,
            },
        };
        let explicit = host.is_some() || port.is_some();
        let host = host.unwrap_or_else(|| "127.0.0.1".into());
        let ip: IpAddr = if host == "localhost" {
            IpAddr::from([127, 0, 0, 1])
        } else {
            host.parse()
                .map_err(|_| ConfigError::Invalid("metrics host (an IP address)", host))?
        };
        Ok(Some(MetricsListen {
            addr: SocketAddr::new(ip, port.unwrap_or(9601)),
            explicit,
        }))
    }
}

/// The Redis URL: the flag, `RF_REDIS_URL`, `REDIS_URL`, or one built from Laravel's
/// `REDIS_HOST` / `REDIS_PORT` / `REDIS_USERNAME` / `REDIS_PASSWORD`.
fn redis_url(flag: Option<String>, env: &dyn Env) -> Result<String, ConfigError> {
    let url = flag
        .or_else(|| env.var("RF_REDIS_URL"))
        .or_else(|| env.var("REDIS_URL"));
    let url = match url {
        Some(u) => u,
        None => {
            use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
            let host = env.var("REDIS_HOST").unwrap_or_else(|| "127.0.0.1".into());
            let port = env.var("REDIS_PORT").unwrap_or_else(|| "6379".into());
            let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
            let auth = match (env.var("REDIS_USERNAME"), env.var("REDIS_PASSWORD")) {
                (Some(u), Some(p)) => format!("{}:{}@", enc(&u), enc(&p)),
                (None, Some(p)) => format!(":{}@", enc(&p)),
                (Some(u), None) => format!("{}@", enc(&u)),
                (None, None) => String::new(),
            };
            format!("redis://{auth}{host}:{port}")
        }
    };
    if !(url.starts_with("redis://")
        || url.starts_with("rediss://")
        || url.starts_with("unix://")
        || url.starts_with("redis+sentinel://"))
    {
        return Err(ConfigError::Invalid(
            "Redis URL",
            format!(
                "{} (expected redis://, rediss:// or unix://)",
                crate::redis_probe::target(&url)
            ),
        ));
    }
    // A sentinel URL names several hosts: the adapter checks each when it opens them.
    if !url.starts_with("redis+sentinel://") {
        crate::redis_probe::check_url(&url).map_err(|e| ConfigError::Invalid("Redis URL", e))?;
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(args: &[&str], vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = move |n: &str| vars.get(n).cloned();
        let mut argv = vec!["rf-broadcast"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().resolve(&env)
    }

    #[test]
    fn defaults_are_the_development_app() {
        let c = resolve(&[], &[]).unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:6001");
        assert_eq!(
            (
                c.apps[0].id.as_str(),
                c.apps[0].key.as_str(),
                c.apps[0].secret.as_str()
            ),
            ("app-id", "app-key", "app-secret")
        );
    }

    #[test]
    fn flags_beat_env_and_laravel_names_are_read() {
        let vars = [
            ("PUSHER_APP_KEY", "pkey"),
            ("REVERB_APP_KEY", "rkey"),
            ("REVERB_APP_ID", "rid"),
            ("PUSHER_APP_SECRET", "psecret"),
            ("REVERB_SERVER_PORT", "8080"),
        ];
        let c = resolve(&[], &vars).unwrap();
        assert_eq!(c.apps[0].key, "pkey");
        assert_eq!(c.apps[0].id, "rid");
        assert_eq!(c.addr.port(), 8080);
        let mut v = vars.to_vec();
        v.push(("BROADCAST_CONNECTION", "reverb"));
        assert_eq!(resolve(&[], &v).unwrap().apps[0].key, "rkey");
        v.push(("RF_APP_KEY", "rf"));
        assert_eq!(resolve(&[], &v).unwrap().apps[0].key, "rf");
        assert_eq!(
            resolve(&["--app-key", "flag"], &v).unwrap().apps[0].key,
            "flag"
        );
    }

    #[test]
    fn redis_adapter_settings() {
        assert!(resolve(&[], &[]).unwrap().redis.is_none());
        let r = resolve(&["--adapter", "redis"], &[])
            .unwrap()
            .redis
            .unwrap();
        assert_eq!(r.url, "redis://127.0.0.1:6379");
        assert_eq!(r.prefix, "rf-broadcast");
        assert_eq!(r.heartbeat, Duration::from_secs(5));
        assert_eq!(r.node_expiry, Duration::from_secs(15));
        let laravel = [
            ("REDIS_HOST", "redis.internal"),
            ("REDIS_PORT", "6380"),
            ("REDIS_PASSWORD", "p@ss"),
        ];
        let r = resolve(&["--adapter", "redis"], &laravel)
            .unwrap()
            .redis
            .unwrap();
        assert_eq!(r.url, "redis://:p%40ss@redis.internal:6380");
        let mut v = laravel.to_vec();
        v.push(("REDIS_URL", "redis://from-url:1"));
        let r = resolve(&["--adapter", "redis"], &v).unwrap().redis.unwrap();
        assert_eq!(r.url, "redis://from-url:1");
        v.push(("RF_REDIS_URL", "redis://rf:2"));
        let r = resolve(&["--adapter", "redis", "--redis-prefix", "p1"], &v)
            .unwrap()
            .redis
            .unwrap();
        assert_eq!((r.url.as_str(), r.prefix.as_str()), ("redis://rf:2", "p1"));
        let r = resolve(&["--adapter", "redis", "--redis-url", "redis://flag:3"], &v)
            .unwrap()
            .redis
            .unwrap();
        assert_eq!(r.url, "redis://flag:3");
        assert_eq!(r.routing, Routing::Partition);
        let r = resolve(
            &[
                "--adapter",
                "redis",
                "--redis-routing",
                "channel",
                "--redis-unsubscribe-linger",
                "250",
            ],
            &[],
        )
        .unwrap()
        .redis
        .unwrap();
        assert_eq!(r.routing, Routing::Channel);
        assert_eq!(r.unsubscribe_linger, Duration::from_millis(250));
        assert!(r.cluster_urls.is_empty());
        let r = resolve(
            &[
                "--adapter",
                "redis",
                "--redis-cluster-url",
                "redis://a:1",
                "--redis-cluster-url",
                "redis://b:2",
            ],
            &[],
        )
        .unwrap()
        .redis
        .unwrap();
        assert_eq!(r.cluster_urls, ["redis://a:1", "redis://b:2"]);
        let r = resolve(
            &[
                "--adapter",
                "redis",
                "--redis-url",
                "redis+sentinel://s1:26379,s2:26379/mymaster",
            ],
            &[],
        )
        .unwrap()
        .redis
        .unwrap();
        assert_eq!(r.url, "redis://s1:26379,s2:26379");
        assert_eq!(r.sentinel.as_deref(), Some("mymaster"));
        assert!(resolve(
            &[
                "--adapter",
                "redis",
                "--redis-url",
                "redis+sentinel://s1:26379"
            ],
            &[]
        )
        .is_err());
        assert!(Cli::try_parse_from(["rf-broadcast", "--redis-routing", "pattern"]).is_err());
        assert!(resolve(&["--adapter", "redis", "--redis-url", "http://x"], &[]).is_err());
        assert!(resolve(
            &[
                "--adapter",
                "redis",
                "--node-heartbeat",
                "5",
                "--node-expiry",
                "5"
            ],
            &[]
        )
        .is_err());
        assert!(Cli::try_parse_from(["x", "--adapter", "zookeeper"]).is_err());
    }

    #[test]
    fn console_flags() {
        assert!(resolve(&[], &[]).unwrap().console.is_none());
        let c = resolve(&["--console"], &[]).unwrap().console.unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:9602");
        assert!(c.token.is_none() && !c.show_payloads);
        let e = resolve(&["--console", "--console-host", "0.0.0.0"], &[]).unwrap_err();
        assert!(e.to_string().contains("token is required"), "{e}");
        let c = resolve(
            &[
                "--console",
                "--console-host",
                "0.0.0.0",
                "--console-port",
                "7000",
                "--console-token",
                "a-token-long-enough",
            ],
            &[],
        )
        .unwrap()
        .console
        .unwrap();
        assert_eq!(c.addr.to_string(), "0.0.0.0:7000");
        assert_eq!(c.token.as_deref(), Some("a-token-long-enough"));
        assert!(resolve(&["--console", "--console-token", "short"], &[]).is_err());
        assert!(resolve(&["--console-host", "0.0.0.0"], &[])
            .unwrap()
            .console
            .is_none());
    }

    #[test]
    fn listener_tls_and_drain_settings() {
        let c = resolve(&[], &[]).unwrap();
        assert_eq!(c.server.handshake_timeout, Duration::from_secs(10));
        assert_eq!(c.server.max_connections_per_ip, 1_000);
        assert_eq!(c.server.max_pending_handshakes, 4_096);
        assert_eq!(c.apps[0].connection_rate_per_ip, None);
        assert_eq!(c.drain_delay, Duration::ZERO);
        assert!(c.tls.is_none());
        let c = resolve(
            &[
                "--handshake-timeout",
                "3",
                "--tls-cert",
                "c.pem",
                "--tls-key",
                "k.pem",
                "--max-connections-per-ip",
                "0",
                "--connection-rate-per-ip",
                "20",
                "--drain-delay",
                "15",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(c.server.handshake_timeout, Duration::from_secs(3));
        assert_eq!(c.server.max_connections_per_ip, 0);
        assert_eq!(c.apps[0].connection_rate_per_ip, Some(20));
        assert_eq!(c.drain_delay, Duration::from_secs(15));
        let tls = c.tls.unwrap();
        assert_eq!(
            (tls.cert.to_str(), tls.key.to_str()),
            (Some("c.pem"), Some("k.pem"))
        );
        assert!(Cli::try_parse_from(["x", "--tls-cert", "c.pem"]).is_err());
        assert!(Cli::try_parse_from(["x", "--handshake-timeout", "0"]).is_err());
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(resolve(&["--host", "not an ip"], &[]).is_err());
        assert!(resolve(&[], &[("RF_PORT", "99999")]).is_err());
        assert!(resolve(&["--app-key", "a:b"], &[]).is_err());
        assert!(resolve(&["--path-prefix", "/ws/{x}"], &[]).is_err());
        assert_eq!(
            resolve(&[], &[("REVERB_SERVER_PATH", "/ws")])
                .unwrap()
                .server
                .path_prefix,
            "/ws"
        );
        assert!(Cli::try_parse_from(["x", "--port", "nope"]).is_err());
        assert!(Cli::try_parse_from(["x", "--activity-timeout", "0"]).is_err());
    }

    #[test]
    fn development_credentials_only_when_no_app_is_configured() {
        let c = resolve(&[], &[]).unwrap();
        assert!(c.dev_credentials);
        assert!(matches!(c.apps_source, AppSource::Flags));
        let c = resolve(
            &["--app-id", "1", "--app-key", "k", "--app-secret", "s"],
            &[],
        )
        .unwrap();
        assert!(!c.dev_credentials);
        // Partial credentials are an error naming what is missing, never filled in.
        let e = resolve(&["--app-key", "k", "--app-id", "1"], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("app secret missing"), "{e}");
        assert!(e.contains("PUSHER_APP_SECRET"), "{e}");
        let e = resolve(&[], &[("PUSHER_APP_SECRET", "s")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("app id missing"), "{e}");
    }

    #[test]
    fn one_source_of_apps() {
        let e = resolve(
            &[
                "--apps-file",
                "/x.json",
                "--apps-database-url",
                "postgres://h/d",
            ],
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cannot be combined"), "{e}");
        let e = resolve(
            &["--apps-database-url", "postgres://h/d", "--app-key", "k"],
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cannot be combined"), "{e}");
        let c = resolve(&["--apps-database-url", "postgres://u:pw@h/d"], &[]).unwrap();
        assert!(c.apps.is_empty() && !c.dev_credentials);
        match c.apps_source {
            AppSource::Database {
                settings,
                reload_every,
                ..
            } => {
                assert_eq!(settings.target(), "h:5432/d");
                assert_eq!(reload_every, Duration::from_secs(30));
            }
            other => panic!("{other:?}"),
        }
        assert!(resolve(&["--apps-database-url", "mysql://h/d"], &[]).is_err());
        // Laravel's DB_* name the store only when nothing else names the apps.
        let laravel = [
            ("DB_CONNECTION", "pgsql"),
            ("DB_HOST", "pg"),
            ("DB_DATABASE", "shop"),
        ];
        let c = resolve(&[], &laravel).unwrap();
        assert!(matches!(c.apps_source, AppSource::Database { .. }));
        let mut with_app = laravel.to_vec();
        with_app.extend([
            ("PUSHER_APP_ID", "1"),
            ("PUSHER_APP_KEY", "k"),
            ("PUSHER_APP_SECRET", "s"),
        ]);
        let c = resolve(&[], &with_app).unwrap();
        assert!(matches!(c.apps_source, AppSource::Flags));
        assert_eq!(c.apps[0].key, "k");
        let c = resolve(&[], &[("DB_CONNECTION", "mysql")]).unwrap();
        assert!(c.dev_credentials);
    }

    #[test]
    fn redis_required_and_tls_urls() {
        assert!(resolve(&["--redis-required"], &[]).is_err());
        let c = resolve(&["--adapter", "redis", "--redis-required"], &[]).unwrap();
        assert!(c.redis_required);
        let r = resolve(
            &[
                "--adapter",
                "redis",
                "--redis-url",
                "rediss://:pw@r.example.com:6380",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(r.redis.unwrap().url, "rediss://:pw@r.example.com:6380");
        let e = resolve(&["--adapter", "redis", "--redis-url", "http://:pw@x"], &[])
            .unwrap_err()
            .to_string();
        assert!(!e.contains("pw"), "{e}");
    }

    #[test]
    fn origins_rates_and_the_metrics_listener() {
        let c = resolve(&[], &[]).unwrap();
        assert!(c.apps[0].allowed_origins.is_empty());
        assert_eq!(c.apps[0].api_request_rate, None);
        assert_eq!(
            c.metrics,
            Some(MetricsListen {
                addr: "127.0.0.1:9601".parse().unwrap(),
                explicit: false
            })
        );
        let c = resolve(
            &[
                "--allowed-origins",
                "https://*.example.com, example.org",
                "--api-request-rate",
                "50",
                "--metrics-port",
                "9700",
            ],
            &[("RF_METRICS_HOST", "0.0.0.0")],
        )
        .unwrap();
        assert_eq!(
            c.apps[0].allowed_origins,
            ["https://*.example.com", "example.org"]
        );
        assert_eq!(c.apps[0].api_request_rate, Some(50));
        assert_eq!(
            c.metrics,
            Some(MetricsListen {
                addr: "0.0.0.0:9700".parse().unwrap(),
                explicit: true
            })
        );
        assert!(resolve(&["--metrics", "false"], &[])
            .unwrap()
            .metrics
            .is_none());
        assert!(resolve(&[], &[("RF_METRICS_PORT", "x")]).is_err());
        assert!(resolve(&["--metrics-host", "nope"], &[]).is_err());
    }

    #[test]
    fn webhook_flags() {
        let c = resolve(&[], &[]).unwrap();
        assert!(c.apps[0].webhooks.is_empty());
        assert_eq!(c.webhooks, WebhookSettings::default());
        let c = resolve(
            &[
                "--webhook-url",
                "http://127.0.0.1:9/a",
                "--webhook-url",
                "https://hooks.example.com/b",
                "--webhook-events",
                "channel_occupied,member_added",
                "--webhook-delay",
                "500ms",
                "--webhook-retry-for",
                "2m",
            ],
            &[],
        )
        .unwrap();
        let w = &c.apps[0].webhooks;
        assert_eq!(w.len(), 2);
        use crate::webhooks::config::Kind;
        assert!(w[1].wants(Kind::MemberAdded, "presence-x"));
        assert!(!w[1].wants(Kind::ChannelVacated, "x"));
        assert_eq!(c.webhooks.delay, Duration::from_millis(500));
        assert_eq!(c.webhooks.retry_for, Duration::from_secs(120));
        let c = resolve(&["--webhook-url", "http://a/1,http://b/2"], &[]).unwrap();
        assert_eq!(c.apps[0].webhooks.len(), 2);
        let e = resolve(&["--webhook-url", "nope"], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("webhook url"), "{e}");
        let e = resolve(
            &[
                "--webhook-url",
                "http://a/",
                "--webhook-events",
                "channel_occupied,bogus",
            ],
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("webhook events") && e.contains("bogus"), "{e}");
        assert!(Cli::try_parse_from(["x", "--webhook-delay", "soon"]).is_err());

        // In the apps file: per app, checked, errors naming the field.
        let dir = std::env::temp_dir().join(format!("rf-wh-apps-{:x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("apps.json");
        let path = file.to_str().unwrap();
        std::fs::write(
            &file,
            r#"[{"id":"1","key":"k","secret":"s","webhooks":[{"url":"https://h.example/x","events":["member_added"]}]}]"#,
        )
        .unwrap();
        let c = resolve(&["--apps-file", path], &[]).unwrap();
        assert!(c.apps[0].webhooks[0].wants(Kind::MemberAdded, "presence-a"));
        assert!(resolve(&["--apps-file", path, "--webhook-url", "http://a/"], &[]).is_err());
        std::fs::write(
            &file,
            r#"[{"id":"1","key":"k","secret":"s","webhooks":[{"url":"https://h.example/x","events":["member_joined"]}]}]"#,
        )
        .unwrap();
        let e = resolve(&["--apps-file", path], &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("webhooks[].events") && e.contains("member_joined"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
