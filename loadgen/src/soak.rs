//! The soak: everything at once for a long time, counting every message. Stable subscribers
//! on public channels get HTTP-published events (fan-out) while short-lived connections come
//! and go on the same channels (churn); pairs of clients on private channels exchange client
//! events; presence watchers see short-lived members join and leave. At the end every stable
//! reader must have received each message it was owed exactly once, every watcher must have
//! seen each member join once and leave once, the presence channel must list only the
//! watchers, and the server's RSS is sampled every `--sample-secs` (flat RSS is the other half
//! of a soak's verdict, read from the table).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::auth::{channel_auth, hmac_hex, signed_query, Creds};
use crate::common::{check_bound, Common, Report};
use crate::publish::Publisher;
use crate::sys::{fd_count, now_us, rss_kb, Probe};
use crate::target::Target;
use crate::ws::{event_name, find_mark, make_data, open, ConnError, Mark, Ws, PONG};

#[derive(Args, Clone, Debug)]
pub struct SoakArgs {
    /// Seconds of mixed load (the documented soak is 1800).
    #[arg(long, default_value_t = 60.0)]
    pub duration: f64,
    /// Stable subscribers, spread over --channels public channels.
    #[arg(long, default_value_t = 100)]
    pub subs: usize,
    #[arg(long, default_value_t = 10)]
    pub channels: usize,
    /// HTTP-published events per second (round-robin over the channels).
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Short-lived connections per second on the fan-out channels.
    #[arg(long, default_value_t = 5.0)]
    pub churn_rate: f64,
    /// How long each short-lived connection stays, milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub hold_ms: u64,
    /// Pairs of clients exchanging client events on private channels.
    #[arg(long, default_value_t = 10)]
    pub pairs: usize,
    /// Client events per second per pair (the server's default limit is 10 per connection).
    #[arg(long, default_value_t = 2.0)]
    pub pair_rate: f64,
    /// Stable presence members watching `presence-soak`.
    #[arg(long, default_value_t = 5)]
    pub watchers: usize,
    /// Presence members joining (and leaving after --hold-ms) per second.
    #[arg(long, default_value_t = 2.0)]
    pub presence_rate: f64,
    /// Seconds between RSS samples of --server-pid.
    #[arg(long, default_value_t = 60.0)]
    pub sample_secs: f64,
    /// Seconds to wait for in-flight messages after the load stops.
    #[arg(long, default_value_t = 3.0)]
    pub drain: f64,
}

impl SoakArgs {
    fn check(&self) -> Result<(), String> {
        check_bound("--duration", self.duration, 1800.0)?;
        check_bound("--subs", self.subs as f64, 20_000.0)?;
        check_bound("--channels", self.channels as f64, 10_000.0)?;
        check_bound("--rate", self.rate, 5_000.0)?;
        check_bound("--churn-rate", self.churn_rate, 500.0)?;
        check_bound("--pairs", self.pairs as f64, 1_000.0)?;
        check_bound("--pair-rate", self.pair_rate, 10.0)?;
        check_bound("--watchers", self.watchers as f64, 100.0)?;
        check_bound("--presence-rate", self.presence_rate, 100.0)?;
        check_bound("--drain", self.drain, 60.0)?;
        if self.channels == 0 || self.subs < self.channels {
            return Err("--subs must be at least --channels (>= 1)".into());
        }
        if self.sample_secs < 1.0 {
            return Err("--sample-secs must be at least 1".into());
        }
        Ok(())
    }
}

const PRESENCE: &str = "presence-soak";

/// One RSS sample: seconds since the load started, server RSS (KB) and open files.
type Sample = (f64, Option<u64>, Option<u64>);

/// Counters every actor adds to.
#[derive(Default)]
struct Tally {
    stable_failed: AtomicU64,
    stable_closed: AtomicU64,
    churn_ok: AtomicU64,
    churn_failed: AtomicU64,
    churn_dups: AtomicU64,
    client_sent: AtomicU64,
    client_rejected: AtomicU64,
    joins_ok: AtomicU64,
    joins_failed: AtomicU64,
    errors: Mutex<HashMap<String, u64>>,
}

impl Tally {
    fn error(&self, e: &str) {
        *self
            .errors
            .lock()
            .unwrap()
            .entry(e.to_string())
            .or_insert(0) += 1;
    }
}

/// A subscribe frame, signed for private and presence channels, and the wait for its answer.
async fn join(
    ws: &mut Ws,
    creds: &Creds,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
) -> Result<(), ConnError> {
    let mut data = json!({ "channel": channel });
    if let Some(cd) = channel_data {
        let sig = hmac_hex(&creds.secret, &format!("{socket_id}:{channel}:{cd}"));
        data["auth"] = json!(format!("{}:{sig}", creds.key));
        data["channel_data"] = json!(cd);
    } else if channel.starts_with("private-") {
        data["auth"] = json!(channel_auth(creds, socket_id, channel));
    }
    let frame = json!({ "event": "pusher:subscribe", "data": data }).to_string();
    let fail = |why: String| ConnError {
        stage: "subscribe",
        label: why,
    };
    ws.send(Message::text(frame))
        .await
        .map_err(|e| fail(format!("send: {e}")))?;
    loop {
        match ws.next().await {
            None => return Err(fail("closed".into())),
            Some(Err(e)) => return Err(fail(format!("{e}"))),
            Some(Ok(Message::Text(t))) => match event_name(t.as_str()) {
                Some("pusher_internal:subscription_succeeded") => return Ok(()),
                Some("pusher:subscription_error") | Some("pusher:error") => {
                    return Err(fail(t.as_str().chars().take(160).collect()))
                }
                Some("pusher:ping") => {
                    let _ = ws.send(Message::text(PONG)).await;
                }
                _ => {}
            },
            Some(Ok(Message::Close(_))) => return Err(fail("close".into())),
            Some(Ok(_)) => {}
        }
    }
}

async fn open_joined(
    target: &Target,
    idx: usize,
    channel: &str,
    channel_data: Option<&str>,
    timeout: Duration,
) -> Result<(Ws, String), ConnError> {
    let fut = async {
        let (mut ws, sid) = open(target, target.ws_for(idx), None).await?;
        join(&mut ws, &target.creds, &sid, channel, channel_data).await?;
        Ok((ws, sid))
    };
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or_else(|_| {
            Err(ConnError {
                stage: "connect+subscribe",
                label: "timeout".into(),
            })
        })
}

/// What one reader saw: distinct sequence numbers, duplicates, member events per user.
#[derive(Default)]
struct Seen {
    seqs: HashSet<u64>,
    dups: u64,
    added: HashMap<String, u32>,
    removed: HashMap<String, u32>,
    closed: bool,
}

/// Reads until `stop` (or until the connection ends), answering pings, recording marks and
/// presence member events. Returns the socket too, so the caller closes it.
async fn read(mut ws: Ws, mut stop: watch::Receiver<bool>) -> Seen {
    let mut seen = Seen::default();
    loop {
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            m = ws.next() => match m {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => { seen.closed = true; break; }
                Some(Ok(Message::Text(t))) => {
                    if let Some(m) = find_mark(t.as_bytes()) {
                        if !seen.seqs.insert(m.seq) {
                            seen.dups += 1;
                        }
                        continue;
                    }
                    match event_name(t.as_str()) {
                        Some("pusher:ping") => { let _ = ws.send(Message::text(PONG)).await; }
                        Some(e @ ("pusher_internal:member_added" | "pusher_internal:member_removed")) => {
                            let added = e.ends_with("added");
                            let user = serde_json::from_str::<Value>(t.as_str()).ok()
                                .and_then(|f| f["data"].as_str().and_then(|d| serde_json::from_str::<Value>(d).ok()))
                                .and_then(|d| d["user_id"].as_str().map(str::to_string));
                            if let Some(u) = user {
                                let map = if added { &mut seen.added } else { &mut seen.removed };
                                *map.entry(u).or_insert(0) += 1;
                            }
                        }
                        _ => {}
                    }
                }
                Some(Ok(_)) => {}
            }
        }
    }
    let _ = ws.close(None).await;
    seen
}

/// One short-lived connection: join, read for `hold`, leave. Churners count duplicates only
/// (they come and go mid-stream, so what they are owed is not defined).
async fn churner(
    target: Target,
    idx: usize,
    channel: String,
    hold: Duration,
    t: Arc<Tally>,
    timeout: Duration,
) {
    match open_joined(&target, idx, &channel, None, timeout).await {
        Ok((ws, _)) => {
            t.churn_ok.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = watch::channel(false);
            let reader = tokio::spawn(read(ws, rx));
            tokio::time::sleep(hold).await;
            let _ = tx.send(true);
            if let Ok(seen) = reader.await {
                t.churn_dups.fetch_add(seen.dups, Ordering::Relaxed);
            }
        }
        Err(e) => {
            t.churn_failed.fetch_add(1, Ordering::Relaxed);
            t.error(&format!("churn {}: {}", e.stage, e.label));
        }
    }
}

/// One presence member joining for `hold`, then leaving. Returns its user id when it joined.
async fn joiner(
    target: Target,
    idx: usize,
    user: String,
    hold: Duration,
    t: Arc<Tally>,
    timeout: Duration,
) -> Option<String> {
    let cd = json!({ "user_id": user, "user_info": { "soak": true } }).to_string();
    match open_joined(&target, idx, PRESENCE, Some(&cd), timeout).await {
        Ok((ws, _)) => {
            t.joins_ok.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = watch::channel(false);
            let reader = tokio::spawn(read(ws, rx));
            tokio::time::sleep(hold).await;
            let _ = tx.send(true);
            let _ = reader.await;
            Some(user)
        }
        Err(e) => {
            t.joins_failed.fetch_add(1, Ordering::Relaxed);
            t.error(&format!("presence join {}: {}", e.stage, e.label));
            None
        }
    }
}

/// Paces `f(i)` at `rate` per second until `until`; returns how many were started.
async fn paced<F: FnMut(u64)>(rate: f64, until: tokio::time::Instant, mut f: F) -> u64 {
    if rate <= 0.0 {
        return 0;
    }
    let start = tokio::time::Instant::now();
    let mut i = 0u64;
    loop {
        let at = start + Duration::from_secs_f64(i as f64 / rate);
        if at >= until {
            return i;
        }
        tokio::time::sleep_until(at).await;
        f(i);
        i += 1;
    }
}

pub async fn soak(common: &Common, a: &SoakArgs) -> Result<Report, String> {
    a.check()?;
    let target = common.target()?;
    let timeout = Duration::from_secs(common.connect_timeout);
    let tally = Arc::new(Tally::default());
    let pid = common.server_pid.map(|p| p.to_string());
    let (stop_tx, stop_rx) = watch::channel(false);
    let start_probe = Probe::take(common.server_pid);

    // Stable actors first: subscribers, client-event pairs, presence watchers.
    let mut subs = Vec::new();
    for i in 0..a.subs {
        let ch = i % a.channels;
        match open_joined(&target, i, &format!("soak-fan-{ch}"), None, timeout).await {
            Ok((ws, _)) => subs.push((ch, tokio::spawn(read(ws, stop_rx.clone())))),
            Err(e) => {
                tally.stable_failed.fetch_add(1, Ordering::Relaxed);
                tally.error(&format!("subscriber {}: {}", e.stage, e.label));
            }
        }
    }
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for p in 0..a.pairs {
        let ch = format!("private-soak-pair-{p}");
        let s = open_joined(&target, 2 * p, &ch, None, timeout).await;
        let r = open_joined(&target, 2 * p + 1, &ch, None, timeout).await;
        match (s, r) {
            (Ok((s, _)), Ok((r, _))) => {
                senders.push((ch, s));
                receivers.push(tokio::spawn(read(r, stop_rx.clone())));
            }
            (s, r) => {
                for e in [s.err(), r.err()].into_iter().flatten() {
                    tally.stable_failed.fetch_add(1, Ordering::Relaxed);
                    tally.error(&format!("client-event pair {}: {}", e.stage, e.label));
                }
            }
        }
    }
    let mut watchers = Vec::new();
    for w in 0..a.watchers {
        let cd = json!({ "user_id": format!("w{w}") }).to_string();
        match open_joined(&target, w, PRESENCE, Some(&cd), timeout).await {
            Ok((ws, _)) => watchers.push(tokio::spawn(read(ws, stop_rx.clone()))),
            Err(e) => {
                tally.stable_failed.fetch_add(1, Ordering::Relaxed);
                tally.error(&format!("presence watcher {}: {}", e.stage, e.label));
            }
        }
    }
    // Let the watchers' own joins reach each other before any joiner comes.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let t0 = Instant::now();
    let until = tokio::time::Instant::now() + Duration::from_secs_f64(a.duration);
    let hold = Duration::from_millis(a.hold_ms);

    // RSS (and open files) of the server, every --sample-secs, from the start.
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let sample = {
        let pid = pid.clone();
        move || match &pid {
            Some(p) => (rss_kb(p), fd_count(p)),
            None => (None, None),
        }
    };
    let (load_done_tx, mut load_done) = watch::channel(false);
    let sampler = {
        let samples = samples.clone();
        let sample = sample.clone();
        let every = Duration::from_secs_f64(a.sample_secs);
        tokio::spawn(async move {
            loop {
                let (rss, fds) = sample();
                samples
                    .lock()
                    .unwrap()
                    .push((t0.elapsed().as_secs_f64(), rss, fds));
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = load_done.changed() => return,
                }
            }
        })
    };

    // Fan-out publisher: round-robin over the channels, one request at a time, so each
    // channel's events leave in order; what the server accepted is what readers are owed.
    let owed: Arc<Mutex<Vec<HashSet<u64>>>> =
        Arc::new(Mutex::new(vec![HashSet::new(); a.channels]));
    let pub_failed = Arc::new(AtomicU64::new(0));
    let publisher = {
        let publisher = Publisher::new(&target);
        let owed = owed.clone();
        let failed = pub_failed.clone();
        let tally = tally.clone();
        let (rate, channels) = (a.rate, a.channels);
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            let mut seq = 0u64;
            loop {
                let at = start + Duration::from_secs_f64(seq as f64 / rate.max(1e-9));
                // A publisher that fell behind (a saturated machine) stops at the end too.
                if at >= until || tokio::time::Instant::now() >= until || rate <= 0.0 {
                    return seq;
                }
                tokio::time::sleep_until(at).await;
                let ch = (seq as usize) % channels;
                let data = make_data(
                    Mark {
                        seq,
                        sent_us: now_us(),
                        tag: 0,
                    },
                    "",
                );
                match publisher.publish(&format!("soak-fan-{ch}"), &data).await {
                    Ok(_) => {
                        owed.lock().unwrap()[ch].insert(seq);
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        tally.error(&format!("publish: {e:?}"));
                    }
                }
                seq += 1;
            }
        })
    };

    // Client events: each pair's sender, paced; a pusher:error back is a rejection.
    let pair_tasks: Vec<_> = senders
        .into_iter()
        .map(|(ch, mut ws)| {
            let tally = tally.clone();
            let rate = a.pair_rate;
            tokio::spawn(async move {
                let start = tokio::time::Instant::now();
                let mut seq = 0u64;
                let mut sent = HashSet::new();
                loop {
                    let at = start + Duration::from_secs_f64(seq as f64 / rate.max(1e-9));
                    if at >= until || tokio::time::Instant::now() >= until || rate <= 0.0 {
                        break;
                    }
                    // Read what arrived meanwhile (pings, rejections) until it is time to send.
                    loop {
                        match tokio::time::timeout_at(at, ws.next()).await {
                            Err(_) => break,
                            Ok(Some(Ok(Message::Text(t)))) => match event_name(t.as_str()) {
                                Some("pusher:ping") => {
                                    let _ = ws.send(Message::text(PONG)).await;
                                }
                                Some("pusher:error") => {
                                    tally.client_rejected.fetch_add(1, Ordering::Relaxed);
                                    tally.error(&format!(
                                        "client event: {}",
                                        t.as_str().chars().take(120).collect::<String>()
                                    ));
                                }
                                _ => {}
                            },
                            Ok(Some(Ok(_))) => {}
                            Ok(_) => {
                                tally.stable_closed.fetch_add(1, Ordering::Relaxed);
                                return sent;
                            }
                        }
                    }
                    let data = make_data(
                        Mark {
                            seq,
                            sent_us: now_us(),
                            tag: 1,
                        },
                        "",
                    );
                    let frame =
                        json!({ "event": "client-soak", "channel": ch, "data": data }).to_string();
                    if ws.send(Message::text(frame)).await.is_ok() {
                        tally.client_sent.fetch_add(1, Ordering::Relaxed);
                        sent.insert(seq);
                    }
                    seq += 1;
                }
                // Keep the sender open through the drain, then close.
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    while let Some(Ok(m)) = ws.next().await {
                        if let Message::Text(t) = m {
                            if event_name(t.as_str()) == Some("pusher:error") {
                                tally.client_rejected.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
                .await;
                let _ = ws.close(None).await;
                sent
            })
        })
        .collect();

    // Churn and presence joins, paced, each connection its own task.
    let churn = {
        let (target, tally) = (target.clone(), tally.clone());
        let channels = a.channels;
        let rate = a.churn_rate;
        tokio::spawn(async move {
            let mut tasks = Vec::new();
            paced(rate, until, |i| {
                let ch = format!("soak-fan-{}", i as usize % channels);
                tasks.push(tokio::spawn(churner(
                    target.clone(),
                    i as usize,
                    ch,
                    hold,
                    tally.clone(),
                    timeout,
                )));
            })
            .await;
            for t in tasks {
                let _ = t.await;
            }
        })
    };
    let joins = {
        let (target, tally) = (target.clone(), tally.clone());
        let rate = a.presence_rate;
        tokio::spawn(async move {
            let mut tasks = Vec::new();
            paced(rate, until, |i| {
                tasks.push(tokio::spawn(joiner(
                    target.clone(),
                    i as usize,
                    format!("j{i}"),
                    hold,
                    tally.clone(),
                    timeout,
                )));
            })
            .await;
            let mut joined = Vec::new();
            for t in tasks {
                if let Ok(Some(u)) = t.await {
                    joined.push(u);
                }
            }
            joined
        })
    };

    let published = publisher.await.unwrap_or(0);
    let sent_per_pair: Vec<HashSet<u64>> = {
        let mut v = Vec::new();
        for t in pair_tasks {
            v.push(t.await.unwrap_or_default());
        }
        v
    };
    let _ = churn.await;
    let joined = joins.await.unwrap_or_default();
    let load_s = t0.elapsed().as_secs_f64();
    let _ = load_done_tx.send(true);
    let _ = sampler.await;
    tokio::time::sleep(Duration::from_secs_f64(a.drain)).await;
    // One more sample once everything short-lived has gone: what the server keeps.
    let (rss, fds) = sample();
    samples
        .lock()
        .unwrap()
        .push((t0.elapsed().as_secs_f64(), rss, fds));

    // Who is in the presence channel now: only the watchers.
    let users = presence_users(&target).await;
    let _ = stop_tx.send(true);
    let end_probe = Probe::take(common.server_pid);

    // Fan-out: each stable subscriber owed every accepted event of its channel, once.
    let owed = owed.lock().unwrap().clone();
    let (mut delivered, mut lost, mut dups, mut extra) = (0u64, 0u64, 0u64, 0u64);
    for (ch, h) in subs {
        let seen = h.await.map_err(|e| e.to_string())?;
        if seen.closed {
            tally.stable_closed.fetch_add(1, Ordering::Relaxed);
        }
        delivered += seen.seqs.len() as u64;
        dups += seen.dups;
        lost += owed[ch].difference(&seen.seqs).count() as u64;
        extra += seen.seqs.difference(&owed[ch]).count() as u64;
    }
    // Client events: each receiver owed every event its sender sent, once.
    let (mut c_delivered, mut c_lost, mut c_dups) = (0u64, 0u64, 0u64);
    for (h, sent) in receivers.into_iter().zip(&sent_per_pair) {
        let seen = h.await.map_err(|e| e.to_string())?;
        if seen.closed {
            tally.stable_closed.fetch_add(1, Ordering::Relaxed);
        }
        c_delivered += seen.seqs.len() as u64;
        c_dups += seen.dups;
        c_lost += sent.difference(&seen.seqs).count() as u64;
    }
    // Presence: each watcher saw each joiner added once and removed once.
    let (mut p_missing, mut p_dups) = (0u64, 0u64);
    for h in watchers {
        let seen = h.await.map_err(|e| e.to_string())?;
        if seen.closed {
            tally.stable_closed.fetch_add(1, Ordering::Relaxed);
        }
        for u in &joined {
            for map in [&seen.added, &seen.removed] {
                match map.get(u).copied().unwrap_or(0) {
                    0 => p_missing += 1,
                    1 => {}
                    n => p_dups += u64::from(n - 1),
                }
            }
        }
    }
    let mut want: Vec<String> = (0..a.watchers).map(|w| format!("w{w}")).collect();
    want.sort();
    let presence_ok = users.as_ref().is_ok_and(|u| *u == want);

    let t = &tally;
    let g = |x: &AtomicU64| x.load(Ordering::Relaxed);
    let mut r = Report::new("soak", common);
    r.line(format!(
        "  {load_s:.0} s of load: {} stable subscribers on {} channels, {} events/s published, {} churners/s (hold {} ms), {} client-event pairs at {}/s, {} presence watchers with {} joins/s",
        a.subs, a.channels, a.rate, a.churn_rate, a.hold_ms, a.pairs, a.pair_rate, a.watchers, a.presence_rate
    ));
    r.line(format!(
        "  fan-out: published {published}, failed {}, delivered {delivered}, lost {lost}, duplicated {dups}, unexpected {extra}",
        g(&pub_failed)
    ));
    r.line(format!(
        "  client events: sent {}, delivered {c_delivered}, lost {c_lost}, duplicated {c_dups}, rejected {}",
        g(&t.client_sent),
        g(&t.client_rejected)
    ));
    r.line(format!(
        "  churn: {} connections ok, {} failed, {} duplicates seen",
        g(&t.churn_ok),
        g(&t.churn_failed),
        g(&t.churn_dups)
    ));
    r.line(format!(
        "  presence: {} joins ok, {} failed; member events missing {p_missing}, duplicated {p_dups}; channel lists {:?}",
        g(&t.joins_ok),
        g(&t.joins_failed),
        users.as_ref().map(|u| u.len()).map_err(|e| e.as_str())
    ));
    r.line(format!(
        "  stable connections: {} failed to set up, {} closed early",
        g(&t.stable_failed),
        g(&t.stable_closed)
    ));
    let samples = samples.lock().unwrap().clone();
    r.line("  server RSS:".to_string());
    for (at, rss, fds) in &samples {
        r.line(format!(
            "    t={:>6.0} s  rss {:>8} KB  fds {}",
            at,
            rss.map(|v| v.to_string()).unwrap_or_else(|| "?".into()),
            fds.map(|v| v.to_string()).unwrap_or_else(|| "?".into())
        ));
    }
    for (e, n) in t.errors.lock().unwrap().iter() {
        r.line(format!("    error {n} x {e}"));
    }
    r.self_usage(&start_probe, &end_probe, t0.elapsed().as_secs_f64());
    let correct = lost == 0
        && dups == 0
        && extra == 0
        && g(&pub_failed) == 0
        && published > 0
        && c_lost == 0
        && c_dups == 0
        && g(&t.client_rejected) == 0
        && g(&t.churn_failed) == 0
        && g(&t.churn_dups) == 0
        && g(&t.joins_failed) == 0
        && p_missing == 0
        && p_dups == 0
        && presence_ok
        && g(&t.stable_failed) == 0
        && g(&t.stable_closed) == 0;
    r.line(format!(
        "  verdict: {}",
        if correct { "correct" } else { "INCORRECT" }
    ));
    r.set("duration_s", json!(a.duration));
    r.set("published", json!(published));
    r.set("publish_failed", json!(g(&pub_failed)));
    r.set("delivered", json!(delivered));
    r.set("lost", json!(lost));
    r.set("duplicated", json!(dups));
    r.set("unexpected", json!(extra));
    r.set("client_sent", json!(g(&t.client_sent)));
    r.set("client_delivered", json!(c_delivered));
    r.set("client_lost", json!(c_lost));
    r.set("client_duplicated", json!(c_dups));
    r.set("client_rejected", json!(g(&t.client_rejected)));
    r.set("churn_ok", json!(g(&t.churn_ok)));
    r.set("churn_failed", json!(g(&t.churn_failed)));
    r.set("joins_ok", json!(g(&t.joins_ok)));
    r.set("joins_failed", json!(g(&t.joins_failed)));
    r.set("presence_missing", json!(p_missing));
    r.set("presence_duplicated", json!(p_dups));
    r.set("presence_channel_ok", json!(presence_ok));
    r.set("stable_failed", json!(g(&t.stable_failed)));
    r.set("stable_closed", json!(g(&t.stable_closed)));
    r.set(
        "rss_kb",
        json!(samples
            .iter()
            .map(|(at, rss, _)| json!([crate::stats::round3(*at), rss]))
            .collect::<Vec<_>>()),
    );
    r.set("correct", json!(correct));
    Ok(r)
}

/// `GET /apps/{id}/channels/presence-soak/users`: the user ids, sorted.
async fn presence_users(target: &Target) -> Result<Vec<String>, String> {
    let path = format!("/apps/{}/channels/{PRESENCE}/users", target.creds.app_id);
    let q = signed_query(&target.creds, "GET", &path, b"", now_us() / 1_000_000);
    let url = format!("http://{}{}?{}", target.http.authority, path, q);
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let res = client.get(&url).send().await.map_err(|e| e.to_string())?;
    let status = res.status();
    let body = res.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status} {body}"));
    }
    let v: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    let mut ids: Vec<String> = v["users"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|u| u["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    Ok(ids)
}
