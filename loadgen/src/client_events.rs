//! `client-events`: pairs of clients on private channels (auth signed locally) sending
//! `client-bench` events to each other at a fixed total rate. The server relays each event to
//! the other member only, so every sent event is one delivery. Reports e2e latency, loss,
//! duplicates, rejected events (4301 errors) and the server's CPU per million deliveries.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{check_bound, ramp, wait_connected, Common, ConnStats, Report};
use crate::stats::{opt, pct_json, pct_line, per_million, round3, SeqTrack, SharedHist};
use crate::sys::{now_us, Probe};
use crate::ws::{error_code, event_name, find_mark, make_data, open_subscribed, Mark, PONG};

#[derive(Args, Clone, Debug)]
pub struct ClientEventArgs {
    /// Pairs of clients (each pair shares one private channel).
    #[arg(long, default_value_t = 50)]
    pub pairs: usize,
    /// Client events per second in total (spread evenly over all clients).
    #[arg(long, default_value_t = 5000.0)]
    pub rate: f64,
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    #[arg(long, default_value_t = 32)]
    pub payload: usize,
    #[arg(long, default_value_t = 3.0)]
    pub drain: f64,
}

struct Shared {
    e2e: SharedHist,
    sent: Vec<AtomicU64>,
    delivered: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

struct Outcome {
    idx: usize,
    track: SeqTrack,
    ended: Option<String>,
}

pub async fn client_events(common: &Common, a: &ClientEventArgs) -> Result<Report, String> {
    check_bound("pairs", a.pairs as f64, 30_000.0)?;
    check_bound("rate", a.rate, 1_000_000.0)?;
    check_bound("duration", a.duration, 600.0)?;
    check_bound("payload", a.payload as f64, 100_000.0)?;
    check_bound("drain", a.drain, 60.0)?;
    if a.pairs == 0 {
        return Err("--pairs must be at least 1".into());
    }
    let target = Arc::new(common.target()?);
    let mut r = Report::new("client-events", common);
    r.set(
        "params",
        json!({"pairs": a.pairs, "rate": a.rate, "duration_s": a.duration, "payload": a.payload}),
    );
    let n = a.pairs * 2;
    let per_client = a.rate / n as f64;
    let shared = Arc::new(Shared {
        e2e: SharedHist::default(),
        sent: (0..n).map(|_| AtomicU64::new(0)).collect(),
        delivered: AtomicU64::new(0),
        errors: Mutex::new(BTreeMap::new()),
    });
    let conn = Arc::new(ConnStats::default());
    let (go_tx, go_rx) = watch::channel::<Option<tokio::time::Instant>>(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let run = format!("private-ce{}", now_us() / 1000 % 1_000_000);
    let pad: Arc<str> = "x".repeat(a.payload).into();
    let timeout = Duration::from_secs(common.connect_timeout);
    let (sh, cs) = (shared.clone(), conn.clone());
    let handles = ramp(n, common.connect_rate, common.connect_inflight, move |i, permit| {
        let (target, sh, cs, mut go, mut stop, run, pad) =
            (target.clone(), sh.clone(), cs.clone(), go_rx.clone(), stop_rx.clone(), run.clone(), pad.clone());
        async move {
            let channel = format!("{run}-{}", i / 2);
            let res = open_subscribed(&target, i, &channel, None, timeout).await;
            drop(permit);
            let mut ws = match res {
                Ok((ws, _, tc, ts)) => {
                    cs.connect.record(i, tc.as_micros() as u64);
                    cs.subscribe.record(i, ts.as_micros() as u64);
                    cs.ok.fetch_add(1, Ordering::Relaxed);
                    ws
                }
                Err(e) => {
                    cs.fail(&e);
                    return None;
                }
            };
            // Wait for everyone to be subscribed (answering pings meanwhile is not needed: setup
            // is far shorter than any activity timeout).
            let send_end = loop {
                if let Some(t) = *go.borrow() {
                    break t;
                }
                if go.changed().await.is_err() {
                    return None;
                }
            };
            let period = Duration::from_secs_f64(1.0 / per_client.max(1e-9));
            // Stagger the clients over one period so sends do not come in bursts.
            let first = tokio::time::Instant::now() + period.mul_f64(i as f64 / n as f64);
            let mut tick = tokio::time::interval_at(first, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut seq = 0u64;
            let mut track = SeqTrack::default();
            let mut ended = None;
            let sending = per_client > 0.0;
            loop {
                if *stop.borrow() {
                    break;
                }
                tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    m = ws.next() => match m {
                        None => { ended = Some("eof".to_string()); break; }
                        Some(Err(e)) => { ended = Some(format!("error: {e}")); break; }
                        Some(Ok(Message::Text(t))) => {
                            if let Some(m) = find_mark(t.as_bytes()) {
                                sh.delivered.fetch_add(1, Ordering::Relaxed);
                                sh.e2e.record(i, now_us().saturating_sub(m.sent_us));
                                track.record(m.seq);
                            } else {
                                match event_name(t.as_str()) {
                                    Some("pusher:ping") => { let _ = ws.send(Message::text(PONG)).await; }
                                    Some("pusher:error") => {
                                        *sh.errors.lock().unwrap().entry(format!("pusher:error {}", error_code(t.as_str()))).or_insert(0) += 1;
                                    }
                                    _ => {}
                                }
                            }
                        }
                        Some(Ok(Message::Close(f))) => {
                            ended = Some(f.map(|f| format!("close {} {}", u16::from(f.code), f.reason)).unwrap_or_else(|| "close".into()));
                            break;
                        }
                        Some(Ok(_)) => {}
                    },
                    _ = tick.tick(), if sending && tokio::time::Instant::now() < send_end => {
                        let data = make_data(Mark { seq, sent_us: now_us(), tag: 0 }, &pad);
                        let frame = format!(r#"{{"event":"client-bench","channel":"{channel}","data":"{data}"}}"#);
                        if ws.send(Message::text(frame)).await.is_err() {
                            ended = Some("send failed".into());
                            break;
                        }
                        seq += 1;
                        sh.sent[i].fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Some(Outcome { idx: i, track, ended })
        }
    })
    .await;
    wait_connected(&conn, n as u64, timeout + Duration::from_secs(5)).await;
    conn.summary_lines(&mut r.lines);
    // A moment for the last subscriptions to be registered everywhere.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let p1 = Probe::take(common.server_pid);
    let t1 = Instant::now();
    let _ = go_tx.send(Some(
        tokio::time::Instant::now() + Duration::from_secs_f64(a.duration),
    ));
    tokio::time::sleep(Duration::from_secs_f64(a.duration)).await;
    let send_secs = t1.elapsed().as_secs_f64();
    // Drain: until everything sent (to a connected partner) arrived, or nothing moves.
    let total_sent = || {
        shared
            .sent
            .iter()
            .map(|x| x.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let end = Instant::now() + Duration::from_secs_f64(a.drain);
    let mut last = (shared.delivered.load(Ordering::Relaxed), Instant::now());
    while Instant::now() < end && shared.delivered.load(Ordering::Relaxed) < total_sent() {
        let d = shared.delivered.load(Ordering::Relaxed);
        if d != last.0 {
            last = (d, Instant::now());
        } else if last.1.elapsed() > Duration::from_millis(1000) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = t1.elapsed().as_secs_f64();
    let p2 = Probe::take(common.server_pid);
    let _ = stop_tx.send(true);
    let mut outs = Vec::new();
    for h in handles {
        if let Ok(Some(o)) = h.await {
            outs.push(o);
        }
    }
    let connected: std::collections::HashSet<usize> = outs.iter().map(|o| o.idx).collect();
    let (mut lost, mut dups, mut ooo) = (0u64, 0u64, 0u64);
    let mut closed = 0;
    for o in &outs {
        let partner = o.idx ^ 1;
        if !connected.contains(&partner) {
            continue;
        }
        lost += shared.sent[partner]
            .load(Ordering::Relaxed)
            .saturating_sub(o.track.unique);
        dups += o.track.dups;
        ooo += o.track.out_of_order;
        if let Some(e) = &o.ended {
            closed += 1;
            *shared
                .errors
                .lock()
                .unwrap()
                .entry(format!("closed: {e}"))
                .or_insert(0) += 1;
        }
    }
    let sent = total_sent();
    let delivered = shared.delivered.load(Ordering::Relaxed);
    let e2e = shared.e2e.merged();
    let cpu = match (p1.server_cpu, p2.server_cpu) {
        (Some(x), Some(y)) => Some(round3(y - x)),
        _ => None,
    };
    r.line(format!("  sent {sent} client events in {send_secs:.2} s ({:.0}/s, target {}/s), delivered {delivered}", sent as f64 / send_secs, a.rate));
    r.line(format!(
        "  lost {lost}  duplicated {dups}  out-of-order {ooo}  connections closed {closed}"
    ));
    for (k, v) in shared.errors.lock().unwrap().iter() {
        r.line(format!("    {v} x {k}"));
    }
    r.line(pct_line("e2e latency", &e2e));
    r.line(format!(
        "  server CPU {} s -> {} CPU s per million deliveries",
        opt(cpu),
        opt(per_million(cpu, delivered))
    ));
    r.set("conn_ok", json!(conn.ok.load(Ordering::Relaxed)));
    r.set("conn_failed", json!(conn.failed.load(Ordering::Relaxed)));
    r.set("sent", json!(sent));
    r.set("delivered", json!(delivered));
    r.set(
        "delivered_per_s",
        json!(round3(delivered as f64 / send_secs)),
    );
    r.set("lost", json!(lost));
    r.set("duplicated", json!(dups));
    r.set("out_of_order", json!(ooo));
    r.set("errors", json!(*shared.errors.lock().unwrap()));
    r.set("e2e", pct_json(&e2e));
    r.set("server_cpu_s", json!(cpu));
    r.set(
        "server_cpu_s_per_million",
        json!(per_million(cpu, delivered)),
    );
    r.set(
        "loadgen_cpu_s_per_million",
        json!(per_million(Some(p2.self_cpu - p1.self_cpu), delivered)),
    );
    r.self_usage(&p1, &p2, wall);
    Ok(r)
}
