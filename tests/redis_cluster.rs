//! Nodes joined over a real three-shard Redis Cluster (sharded pub/sub): events, client
//! events and presence cross nodes in both routing modes, interest routing spreads channels
//! over the shards, missed-message recovery works across nodes (streams and lineages on the
//! shards), and a shard restart is survived.
//!
//! Needs `redis-server` (7+) and `redis-cli` on the PATH: the test starts three cluster-enabled
//! servers on spare loopback ports in a temporary directory and joins them with
//! `redis-cli --cluster create`.

mod common;

use common::*;
use rf_broadcast::{Apps, Hub, HubSettings, RedisAdapter, RedisSettings, Routing, ServerOptions};
use serde_json::json;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

struct Shard {
    port: u16,
    dir: PathBuf,
    proc: Option<KillOnDrop>,
}

impl Shard {
    fn start(&mut self) {
        let child = Command::new("redis-server")
            .current_dir(&self.dir)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--cluster-enabled", "yes"])
            .args(["--cluster-config-file", "nodes.conf"])
            .args(["--cluster-node-timeout", "2000"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on the PATH");
        self.proc = Some(KillOnDrop(child));
    }

    fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            let _ = p.0.kill();
            let _ = p.0.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

struct RedisCluster {
    shards: Vec<Shard>,
    root: PathBuf,
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for s in &mut self.shards {
            s.stop();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

async fn query(url: &str, cmd: &redis::Cmd) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(url)?;
    let mut c = client.get_multiplexed_async_connection().await?;
    cmd.query_async(&mut c).await
}

async fn cluster_ok(shards: &[Shard]) -> bool {
    for s in shards {
        let info = async {
            let client = redis::Client::open(s.url())?;
            let mut c = client.get_multiplexed_async_connection().await?;
            redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async::<String>(&mut c)
                .await
        };
        match info.await {
            Ok(text) if text.contains("cluster_state:ok") => {}
            _ => return false,
        }
    }
    true
}

async fn wait_cluster_ok(shards: &[Shard]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cluster_ok(shards).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "cluster never became ok"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn start_cluster() -> RedisCluster {
    let root = std::env::temp_dir().join(format!("rf-cluster-{:016x}", rand::random::<u64>()));
    let mut shards = Vec::new();
    for _ in 0..3 {
        let port = free_port();
        let dir = root.join(port.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = Shard {
            port,
            dir,
            proc: None,
        };
        s.start();
        shards.push(s);
    }
    for s in &shards {
        wait_tcp(s.port).await;
    }
    let addrs: Vec<String> = shards
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.port))
        .collect();
    let status = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("redis-cli on the PATH");
    assert!(status.success(), "redis-cli --cluster create failed");
    wait_cluster_ok(&shards).await;
    RedisCluster { shards, root }
}

struct Node {
    server: TestServer,
    adapter: Arc<RedisAdapter>,
}

/// The test app, recovering `rec-*` channels.
fn recovering_app() -> rf_broadcast::App {
    rf_broadcast::App {
        recovery_window: 30,
        recovery_channels: vec!["rec-*".into()],
        ..app()
    }
}

async fn node(cluster: &RedisCluster, prefix: &str, routing: Routing) -> Node {
    let hub = Hub::new(Apps::new(vec![recovering_app()]), HubSettings::default());
    let settings = RedisSettings {
        cluster_urls: cluster.shards.iter().map(Shard::url).collect(),
        prefix: prefix.into(),
        routing,
        heartbeat: Duration::from_millis(500),
        node_expiry: Duration::from_millis(3_000),
        unsubscribe_linger: Duration::from_millis(300),
        ..RedisSettings::default()
    };
    let adapter = RedisAdapter::start(&hub, settings).unwrap();
    let server = TestServer::from_hub(hub, recovering_app(), ServerOptions::default()).await;
    Node { server, adapter }
}

/// A lineage client drops from A and recovers on B what was published meanwhile.
async fn recovery_crosses_nodes(a: &Node, b: &Node) {
    let url = |n: &Node| {
        format!(
            "ws://{}/l/tab-9e0c-cluster/app/app-key?protocol=7&client=js",
            n.server.addr
        )
    };
    let data = |v: &serde_json::Value| -> serde_json::Value {
        serde_json::from_str(v["data"].as_str().unwrap()).unwrap()
    };
    let mut c1 = Client::established(&url(a), "app-key", "app-secret").await;
    let ok = c1.subscribe("rec-news").await;
    assert_eq!(data(&ok), json!({"recovered": false, "missed": 0}));
    for i in 0..3 {
        b.server
            .http()
            .publish(&["rec-news"], "e", &i.to_string())
            .await;
    }
    assert_eq!(read_events(&mut c1, 3).await, ["0", "1", "2"]);
    // The acknowledging ping, its pong, and the next checkpoint.
    let until = tokio::time::Instant::now() + Duration::from_secs(4);
    while let Some(left) = until.checked_duration_since(tokio::time::Instant::now()) {
        match c1.next(left).await {
            Some(v) if v["event"] == "pusher:ping" => {
                c1.send(json!({"event":"pusher:pong","data":{}})).await
            }
            _ => {}
        }
    }
    drop(c1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 3..13 {
        a.server
            .http()
            .publish(&["rec-news"], "e", &i.to_string())
            .await;
    }
    let mut c2 = Client::established(&url(b), "app-key", "app-secret").await;
    let ok = c2.subscribe("rec-news").await;
    assert_eq!(data(&ok), json!({"recovered": true, "missed": 10}));
    let expected: Vec<String> = (3..13).map(|i| i.to_string()).collect();
    assert_eq!(read_events(&mut c2, 10).await, expected);
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Shard channels a shard holds subscriptions for.
async fn shard_channels(s: &Shard, pattern: &str) -> usize {
    match query(
        &s.url(),
        redis::cmd("PUBSUB").arg("SHARDCHANNELS").arg(pattern),
    )
    .await
    {
        Ok(redis::Value::Array(a)) => a.len(),
        _ => 0,
    }
}

async fn across_a_cluster(routing: Routing) {
    let mut rc = start_cluster().await;
    let p = format!("rf-test-{:016x}", rand::random::<u64>());
    let a = node(&rc, &p, routing).await;
    let b = node(&rc, &p, routing).await;
    eventually("the nodes see each other", || {
        [&a, &b]
            .iter()
            .all(|n| n.adapter.connected() && n.adapter.nodes() == 1)
    })
    .await;

    // Publishes cross, in order, on many channels.
    let names: Vec<String> = (0..24).map(|i| format!("feed-{i}")).collect();
    let mut subs = Vec::new();
    for name in &names {
        let mut c = b.server.client().await;
        c.subscribe(name).await;
        subs.push(c);
    }
    let api = a.server.http();
    for i in 0..5 {
        let channels: Vec<&str> = names.iter().map(String::as_str).collect();
        api.publish(&channels, "e", &i.to_string()).await;
    }
    for c in &mut subs {
        for i in 0..5 {
            assert_eq!(c.expect_next("e").await["data"], i.to_string());
        }
    }
    if routing == Routing::Channel {
        // Each channel's route lives on the shard owning its slot: all three carry some.
        for s in &rc.shards {
            let n = shard_channels(s, &format!("{p}#app-id#ch#*")).await;
            assert!(n > 0, "shard {} holds no channel", s.port);
        }
    }

    // Presence and client events across nodes.
    let room = "presence-room";
    let mut a1 = a.server.client().await;
    a1.join(room, "u1", json!({})).await;
    eventually("B knows u1", || {
        rf_broadcast::testing::presence_users(&b.server.hub, "app-id", room) == ["u1"]
    })
    .await;
    let mut b2 = b.server.client().await;
    let joined = b2.join(room, "u2", json!({})).await;
    assert_eq!(joined["presence"]["count"], 2);
    a1.expect_next("pusher_internal:member_added").await;
    a1.send(json!({"event":"client-hi","channel":room,"data":{}}))
        .await;
    b2.expect_next("client-hi").await;

    recovery_crosses_nodes(&a, &b).await;

    // A shard restarts: once it is back, events cross again on every channel.
    rc.shards[1].stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    rc.shards[1].start();
    wait_tcp(rc.shards[1].port).await;
    wait_cluster_ok(&rc.shards).await;
    let channels: Vec<&str> = names.iter().map(String::as_str).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut attempt = 0;
    'retry: loop {
        attempt += 1;
        if tokio::time::Instant::now() > deadline {
            let mut held = Vec::new();
            for s in &rc.shards {
                held.push(shard_channels(s, "*").await);
            }
            panic!(
                "events never crossed again; shard channels per shard {held:?}, B: {} routes, \
                 stats {:?}, dropped by A {}",
                b.adapter.channel_subscriptions(),
                b.adapter.routing_stats(),
                a.adapter.dropped()
            );
        }
        let tag = format!("after-{attempt}");
        api.publish(&channels, &tag, "x").await;
        for c in &mut subs {
            loop {
                match c.next(Duration::from_millis(1_000)).await {
                    Some(v) if v["event"] == tag.as_str() => break,
                    Some(_) => continue,
                    None => continue 'retry,
                }
            }
        }
        break;
    }
    // And presence state was kept: nobody was removed by the outage.
    assert_eq!(
        rf_broadcast::testing::presence_users(&a.server.hub, "app-id", room).len(),
        2
    );
}

#[tokio::test]
async fn redis_cluster_partition_routing() {
    across_a_cluster(Routing::Partition).await;
}

#[tokio::test]
async fn redis_cluster_channel_routing() {
    across_a_cluster(Routing::Channel).await;
}
