//! Command-line flags and environment variables, resolved into the apps and server options.
//!
//! Precedence for each setting: the flag, then its `RF_*` variable, then a Laravel `.env` name
//! (`PUSHER_APP_*` or `REVERB_APP_*`; when both families are set, the one named by
//! `BROADCAST_CONNECTION` / `BROADCAST_DRIVER` wins, and `PUSHER_*` when neither names one),
//! then the development default.

use crate::adapter::redis::RedisSettings;
use crate::apps::App;
use crate::hub::HubSettings;
use crate::server::ServerOptions;
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
    /// JSON file with a list of apps (fields as in the README); replaces the single app flags.
    #[arg(long, env = "RF_APPS_FILE")]
    pub apps_file: Option<PathBuf>,
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
    /// Seconds between this node's heartbeats to the other nodes.
    #[arg(long, env = "RF_NODE_HEARTBEAT", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub node_heartbeat: u64,
    /// Seconds without a heartbeat after which a node counts as dead and its presence
    /// members are removed (must exceed --node-heartbeat).
    #[arg(long, env = "RF_NODE_EXPIRY", default_value_t = 15, value_parser = clap::value_parser!(u64).range(2..=86_400))]
    pub node_expiry: u64,
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
    pub apps: Vec<App>,
    pub hub: HubSettings,
    pub server: ServerOptions,
    pub workers: usize,
    /// Kernel send buffer per client socket (0: autotuning).
    pub socket_send_buffer: u32,
    pub log_level: String,
    /// Set when `--adapter redis`.
    pub redis: Option<RedisSettings>,
    /// The metrics listener; `None` with `--metrics false`.
    pub metrics: Option<MetricsListen>,
}

/// A configuration mistake: printed on one line, exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid {0}: {1}")]
    Invalid(&'static str, String),
    #[error("cannot read apps file {0}: {1}")]
    AppsFile(String, String),
}

/// Reads an environment variable (empty counts as unset).
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name).filter(|v| !v.is_empty())
    }
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
        let cred = |flag: Option<String>, what: &str, default: &str| {
            let names = vec![
                format!("RF_APP_{what}"),
                format!("{}_APP_{what}", fam[0]),
                format!("{}_APP_{what}", fam[1]),
            ];
            pick(flag, env, &names, default)
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
            recovery_window: self.recovery_window,
            recovery_channels: self.recovery_channels.clone(),
            recovery_max_events: self.recovery_max_events,
            recovery_max_bytes: self.recovery_max_bytes,
            ..App::default()
        };
        let apps = match &self.apps_file {
            Some(path) => load_apps_file(path)?,
            None => vec![App {
                id: cred(self.app_id.clone(), "ID", "app-id"),
                key: cred(self.app_key.clone(), "KEY", "app-key"),
                secret: cred(self.app_secret.clone(), "SECRET", "app-secret"),
                ..template
            }],
        };
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
                let url = redis_url(self.redis_url.clone(), env)?;
                Some(RedisSettings {
                    url,
                    prefix: self.redis_prefix.clone(),
                    partitions: self.redis_partitions,
                    heartbeat: Duration::from_secs(self.node_heartbeat),
                    node_expiry: Duration::from_secs(self.node_expiry),
                    ..RedisSettings::default()
                })
            }
            _ => None,
        };
        let metrics = self.metrics_listen(env)?;
        Ok(Config {
            metrics,
            redis,
            addr: SocketAddr::new(ip, port),
            apps,
            hub: HubSettings {
                max_queued_frames: self.max_queued_frames.max(1),
            },
            server: ServerOptions {
                max_frame_bytes: self.max_frame_bytes.max(1024),
                max_request_bytes: self.max_request_bytes.max(1024),
                dev_auth: self.dev_auth,
                shutdown_grace: Duration::from_secs(self.shutdown_grace),
                path_prefix,
            },
            workers: self.workers,
            socket_send_buffer: self.socket_send_buffer,
            log_level: self.log_level,
        })
    }
}

impl Cli {
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
    if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://"))
    {
        return Err(ConfigError::Invalid("Redis URL", url));
    }
    Ok(url)
}

fn load_apps_file(path: &PathBuf) -> Result<Vec<App>, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::AppsFile(shown.clone(), e.to_string()))?;
    let apps: Vec<App> = serde_json::from_str(&text)
        .map_err(|e| ConfigError::AppsFile(shown.clone(), e.to_string()))?;
    if apps.is_empty() {
        return Err(ConfigError::AppsFile(shown, "it lists no apps".into()));
    }
    Ok(apps)
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
}
