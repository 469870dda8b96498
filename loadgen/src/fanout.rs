//! Scenarios that publish through the HTTP API to subscribed connections: `fanout` (a paced
//! rate), `saturate` (closed-loop publishers, a ladder of concurrency), `slow-consumer` (some
//! subscribers stop reading) and `churn` (connections come and go under load). They share one
//! engine: open the subscribers, publish events carrying `#seq:send_us:phase#`, drain, count.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::common::{
    check_bound, ramp, run_sub, wait_connected, Common, ConnStats, Report, SubOutcome, SubSpec,
};
use crate::publish::{PubError, Publisher};
use crate::stats::{opt, pct_json, pct_line, per_million, round3, Phase};
use crate::sys::{cpu_seconds_of, now_us, tcp_sockets, tcp_state_name, Probe};
use crate::target::Target;
use crate::ws::{make_data, open_subscribed, Mark};

#[derive(Args, Clone, Debug)]
pub struct FanoutArgs {
    /// Subscribed connections.
    #[arg(long, default_value_t = 1000)]
    pub subs: usize,
    /// Channels; subscriber i joins channel i % channels.
    #[arg(long, default_value_t = 100)]
    pub channels: usize,
    /// Events per second published (each to one channel, round-robin).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Bytes of padding added to each event's data.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Publish requests in flight at most.
    #[arg(long, default_value_t = 64)]
    pub publishers: usize,
    /// Seconds to wait for in-flight deliveries after publishing stops.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,
}

impl FanoutArgs {
    fn check(&self) -> Result<(), String> {
        check_bound("subs", self.subs as f64, 60_000.0)?;
        check_bound("channels", self.channels as f64, 100_000.0)?;
        check_bound("rate", self.rate, 1_000_000.0)?;
        check_bound("duration", self.duration, 600.0)?;
        check_bound("payload", self.payload as f64, 1_000_000.0)?;
        check_bound("publishers", self.publishers as f64, 1024.0)?;
        check_bound("drain", self.drain, 60.0)?;
        if self.channels == 0 || self.subs == 0 {
            return Err("--subs and --channels must be at least 1".into());
        }
        Ok(())
    }
}

/// The running subscribers and the publishing state of one scenario.
struct Bench {
    target: Target,
    common: Common,
    run: String,
    channels: usize,
    phases: Arc<Vec<Phase>>,
    /// Per channel: next sequence number, and publishes the server accepted.
    next_seq: Arc<Vec<AtomicU64>>,
    /// One publish at a time per channel, so that the order the server receives a channel's
    /// events in is the sequence order and out-of-order deliveries are the server's doing.
    chan_locks: Arc<Vec<tokio::sync::Mutex<()>>>,
    accepted: Arc<Vec<AtomicU64>>,
    pub_errors: Arc<Mutex<BTreeMap<String, u64>>>,
    conn: Arc<ConnStats>,
    stop_tx: watch::Sender<bool>,
    stop_rx: watch::Receiver<bool>,
    handles: Vec<JoinHandle<Option<SubOutcome>>>,
    publisher: Arc<Publisher>,
    padding: Arc<str>,
    /// Local ports of the subscribers marked slow.
    slow_ports: Arc<Mutex<Vec<(usize, u16)>>>,
}

impl Bench {
    fn new(
        common: &Common,
        channels: usize,
        n_phases: usize,
        payload: usize,
    ) -> Result<Bench, String> {
        let target = common.target()?;
        let (stop_tx, stop_rx) = watch::channel(false);
        Ok(Bench {
            publisher: Arc::new(Publisher::new(&target)),
            target,
            common: common.clone(),
            run: format!("{}b{}", common.channel_prefix, now_us() / 1000 % 1_000_000),
            channels,
            phases: Arc::new((0..n_phases).map(|_| Phase::default()).collect()),
            next_seq: Arc::new((0..channels).map(|_| AtomicU64::new(0)).collect()),
            chan_locks: Arc::new((0..channels).map(|_| tokio::sync::Mutex::new(())).collect()),
            accepted: Arc::new((0..channels).map(|_| AtomicU64::new(0)).collect()),
            pub_errors: Arc::new(Mutex::new(BTreeMap::new())),
            conn: Arc::new(ConnStats::default()),
            stop_tx,
            stop_rx,
            handles: Vec::new(),
            padding: "x".repeat(payload).into(),
            slow_ports: Arc::new(Mutex::new(Vec::new())),
        })
    }

    fn channel_name(&self, c: usize) -> String {
        format!("{}-{}", self.run, c)
    }

    /// Opens `n` subscribers; `slow(i)` gives (receive buffer, stall instant) for slow ones.
    async fn open_subscribers(
        &mut self,
        n: usize,
        slow: impl Fn(usize) -> Option<(u32, tokio::time::Instant)>,
    ) -> bool {
        let specs: Vec<_> = (0..n).map(&slow).collect();
        let specs = Arc::new(specs);
        let target = Arc::new(self.target.clone());
        let chans = self.channels;
        let run = self.run.clone();
        let (conn, phases, stop) = (self.conn.clone(), self.phases.clone(), self.stop_rx.clone());
        let timeout = Duration::from_secs(self.common.connect_timeout);
        let slow_ports = self.slow_ports.clone();
        let handles = ramp(
            n,
            self.common.connect_rate,
            self.common.connect_inflight,
            move |i, permit| {
                let (target, conn, phases, stop, specs, run, slow_ports) = (
                    target.clone(),
                    conn.clone(),
                    phases.clone(),
                    stop.clone(),
                    specs.clone(),
                    run.clone(),
                    slow_ports.clone(),
                );
                async move {
                    let chan = i % chans;
                    let s = specs[i];
                    let r = open_subscribed(
                        &target,
                        i,
                        &format!("{run}-{chan}"),
                        s.map(|x| x.0),
                        timeout,
                    )
                    .await;
                    drop(permit);
                    match r {
                        Ok((ws, _sid, tc, ts)) => {
                            conn.connect.record(i, tc.as_micros() as u64);
                            conn.subscribe.record(i, ts.as_micros() as u64);
                            conn.ok.fetch_add(1, Ordering::Relaxed);
                            if s.is_some() {
                                let port = ws.get_ref().local_addr().map(|a| a.port()).unwrap_or(0);
                                slow_ports.lock().unwrap().push((i, port));
                            }
                            let spec = SubSpec {
                                idx: i,
                                chan,
                                record_latency: s.is_none(),
                                stall_at: s.map(|x| x.1),
                                leave_at: None,
                            };
                            Some(run_sub(ws, spec, phases, stop).await)
                        }
                        Err(e) => {
                            conn.fail(&e);
                            None
                        }
                    }
                }
            },
        )
        .await;
        self.handles = handles;
        let setup_limit = Duration::from_secs(self.common.connect_timeout + 5);
        wait_connected(&self.conn, n as u64, setup_limit).await
    }

    /// Publishes one event on channel `c` in phase `tag`.
    fn publish_one(
        &self,
        c: usize,
        tag: u32,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let chan = self.channel_name(c);
        let (p, phases, accepted, errs, pad, locks, seqs) = (
            self.publisher.clone(),
            self.phases.clone(),
            self.accepted.clone(),
            self.pub_errors.clone(),
            self.padding.clone(),
            self.chan_locks.clone(),
            self.next_seq.clone(),
        );
        async move {
            let _one_at_a_time = locks[c].lock().await;
            let seq = seqs[c].fetch_add(1, Ordering::Relaxed);
            let data = make_data(
                Mark {
                    seq,
                    sent_us: now_us(),
                    tag,
                },
                &pad,
            );
            let ph = &phases[tag as usize];
            match p.publish(&chan, &data).await {
                Ok(rtt) => {
                    accepted[c].fetch_add(1, Ordering::Relaxed);
                    ph.published.fetch_add(1, Ordering::Relaxed);
                    ph.publish_rtt.record(c, rtt.as_micros() as u64);
                }
                Err(e) => {
                    ph.publish_errors.fetch_add(1, Ordering::Relaxed);
                    let k = match e {
                        PubError::Rejected(s) => format!("rejected: {s}"),
                        PubError::Transport(s) => format!("transport: {s}"),
                    };
                    *errs.lock().unwrap().entry(k).or_insert(0) += 1;
                }
            }
        }
    }

    /// Open-loop publishing at `rate` events/s for `secs`, at most `inflight` requests at once.
    /// Returns how many times the publisher had to wait for a free slot (it fell behind).
    async fn publish_paced(&self, rate: f64, secs: f64, inflight: usize, tag: u32) -> u64 {
        let sem = Arc::new(Semaphore::new(inflight.max(1)));
        let start = tokio::time::Instant::now();
        let end = start + Duration::from_secs_f64(secs);
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut issued = 0u64;
        let mut waits = 0u64;
        let mut g = 0usize;
        loop {
            tick.tick().await;
            let now = tokio::time::Instant::now();
            if now >= end {
                break;
            }
            let due = ((now - start).as_secs_f64() * rate) as u64;
            while issued < due {
                let permit = match sem.clone().try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => {
                        waits += 1;
                        sem.clone().acquire_owned().await.expect("open")
                    }
                };
                let fut = self.publish_one(g % self.channels, tag);
                g += 1;
                tokio::spawn(async move {
                    fut.await;
                    drop(permit);
                });
                issued += 1;
            }
        }
        let _ = sem.acquire_many(inflight.max(1) as u32).await;
        waits
    }

    /// Closed-loop publishing: `k` publishers each sending as soon as the previous reply came.
    async fn publish_closed(&self, k: usize, secs: f64, tag: u32) {
        let end = Instant::now() + Duration::from_secs_f64(secs);
        let c = self.channels;
        let mut hs = Vec::new();
        for w in 0..k {
            // With k <= channels each channel has one publisher; with more, publishers share
            // channels and take turns on them (at most one publish per channel in flight).
            let mine: Vec<usize> = if k <= c {
                (0..c).filter(|x| x % k == w).collect()
            } else {
                vec![w % c]
            };
            let me = self.clone_pub();
            hs.push(tokio::spawn(async move {
                let mut i = 0;
                while Instant::now() < end {
                    me.publish_one(mine[i % mine.len()], tag).await;
                    i += 1;
                }
            }));
        }
        for h in hs {
            let _ = h.await;
        }
    }

    fn clone_pub(&self) -> Bench {
        Bench {
            target: self.target.clone(),
            common: self.common.clone(),
            run: self.run.clone(),
            channels: self.channels,
            phases: self.phases.clone(),
            next_seq: self.next_seq.clone(),
            chan_locks: self.chan_locks.clone(),
            accepted: self.accepted.clone(),
            pub_errors: self.pub_errors.clone(),
            conn: self.conn.clone(),
            stop_tx: self.stop_tx.clone(),
            stop_rx: self.stop_rx.clone(),
            handles: Vec::new(),
            publisher: self.publisher.clone(),
            padding: self.padding.clone(),
            slow_ports: self.slow_ports.clone(),
        }
    }

    fn total_delivered(&self) -> u64 {
        self.phases.iter().map(|p| p.delivered()).sum()
    }

    /// Waits until `expected` deliveries arrived, or nothing new arrived for a while, or `limit`.
    async fn drain(&self, expected: u64, limit: f64) {
        let end = Instant::now() + Duration::from_secs_f64(limit);
        let mut last = self.total_delivered();
        let mut still = Instant::now();
        while Instant::now() < end {
            let d = self.total_delivered();
            if d >= expected {
                return;
            }
            if d != last {
                last = d;
                still = Instant::now();
            } else if still.elapsed() > Duration::from_millis(1500) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Deliveries expected given the accepted publishes and the connected subscribers per channel.
    fn expected(&self, subs_per_chan: &[u64]) -> u64 {
        (0..self.channels)
            .map(|c| self.accepted[c].load(Ordering::Relaxed) * subs_per_chan[c])
            .sum()
    }

    /// Tells every subscriber to stop, and collects what each saw.
    async fn finish(&mut self) -> Vec<SubOutcome> {
        let _ = self.stop_tx.send(true);
        let mut out = Vec::new();
        for h in self.handles.drain(..) {
            if let Ok(Some(o)) = h.await {
                out.push(o);
            }
        }
        out
    }
}

/// Lost / duplicated / out-of-order over the subscribers selected by `pick`.
fn integrity(
    b: &Bench,
    outs: &[SubOutcome],
    pick: impl Fn(&SubOutcome) -> bool,
) -> (u64, u64, u64, u64) {
    let (mut lost, mut dups, mut ooo, mut bad) = (0, 0, 0, 0);
    for o in outs.iter().filter(|o| pick(o)) {
        let acc = b.accepted[o.chan].load(Ordering::Relaxed);
        lost += acc.saturating_sub(o.track.unique);
        dups += o.track.dups;
        ooo += o.track.out_of_order;
        bad += o.track.bad;
    }
    (lost, dups, ooo, bad)
}

fn subs_per_chan(b: &Bench, conn_ok: &[usize]) -> Vec<u64> {
    let mut v = vec![0u64; b.channels];
    for &i in conn_ok {
        v[i % b.channels] += 1;
    }
    v
}

fn pub_errors_json(b: &Bench) -> Value {
    let e = b.pub_errors.lock().unwrap();
    Value::Object(e.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

fn server_delta(a: &Probe, z: &Probe) -> Option<f64> {
    Some(round3(z.server_cpu? - a.server_cpu?))
}

/// Which subscribers connected (their outcomes are collected only at the end, so use the
/// stats: every subscriber that did not fail is in the ok set).
fn ok_indices(outs: &[SubOutcome]) -> Vec<usize> {
    outs.iter().map(|o| o.idx).collect()
}

fn report_integrity(r: &mut Report, lost: u64, dups: u64, ooo: u64, bad: u64) {
    r.set("lost", json!(lost));
    r.set("duplicated", json!(dups));
    r.set("out_of_order", json!(ooo));
    r.set("malformed", json!(bad));
    r.line(format!(
        "  lost {lost}  duplicated {dups}  out-of-order {ooo}  malformed {bad}"
    ));
}

// ------------------------------------------------------------------------------------------

pub async fn fanout(common: &Common, a: &FanoutArgs) -> Result<Report, String> {
    a.check()?;
    let mut r = Report::new("fanout", common);
    r.set("params", json!({"subs": a.subs, "channels": a.channels, "rate": a.rate, "duration_s": a.duration, "payload": a.payload, "publishers": a.publishers}));
    let mut b = Bench::new(common, a.channels, 1, a.payload)?;
    let p0 = Probe::take(common.server_pid);
    let all = b.open_subscribers(a.subs, |_| None).await;
    b.conn.summary_lines(&mut r.lines);
    r.set("connect", pct_json(&b.conn.connect.merged()));
    r.set("subscribe", pct_json(&b.conn.subscribe.merged()));
    r.set("conn_ok", json!(b.conn.ok.load(Ordering::Relaxed)));
    r.set("conn_failed", json!(b.conn.failed.load(Ordering::Relaxed)));
    r.set("conn_errors", b.conn.errors_json());
    if !all {
        r.line("  WARNING: not every connection finished setting up in time");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let nodes: Vec<u32> = common
        .server_pid
        .into_iter()
        .chain(common.node_pids.iter().copied())
        .collect();
    let cluster0 = (
        cpu_seconds_of(&nodes),
        common.redis_pid.and_then(|p| cpu_seconds_of(&[p])),
    );
    let p1 = Probe::take(common.server_pid);
    let t1 = Instant::now();
    let waits = b.publish_paced(a.rate, a.duration, a.publishers, 0).await;
    let pub_secs = t1.elapsed().as_secs_f64();
    // The subscribers' outcomes come at the end; count connected subscribers per channel now.
    let ok = b.conn.ok.load(Ordering::Relaxed);
    let spc_est: Vec<u64> = {
        // Subscribers that connected: all indices minus failed ones; assume the failed ones
        // are spread evenly (only used to decide when draining is done).
        let per = ok as f64 / a.subs as f64;
        (0..a.channels)
            .map(|c| {
                ((a.subs / a.channels + usize::from(c < a.subs % a.channels)) as f64 * per).round()
                    as u64
            })
            .collect()
    };
    b.drain(b.expected(&spc_est), a.drain).await;
    let wall = t1.elapsed().as_secs_f64();
    let p2 = Probe::take(common.server_pid);
    let cluster1 = (
        cpu_seconds_of(&nodes),
        common.redis_pid.and_then(|p| cpu_seconds_of(&[p])),
    );
    let outs = b.finish().await;
    let ph = &b.phases[0];
    let delivered = ph.delivered();
    let spc = subs_per_chan(&b, &ok_indices(&outs));
    let expected = b.expected(&spc);
    let (lost, dups, ooo, bad) = integrity(&b, &outs, |_| true);
    if std::env::var_os("LOADGEN_DEBUG").is_some() {
        for o in &outs {
            eprintln!(
                "sub {} chan {} unique {} accepted {}",
                o.idx,
                o.chan,
                o.track.unique,
                b.accepted[o.chan].load(Ordering::Relaxed)
            );
        }
    }
    let e2e = ph.e2e.merged();
    let cpu = server_delta(&p1, &p2);
    r.line(format!(
        "  published {} events in {:.2} s ({:.0}/s, target {}/s), publish errors {}, publisher fell behind {} times",
        ph.published(),
        pub_secs,
        ph.published() as f64 / pub_secs,
        a.rate,
        ph.publish_errors.load(Ordering::Relaxed),
        waits
    ));
    r.line(format!(
        "  delivered {delivered} of {expected} expected ({:.0}/s over the publishing window)",
        delivered as f64 / pub_secs
    ));
    report_integrity(&mut r, lost, dups, ooo, bad);
    r.line(pct_line("e2e latency", &e2e));
    r.line(pct_line("publish HTTP rtt", &ph.publish_rtt.merged()));
    r.line(format!(
        "  server CPU {} s over {:.1} s -> {} CPU s per million deliveries; server RSS {} -> {} KB",
        opt(cpu),
        wall,
        opt(per_million(cpu, delivered)),
        opt(p0.server_rss_kb),
        opt(p2.server_rss_kb)
    ));
    r.set("published", json!(ph.published()));
    r.set(
        "publish_errors",
        json!(ph.publish_errors.load(Ordering::Relaxed)),
    );
    r.set("publish_error_kinds", pub_errors_json(&b));
    r.set("publisher_waits", json!(waits));
    r.set("delivered", json!(delivered));
    r.set("expected", json!(expected));
    r.set(
        "delivered_per_s",
        json!(round3(delivered as f64 / pub_secs)),
    );
    r.set("e2e", pct_json(&e2e));
    r.set("publish_rtt", pct_json(&ph.publish_rtt.merged()));
    if !common.node_pids.is_empty() || common.redis_pid.is_some() {
        let delta = |a: Option<f64>, z: Option<f64>| Some(round3(z? - a?));
        let nodes_cpu = delta(cluster0.0, cluster1.0);
        let redis_cpu = delta(cluster0.1, cluster1.1);
        r.line(format!(
            "  nodes CPU {} s -> {} per million deliveries; redis CPU {} s -> {} per million",
            opt(nodes_cpu),
            opt(per_million(nodes_cpu, delivered)),
            opt(redis_cpu),
            opt(per_million(redis_cpu, delivered))
        ));
        r.set("nodes_cpu_s", json!(nodes_cpu));
        r.set(
            "nodes_cpu_s_per_million",
            json!(per_million(nodes_cpu, delivered)),
        );
        r.set("redis_cpu_s", json!(redis_cpu));
        r.set(
            "redis_cpu_s_per_million",
            json!(per_million(redis_cpu, delivered)),
        );
    }
    r.set("server_cpu_s", json!(cpu));
    r.set(
        "server_cpu_s_per_million",
        json!(per_million(cpu, delivered)),
    );
    r.set("server_rss_kb_before", json!(p0.server_rss_kb));
    r.set("server_rss_kb_after", json!(p2.server_rss_kb));
    r.set(
        "loadgen_cpu_s_per_million",
        json!(per_million(Some(p2.self_cpu - p1.self_cpu), delivered)),
    );
    let closed: Vec<_> = outs
        .iter()
        .filter_map(|o| o.ended.as_ref().map(|e| e.how.clone()))
        .collect();
    if !closed.is_empty() {
        r.line(format!(
            "  {} subscribers were closed early, e.g. {}",
            closed.len(),
            closed[0]
        ));
    }
    r.set("closed_early", json!(closed.len()));
    r.self_usage(&p1, &p2, wall);
    Ok(r)
}

// ------------------------------------------------------------------------------------------

#[derive(Args, Clone, Debug)]
pub struct SaturateArgs {
    #[arg(long, default_value_t = 100)]
    pub subs: usize,
    #[arg(long, default_value_t = 8)]
    pub channels: usize,
    /// Concurrent closed-loop publishers, one step each (comma separated).
    #[arg(long, default_value = "1,2,4,8")]
    pub ladder: String,
    /// Seconds per step.
    #[arg(long, default_value_t = 5.0)]
    pub step: f64,
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// A step whose e2e p99 exceeds this (ms) is past the knee.
    #[arg(long, default_value_t = 100.0)]
    pub tail_ms: f64,
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,
}

pub async fn saturate(common: &Common, a: &SaturateArgs) -> Result<Report, String> {
    let ladder: Vec<usize> = a
        .ladder
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| format!("bad --ladder entry {s:?}"))
        })
        .collect::<Result<_, _>>()?;
    if ladder.is_empty() || ladder.len() > 20 || ladder.iter().any(|&k| k == 0 || k > 512) {
        return Err("--ladder: 1..20 steps of 1..512 publishers".into());
    }
    check_bound("subs", a.subs as f64, 60_000.0)?;
    check_bound("step", a.step, 120.0)?;
    if a.channels == 0 || a.subs == 0 {
        return Err("--subs and --channels must be at least 1".into());
    }
    let mut r = Report::new("saturate", common);
    r.set("params", json!({"subs": a.subs, "channels": a.channels, "ladder": ladder, "step_s": a.step, "payload": a.payload}));
    let mut b = Bench::new(common, a.channels, ladder.len(), a.payload)?;
    b.open_subscribers(a.subs, |_| None).await;
    b.conn.summary_lines(&mut r.lines);
    r.set("conn_ok", json!(b.conn.ok.load(Ordering::Relaxed)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let p_start = Probe::take(common.server_pid);
    let t_start = Instant::now();
    let mut probes = vec![p_start];
    let mut secs = Vec::new();
    for (k, &conc) in ladder.iter().enumerate() {
        let t = Instant::now();
        b.publish_closed(conc, a.step, k as u32).await;
        secs.push(t.elapsed().as_secs_f64());
        probes.push(Probe::take(common.server_pid));
    }
    let ok = b.conn.ok.load(Ordering::Relaxed);
    let spc: Vec<u64> = (0..a.channels)
        .map(|c| (ok as usize / a.channels + usize::from(c < ok as usize % a.channels)) as u64)
        .collect();
    b.drain(b.expected(&spc), a.drain).await;
    let p_end = Probe::take(common.server_pid);
    let wall = t_start.elapsed().as_secs_f64();
    let outs = b.finish().await;
    let (lost, dups, ooo, bad) = integrity(&b, &outs, |_| true);
    report_integrity(&mut r, lost, dups, ooo, bad);
    if ladder.iter().any(|&k| k > a.channels) {
        r.line("  (one publish per channel is in flight at a time: steps with more publishers than channels are capped at the channel count)");
    }
    r.line(format!(
        "  {:>5} {:>10} {:>12} {:>10} {:>10} {:>10} {:>12} {:>10}",
        "pubs", "publish/s", "delivered/s", "p50", "p99", "p99.9", "srv CPU s/M", "pub rtt p99"
    ));
    let mut steps = Vec::new();
    let mut best = (0.0f64, 0usize);
    let mut knee: Option<(f64, usize)> = None;
    let mut broke_at: Option<usize> = None;
    for (k, &conc) in ladder.iter().enumerate() {
        let ph = &b.phases[k];
        let h = ph.e2e.merged();
        let d = ph.delivered();
        let dps = d as f64 / secs[k];
        let cpu = server_delta(&probes[k], &probes[k + 1]);
        let p99 = if h.is_empty() {
            0
        } else {
            h.value_at_quantile(0.99)
        };
        let rtt = ph.publish_rtt.merged();
        r.line(format!(
            "  {:>5} {:>10.0} {:>12.0} {:>10} {:>10} {:>10} {:>12} {:>10}",
            conc,
            ph.published() as f64 / secs[k],
            dps,
            crate::stats::fmt_ms(if h.is_empty() {
                0
            } else {
                h.value_at_quantile(0.5)
            }),
            crate::stats::fmt_ms(p99),
            crate::stats::fmt_ms(if h.is_empty() {
                0
            } else {
                h.value_at_quantile(0.999)
            }),
            opt(per_million(cpu, d)),
            crate::stats::fmt_ms(if rtt.is_empty() {
                0
            } else {
                rtt.value_at_quantile(0.99)
            }),
        ));
        if dps > best.0 {
            best = (dps, conc);
        }
        if (p99 as f64) <= a.tail_ms * 1000.0 {
            if knee.map(|x| dps > x.0).unwrap_or(true) {
                knee = Some((dps, conc));
            }
        } else if broke_at.is_none() {
            broke_at = Some(conc);
        }
        steps.push(json!({
            "publishers": conc, "secs": round3(secs[k]), "published": ph.published(),
            "publish_per_s": round3(ph.published() as f64 / secs[k]), "delivered": d,
            "delivered_per_s": round3(dps), "e2e": pct_json(&h), "publish_rtt": pct_json(&rtt),
            "server_cpu_s": cpu, "server_cpu_s_per_million": per_million(cpu, d),
            "publish_errors": ph.publish_errors.load(Ordering::Relaxed),
        }));
    }
    r.line(format!(
        "  max sustained {:.0} deliveries/s (at {} publishers)",
        best.0, best.1
    ));
    match knee {
        Some((d, k)) => r.line(format!(
            "  best with e2e p99 <= {} ms: {:.0} deliveries/s at {} publishers",
            a.tail_ms, d, k
        )),
        None => r.line(format!("  no step kept e2e p99 <= {} ms", a.tail_ms)),
    }
    if let Some(k) = broke_at {
        r.line(format!(
            "  tail broke (p99 > {} ms) first at {} publishers",
            a.tail_ms, k
        ));
    }
    let total_d = b.total_delivered();
    let cpu = server_delta(&p_start, &p_end);
    r.line(format!(
        "  overall server CPU {} s, {} CPU s per million deliveries",
        opt(cpu),
        opt(per_million(cpu, total_d))
    ));
    r.set("steps", Value::Array(steps));
    r.set("max_delivered_per_s", json!(round3(best.0)));
    r.set("knee_delivered_per_s", json!(knee.map(|x| round3(x.0))));
    r.set("knee_publishers", json!(knee.map(|x| x.1)));
    r.set("tail_broke_at_publishers", json!(broke_at));
    r.set("delivered", json!(total_d));
    r.set("server_cpu_s", json!(cpu));
    r.set("server_cpu_s_per_million", json!(per_million(cpu, total_d)));
    r.set("publish_error_kinds", pub_errors_json(&b));
    r.set(
        "loadgen_cpu_s_per_million",
        json!(per_million(
            Some(p_end.self_cpu - p_start.self_cpu),
            total_d
        )),
    );
    r.self_usage(&p_start, &p_end, wall);
    Ok(r)
}

// ------------------------------------------------------------------------------------------

#[derive(Args, Clone, Debug)]
pub struct SlowArgs {
    #[command(flatten)]
    pub f: FanoutArgs,
    /// How many of the subscribers stop reading.
    #[arg(long, default_value_t = 10)]
    pub slow: usize,
    /// Seconds after publishing starts when the slow ones stop reading.
    #[arg(long, default_value_t = 2.0)]
    pub stall_after: f64,
    /// SO_RCVBUF of the slow subscribers' sockets (smaller: the server sees backpressure
    /// sooner, but what it queued takes longer to read at the end).
    #[arg(long, default_value_t = 65536)]
    pub rcvbuf: u32,
}

pub async fn slow_consumer(common: &Common, a: &SlowArgs) -> Result<Report, String> {
    a.f.check()?;
    if a.slow == 0 || a.slow > a.f.subs {
        return Err("--slow must be between 1 and --subs".into());
    }
    let mut r = Report::new("slow-consumer", common);
    r.set("params", json!({"subs": a.f.subs, "slow": a.slow, "channels": a.f.channels, "rate": a.f.rate, "duration_s": a.f.duration, "payload": a.f.payload, "stall_after_s": a.stall_after, "rcvbuf": a.rcvbuf}));
    let mut b = Bench::new(common, a.f.channels, 1, a.f.payload)?;
    let p0 = Probe::take(common.server_pid);
    // Slow subscribers are spread evenly over the indices (and so over the channels).
    let every = (a.f.subs / a.slow).max(1);
    let is_slow = move |i: usize| i.is_multiple_of(every) && i / every < a.slow;
    // Setup time is unknown in advance: stall relative to publish start via a shared instant
    // set far ahead, then re-armed. Simpler: estimate setup time from the connect rate.
    let setup = a.f.subs as f64 / common.connect_rate + 1.0;
    let stall_at =
        tokio::time::Instant::now() + Duration::from_secs_f64(setup + 0.3 + a.stall_after);
    let rcv = a.rcvbuf;
    b.open_subscribers(a.f.subs, move |i| {
        if is_slow(i) {
            Some((rcv, stall_at))
        } else {
            None
        }
    })
    .await;
    b.conn.summary_lines(&mut r.lines);
    // Wait for the planned start so that stall_after is measured from publish start.
    tokio::time::sleep_until(stall_at - Duration::from_secs_f64(a.stall_after)).await;
    let p1 = Probe::take(common.server_pid);
    let t1 = Instant::now();
    // Monitor: server RSS and the TCP state of the slow sockets, every 100 ms.
    let slow_ports: Vec<(usize, u16)> = b.slow_ports.lock().unwrap().clone();
    let ports: HashSet<u16> = slow_ports.iter().map(|x| x.1).collect();
    let (mon_tx, mut mon_rx) = watch::channel(false);
    let pid = common.server_pid;
    // Match the exact connection (both ports): a local port may also appear in older sockets
    // to other servers (TIME_WAIT, loopback port reuse).
    let server_ports: HashSet<u16> = b.target.ws.iter().map(|e| e.addr.port()).collect();
    let mon = tokio::spawn(async move {
        let mut max_rss = 0u64;
        // Per slow port: when the server's end left ESTABLISHED (closed by the server), and
        // when our end did (the FIN or RST reached us).
        let mut server_closed: Vec<(u16, f64, &'static str)> = Vec::new();
        let mut client_closed: Vec<(u16, f64, &'static str)> = Vec::new();
        let (mut seen_s, mut seen_c) = (HashSet::new(), HashSet::new());
        let mut rss_series = Vec::new();
        let mut k = 0u64;
        loop {
            if let Some(rss) = Probe::take(pid).server_rss_kb {
                max_rss = max_rss.max(rss);
                if k.is_multiple_of(5) {
                    rss_series.push(json!([round3(t1.elapsed().as_secs_f64()), rss]));
                }
            }
            k += 1;
            let socks = tcp_sockets(&ports);
            let now = t1.elapsed().as_secs_f64();
            for &p in &ports {
                let ours = socks
                    .iter()
                    .find(|x| x.0 == p && server_ports.contains(&x.1))
                    .map(|x| x.2);
                let theirs = socks
                    .iter()
                    .find(|x| x.1 == p && server_ports.contains(&x.0))
                    .map(|x| x.2);
                if theirs != Some(1) && seen_s.insert(p) {
                    server_closed.push((p, now, theirs.map(tcp_state_name).unwrap_or("gone")));
                }
                if ours != Some(1) && seen_c.insert(p) {
                    client_closed.push((p, now, ours.map(tcp_state_name).unwrap_or("gone")));
                }
            }
            tokio::select! {
                _ = mon_rx.changed() => break,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        (max_rss, server_closed, client_closed, rss_series)
    });
    let waits = b
        .publish_paced(a.f.rate, a.f.duration, a.f.publishers, 0)
        .await;
    let pub_secs = t1.elapsed().as_secs_f64();
    b.drain(u64::MAX, a.f.drain.min(3.0)).await;
    let p2 = Probe::take(common.server_pid);
    let _ = mon_tx.send(true);
    let (max_rss, closed_at, client_closed, rss_series) = mon.await.map_err(|e| e.to_string())?;
    let outs = b.finish().await;
    let fast = |o: &SubOutcome| !is_slow(o.idx);
    let (lost, dups, ooo, bad) = integrity(&b, &outs, fast);
    let ph = &b.phases[0];
    let e2e = ph.e2e.merged();
    r.line(format!(
        "  published {} events ({:.0}/s), publisher fell behind {} times",
        ph.published(),
        ph.published() as f64 / pub_secs,
        waits
    ));
    r.line("  fast subscribers:");
    report_integrity(&mut r, lost, dups, ooo, bad);
    r.line(pct_line("fast e2e latency", &e2e));
    let fast_closed = outs.iter().filter(|o| fast(o) && o.ended.is_some()).count();
    r.line(format!(
        "  fast subscribers closed by the server: {fast_closed}"
    ));
    // Slow ones: when their socket left ESTABLISHED, and what the close frame said.
    let stall_t = a.stall_after;
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    // Loss is only known for slow subscribers that read up to the server's close.
    let (slow_lost, _, _, _) = integrity(&b, &outs, |o| is_slow(o.idx) && o.ended.is_some());
    let slow_open = outs
        .iter()
        .filter(|o| is_slow(o.idx) && o.ended.is_none())
        .count();
    for o in outs.iter().filter(|o| is_slow(o.idx)) {
        let k = o
            .ended
            .as_ref()
            .map(|e| e.how.clone())
            .unwrap_or_else(|| "still open at end".into());
        *kinds.entry(k).or_insert(0) += 1;
    }
    let mut after: Vec<f64> = closed_at.iter().map(|x| x.1 - stall_t).collect();
    after.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let states: BTreeMap<&str, usize> = closed_at.iter().fold(BTreeMap::new(), |mut m, x| {
        *m.entry(x.2).or_insert(0) += 1;
        m
    });
    r.line(format!(
        "  slow subscribers: the server closed {} of {} during the run (its end of the TCP connection left ESTABLISHED)",
        closed_at.len(),
        slow_ports.len()
    ));
    if !after.is_empty() {
        r.line(format!(
            "    closed {:.2} s .. {:.2} s after they stopped reading (median {:.2} s); server-side TCP state then {:?}",
            after[0],
            after[after.len() - 1],
            after[after.len() / 2],
            states
        ));
    }
    r.line(format!(
        "    {} of them saw the close on their own socket during the run (FIN/RST arrived)",
        client_closed.len()
    ));
    r.line("    after the run each slow subscriber read what was queued for it; how that ended:");
    for (k, v) in &kinds {
        r.line(format!("    {v} x {k}"));
    }
    r.line(format!(
        "    events never received by the slow subscribers that did read up to the close: {slow_lost} (those whose drain timed out: {slow_open}, loss unknown)"
    ));
    r.set("slow_lost", json!(slow_lost));
    r.set("slow_still_open", json!(slow_open));
    r.line(format!(
        "  server RSS before subscribers {} KB, at publish start {} KB, max {} KB, end {} KB",
        opt(p0.server_rss_kb),
        opt(p1.server_rss_kb),
        max_rss,
        opt(p2.server_rss_kb)
    ));
    let cpu = server_delta(&p1, &p2);
    r.line(format!(
        "  server CPU {} s, {} CPU s per million deliveries",
        opt(cpu),
        opt(per_million(cpu, ph.delivered()))
    ));
    r.set("published", json!(ph.published()));
    r.set("delivered", json!(ph.delivered()));
    r.set("fast_e2e", pct_json(&e2e));
    r.set("fast_closed", json!(fast_closed));
    r.set("slow_closed_during_run", json!(closed_at.len()));
    r.set(
        "slow_client_saw_close_during_run",
        json!(client_closed.len()),
    );
    r.set(
        "slow_close_after_stall_s",
        json!(after.iter().map(|x| round3(*x)).collect::<Vec<_>>()),
    );
    r.set("slow_close_kinds", json!(kinds));
    r.set("server_rss_kb_before", json!(p0.server_rss_kb));
    r.set("server_rss_kb_start", json!(p1.server_rss_kb));
    r.set("server_rss_kb_max", json!(max_rss));
    r.set("server_rss_kb_end", json!(p2.server_rss_kb));
    r.set("server_rss_series", Value::Array(rss_series));
    r.set("server_cpu_s", json!(cpu));
    r.self_usage(&p1, &p2, t1.elapsed().as_secs_f64());
    Ok(r)
}

// ------------------------------------------------------------------------------------------

#[derive(Args, Clone, Debug)]
pub struct ChurnArgs {
    #[command(flatten)]
    pub f: FanoutArgs,
    /// New short-lived connections per second while publishing.
    #[arg(long, default_value_t = 200.0)]
    pub churn_rate: f64,
    /// Milliseconds each short-lived connection stays subscribed.
    #[arg(long, default_value_t = 1000)]
    pub hold_ms: u64,
}

pub async fn churn(common: &Common, a: &ChurnArgs) -> Result<Report, String> {
    a.f.check()?;
    check_bound("churn-rate", a.churn_rate, 20_000.0)?;
    check_bound("hold-ms", a.hold_ms as f64, 60_000.0)?;
    let mut r = Report::new("churn", common);
    r.set("params", json!({"subs": a.f.subs, "channels": a.f.channels, "rate": a.f.rate, "duration_s": a.f.duration, "churn_rate": a.churn_rate, "hold_ms": a.hold_ms}));
    let mut b = Bench::new(common, a.f.channels, 2, a.f.payload)?;
    let pid = common.server_pid.map(|p| p.to_string());
    let fds0 = pid.as_deref().and_then(crate::sys::fd_count);
    let p0 = Probe::take(common.server_pid);
    b.open_subscribers(a.f.subs, |_| None).await;
    r.line("  stable subscribers:");
    b.conn.summary_lines(&mut r.lines);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let p1 = Probe::take(common.server_pid);
    let t1 = Instant::now();
    // Churners: count their own connect stats; they do not take part in loss accounting.
    let churn_stats = Arc::new(ConnStats::default());
    let closed_ok = Arc::new(AtomicU64::new(0));
    let n_churn = (a.churn_rate * a.f.duration) as usize;
    let target = Arc::new(b.target.clone());
    let (phases, stop) = (b.phases.clone(), b.stop_rx.clone());
    let run = b.run.clone();
    let chans = a.f.channels;
    let hold = Duration::from_millis(a.hold_ms);
    let timeout = Duration::from_secs(common.connect_timeout);
    let cs = churn_stats.clone();
    let co = closed_ok.clone();
    let churners = tokio::spawn(ramp(
        n_churn,
        a.churn_rate,
        common.connect_inflight,
        move |i, permit| {
            let (target, phases, stop, run, cs, co) = (
                target.clone(),
                phases.clone(),
                stop.clone(),
                run.clone(),
                cs.clone(),
                co.clone(),
            );
            async move {
                // Indices far from the stable subscribers' so shards and channels differ.
                let idx = 1_000_000 + i;
                let chan = i % chans;
                let r =
                    open_subscribed(&target, idx, &format!("{run}-{chan}"), None, timeout).await;
                drop(permit);
                match r {
                    Ok((ws, _, tc, ts)) => {
                        cs.connect.record(i, tc.as_micros() as u64);
                        cs.subscribe.record(i, ts.as_micros() as u64);
                        cs.ok.fetch_add(1, Ordering::Relaxed);
                        // Phase 1 is where the churners' deliveries would go; they get phase-0
                        // events, counted in phase 0's delivered but with no latency recorded.
                        let spec = SubSpec {
                            idx,
                            chan,
                            record_latency: false,
                            stall_at: None,
                            leave_at: Some(tokio::time::Instant::now() + hold),
                        };
                        let o = run_sub(ws, spec, phases, stop).await;
                        if o.ended.is_none() {
                            co.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) => cs.fail(&e),
                }
            }
        },
    ));
    let waits = b
        .publish_paced(a.f.rate, a.f.duration, a.f.publishers, 0)
        .await;
    let pub_secs = t1.elapsed().as_secs_f64();
    let handles = churners.await.map_err(|e| e.to_string())?;
    let churn_secs = t1.elapsed().as_secs_f64();
    for h in handles {
        let _ = h.await;
    }
    b.drain(u64::MAX, a.f.drain.min(2.0)).await;
    let p2 = Probe::take(common.server_pid);
    let outs = b.finish().await;
    let (lost, dups, ooo, bad) = integrity(&b, &outs, |_| true);
    // Settle, then look for leaks: connections and memory back near where they were.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fds_end = pid.as_deref().and_then(crate::sys::fd_count);
    let p3 = Probe::take(common.server_pid);
    let ph = &b.phases[0];
    let e2e = ph.e2e.merged();
    let ok = churn_stats.ok.load(Ordering::Relaxed);
    r.line(format!(
        "  churn: {} connect+subscribe+close cycles in {:.1} s ({:.0}/s opened, {:.0}/s closed)",
        ok,
        churn_secs,
        ok as f64 / churn_secs,
        closed_ok.load(Ordering::Relaxed) as f64 / churn_secs
    ));
    churn_stats.summary_lines(&mut r.lines);
    r.line(format!(
        "  published {} events ({:.0}/s), publisher fell behind {} times; delivered {}",
        ph.published(),
        ph.published() as f64 / pub_secs,
        waits,
        ph.delivered()
    ));
    r.line("  stable subscribers:");
    report_integrity(&mut r, lost, dups, ooo, bad);
    r.line(pct_line("stable e2e latency", &e2e));
    let cpu = server_delta(&p1, &p2);
    r.line(format!("  server CPU {} s over the run", opt(cpu)));
    r.line(format!(
        "  server RSS {} KB before, {} KB at load start, {} KB at end, {} KB after settling; fds {} before, {} after",
        opt(p0.server_rss_kb),
        opt(p1.server_rss_kb),
        opt(p2.server_rss_kb),
        opt(p3.server_rss_kb),
        opt(fds0),
        opt(fds_end)
    ));
    r.set("churn_ok", json!(ok));
    r.set(
        "churn_failed",
        json!(churn_stats.failed.load(Ordering::Relaxed)),
    );
    r.set("churn_errors", churn_stats.errors_json());
    r.set("churn_per_s", json!(round3(ok as f64 / churn_secs)));
    r.set("churn_connect", pct_json(&churn_stats.connect.merged()));
    r.set("churn_subscribe", pct_json(&churn_stats.subscribe.merged()));
    r.set("stable_e2e", pct_json(&e2e));
    r.set("published", json!(ph.published()));
    r.set("delivered", json!(ph.delivered()));
    r.set("server_cpu_s", json!(cpu));
    r.set(
        "server_rss_kb",
        json!([
            p0.server_rss_kb,
            p1.server_rss_kb,
            p2.server_rss_kb,
            p3.server_rss_kb
        ]),
    );
    r.set("server_fds", json!([fds0, fds_end]));
    r.self_usage(&p1, &p2, t1.elapsed().as_secs_f64());
    Ok(r)
}
