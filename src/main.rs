//! The `rf-broadcast` binary: parse the configuration, start logging, serve, and handle the
//! signals: SIGTERM or SIGINT drains (`/ready` 503 at once, new connections served for
//! `--drain-delay`, then every client closed with 4200 within `--shutdown-grace`), a second one
//! exits at once; SIGHUP runs the reload actions (the TLS certificate, ...). Everything else
//! lives in the library.

use clap::Parser;
use rf_broadcast::cli::{serve_metrics, Cli, Command, Config, Metrics, MetricsListen, ProcessEnv};
use rf_broadcast::{AppState, Apps, Hub, Readiness, ReloadHooks, Serving, Tls};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

// jemalloc packs each connection's small allocations tighter than glibc's malloc: 2.2 -> 1.9 KB
// RSS per idle connection (BENCHMARKS.md). Library users keep their own allocator.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

// jemalloc's options, read before `main` (the `malloc_conf` string of jemalloc's manual; the
// `_RJEM_MALLOC_CONF` environment variable overrides them). Freed pages are kept "dirty" for
// `dirty_decay_ms` (10 s) and then returned to the kernel, but jemalloc only counts that time
// while the program allocates: a server that went idle after a flood would keep them for good.
// A background thread returns them on time instead (RELIABILITY.md, "Floods").
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: &[u8; 23] = b"background_thread:true\0";

/// Pending connections the kernel may queue before `accept` (connection bursts).
const LISTEN_BACKLOG: u32 = 4096;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Some(Command::Apps(cmd)) = cli.command.clone() {
        std::process::exit(rf_broadcast::cli::run_apps_command(
            cmd,
            cli.apps_database_url.clone(),
            &ProcessEnv,
        ));
    }
    let mut config = match cli.resolve(&ProcessEnv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rf-broadcast: {e}");
            std::process::exit(2);
        }
    };
    // A certificate or key that cannot be used is a configuration mistake: exit 2, naming it.
    let tls = match &config.tls {
        Some(files) => match Tls::load(files.clone()) {
            Ok(tls) => Some(tls),
            Err(e) => {
                eprintln!("rf-broadcast: {e}");
                std::process::exit(2);
            }
        },
        None => None,
    };
    let filter = rf_broadcast::log_filter(&config.log_level);
    let shown = filter.to_string();
    tracing_subscriber::fmt().with_env_filter(filter).init();
    // What is logged, caps included: at debug and trace, where it matters (SECURITY.md, "Logs").
    tracing::debug!("log filter: {shown}");

    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if config.workers > 0 {
        rt.worker_threads(config.workers);
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rf-broadcast: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    // Apps from the database, --redis-required: failing here is a configuration error.
    if let Err(e) = rt.block_on(rf_broadcast::cli::prepare(&mut config)) {
        eprintln!("rf-broadcast: {e}");
        std::process::exit(2);
    }
    if let Err(e) = rt.block_on(run(config, tls)) {
        eprintln!("rf-broadcast: {}", e.message);
        std::process::exit(e.code);
    }
}

/// Why the server stopped with an error, and the exit code that says so: 2 for what the
/// operator must change (an address that cannot be had, like a bad flag), 1 for the rest.
struct Failure {
    code: i32,
    message: String,
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure {
            code: 1,
            message: e.to_string(),
        }
    }
}

/// The listening socket, or a failure that names the address and how to pick another.
fn listen(config: &Config) -> Result<tokio::net::TcpListener, Failure> {
    let addr = config.addr;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if config.socket_send_buffer > 0 {
        // Inherited by accepted sockets: bounds what a stalled client can pin in the kernel.
        socket.set_send_buffer_size(config.socket_send_buffer)?;
    }
    if let Err(e) = socket.bind(addr) {
        use std::io::ErrorKind;
        let why = match e.kind() {
            ErrorKind::AddrInUse => {
                "the address is already in use (another process listens on it)".to_string()
            }
            ErrorKind::AddrNotAvailable => "the address is not one of this machine's".to_string(),
            ErrorKind::PermissionDenied => {
                "permission denied (ports below 1024 need privileges)".to_string()
            }
            _ => e.to_string(),
        };
        return Err(Failure {
            code: 2,
            message: format!(
                "cannot listen on {addr}: {why}. Pick another port with --port N \
                 (or RF_PORT=N; --port 0 picks a free one) or another address with --host \
                 (or RF_HOST)."
            ),
        });
    }
    Ok(socket.listen(LISTEN_BACKLOG)?)
}

async fn run(config: Config, tls: Option<Arc<Tls>>) -> Result<(), Failure> {
    let listener = listen(&config)?;
    let addr = listener.local_addr()?;
    let hub = Hub::new(Apps::new(config.apps.clone()), config.hub.clone());
    // The console's address is taken now (a taken one stops the start); it is served once
    // the webhook sender runs, whose attempts it shows.
    let console = match config.console.clone() {
        Some(settings) => {
            let listener = rf_broadcast::cli::bind_console(&settings).await?;
            Some((listener, settings))
        }
        None => None,
    };
    let mut adapter = None;
    if let Some(redis) = &config.redis {
        adapter = Some(
            rf_broadcast::RedisAdapter::start(&hub, redis.clone()).map_err(|e| Failure {
                code: 2,
                message: e.to_string(),
            })?,
        );
        tracing::info!(
            "cluster: redis adapter, prefix '{}', heartbeat {:?}, node expiry {:?}",
            redis.prefix,
            redis.heartbeat,
            redis.node_expiry
        );
    }
    let webhooks =
        rf_broadcast::cli::Webhooks::start(&hub, config.webhooks.clone(), config.redis.as_ref())
            .await
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    if let Some((listener, settings)) = console {
        tracing::info!("debug console on http://{}", listener.local_addr()?);
        let attempts = webhooks.as_ref().map(|w| w.watch_attempts());
        rf_broadcast::cli::serve_console(listener, hub.clone(), settings, attempts);
    }
    let (scheme, secure) = if tls.is_some() {
        ("https", true)
    } else {
        ("http", false)
    };
    tracing::info!(
        "rf-broadcast listening on {scheme}://{addr} ({} app(s))",
        config.apps.len()
    );
    if let Some(app) = config.apps.first() {
        tracing::info!(
            "Laravel .env: BROADCAST_CONNECTION=pusher PUSHER_APP_ID={} PUSHER_APP_KEY={} PUSHER_APP_SECRET=<secret> PUSHER_HOST={} PUSHER_PORT={} PUSHER_SCHEME={scheme}",
            app.id, app.key, addr.ip(), addr.port()
        );
        tracing::info!(
            "Echo: new Echo({{ broadcaster: 'pusher', key: '{}', cluster: 'mt1', wsHost: '{}', wsPort: {}, wssPort: {}, forceTLS: {secure}, enabledTransports: ['ws', 'wss'] }})",
            app.key, addr.ip(), addr.port(), addr.port()
        );
    }
    if config.server.dev_auth {
        tracing::warn!(
            "--dev-auth is ON: this server signs ANY channel subscription and user sign-in \
             (POST /pusher/auth, /broadcasting/auth, /pusher/user-auth). DEVELOPMENT ONLY. \
             Demo page: http://{addr}/demo"
        );
    }
    let readiness = Readiness::new();
    if let Some(adapter) = &adapter {
        let adapter = adapter.clone();
        readiness.set_adapter_probe(move || adapter.connected());
    }
    let reload = ReloadHooks::new();
    // SIGHUP re-reads the apps source; the database store is also followed live.
    rf_broadcast::cli::spawn_app_reloads(&hub, adapter.clone(), &config.apps_source, &reload);
    if let Some(tls) = &tls {
        let tls = tls.clone();
        reload.register("TLS certificate", move || tls.reload_and_log());
    }
    let grace = config.server.shutdown_grace;
    let stopped_at = Arc::new(OnceLock::new());
    let stop = handle_signals(
        readiness.clone(),
        reload,
        config.drain_delay,
        stopped_at.clone(),
    )?;
    let mut state = AppState::new(hub.clone(), config.server.clone());
    if let Some(listen) = config.metrics {
        if let Some(listener) = bind_metrics(listen).await {
            let metrics = Metrics::new();
            if let Some(webhooks) = &webhooks {
                webhooks.register_metrics(metrics.registry());
            }
            if let Some(adapter) = &adapter {
                let adapter = adapter.clone();
                if let Err(e) = metrics.registry().register(Box::new(adapter.collector())) {
                    tracing::warn!("metrics: cannot register the Redis adapter's series: {e}");
                }
                metrics.set_adapter("redis", move || adapter.connected());
            }
            state = state.with_metrics(&metrics);
            tokio::spawn(async move {
                if let Err(e) = serve_metrics(listener, metrics).await {
                    tracing::warn!("metrics listener stopped: {e}");
                }
            });
        }
    }
    if let Some(redis) = &config.redis {
        state = state
            .with_redis_rate_limits(redis)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    }
    let serving = Serving { readiness, tls };
    let result = rf_broadcast::serve_with(listener, state, serving, async {
        let _ = stop.await;
    })
    .await;
    if let Some(webhooks) = &webhooks {
        // Connections are closed: send the vacated / removed webhooks that makes, and what
        // is still queued.
        webhooks.flush().await;
    }
    if let Some(adapter) = adapter {
        // Let the other nodes hear that this node's members left: in what is left of the
        // grace period, with a floor so a zero grace still says goodbye.
        let spent = stopped_at.get().map_or(Duration::ZERO, Instant::elapsed);
        let budget = grace
            .saturating_sub(spent)
            .clamp(FLUSH_FLOOR, FLUSH_CEILING);
        adapter.flush(budget).await;
    }
    Ok(result?)
}

/// Bind the metrics listener. An address the operator chose must be free (exit 2 otherwise);
/// the default one is best-effort, so a second node on the same machine still starts.
async fn bind_metrics(listen: MetricsListen) -> Option<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind(listen.addr).await {
        Ok(listener) => {
            let addr = listener.local_addr().map_or(listen.addr, |a| a);
            tracing::info!("metrics: http://{addr}/metrics");
            Some(listener)
        }
        Err(e) if listen.explicit => {
            eprintln!(
                "rf-broadcast: cannot listen for metrics on {}: {e}; pick another address with \
                 --metrics-host/--metrics-port (or RF_METRICS_HOST/RF_METRICS_PORT), or turn \
                 metrics off with --metrics false",
                listen.addr
            );
            std::process::exit(2);
        }
        Err(e) => {
            tracing::warn!(
                "metrics are off: cannot listen on the default {} ({e}); set --metrics-port to \
                 serve them elsewhere",
                listen.addr
            );
            None
        }
    }
}

/// Bounds of the time the Redis adapter gets to publish this node's goodbyes at shutdown.
const FLUSH_FLOOR: Duration = Duration::from_millis(500);
const FLUSH_CEILING: Duration = Duration::from_secs(2);

/// Install the signal handlers. The returned receiver fires when the drain delay after the
/// first SIGTERM/SIGINT is over; a second one exits at once; SIGHUP runs `reload`.
fn handle_signals(
    readiness: Arc<Readiness>,
    reload: ReloadHooks,
    drain_delay: Duration,
    stopped_at: Arc<OnceLock<Instant>>,
) -> std::io::Result<tokio::sync::oneshot::Receiver<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut stop = Some(tx);
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading");
                    reload.reload();
                    continue;
                }
            };
            let Some(tx) = stop.take() else {
                tracing::warn!("{name} again: exiting now");
                std::process::exit(1);
            };
            readiness.start_draining();
            tracing::info!(
                "{name}: draining: /ready answers 503; new connections served for {drain_delay:?}, \
                 then every client is closed with 4200 (a second {name} exits at once)"
            );
            let stopped_at = stopped_at.clone();
            tokio::spawn(async move {
                tokio::time::sleep(drain_delay).await;
                tracing::info!("shutting down: closing connections with 4200");
                let _ = stopped_at.set(Instant::now());
                let _ = tx.send(());
            });
        }
    });
    Ok(rx)
}
