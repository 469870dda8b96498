//! The pieces every scenario shares: the global options, the paced opening of many subscribed
//! connections, the subscriber loop that counts benchmark events, and the report (a readable
//! summary then one JSON line).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::sleep_until;
use tokio_tungstenite::tungstenite::Message;

use crate::auth::Creds;
use crate::stats::{Phase, SeqTrack, SharedHist};
use crate::sys::{now_us, Probe};
use crate::target::Target;
use crate::ws::{event_name, find_mark, ConnError, Ws, PONG};

/// Options shared by every scenario (they may be given before or after the scenario name).
#[derive(Args, Clone, Debug)]
pub struct Common {
    /// WebSocket base URL of a server (loopback only). Repeat for several nodes: subscribers
    /// are spread round-robin over them.
    #[arg(long = "url", global = true, default_value = "ws://127.0.0.1:6001")]
    pub urls: Vec<String>,
    /// HTTP API base URL to publish to (default: the first --url's host:port).
    #[arg(long, global = true)]
    pub publish_url: Option<String>,
    #[arg(long, global = true, default_value = "app-id")]
    pub app_id: String,
    #[arg(long, global = true, default_value = "app-key")]
    pub app_key: String,
    #[arg(long, global = true, default_value = "app-secret")]
    pub app_secret: String,
    /// PID of the server process, for its CPU seconds and RSS from /proc.
    #[arg(long, global = true)]
    pub server_pid: Option<u32>,
    /// (fanout) More processes whose CPU seconds count as the server's, e.g. the other nodes
    /// of a cluster: reported as `nodes_cpu_s` with `--server-pid`'s included. Repeatable.
    #[arg(long = "node-pid", global = true)]
    pub node_pids: Vec<u32>,
    /// (fanout) A Redis server's PID: its CPU seconds are reported as `redis_cpu_s`.
    #[arg(long, global = true)]
    pub redis_pid: Option<u32>,
    /// Load generator worker threads (1 = current-thread runtime).
    #[arg(long, global = true, default_value_t = 2)]
    pub threads: usize,
    /// Free text copied into the JSON line (e.g. the server's name).
    #[arg(long, global = true, default_value = "")]
    pub label: String,
    /// New connections per second while setting up subscribers.
    #[arg(long, global = true, default_value_t = 2000.0)]
    pub connect_rate: f64,
    /// Connection attempts in flight at once while setting up.
    #[arg(long, global = true, default_value_t = 500)]
    pub connect_inflight: usize,
    /// Seconds one connect+subscribe may take before it counts as failed.
    #[arg(long, global = true, default_value_t = 15)]
    pub connect_timeout: u64,
    /// Connect with a lineage path (`/l/{id}/app/{key}`, one id per connection), as clients
    /// of rf-broadcast's missed-message recovery do.
    #[arg(long, global = true)]
    pub lineage: bool,
    /// Prefix of the benchmark's channel names: `private-` makes them private channels
    /// (subscriptions signed with the app secret), `presence-` is not supported.
    #[arg(long, global = true, default_value = "")]
    pub channel_prefix: String,
}

impl Common {
    pub fn target(&self) -> Result<Target, String> {
        if self.channel_prefix.starts_with("presence-") {
            return Err("--channel-prefix presence- is not supported (no channel_data)".into());
        }
        let mut target = Target::new(
            &self.urls,
            self.publish_url.as_deref(),
            Creds {
                app_id: self.app_id.clone(),
                key: self.app_key.clone(),
                secret: self.app_secret.clone(),
            },
        )?;
        target.lineage = self.lineage;
        Ok(target)
    }
}

pub fn check_bound(name: &str, v: f64, max: f64) -> Result<(), String> {
    if !(v >= 0.0 && v <= max) {
        return Err(format!("--{name} must be between 0 and {max}"));
    }
    Ok(())
}

/// Connect/subscribe outcomes of a batch of connections.
#[derive(Default)]
pub struct ConnStats {
    pub connect: SharedHist,
    pub subscribe: SharedHist,
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub errors: Mutex<BTreeMap<String, u64>>,
    /// Number of connections established when the first failure happened.
    pub first_failure_at: Mutex<Option<(u64, String)>>,
}

impl ConnStats {
    pub fn done(&self) -> u64 {
        self.ok.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }
    pub fn fail(&self, e: &ConnError) {
        let label = format!("{}: {}", e.stage, e.label);
        {
            let mut f = self.first_failure_at.lock().unwrap();
            if f.is_none() {
                *f = Some((self.ok.load(Ordering::Relaxed), label.clone()));
            }
        }
        *self.errors.lock().unwrap().entry(label).or_insert(0) += 1;
        self.failed.fetch_add(1, Ordering::Relaxed);
    }
    pub fn errors_json(&self) -> Value {
        let e = self.errors.lock().unwrap();
        Value::Object(e.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
    }
    pub fn summary_lines(&self, out: &mut Vec<String>) {
        out.push(format!(
            "  connections ok {}  failed {}",
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed)
        ));
        for (k, v) in self.errors.lock().unwrap().iter() {
            out.push(format!("    failure {v} x {k}"));
        }
        if let Some((n, e)) = &*self.first_failure_at.lock().unwrap() {
            out.push(format!("    first failure after {n} established: {e}"));
        }
        out.push(crate::stats::pct_line(
            "connect (tcp+ws+est.)",
            &self.connect.merged(),
        ));
        out.push(crate::stats::pct_line(
            "subscribe",
            &self.subscribe.merged(),
        ));
    }
}

/// Spawns `n` tasks at `rate` per second, at most `inflight` of them holding a permit at once
/// (a task drops its permit when its connection is set up).
pub async fn ramp<F, Fut, T>(n: usize, rate: f64, inflight: usize, f: F) -> Vec<JoinHandle<T>>
where
    F: Fn(usize, OwnedSemaphorePermit) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let sem = Arc::new(Semaphore::new(inflight.max(1)));
    let start = tokio::time::Instant::now();
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        if rate > 0.0 {
            sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
        }
        let p = sem.clone().acquire_owned().await.expect("semaphore open");
        handles.push(tokio::spawn(f(i, p)));
    }
    handles
}

/// Waits until every connection attempt has finished or `limit` has passed.
pub async fn wait_connected(cs: &ConnStats, n: u64, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while cs.done() < n {
        if Instant::now() > end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// How a subscriber's connection ended before it was told to stop.
#[derive(Debug, Clone)]
#[allow(dead_code)] // `at` and `code` are kept for reports that want them
pub struct Ended {
    pub at: Instant,
    pub code: Option<u16>,
    pub how: String,
}

pub struct SubSpec {
    pub idx: usize,
    pub chan: usize,
    /// Record e2e latency (slow consumers do not).
    pub record_latency: bool,
    /// Stop reading at this instant (slow consumer); resume only after the stop signal to
    /// read the close frame.
    pub stall_at: Option<tokio::time::Instant>,
    /// Close the connection at this instant (churn).
    pub leave_at: Option<tokio::time::Instant>,
}

#[allow(dead_code)]
pub struct SubOutcome {
    pub idx: usize,
    pub chan: usize,
    pub track: SeqTrack,
    pub ended: Option<Ended>,
    pub local_port: u16,
    pub errors: u64,
}

/// Reads benchmark events until told to stop: counts deliveries per phase, records e2e latency
/// and sequence numbers, answers `pusher:ping`.
pub async fn run_sub(
    mut ws: Ws,
    spec: SubSpec,
    phases: Arc<Vec<Phase>>,
    mut stop: watch::Receiver<bool>,
) -> SubOutcome {
    let local_port = ws.get_ref().local_addr().map(|a| a.port()).unwrap_or(0);
    let mut track = SeqTrack::default();
    let mut ended = None;
    let mut errors = 0u64;
    let far = tokio::time::Instant::now() + Duration::from_secs(86400);
    let stall = spec.stall_at.unwrap_or(far);
    let leave = spec.leave_at.unwrap_or(far);
    loop {
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = sleep_until(leave), if spec.leave_at.is_some() => {
                let _ = ws.close(None).await;
                break;
            }
            _ = sleep_until(stall), if spec.stall_at.is_some() => {
                // Stop polling the socket: the server's writes pile up in its queue.
                while !*stop.borrow() {
                    if stop.changed().await.is_err() { break; }
                }
                ended = drain_for_close(&mut ws, Duration::from_secs(10), &mut track).await;
                break;
            }
            m = ws.next() => match m {
                None => { ended = Some(Ended { at: Instant::now(), code: None, how: "eof".into() }); break; }
                Some(Err(e)) => { ended = Some(Ended { at: Instant::now(), code: None, how: format!("error: {e}") }); break; }
                Some(Ok(Message::Text(t))) => {
                    let b = t.as_bytes();
                    if let Some(m) = find_mark(b) {
                        if let Some(ph) = phases.get(m.tag as usize) {
                            ph.delivered.fetch_add(1, Ordering::Relaxed);
                            if spec.record_latency {
                                ph.e2e.record(spec.idx, now_us().saturating_sub(m.sent_us));
                            }
                        }
                        track.record(m.seq);
                    } else {
                        if std::env::var_os("LOADGEN_DEBUG").is_some() { eprintln!("unparsed: {}", t.as_str()); }
                        match event_name(t.as_str()) {
                            Some("pusher:ping") => { let _ = ws.send(Message::text(PONG)).await; }
                            Some("pusher:error") => errors += 1,
                            _ => {}
                        }
                    }
                }
                Some(Ok(Message::Close(f))) => {
                    let code = f.as_ref().map(|f| u16::from(f.code));
                    let how = f.map(|f| format!("close {} {}", u16::from(f.code), f.reason)).unwrap_or_else(|| "close (no code)".into());
                    ended = Some(Ended { at: Instant::now(), code, how });
                    break;
                }
                Some(Ok(_)) => {}
            }
        }
    }
    SubOutcome {
        idx: spec.idx,
        chan: spec.chan,
        track,
        ended,
        local_port,
        errors,
    }
}

/// Reads what a stalled consumer has buffered (recording sequence numbers), looking for the
/// server's close. Widens the socket's receive buffer first so that draining is quick. Ends at
/// the close, after `idle` without a frame, or at `limit`.
async fn drain_for_close(ws: &mut Ws, limit: Duration, track: &mut SeqTrack) -> Option<Ended> {
    {
        use std::os::fd::AsRawFd;
        let fd = ws.get_ref().as_raw_fd();
        let size: libc::c_int = 4 << 20;
        // SAFETY: setsockopt on a socket we own, with a pointer to a c_int that lives across the call.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                &size as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
    let end = tokio::time::Instant::now() + limit;
    let idle = Duration::from_secs(3);
    loop {
        let deadline = end.min(tokio::time::Instant::now() + idle);
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return None,
            Ok(None) => {
                return Some(Ended {
                    at: Instant::now(),
                    code: None,
                    how: "eof without close frame".into(),
                })
            }
            Ok(Some(Err(e))) => {
                return Some(Ended {
                    at: Instant::now(),
                    code: None,
                    how: format!("error: {e}"),
                })
            }
            Ok(Some(Ok(Message::Close(f)))) => {
                let code = f.as_ref().map(|f| u16::from(f.code));
                let how = f
                    .map(|f| format!("close {} {}", u16::from(f.code), f.reason))
                    .unwrap_or_else(|| "close (no code)".into());
                return Some(Ended {
                    at: Instant::now(),
                    code,
                    how,
                });
            }
            Ok(Some(Ok(Message::Text(t)))) => {
                if let Some(m) = find_mark(t.as_bytes()) {
                    track.record(m.seq);
                }
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// A finished scenario: readable lines and the fields of the JSON line.
pub struct Report {
    pub scenario: &'static str,
    pub lines: Vec<String>,
    pub json: Map<String, Value>,
}

impl Report {
    pub fn new(scenario: &'static str, common: &Common) -> Report {
        let mut json = Map::new();
        json.insert("scenario".into(), json!(scenario));
        json.insert("label".into(), json!(common.label));
        json.insert("urls".into(), json!(common.urls));
        json.insert("publish_url".into(), json!(common.publish_url));
        json.insert("server_pid".into(), json!(common.server_pid));
        json.insert("threads".into(), json!(common.threads));
        json.insert("unix_time".into(), json!(now_us() / 1_000_000));
        Report {
            scenario,
            lines: Vec::new(),
            json,
        }
    }
    pub fn set(&mut self, k: &str, v: Value) {
        self.json.insert(k.to_string(), v);
    }
    pub fn line(&mut self, s: impl Into<String>) {
        self.lines.push(s.into());
    }
    /// Adds the load generator's own CPU and memory over the run.
    pub fn self_usage(&mut self, start: &Probe, end: &Probe, wall_s: f64) {
        let cpu = end.self_cpu - start.self_cpu;
        self.set("loadgen_cpu_s", json!(crate::stats::round3(cpu)));
        self.set(
            "loadgen_cpu_util",
            json!(crate::stats::round3(cpu / wall_s.max(1e-9))),
        );
        self.set("loadgen_rss_kb", json!(end.self_rss_kb));
        self.line(format!(
            "  loadgen own CPU {:.2} s over {:.1} s ({:.0}% of one core), RSS {} KB",
            cpu,
            wall_s,
            cpu / wall_s.max(1e-9) * 100.0,
            end.self_rss_kb
        ));
    }
    pub fn print(&self) {
        let label = self
            .json
            .get("label")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        println!(
            "== rf-loadgen {} {}==",
            self.scenario,
            if label.is_empty() {
                String::new()
            } else {
                format!("[{label}] ")
            }
        );
        for l in &self.lines {
            println!("{l}");
        }
        println!("{}", Value::Object(self.json.clone()));
    }
}
