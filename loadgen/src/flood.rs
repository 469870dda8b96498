//! `flood`: the hostile half of `loadgen/floods.sh`. For `--duration` seconds it does one kind
//! of flood while another rf-loadgen process (a `fanout`) measures what normal clients see, and
//! it reports how the server answered (connections established or refused, subscriptions
//! confirmed, events refused, connections closed and with which code), never latency:
//! - `connect-burst`: every `--every` s a wave of `--conns` connections opened at once (held
//!   until the next wave, then dropped);
//! - `subscribe`: `--conns` connections subscribing to new channel names and leaving them again
//!   (at most 100 at a time each), `--rate` subscriptions per second in all;
//! - `client-events`: `--conns` connections, each alone on a private channel, sending client
//!   events at `--rate` per second in all (far over the server's per-connection limit);
//! - `never-read`: `--conns` connections that subscribe to one channel and then never read,
//!   while `--rate` events of 8 KB per second are published to it through the HTTP API.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::time::{sleep_until, Instant};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{check_bound, Common, Report};
use crate::publish::Publisher;
use crate::sys::now_us;
use crate::target::Target;
use crate::ws::{error_code, event_name, open, subscribe, ConnError, Ws, PONG};

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    ConnectBurst,
    Subscribe,
    ClientEvents,
    NeverRead,
}

#[derive(Args, Clone, Debug)]
pub struct FloodArgs {
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// Seconds of flooding.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Connections (per wave for `connect-burst`).
    #[arg(long, default_value_t = 2000)]
    pub conns: usize,
    /// Subscriptions, client events or published events per second, in all.
    #[arg(long, default_value_t = 5000.0)]
    pub rate: f64,
    /// Seconds between waves (`connect-burst`).
    #[arg(long, default_value_t = 2.0)]
    pub every: f64,
}

/// Subscriptions one `subscribe` flooder keeps at once (under the default
/// `--max-channels-per-connection` of 1,000).
const KEEP_SUBSCRIBED: u64 = 100;

/// What the server answered, by label.
#[derive(Default)]
struct Tally {
    counts: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn add(&self, label: impl Into<String>, n: u64) {
        *self.counts.lock().unwrap().entry(label.into()).or_insert(0) += n;
    }
    fn failed(&self, e: &ConnError) {
        self.add(format!("connect failed: {}: {}", e.stage, e.label), 1);
    }
}

pub async fn flood(common: &Common, a: &FloodArgs) -> Result<Report, String> {
    check_bound("duration", a.duration, 600.0)?;
    check_bound("conns", a.conns as f64, 15_000.0)?;
    check_bound("rate", a.rate, 1_000_000.0)?;
    check_bound("every", a.every, 60.0)?;
    if a.conns == 0 {
        return Err("--conns must be at least 1".into());
    }
    let target = Arc::new(common.target()?);
    let mut r = Report::new("flood", common);
    r.set(
        "params",
        json!({"kind": format!("{:?}", a.kind), "duration_s": a.duration, "conns": a.conns,
               "rate": a.rate, "every_s": a.every}),
    );
    let tally = Arc::new(Tally::default());
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(a.duration);
    let run = format!("f{}", now_us() / 1000 % 1_000_000);
    let sent = Arc::new(AtomicU64::new(0));
    match a.kind {
        Kind::ConnectBurst => connect_burst(&target, a, end, &tally).await,
        Kind::Subscribe | Kind::ClientEvents => {
            let per_conn = a.rate / a.conns as f64;
            let tasks: Vec<_> = (0..a.conns)
                .map(|i| {
                    let (target, tally, sent) = (target.clone(), tally.clone(), sent.clone());
                    let channel = match a.kind {
                        Kind::ClientEvents => format!("private-{run}-{i}"),
                        _ => format!("{run}-{i}"),
                    };
                    let kind = a.kind;
                    tokio::spawn(async move {
                        let (ws, sid) = match open(&target, target.ws_for(i), None).await {
                            Ok(pair) => pair,
                            Err(e) => return tally.failed(&e),
                        };
                        flood_one(
                            ws, &target, &sid, kind, &channel, per_conn, end, &tally, &sent,
                        )
                        .await;
                    })
                })
                .collect();
            for t in tasks {
                let _ = t.await;
            }
        }
        Kind::NeverRead => never_read(&target, a, &run, end, &tally, &sent).await,
    }
    let took = start.elapsed().as_secs_f64();
    r.line(format!(
        "  {:?} for {took:.1} s: {} subscriptions, client events or published events sent",
        a.kind,
        sent.load(Ordering::Relaxed)
    ));
    let counts = tally.counts.lock().unwrap().clone();
    for (k, v) in &counts {
        r.line(format!("    {v} x {k}"));
    }
    r.set("sent", json!(sent.load(Ordering::Relaxed)));
    r.set("answers", json!(counts));
    r.set("took_s", json!(took));
    Ok(r)
}

/// Waves of `--conns` connections opened at once, each held until the next wave.
async fn connect_burst(target: &Arc<Target>, a: &FloodArgs, end: Instant, tally: &Arc<Tally>) {
    let mut wave_at = Instant::now();
    let mut held: Vec<Ws> = Vec::new();
    while wave_at < end {
        held.clear();
        let wave: Vec<_> = (0..a.conns)
            .map(|i| {
                let (target, tally) = (target.clone(), tally.clone());
                tokio::spawn(async move {
                    let opened = tokio::time::timeout(
                        Duration::from_secs(15),
                        open(&target, target.ws_for(i), None),
                    )
                    .await;
                    match opened {
                        Ok(Ok((ws, _))) => {
                            tally.add("established", 1);
                            Some(ws)
                        }
                        Ok(Err(e)) => {
                            tally.failed(&e);
                            None
                        }
                        Err(_) => {
                            tally.add("no answer within 15 s", 1);
                            None
                        }
                    }
                })
            })
            .collect();
        for t in wave {
            if let Ok(Some(ws)) = t.await {
                held.push(ws);
            }
        }
        tally.add("waves", 1);
        wave_at += Duration::from_secs_f64(a.every.max(0.1));
        sleep_until(wave_at.min(end)).await;
    }
}

/// One `subscribe` or `client-events` flooder: writes at `per_sec`, reads what comes back.
#[allow(clippy::too_many_arguments)]
async fn flood_one(
    mut ws: Ws,
    target: &Target,
    sid: &str,
    kind: Kind,
    channel: &str,
    per_sec: f64,
    end: Instant,
    tally: &Arc<Tally>,
    sent: &Arc<AtomicU64>,
) {
    if kind == Kind::ClientEvents {
        if let Err(e) = subscribe(&mut ws, &target.creds, sid, channel).await {
            return tally.failed(&e);
        }
    }
    let (mut tx, mut rx) = ws.split();
    let reader = {
        let tally = tally.clone();
        tokio::spawn(async move {
            // Counted as they come: the server may still be answering when the flood ends.
            while let Some(Ok(m)) = rx.next().await {
                let label = match m {
                    Message::Text(t) => match event_name(t.as_str()) {
                        Some("pusher:error") => format!("pusher:error {}", error_code(t.as_str())),
                        Some("pusher:subscription_error") => {
                            format!("subscription_error {}", error_code(t.as_str()))
                        }
                        Some(e) => e.to_string(),
                        None => "other frame".into(),
                    },
                    Message::Close(None) => "our close echoed".into(),
                    Message::Close(Some(f)) => format!("closed {}", u16::from(f.code)),
                    _ => continue,
                };
                tally.add(label, 1);
            }
        })
    };
    // Batches every 10 ms keep the rate without a timer per frame.
    let tick = Duration::from_millis(10);
    let per_tick = per_sec * tick.as_secs_f64();
    let mut owed = 0.0;
    let mut k: u64 = 0;
    let mut at = Instant::now();
    'flood: while at < end {
        owed += per_tick;
        while owed >= 1.0 {
            owed -= 1.0;
            let mut frames = Vec::with_capacity(2);
            match kind {
                Kind::Subscribe => {
                    frames.push(format!(
                        r#"{{"event":"pusher:subscribe","data":{{"channel":"{channel}-{k}"}}}}"#
                    ));
                    if k >= KEEP_SUBSCRIBED {
                        frames.push(format!(
                            r#"{{"event":"pusher:unsubscribe","data":{{"channel":"{channel}-{}"}}}}"#,
                            k - KEEP_SUBSCRIBED
                        ));
                    }
                }
                _ => frames.push(format!(
                    r#"{{"event":"client-flood","channel":"{channel}","data":{{"n":{k}}}}}"#
                )),
            }
            for f in frames {
                if tx.feed(Message::text(f)).await.is_err() {
                    break 'flood;
                }
            }
            k += 1;
            sent.fetch_add(1, Ordering::Relaxed);
        }
        if tx.flush().await.is_err() {
            break;
        }
        at += tick;
        sleep_until(at).await;
    }
    // Let the last answers arrive, then close.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = tx.send(Message::Close(None)).await;
    if tokio::time::timeout(Duration::from_secs(3), reader)
        .await
        .is_err()
    {
        tally.add("still answering 3 s after the flood ended", 1);
    }
}

/// Connections that subscribe and never read while events pile up for them.
async fn never_read(
    target: &Arc<Target>,
    a: &FloodArgs,
    run: &str,
    end: Instant,
    tally: &Arc<Tally>,
    sent: &Arc<AtomicU64>,
) {
    // One channel: every event reaches every stalled connection, so their queues fill at the
    // publish rate (`--max-queued-frames` is 1,000 by default).
    let channel = format!("{run}-never-read");
    let mut stalled = Vec::new();
    for i in 0..a.conns {
        // A small receive buffer: the server's queue fills sooner.
        match open(target, target.ws_for(i), Some(4096)).await {
            Ok((mut ws, sid)) => match subscribe(&mut ws, &target.creds, &sid, &channel).await {
                Ok(()) => stalled.push(ws),
                Err(e) => tally.failed(&e),
            },
            Err(e) => tally.failed(&e),
        }
    }
    tally.add("subscribed, then never read", stalled.len() as u64);
    let publisher = Publisher::new(target);
    let data = "x".repeat(8 * 1024);
    let interval = Duration::from_secs_f64(1.0 / a.rate.max(0.1));
    let mut at = Instant::now();
    while at < end {
        match publisher.publish(&channel, &data).await {
            Ok(_) => {
                sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tally.add(format!("publish failed: {e:?}"), 1),
        }
        at += interval;
        sleep_until(at).await;
    }
    // Now read what each got, to see how the server ended it (close 4100 when its queue
    // overflowed) or whether it is still open.
    let ends: Vec<_> = stalled
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                let read_all = async {
                    while let Some(m) = ws.next().await {
                        match m {
                            Ok(Message::Text(t)) if t.as_str() == PONG => {}
                            Ok(Message::Close(f)) => {
                                return format!(
                                    "closed {}",
                                    f.map(|f| u16::from(f.code)).unwrap_or(0)
                                )
                            }
                            Ok(_) => {}
                            Err(_) => return "reset".to_string(),
                        }
                    }
                    "ended without a close".to_string()
                };
                tokio::time::timeout(Duration::from_secs(5), read_all)
                    .await
                    .unwrap_or_else(|_| "still open".to_string())
            })
        })
        .collect();
    for e in ends {
        if let Ok(label) = e.await {
            tally.add(format!("never-read connection: {label}"), 1);
        }
    }
}
