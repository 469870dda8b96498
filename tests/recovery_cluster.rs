//! Missed-message recovery across nodes joined through Redis, from outside: a client whose
//! connection to one node dies without a Close frame comes back on another node with the same
//! lineage and gets every event published meanwhile (through any node), in order, then live
//! events, with no gap and no overlap while publishing never stops; a node that is SIGKILLed
//! leaves its clients' lineages recoverable from its last checkpoint. Each test runs in both
//! routing modes.
//!
//! Needs a Redis on 127.0.0.1:6379 (each test uses its own random prefix).

mod common;

use common::*;
use rf_broadcast::ServerOptions;
use rf_broadcast::{App, Apps, Hub, HubSettings, RedisAdapter, RedisSettings, Routing};
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const REDIS: &str = "redis://127.0.0.1:6379";

fn recovering_app() -> App {
    App {
        recovery_window: 30,
        ..app()
    }
}

fn prefix() -> String {
    format!("rf-test-{:016x}", rand::random::<u64>())
}

struct Node {
    server: TestServer,
    adapter: Arc<RedisAdapter>,
}

async fn cluster(routing: Routing, n: usize) -> Vec<Node> {
    cluster_of(recovering_app(), routing, n).await
}

async fn cluster_of(app: App, routing: Routing, n: usize) -> Vec<Node> {
    let p = prefix();
    let mut nodes = Vec::new();
    for _ in 0..n {
        let hub = Hub::new(Apps::new(vec![app.clone()]), HubSettings::default());
        let settings = RedisSettings {
            url: REDIS.into(),
            prefix: p.clone(),
            routing,
            heartbeat: Duration::from_millis(500),
            node_expiry: Duration::from_millis(2_000),
            ..RedisSettings::default()
        };
        let adapter = RedisAdapter::start(&hub, settings).unwrap();
        let server = TestServer::from_hub(hub, app.clone(), ServerOptions::default()).await;
        nodes.push(Node { server, adapter });
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while !nodes
        .iter()
        .all(|x| x.adapter.connected() && x.adapter.nodes() == n - 1)
    {
        assert!(tokio::time::Instant::now() < deadline, "nodes never met");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    nodes
}

macro_rules! both {
    ($name:ident) => {
        mod $name {
            use super::Routing;

            #[tokio::test]
            async fn partition() {
                super::$name(Routing::Partition).await
            }

            #[tokio::test]
            async fn channel() {
                super::$name(Routing::Channel).await
            }
        }
    };
}

fn lineage_url(port: u16, lineage: &str) -> String {
    format!("ws://127.0.0.1:{port}/l/{lineage}/app/app-key?protocol=7&client=js&version=8.4.0")
}

async fn lineage_client(port: u16, lineage: &str) -> Client {
    Client::established(&lineage_url(port, lineage), "app-key", "app-secret").await
}

fn data(v: &Value) -> Value {
    serde_json::from_str(v["data"].as_str().unwrap()).unwrap()
}

/// Answer pings until `d` has passed without anything else arriving.
async fn answer_pings_for(c: &mut Client, d: Duration) {
    let until = tokio::time::Instant::now() + d;
    while let Some(left) = until.checked_duration_since(tokio::time::Instant::now()) {
        match c.next(left).await {
            Some(v) if v["event"] == "pusher:ping" => {
                c.send(json!({"event":"pusher:pong","data":{}})).await
            }
            Some(v) => panic!("unexpected {v}"),
            None => return,
        }
    }
}

async fn a_client_that_drops_on_one_node_recovers_on_another(routing: Routing) {
    let nodes = cluster(routing, 3).await;
    let (a, b, c) = (&nodes[0].server, &nodes[1].server, &nodes[2].server);
    let lineage = "tab-3c1e9a77-cross";
    let mut c1 = lineage_client(a.addr.port(), lineage).await;
    let ok = c1.subscribe_private("private-feed").await;
    assert_eq!(data(&ok), json!({"recovered": false, "missed": 0}));
    // Published through another node: every node numbers it the same.
    for i in 0..3 {
        c.http()
            .publish(&["private-feed"], "e", &i.to_string())
            .await;
    }
    assert_eq!(read_events(&mut c1, 3).await, ["0", "1", "2"]);
    // The acknowledging ping and its pong; then the checkpoint reaches Redis.
    answer_pings_for(&mut c1, Duration::from_millis(4_000)).await;
    drop(c1); // TCP closed without a Close frame
    tokio::time::sleep(Duration::from_millis(300)).await;

    for i in 3..23 {
        let via = if i % 2 == 0 { a } else { c };
        via.http()
            .publish(&["private-feed"], "e", &i.to_string())
            .await;
    }
    let mut c2 = lineage_client(b.addr.port(), lineage).await;
    let ok = c2.subscribe_private("private-feed").await;
    assert_eq!(data(&ok), json!({"recovered": true, "missed": 20}));
    let expected: Vec<String> = (3..23).map(|i| i.to_string()).collect();
    assert_eq!(read_events(&mut c2, 20).await, expected);
    c.http().publish(&["private-feed"], "e", "live").await;
    assert_eq!(read_events(&mut c2, 1).await, ["live"]);
    answer_pings_for(&mut c2, Duration::from_millis(300)).await;

    // A clean close forgets the lineage: nothing is recovered after it.
    c2.ws
        .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: 1000u16.into(),
            reason: "bye".into(),
        }))
        .await
        .unwrap();
    drop(c2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.http().publish(&["private-feed"], "e", "after").await;
    let mut c3 = lineage_client(a.addr.port(), lineage).await;
    let ok = c3.subscribe_private("private-feed").await;
    assert_eq!(data(&ok), json!({"recovered": false, "missed": 0}));
    answer_pings_for(&mut c3, Duration::from_millis(300)).await;
}

both!(a_client_that_drops_on_one_node_recovers_on_another);

async fn no_gap_and_no_overlap_while_publishing_never_stops(routing: Routing) {
    // A buffer deep enough that the cursor is honoured however few acknowledgements a busy
    // machine managed before the drop (more duplicates then, never a gap).
    let app = App {
        recovery_max_events: 100_000,
        ..recovering_app()
    };
    let nodes = cluster_of(app, routing, 3).await;
    let (a, b) = (&nodes[0].server, &nodes[1].server);
    let api = nodes[2].server.http();
    let lineage = "tab-7f00d2aa-steady";
    let mut c1 = lineage_client(a.addr.port(), lineage).await;
    c1.subscribe("ticker").await;

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let publisher = {
        let (stop, sent) = (stop.clone(), sent.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let (status, _) = api.publish(&["ticker"], "e", &i.to_string()).await;
                assert_eq!(status, 200);
                i += 1;
                sent.store(i, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let first: Vec<u64> = read_events(&mut c1, 150)
        .await
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    drop(c1); // mid-stream, without a Close
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c2 = lineage_client(b.addr.port(), lineage).await;
    let ok = c2.subscribe("ticker").await;
    assert_eq!(data(&ok)["recovered"], true, "{ok}");
    assert!(data(&ok)["missed"].as_u64().unwrap() > 0, "{ok}");
    let last = *first.last().unwrap();
    // Replayed and live events until well past where the first connection stopped.
    let mut second: Vec<u64> = Vec::new();
    while second.last().is_none_or(|&v| v < last + 50) {
        let got = read_events(&mut c2, 1).await;
        second.push(got[0].parse().unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    publisher.await.unwrap();

    let expect_run = |v: &[u64], what: &str| {
        for w in v.windows(2) {
            assert_eq!(w[1], w[0] + 1, "{what} has a gap or an overlap: {v:?}");
        }
    };
    expect_run(&first, "the first connection");
    // Replay then live: one unbroken run on the second connection...
    expect_run(&second, "the second connection");
    // ...that starts no later than where the first one stopped (duplicates only of what was
    // sent after the last acknowledgement, never a gap).
    assert!(second[0] <= last + 1, "gap: {last} then {}", second[0]);
    assert!(
        *second.last().unwrap() > last + 1,
        "nothing new after the drop"
    );
    assert!(sent.load(Ordering::Relaxed) >= *second.last().unwrap());
}

both!(no_gap_and_no_overlap_while_publishing_never_stops);

async fn a_killed_node_leaves_its_lineages_recoverable(routing: Routing) {
    let p = prefix();
    let routing_flag = match routing {
        Routing::Partition => "partition",
        Routing::Channel => "channel",
    };
    let spawn = |port: u16| {
        Command::new(env!("CARGO_BIN_EXE_rf-broadcast"))
            .args(["--port", &port.to_string()])
            .args(["--adapter", "redis", "--redis-url", REDIS])
            .args(["--redis-prefix", &p, "--redis-routing", routing_flag])
            .args(["--node-heartbeat", "1", "--node-expiry", "3"])
            .args(["--recovery-window", "30", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    let (pa, pb) = (free_port(), free_port());
    let mut victim = KillOnDrop(spawn(pa));
    let _survivor = KillOnDrop(spawn(pb));
    wait_for_port(pa).await;
    wait_for_port(pb).await;
    let lineage = "tab-5aa1c0de-killed";
    let mut c1 = lineage_client(pa, lineage).await;
    let ok = c1.subscribe("news").await;
    assert_eq!(data(&ok), json!({"recovered": false, "missed": 0}));
    let api_b = Api {
        base: format!("http://127.0.0.1:{pb}"),
        app: app(),
        http: reqwest::Client::new(),
    };
    for i in 0..3 {
        api_b.publish(&["news"], "e", &i.to_string()).await;
    }
    assert_eq!(read_events(&mut c1, 3).await, ["0", "1", "2"]);
    answer_pings_for(&mut c1, Duration::from_millis(4_000)).await;

    // SIGKILL: the node never writes a final checkpoint; its last one stands.
    victim.0.kill().unwrap();
    let _ = victim.0.wait();
    drop(c1);
    for i in 3..8 {
        api_b.publish(&["news"], "e", &i.to_string()).await;
    }
    let mut c2 = lineage_client(pb, lineage).await;
    let ok = c2.subscribe("news").await;
    assert_eq!(data(&ok)["recovered"], true, "{ok}");
    let missed = data(&ok)["missed"].as_u64().unwrap() as usize;
    // At least the five published after the kill; more only of what was not acknowledged.
    assert!((5..=8).contains(&missed), "missed {missed}");
    let got = read_events(&mut c2, missed).await;
    let expected: Vec<String> = (8 - missed..8).map(|i| i.to_string()).collect();
    assert_eq!(got, expected);
}

both!(a_killed_node_leaves_its_lineages_recoverable);

async fn wait_for_port(port: u16) {
    wait_tcp(port).await;
    // The adapter subscribes right after the listener opens.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn with_redis_away_a_recovered_channel_still_reaches_this_nodes_subscribers() {
    // Nobody listens there: every publish fails to reach Redis.
    let dead = format!("redis://127.0.0.1:{}", free_port());
    let hub = Hub::new(Apps::new(vec![recovering_app()]), HubSettings::default());
    let settings = RedisSettings {
        url: dead,
        prefix: prefix(),
        ..RedisSettings::default()
    };
    let _adapter = RedisAdapter::start(&hub, settings).unwrap();
    let server = TestServer::from_hub(hub, recovering_app(), ServerOptions::default()).await;
    let mut c = lineage_client(server.addr.port(), "tab-0ff1-redis-away").await;
    // Nothing can be recovered or even asked: the subscription goes on without.
    let ok = c.subscribe("news").await;
    assert_eq!(data(&ok), json!({"recovered": false, "missed": 0}));
    for i in 0..3 {
        server.http().publish(&["news"], "e", &i.to_string()).await;
    }
    assert_eq!(read_events(&mut c, 3).await, ["0", "1", "2"]);
}
