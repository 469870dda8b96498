//! Webhooks against a real HTTP receiver (axum, in the test): every kind with exactly its
//! fields, signed as the SDKs check; the vacated / removed delay and its cancellation;
//! batching; retries (500 twice then 200; a receiver down for 15 s; giving up, counted and
//! reported to a watcher of the attempts);
//! a full queue counted; HTTPS receivers; SIGTERM flushes; a slow receiver never slows
//! fan-out; 50 channels give exactly 50 occupied and 50 vacated; three nodes through Redis
//! give one webhook per channel and member, with a node SIGKILLed mid-test.
//!
//! The cluster test needs a Redis on 127.0.0.1:6379 (it uses its own random prefix).

mod common;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use common::*;
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use rf_broadcast::testing::webhooks::{Kinds, Target, WebhookSettings, Webhooks};
use rf_broadcast::{App, Apps, Hub, HubSettings, ServerOptions};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The latency test runs alone: the other tests of this file take this lock shared, it takes
/// it exclusively, so their servers and clients do not share the CPU with its measurement.
static LATENCY: std::sync::LazyLock<tokio::sync::RwLock<()>> =
    std::sync::LazyLock::new(|| tokio::sync::RwLock::new(()));

// ---------------------------------------------------------------------------------------
// The receiver

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hook {
    at: Instant,
    status: u16,
    content_type: String,
    key: String,
    signature: String,
    extra: Option<String>,
    /// The sender's address: one port for requests over one kept-alive connection.
    peer: SocketAddr,
    body: Bytes,
}

impl Hook {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn events(&self) -> Vec<Value> {
        self.json()["events"].as_array().unwrap().clone()
    }
}

#[derive(Default)]
struct Plan {
    /// Statuses to answer first, in order; then 200.
    statuses: VecDeque<u16>,
    /// Answer this late.
    delay: Duration,
}

#[derive(Clone, Default)]
struct Receiver {
    hooks: Arc<Mutex<Vec<Hook>>>,
    plan: Arc<Mutex<Plan>>,
}

async fn receive(
    State(r): State<Receiver>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let (status, delay) = {
        let mut p = r.plan.lock();
        (p.statuses.pop_front().unwrap_or(200), p.delay)
    };
    let h = |n: &str| {
        headers
            .get(n)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    r.hooks.lock().push(Hook {
        at: Instant::now(),
        status,
        content_type: h("content-type"),
        key: h("x-pusher-key"),
        signature: h("x-pusher-signature"),
        extra: headers
            .get("x-extra")
            .map(|v| v.to_str().unwrap().to_string()),
        peer,
        body,
    });
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    fn router(&self) -> axum::Router {
        axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(self.clone())
    }

    /// Serve on `listener` (in this test's runtime).
    fn serve(&self, listener: tokio::net::TcpListener) {
        let app = self.router();
        tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
    }

    async fn start() -> (Receiver, String) {
        let r = Receiver::default();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        r.serve(l);
        (r, url)
    }

    /// Serve on its own thread and runtime, so a busy test runtime cannot delay answers.
    fn start_threaded() -> (Receiver, String) {
        let r = Receiver::default();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let app = r.router();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    let l = tokio::net::TcpListener::from_std(l).unwrap();
                    axum::serve(l, app.into_make_service_with_connect_info::<SocketAddr>())
                        .await
                        .unwrap();
                });
        });
        (r, url)
    }

    fn hooks(&self) -> Vec<Hook> {
        self.hooks.lock().clone()
    }

    /// The events of every request answered 2xx, in arrival order.
    fn delivered(&self) -> Vec<Value> {
        self.hooks()
            .iter()
            .filter(|h| (200..300).contains(&h.status))
            .flat_map(|h| h.events())
            .collect()
    }

    fn delivered_named(&self, name: &str) -> Vec<Value> {
        self.delivered()
            .into_iter()
            .filter(|e| e["name"] == name)
            .collect()
    }

    async fn wait_for(&self, what: &str, within: Duration, f: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            let d = self.delivered();
            if f(&d) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; got {d:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// What every SDK validator checks: the exact content type, the key, the HMAC of the raw
/// body with the secret, and a fresh `time_ms`.
fn assert_signed(h: &Hook, key: &str, secret: &str) {
    assert_eq!(h.content_type, "application/json");
    assert_eq!(h.key, key);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&h.body);
    assert_eq!(h.signature, hex::encode(mac.finalize().into_bytes()));
    let t = h.json()["time_ms"].as_u64().unwrap();
    assert!(now_ms().abs_diff(t) < 10_000, "time_ms {t} is not now");
}

// ---------------------------------------------------------------------------------------
// In-process servers

fn fast() -> WebhookSettings {
    WebhookSettings {
        delay: Duration::from_millis(300),
        batch_window: Duration::from_millis(50),
        retry_min_backoff: Duration::from_millis(100),
        retry_max_backoff: Duration::from_millis(500),
        ..WebhookSettings::default()
    }
}

fn app_with(targets: Vec<Target>) -> App {
    App {
        webhooks: targets,
        ..app()
    }
}

fn target(url: &str, kinds: &str) -> Target {
    Target::new(url, Kinds::parse(kinds.split(',')).unwrap()).unwrap()
}

async fn serve(app: App, settings: WebhookSettings) -> (TestServer, Webhooks) {
    let hub = Hub::new(Apps::new(vec![app.clone()]), HubSettings::default());
    let webhooks = Webhooks::start(&hub, settings, None)
        .await
        .unwrap()
        .unwrap();
    let server = TestServer::from_hub(hub, app, ServerOptions::default()).await;
    (server, webhooks)
}

async fn unsubscribe(c: &mut Client, channel: &str) {
    c.send(json!({"event":"pusher:unsubscribe","data":{"channel":channel}}))
        .await;
}

// ---------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn every_kind_with_exactly_its_fields_signed() {
    let _shared = LATENCY.read().await;
    let (rx, url) = Receiver::start().await;
    let mut t = target(&url, "");
    t.events = Kinds::parse(
        "channel_occupied,channel_vacated,member_added,member_removed,client_event,cache_miss,subscription_count"
            .split(','),
    )
    .unwrap();
    t.headers.insert("X-Extra".into(), "yes".into());
    let (server, _wh) = serve(app_with(vec![t]), fast()).await;

    let mut a = server.client().await;
    let mut b = server.client().await;
    a.subscribe("cache-prices").await;
    a.join("presence-room", "42", json!({"name":"Ada"})).await;
    b.subscribe_private("private-chat").await;
    a.subscribe_private("private-chat").await;
    // A client event on a presence channel carries the sender's user id; elsewhere not.
    a.send(json!({"event":"client-typing","channel":"presence-room","data":{"name":"Ada"}}))
        .await;
    b.send(json!({"event":"client-hi","channel":"private-chat","data":"plain"}))
        .await;
    rx.wait_for("client events", Duration::from_secs(5), |d| {
        d.iter().filter(|e| e["name"] == "client_event").count() == 2
    })
    .await;
    unsubscribe(&mut a, "presence-room").await;
    unsubscribe(&mut a, "cache-prices").await;
    rx.wait_for("vacated and removed", Duration::from_secs(5), |d| {
        d.iter().filter(|e| e["name"] == "channel_vacated").count() == 2
            && d.iter().any(|e| e["name"] == "member_removed")
    })
    .await;

    for h in rx.hooks() {
        assert_signed(&h, "app-key", "app-secret");
        assert_eq!(h.extra.as_deref(), Some("yes"));
    }
    let d = rx.delivered();
    let has = |v: Value| assert!(d.contains(&v), "missing {v} in {d:#?}");
    has(json!({"name":"channel_occupied","channel":"cache-prices"}));
    has(json!({"name":"cache_miss","channel":"cache-prices"}));
    has(json!({"name":"channel_occupied","channel":"presence-room"}));
    has(json!({"name":"member_added","channel":"presence-room","user_id":"42"}));
    has(json!({"name":"channel_occupied","channel":"private-chat"}));
    has(json!({"name":"subscription_count","channel":"private-chat","subscription_count":2}));
    has(
        json!({"name":"client_event","channel":"presence-room","event":"client-typing",
        "data":"{\"name\":\"Ada\"}","socket_id":a.socket_id,"user_id":"42"}),
    );
    has(
        json!({"name":"client_event","channel":"private-chat","event":"client-hi",
        "data":"plain","socket_id":b.socket_id}),
    );
    has(json!({"name":"member_removed","channel":"presence-room","user_id":"42"}));
    has(json!({"name":"channel_vacated","channel":"presence-room"}));
    has(json!({"name":"channel_vacated","channel":"cache-prices"}));
    assert!(
        !d.iter()
            .any(|e| e["name"] == "subscription_count" && e["channel"] == "presence-room"),
        "no subscription_count for presence channels"
    );
    // Per channel: occupied before vacated, added before removed.
    let pos = |name: &str, ch: &str| {
        d.iter()
            .position(|e| e["name"] == name && e["channel"] == ch)
            .unwrap()
    };
    assert!(pos("channel_occupied", "presence-room") < pos("channel_vacated", "presence-room"));
    assert!(pos("member_added", "presence-room") < pos("member_removed", "presence-room"));
}

#[tokio::test]
async fn targets_get_only_their_kinds_and_channels() {
    let _shared = LATENCY.read().await;
    let (rx, url) = Receiver::start().await;
    let mut t = target(&url, "channel_occupied");
    t.filter.channel_name_starts_with = Some("private-".into());
    let (server, _wh) = serve(app_with(vec![t]), fast()).await;
    let mut a = server.client().await;
    a.subscribe("public-x").await;
    a.subscribe_private("private-x").await;
    rx.wait_for("occupied", Duration::from_secs(5), |d| !d.is_empty())
        .await;
    unsubscribe(&mut a, "private-x").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        rx.delivered(),
        [json!({"name":"channel_occupied","channel":"private-x"})]
    );
}

#[tokio::test]
async fn vacated_and_removed_wait_and_a_rejoin_cancels_them() {
    let _shared = LATENCY.read().await;
    let (rx, url) = Receiver::start().await;
    let settings = WebhookSettings {
        delay: Duration::from_millis(800),
        ..fast()
    };
    let (server, _wh) = serve(app_with(vec![target(&url, "")]), settings).await;
    let mut a = server.client().await;
    a.join("presence-r", "u1", json!({})).await;
    // A second connection of the same user is the same member.
    let mut a2 = server.client().await;
    a2.join("presence-r", "u1", json!({})).await;
    rx.wait_for("added", Duration::from_secs(5), |d| d.len() == 2)
        .await;
    // A page reload: both connections go, one comes back within the delay.
    unsubscribe(&mut a, "presence-r").await;
    unsubscribe(&mut a2, "presence-r").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.join("presence-r", "u1", json!({})).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(
        rx.delivered(),
        [
            json!({"name":"channel_occupied","channel":"presence-r"}),
            json!({"name":"member_added","channel":"presence-r","user_id":"u1"}),
        ],
        "no leave, no second join"
    );
    // Now really gone: both fire after the delay, not before.
    let left = Instant::now();
    drop(a);
    rx.wait_for("removed", Duration::from_secs(5), |d| d.len() == 4)
        .await;
    let d = rx.delivered();
    assert_eq!(d[2]["name"], "member_removed");
    assert_eq!(d[3]["name"], "channel_vacated");
    let arrived = rx.hooks().last().unwrap().at;
    assert!(
        arrived.duration_since(left) >= Duration::from_millis(800),
        "{:?}",
        arrived.duration_since(left)
    );
}

#[tokio::test]
async fn fifty_channels_batched_give_exactly_fifty_of_each() {
    let _shared = LATENCY.read().await;
    let (rx, url) = Receiver::start().await;
    let settings = WebhookSettings {
        delay: Duration::from_millis(200),
        batch_window: Duration::from_millis(250),
        batch_max: 20,
        ..fast()
    };
    let (server, _wh) = serve(
        app_with(vec![target(&url, "channel_occupied,channel_vacated")]),
        settings,
    )
    .await;
    let mut c = server.client().await;
    for i in 0..50 {
        c.send(json!({"event":"pusher:subscribe","data":{"channel":format!("ch-{i}")}}))
            .await;
    }
    rx.wait_for("50 occupied", Duration::from_secs(5), |d| d.len() >= 50)
        .await;
    drop(c);
    rx.wait_for("50 vacated", Duration::from_secs(5), |d| d.len() >= 100)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let occupied = rx.delivered_named("channel_occupied");
    let vacated = rx.delivered_named("channel_vacated");
    let names = |v: &[Value]| {
        let mut n: Vec<String> = v
            .iter()
            .map(|e| e["channel"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n.dedup();
        n.len()
    };
    assert_eq!((occupied.len(), names(&occupied)), (50, 50));
    assert_eq!((vacated.len(), names(&vacated)), (50, 50));
    // Batched: at most 20 per request, and far fewer requests than events.
    let hooks = rx.hooks();
    assert!(hooks.iter().all(|h| h.events().len() <= 20));
    assert!(hooks.len() <= 10, "{} requests for 100 events", hooks.len());
    assert!(hooks.iter().any(|h| h.events().len() == 20));
}

#[tokio::test]
async fn five_hundred_twice_then_two_hundred_is_delivered_once() {
    let _shared = LATENCY.read().await;
    let (rx, url) = Receiver::start().await;
    rx.plan.lock().statuses = [500, 500].into();
    let (server, wh) = serve(app_with(vec![target(&url, "channel_occupied")]), fast()).await;
    let mut c = server.client().await;
    c.subscribe("retry-me").await;
    rx.wait_for("delivery", Duration::from_secs(5), |d| d.len() == 1)
        .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let hooks = rx.hooks();
    assert_eq!(
        hooks.iter().map(|h| h.status).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    // Each attempt is signed anew with a fresh time_ms.
    for h in &hooks {
        assert_signed(h, "app-key", "app-secret");
    }
    let times: Vec<u64> = hooks
        .iter()
        .map(|h| h.json()["time_ms"].as_u64().unwrap())
        .collect();
    assert!(times[0] < times[1] && times[1] < times[2], "{times:?}");
    // The retries reuse the kept-alive connection.
    assert!(hooks.iter().all(|h| h.peer == hooks[0].peer), "{hooks:?}");
    let s = wh.stats();
    assert_eq!((s.delivered, s.requests, s.failed_attempts), (1, 3, 2));
}

#[tokio::test]
async fn an_answer_after_the_timeout_counts_as_failed_and_is_retried() {
    let _shared = LATENCY.read().await;
    let (rx, url) = Receiver::start().await;
    rx.plan.lock().delay = Duration::from_millis(1_500);
    let settings = WebhookSettings {
        timeout: Duration::from_millis(400),
        ..fast()
    };
    let (server, wh) = serve(app_with(vec![target(&url, "channel_occupied")]), settings).await;
    let mut c = server.client().await;
    c.subscribe("late").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while rx.hooks().len() < 2 {
        assert!(Instant::now() < deadline, "no retry after the timeout");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Answer in time from now on: the next attempt is delivered.
    rx.plan.lock().delay = Duration::ZERO;
    let deadline = Instant::now() + Duration::from_secs(5);
    while wh.stats().delivered == 0 {
        assert!(Instant::now() < deadline, "{:?}", wh.stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = wh.stats();
    assert!(s.failed_attempts >= 2, "{s:?}");
    assert_eq!(s.delivered, 1);
}

#[tokio::test]
async fn a_receiver_down_for_fifteen_seconds_gets_everything_after() {
    let _shared = LATENCY.read().await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let settings = WebhookSettings {
        retry_min_backoff: Duration::from_millis(200),
        retry_max_backoff: Duration::from_secs(2),
        ..fast()
    };
    let (server, wh) = serve(app_with(vec![target(&url, "")]), settings).await;
    let mut c = server.client().await;
    c.subscribe("while-down").await;
    c.join("presence-down", "7", json!({})).await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert!(wh.stats().failed_attempts >= 5, "{:?}", wh.stats());
    let rx = Receiver::default();
    rx.serve(
        tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap(),
    );
    rx.wait_for("everything", Duration::from_secs(5), |d| d.len() == 3)
        .await;
    let d = rx.delivered();
    assert_eq!(
        d[0],
        json!({"name":"channel_occupied","channel":"while-down"})
    );
    for h in rx.hooks() {
        assert_signed(&h, "app-key", "app-secret");
    }
    assert_eq!(wh.stats().given_up, 0);
}

#[tokio::test]
async fn what_cannot_be_delivered_or_overflows_is_counted() {
    let _shared = LATENCY.read().await;
    let (rx, url) = Receiver::start().await;
    rx.plan.lock().statuses = std::iter::repeat_n(503, 1000).collect();
    let settings = WebhookSettings {
        retry_for: Duration::from_millis(700),
        queue: 3,
        max_in_flight: 1,
        batch_max: 1,
        ..fast()
    };
    let (server, wh) = serve(app_with(vec![target(&url, "channel_occupied")]), settings).await;
    let mut attempts = wh.watch_attempts();
    let mut c = server.client().await;
    for i in 0..10 {
        c.subscribe(&format!("lost-{i}")).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let stats = loop {
        let s = wh.stats();
        if s.given_up + s.overflowed == 10 {
            assert!(s.overflowed >= 6, "{s:?}");
            assert!(s.given_up >= 1, "{s:?}");
            assert_eq!(s.delivered, 0);
            break s;
        }
        assert!(Instant::now() < deadline, "{s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Every request was reported to the watcher: each answered 503, retried until given up.
    let mut reports = Vec::new();
    while let Ok(a) = attempts.try_recv() {
        reports.push(a);
    }
    assert_eq!(reports.len() as u64, stats.requests, "{reports:#?}");
    assert!(reports.iter().all(|a| a.status == Some(503)
        && a.error.as_deref() == Some("answered 503 Service Unavailable")
        && a.events == 1
        && a.kinds == ["channel_occupied"]
        && &*a.target == url.as_str()));
    let outcome = |name: &str| reports.iter().filter(|a| a.outcome.name() == name).count();
    assert_eq!(outcome("given_up") as u64, stats.given_up, "{reports:#?}");
    assert!(outcome("will_retry") >= 1, "{reports:#?}");
    assert_eq!(outcome("delivered"), 0);
    for a in &reports {
        assert_eq!(
            a.retry_in_ms.is_some(),
            a.outcome.name() == "will_retry",
            "{a:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The binary

const BIN: &str = env!("CARGO_BIN_EXE_rf-broadcast");

async fn wait_up(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "port {port} never opened");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

fn ws_url(port: u16) -> String {
    format!("ws://127.0.0.1:{port}/app/app-key?protocol=7&client=js&version=8.4.0&flash=false")
}

async fn client_of(port: u16) -> Client {
    Client::established(&ws_url(port), "app-key", "app-secret").await
}

fn spawn(args: &[&str], env: &[(&str, &str)]) -> (KillOnDrop, u16) {
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.args(["--port", &port.to_string(), "--log-level", "warn"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    (KillOnDrop(cmd.spawn().unwrap()), port)
}

#[tokio::test]
async fn sigterm_sends_the_pending_vacated_webhooks() {
    let _shared = LATENCY.read().await;
    let (rx, url) = Receiver::start().await;
    let (mut proc, port) = spawn(&["--webhook-url", &url, "--webhook-delay", "30s"], &[]);
    wait_up(port).await;
    let mut c = client_of(port).await;
    c.subscribe("bye").await;
    rx.wait_for("occupied", Duration::from_secs(5), |d| d.len() == 1)
        .await;
    Command::new("kill")
        .args(["-TERM", &proc.0.id().to_string()])
        .status()
        .unwrap();
    // Not 30 s later: shutdown fires the pending vacated at once and waits for its delivery.
    rx.wait_for("vacated", Duration::from_secs(8), |d| d.len() == 2)
        .await;
    assert_eq!(
        rx.delivered()[1],
        json!({"name":"channel_vacated","channel":"bye"})
    );
    let status = proc.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn https_receivers_work() {
    let _shared = LATENCY.read().await;
    // A CA and a server certificate for 127.0.0.1; the server trusts the CA through
    // SSL_CERT_FILE (rustls with the system's roots).
    let dir = std::env::temp_dir().join(format!("rf-wh-tls-{:x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();

    // ring is the one crypto provider built in (reqwest's too): the builder picks it.
    let config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            tokio_rustls::rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der())
                .unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let rx = Receiver::default();
    let router = rx.router();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let router = router.clone().layer(axum::Extension(ConnectInfo(peer)));
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .await;
            });
        }
    });
    let url = format!("https://{addr}/hook");
    let (_proc, port) = spawn(
        &["--webhook-url", &url],
        &[("SSL_CERT_FILE", ca_file.to_str().unwrap())],
    );
    wait_up(port).await;
    let mut c = client_of(port).await;
    c.subscribe("tls").await;
    rx.wait_for("occupied over https", Duration::from_secs(8), |d| {
        d.len() == 1
    })
    .await;
    assert_signed(&rx.hooks()[0], "app-key", "app-secret");
    let _ = std::fs::remove_dir_all(dir);
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_never_slows_fan_out() {
    let _alone = LATENCY.write().await;
    let (rx, url) = Receiver::start_threaded();
    rx.plan.lock().delay = Duration::from_secs(8);
    let (_proc, port) = spawn(
        &[
            "--webhook-url",
            &url,
            "--webhook-events",
            "client_event",
            "--client-event-rate",
            "1000",
        ],
        &[],
    );
    wait_up(port).await;
    let channel = "private-fanout";
    let mut subs = Vec::new();
    for _ in 0..20 {
        let mut c = client_of(port).await;
        c.subscribe_private(channel).await;
        subs.push(c);
    }
    let mut sender = client_of(port).await;
    sender.subscribe_private(channel).await;
    let start = Instant::now();
    let total = 600; // 3 s at 200 events/s
    let readers: Vec<_> = subs
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(total);
                while lat.len() < total {
                    let Some(v) = c.next(Duration::from_secs(5)).await else {
                        break;
                    };
                    if v["event"] != "client-tick" {
                        continue;
                    }
                    let sent: u64 = v["data"]["t"].as_u64().unwrap();
                    let now = start.elapsed().as_micros() as u64;
                    lat.push(Duration::from_micros(now.saturating_sub(sent)));
                }
                lat
            })
        })
        .collect();
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    for i in 0..total {
        tick.tick().await;
        let t = start.elapsed().as_micros() as u64;
        sender
            .send(json!({"event":"client-tick","channel":channel,"data":{"t":t,"i":i}}))
            .await;
    }
    let mut all = Vec::new();
    for r in readers {
        let lat = r.await.unwrap();
        assert_eq!(lat.len(), total, "a subscriber missed events");
        all.extend(lat);
    }
    all.sort();
    let p99 = percentile(&all, 0.99);
    eprintln!(
        "fan-out with an 8 s receiver: p50 {:?} p99 {:?} max {:?} over {} deliveries; {} webhook requests open",
        percentile(&all, 0.5),
        p99,
        all.last().unwrap(),
        all.len(),
        rx.hooks().len()
    );
    assert!(p99 < Duration::from_millis(50), "p99 {p99:?}");
    assert!(!rx.hooks().is_empty(), "webhooks were being sent");
}

// ---------------------------------------------------------------------------------------
// Three nodes through Redis

const REDIS: &str = "redis://127.0.0.1:6379";

fn node(prefix: &str, url: &str) -> (KillOnDrop, u16) {
    node_with(prefix, url, &[])
}

fn node_with(prefix: &str, url: &str, extra: &[&str]) -> (KillOnDrop, u16) {
    let mut args = vec![
        "--adapter",
        "redis",
        "--redis-url",
        REDIS,
        "--redis-prefix",
        prefix,
        "--node-heartbeat",
        "1",
        "--node-expiry",
        "3",
        "--webhook-url",
        url,
        "--webhook-delay",
        "300ms",
        "--webhook-batch-window",
        "50ms",
        "--webhook-retry-min-backoff",
        "200ms",
        "--webhook-retry-max-backoff",
        "500ms",
    ];
    args.extend_from_slice(extra);
    spawn(&args, &[])
}

fn count(d: &[Value], name: &str, channel: &str, user: Option<&str>) -> usize {
    d.iter()
        .filter(|e| {
            e["name"] == name && e["channel"] == channel && user.is_none_or(|u| e["user_id"] == u)
        })
        .count()
}

#[tokio::test]
async fn three_nodes_send_each_webhook_once_and_survive_a_sigkill() {
    let _shared = LATENCY.read().await;
    let prefix = format!("rf-wh-{:016x}", rand::random::<u64>());
    let (rx, url) = Receiver::start().await;
    // The first node takes the delivery lease: it is the one killed later.
    let (mut victim, pc) = node(&prefix, &url);
    wait_up(pc).await;
    let mut redis = redis::Client::open(REDIS)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let lease = format!("{prefix}#wh#lease");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let holder: Option<String> = redis::cmd("GET")
            .arg(&lease)
            .query_async(&mut redis)
            .await
            .unwrap();
        if holder.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "C never took the lease");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_a, pa) = node(&prefix, &url);
    let (_b, pb) = node(&prefix, &url);
    wait_up(pa).await;
    wait_up(pb).await;

    // "orders" on all three nodes; u1 on A and B (one member); u2 and "c-only" on C only.
    let mut on_a = client_of(pa).await;
    let mut on_b = client_of(pb).await;
    let mut on_c = client_of(pc).await;
    for c in [&mut on_a, &mut on_b, &mut on_c] {
        c.subscribe("orders").await;
    }
    on_a.join("presence-room", "u1", json!({})).await;
    on_b.join("presence-room", "u1", json!({})).await;
    on_c.join("presence-room", "u2", json!({})).await;
    on_c.subscribe("c-only").await;
    rx.wait_for("joins", Duration::from_secs(8), |d| d.len() >= 5)
        .await;
    // While the receiver fails, the lease holder (C) reads entries it cannot deliver...
    rx.plan.lock().statuses = std::iter::repeat_n(503, 10_000).collect();
    unsubscribe(&mut on_a, "orders").await; // B and C still have it: nothing
    let mut on_a2 = client_of(pa).await;
    on_a2.subscribe("a-later").await; // occupied, pending on C when it dies
    tokio::time::sleep(Duration::from_millis(500)).await;
    victim.0.kill().unwrap();
    victim.0.wait().unwrap();
    rx.plan.lock().statuses.clear();

    // Within expiry + heartbeat: C's channel vacated and u2 removed, once, by a survivor,
    // which also takes over the entry C never delivered.
    let pending: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg(format!("{prefix}#wh#stream"))
        .arg("wh")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(
        !matches!(pending.first(), Some(redis::Value::Int(0))),
        "C died holding entries: {pending:?}"
    );
    rx.wait_for("C reaped", Duration::from_secs(10), |d| {
        count(d, "channel_vacated", "c-only", None) >= 1
            && count(d, "member_removed", "presence-room", Some("u2")) >= 1
            && count(d, "channel_occupied", "a-later", None) >= 1
    })
    .await;
    // Now the rest leave: one vacated per channel, one removal for u1 (two nodes had it).
    drop(on_a);
    drop(on_a2);
    drop(on_b);
    rx.wait_for("all vacated", Duration::from_secs(10), |d| {
        count(d, "channel_vacated", "orders", None) >= 1
            && count(d, "channel_vacated", "presence-room", None) >= 1
            && count(d, "channel_vacated", "a-later", None) >= 1
            && count(d, "member_removed", "presence-room", Some("u1")) >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let d = rx.delivered();
    for ch in ["orders", "presence-room", "c-only", "a-later"] {
        assert_eq!(count(&d, "channel_occupied", ch, None), 1, "{ch}: {d:#?}");
        assert_eq!(count(&d, "channel_vacated", ch, None), 1, "{ch}: {d:#?}");
    }
    for u in ["u1", "u2"] {
        assert_eq!(
            count(&d, "member_added", "presence-room", Some(u)),
            1,
            "{u}: {d:#?}"
        );
        assert_eq!(
            count(&d, "member_removed", "presence-room", Some(u)),
            1,
            "{u}: {d:#?}"
        );
    }
    for h in rx.hooks() {
        assert_signed(&h, "app-key", "app-secret");
    }
    // Per channel, in delivery order: occupied before vacated, added before removed.
    let pos = |name: &str, ch: &str, u: Option<&str>| {
        d.iter()
            .position(|e| {
                e["name"] == name && e["channel"] == ch && u.is_none_or(|u| e["user_id"] == u)
            })
            .unwrap()
    };
    for ch in ["orders", "presence-room", "c-only", "a-later"] {
        assert!(pos("channel_occupied", ch, None) < pos("channel_vacated", ch, None));
    }
    for u in ["u1", "u2"] {
        assert!(
            pos("member_added", "presence-room", Some(u))
                < pos("member_removed", "presence-room", Some(u))
        );
    }
}

#[tokio::test]
async fn an_apps_reload_moves_the_webhooks_to_the_new_targets() {
    let _shared = LATENCY.read().await;
    let (old, old_url) = Receiver::start().await;
    let (new, new_url) = Receiver::start().await;
    let (server, _wh) = serve(app_with(vec![target(&old_url, "channel_occupied")]), fast()).await;
    let mut c = server.client().await;
    c.subscribe("before").await;
    old.wait_for("old target", Duration::from_secs(5), |d| d.len() == 1)
        .await;
    let mut reloaded = app_with(vec![target(&new_url, "channel_occupied")]);
    reloaded.secret = "rotated-secret".into();
    server.hub.reload_apps(vec![reloaded]);
    c.subscribe("after").await;
    new.wait_for("new target", Duration::from_secs(5), |d| d.len() == 1)
        .await;
    assert_eq!(
        new.delivered(),
        [json!({"name":"channel_occupied","channel":"after"})]
    );
    assert_signed(&new.hooks()[0], "app-key", "rotated-secret");
    assert_eq!(old.delivered().len(), 1);
}

#[tokio::test]
async fn a_cluster_reports_the_sum_of_the_nodes_subscription_counts() {
    let _shared = LATENCY.read().await;
    let prefix = format!("rf-wh-{:016x}", rand::random::<u64>());
    let (rx, url) = Receiver::start().await;
    let only_counts = ["--webhook-events", "subscription_count"];
    let (_a, pa) = node_with(&prefix, &url, &only_counts);
    let (_b, pb) = node_with(&prefix, &url, &only_counts);
    wait_up(pa).await;
    wait_up(pb).await;
    let last = |rx: &Receiver| {
        rx.delivered()
            .last()
            .map(|e| e["subscription_count"].as_u64().unwrap())
    };
    let mut a1 = client_of(pa).await;
    let mut a2 = client_of(pa).await;
    let mut b1 = client_of(pb).await;
    a1.subscribe("counted").await;
    a2.subscribe("counted").await;
    b1.subscribe("counted").await;
    let deadline = Instant::now() + Duration::from_secs(8);
    while last(&rx) != Some(3) {
        assert!(Instant::now() < deadline, "{:#?}", rx.delivered());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    unsubscribe(&mut a2, "counted").await;
    let deadline = Instant::now() + Duration::from_secs(8);
    while last(&rx) != Some(2) {
        assert!(Instant::now() < deadline, "{:#?}", rx.delivered());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let d = rx.delivered();
    assert!(d
        .iter()
        .all(|e| e["name"] == "subscription_count" && e["channel"] == "counted"));
    assert!(
        d.iter()
            .all(|e| e["subscription_count"].as_u64().unwrap() <= 3),
        "{d:#?}"
    );
}

#[tokio::test]
async fn delivery_figures_are_prometheus_series() {
    let _shared = LATENCY.read().await;
    let (rx, url) = Receiver::start().await;
    rx.plan.lock().statuses = [500].into();
    let metrics_port = free_port();
    let (_proc, port) = spawn(
        &[
            "--webhook-url",
            &url,
            "--webhook-retry-min-backoff",
            "100ms",
            "--metrics-port",
            &metrics_port.to_string(),
        ],
        &[],
    );
    wait_up(port).await;
    let mut c = client_of(port).await;
    c.subscribe("measured").await;
    rx.wait_for("delivery", Duration::from_secs(8), |d| d.len() == 1)
        .await;
    let want = [
        r#"rf_broadcast_webhook_events_delivered_total{app="app-id"} 1"#,
        r#"rf_broadcast_webhook_attempts_total{app="app-id"} 2"#,
        r#"rf_broadcast_webhook_failures_total{app="app-id"} 1"#,
        r#"rf_broadcast_webhook_dropped_total{app="app-id",reason="given_up"} 0"#,
        r#"rf_broadcast_webhook_dropped_total{app="app-id",reason="queue_full"} 0"#,
        r#"rf_broadcast_webhook_queue_depth{app="app-id"} 0"#,
    ];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let missing: Vec<&str> = want.iter().copied().filter(|w| !text.contains(w)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "missing {missing:?} in\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_full_cluster_stream_drops_new_events_and_counts_them() {
    let _shared = LATENCY.read().await;
    let prefix = format!("rf-wh-{:016x}", rand::random::<u64>());
    let (rx, url) = Receiver::start().await;
    // The receiver fails: what is appended stays pending in the cluster's stream.
    rx.plan.lock().statuses = std::iter::repeat_n(503, 10_000).collect();
    let metrics_port = free_port();
    let metrics = metrics_port.to_string();
    let (_node, port) = node_with(
        &prefix,
        &url,
        &[
            "--webhook-cluster-max-pending",
            "3",
            "--metrics-port",
            &metrics,
        ],
    );
    wait_up(port).await;
    let mut c = client_of(port).await;
    for i in 0..8 {
        c.subscribe(&format!("full-{i}")).await;
    }
    let mut redis = redis::Client::open(REDIS)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let want = r#"rf_broadcast_webhook_dropped_total{app="",reason="cluster_full"} 5"#;
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let text = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains(want) {
            break;
        }
        assert!(Instant::now() < deadline, "missing {want} in\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let len: usize = redis::cmd("XLEN")
        .arg(format!("{prefix}#wh#stream"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(len, 3, "the stream holds at most its limit");
}
