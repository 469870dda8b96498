//! `connections`: open N idle subscribed connections at a given rate and hold them. Reports
//! connect and subscribe latency, the server's RSS growth per connection, its open files, and
//! the first limit hit (ours or the server's) instead of failing silently.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;
use tokio::sync::watch;

use crate::common::{
    check_bound, ramp, run_sub, wait_connected, Common, ConnStats, Report, SubSpec,
};
use crate::stats::{opt, pct_json, round3, Phase};
use crate::sys::{fd_count, nofile_limit_of, now_us, raise_nofile, Probe};
use crate::ws::open_subscribed;

#[derive(Args, Clone, Debug)]
pub struct ConnArgs {
    /// Connections to open.
    #[arg(long, default_value_t = 1000)]
    pub conns: usize,
    /// New connections per second.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Seconds to hold them once all are open.
    #[arg(long, default_value_t = 5.0)]
    pub hold: f64,
    /// Channels; connection i subscribes to channel i % channels.
    #[arg(long, default_value_t = 100)]
    pub channels: usize,
}

/// File descriptors the load generator keeps for itself (runtime, stdio, HTTP).
const RESERVED_FDS: u64 = 64;

pub async fn connections(common: &Common, a: &ConnArgs) -> Result<Report, String> {
    check_bound("conns", a.conns as f64, 60_000.0)?;
    check_bound("rate", a.rate, 50_000.0)?;
    check_bound("hold", a.hold, 600.0)?;
    if a.channels == 0 {
        return Err("--channels must be at least 1".into());
    }
    let target = Arc::new(common.target()?);
    let mut r = Report::new("connections", common);
    r.set(
        "params",
        json!({"conns": a.conns, "rate": a.rate, "hold_s": a.hold, "channels": a.channels}),
    );
    let my_limit = raise_nofile();
    let ceiling = my_limit.saturating_sub(RESERVED_FDS) as usize;
    let n = a.conns.min(ceiling);
    if n < a.conns {
        r.line(format!(
            "  NOTE: asked for {} connections but this process may open {} files: opening {} (one load generator process tops out there)",
            a.conns, my_limit, n
        ));
    }
    r.set("loadgen_nofile_limit", json!(my_limit));
    r.set("conns_attempted", json!(n));
    let pid = common.server_pid.map(|p| p.to_string());
    let server_limit = pid.as_deref().and_then(nofile_limit_of);
    r.set("server_nofile_limit", json!(server_limit));
    let fds0 = pid.as_deref().and_then(fd_count);
    let p0 = Probe::take(common.server_pid);

    let stats = Arc::new(ConnStats::default());
    let phases = Arc::new(vec![Phase::default()]);
    let (stop_tx, stop_rx) = watch::channel(false);
    let run = format!("c{}", now_us() / 1000 % 1_000_000);
    let timeout = Duration::from_secs(common.connect_timeout);
    let chans = a.channels;
    let t0 = Instant::now();
    let st = stats.clone();
    let handles = ramp(n, a.rate, common.connect_inflight, move |i, permit| {
        let (target, st, phases, stop, run) = (
            target.clone(),
            st.clone(),
            phases.clone(),
            stop_rx.clone(),
            run.clone(),
        );
        async move {
            let chan = i % chans;
            let res = open_subscribed(&target, i, &format!("{run}-{chan}"), None, timeout).await;
            drop(permit);
            match res {
                Ok((ws, _, tc, ts)) => {
                    st.connect.record(i, tc.as_micros() as u64);
                    st.subscribe.record(i, ts.as_micros() as u64);
                    st.ok.fetch_add(1, Ordering::Relaxed);
                    let spec = SubSpec {
                        idx: i,
                        chan,
                        record_latency: false,
                        stall_at: None,
                        leave_at: None,
                    };
                    Some(run_sub(ws, spec, phases, stop).await)
                }
                Err(e) => {
                    st.fail(&e);
                    None
                }
            }
        }
    })
    .await;
    let complete = wait_connected(&stats, n as u64, timeout + Duration::from_secs(5)).await;
    let ramp_s = t0.elapsed().as_secs_f64();
    let ok = stats.ok.load(Ordering::Relaxed);
    // Let the server settle (lazy allocations, freed handshake buffers) before measuring.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let p1 = Probe::take(common.server_pid);
    let fds1 = pid.as_deref().and_then(fd_count);
    let t_hold = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(a.hold)).await;
    let p2 = Probe::take(common.server_pid);
    let _ = stop_tx.send(true);
    let mut still_open = 0u64;
    let mut closed: std::collections::BTreeMap<String, u64> = Default::default();
    for h in handles {
        if let Ok(Some(o)) = h.await {
            match o.ended {
                None => still_open += 1,
                Some(e) => *closed.entry(e.how).or_insert(0) += 1,
            }
        }
    }
    let p_end = Probe::take(common.server_pid);

    stats.summary_lines(&mut r.lines);
    if !complete {
        r.line("  WARNING: some connection attempts had not finished when setup timed out");
    }
    r.line(format!(
        "  opened {ok} of {n} in {ramp_s:.2} s ({:.0}/s)",
        ok as f64 / ramp_s.max(1e-9)
    ));
    if stats.failed.load(Ordering::Relaxed) > 0 {
        let first = stats.first_failure_at.lock().unwrap().clone();
        let (at, why) = first.unwrap_or((0, String::new()));
        let side = if why.contains("EMFILE") {
            format!("the LOAD GENERATOR's open-file limit ({my_limit})")
        } else {
            match server_limit {
                Some(l) if fds1.map(|f| f + 16 >= l).unwrap_or(false) => {
                    format!("the SERVER's open-file limit ({l})")
                }
                _ => "the server (refused, reset or timed out)".to_string(),
            }
        };
        r.line(format!(
            "  LIMIT HIT after {at} connections: {why} -> {side}"
        ));
        r.set(
            "limit_hit",
            json!({"after": at, "error": why, "side": side}),
        );
    }
    let growth = match (p0.server_rss_kb, p1.server_rss_kb) {
        (Some(a0), Some(a1)) if ok > 0 => Some(round3((a1 as f64 - a0 as f64) / ok as f64)),
        _ => None,
    };
    r.line(format!(
        "  server RSS {} KB -> {} KB with {} connections: {} KB per connection; after {:.0} s hold {} KB",
        opt(p0.server_rss_kb),
        opt(p1.server_rss_kb),
        ok,
        opt(growth),
        a.hold,
        opt(p2.server_rss_kb)
    ));
    r.line(format!(
        "  server open files {} -> {} (limit {})",
        opt(fds0),
        opt(fds1),
        opt(server_limit)
    ));
    r.line(format!("  still open after hold: {still_open}"));
    for (k, v) in &closed {
        r.line(format!("    closed during hold: {v} x {k}"));
    }
    let cpu_ramp = match (p0.server_cpu, p1.server_cpu) {
        (Some(x), Some(y)) => Some(round3(y - x)),
        _ => None,
    };
    let cpu_hold = match (p1.server_cpu, p2.server_cpu) {
        (Some(x), Some(y)) => Some(round3(y - x)),
        _ => None,
    };
    r.line(format!(
        "  server CPU {} s while connecting, {} s during the {:.0} s idle hold",
        opt(cpu_ramp),
        opt(cpu_hold),
        t_hold.elapsed().as_secs_f64()
    ));
    r.set("conn_ok", json!(ok));
    r.set("conn_failed", json!(stats.failed.load(Ordering::Relaxed)));
    r.set("conn_errors", stats.errors_json());
    r.set("connect", pct_json(&stats.connect.merged()));
    r.set("subscribe", pct_json(&stats.subscribe.merged()));
    r.set("ramp_s", json!(round3(ramp_s)));
    r.set("server_rss_kb_before", json!(p0.server_rss_kb));
    r.set("server_rss_kb_after", json!(p1.server_rss_kb));
    r.set("server_rss_kb_after_hold", json!(p2.server_rss_kb));
    r.set("server_rss_kb_per_conn", json!(growth));
    r.set("server_fds", json!([fds0, fds1]));
    r.set("still_open_after_hold", json!(still_open));
    r.set("closed_during_hold", json!(closed));
    r.set("server_cpu_s_connecting", json!(cpu_ramp));
    r.set("server_cpu_s_idle_hold", json!(cpu_hold));
    r.self_usage(&p0, &p_end, t0.elapsed().as_secs_f64());
    Ok(r)
}
