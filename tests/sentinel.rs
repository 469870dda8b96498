//! Nodes joined through Redis Sentinel follow a failover: a primary, a replica and a sentinel
//! are started on spare loopback ports; the primary is killed while a node publishes without
//! pause; the sentinel promotes the replica, both nodes move to it, and events cross again.
//! Every event is delivered at most once and in order, and the publisher counts what it could
//! not publish (`RedisAdapter::lost`). Not counted yet: what the new primary carried before
//! the subscriber's node was subscribed to it (the figures are printed).
//!
//! Needs `redis-server` on the PATH (run as a sentinel with `--sentinel`).

mod common;

use common::*;
use rf_broadcast::{Apps, Hub, HubSettings, RedisAdapter, RedisSettings, Routing, ServerOptions};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn redis(args: &[&str]) -> KillOnDrop {
    let child = Command::new("redis-server")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server on the PATH");
    KillOnDrop(child)
}

async fn wait_tcp(port: u16) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "port {port} never opened"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

struct Node {
    server: TestServer,
    adapter: Arc<RedisAdapter>,
}

async fn node(sentinel_port: u16, prefix: &str, routing: Routing) -> Node {
    let hub = Hub::new(Apps::new(vec![app()]), HubSettings::default());
    let settings = RedisSettings {
        url: format!("redis://127.0.0.1:{sentinel_port}"),
        sentinel: Some("rfmaster".into()),
        prefix: prefix.into(),
        routing,
        heartbeat: Duration::from_millis(500),
        node_expiry: Duration::from_millis(3_000),
        ..RedisSettings::default()
    };
    let adapter = RedisAdapter::start(&hub, settings).unwrap();
    let server = TestServer::from_hub(hub, app(), ServerOptions::default()).await;
    Node { server, adapter }
}

async fn eventually(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Read `tick` numbers into `got` until `deadline` (or until it holds `want`).
async fn read_until(
    sub: &mut Client,
    got: &mut Vec<u64>,
    deadline: tokio::time::Instant,
    want: Option<u64>,
) {
    while tokio::time::Instant::now() < deadline {
        if let Some(v) = sub.next(Duration::from_millis(100)).await {
            if v["event"] == "tick" {
                got.push(v["data"].as_str().unwrap().parse().unwrap());
                if want.is_some_and(|w| got.len() as u64 >= w) {
                    return;
                }
            }
        }
    }
}

#[tokio::test]
async fn nodes_follow_a_sentinel_failover() {
    let (pp, rp, sp) = (free_port(), free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("rf-sentinel-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    // `--dir`: a replica writes the RDB of its first sync to its working directory (dump.rdb in
    // the repository, before), `--save ""` or not.
    let dir_arg = dir.to_str().unwrap();
    let common = [
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        dir_arg,
    ];
    let mut primary = redis(&[&["--port", &pp.to_string()][..], &common].concat());
    let _replica = redis(
        &[
            &["--port", &rp.to_string()][..],
            &common,
            &["--replicaof", "127.0.0.1", &pp.to_string()],
        ]
        .concat(),
    );
    let conf = dir.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {sp}\nbind 127.0.0.1\n\
             sentinel monitor rfmaster 127.0.0.1 {pp} 1\n\
             sentinel down-after-milliseconds rfmaster 800\n\
             sentinel failover-timeout rfmaster 4000\n"
        ),
    )
    .unwrap();
    let _sentinel = redis(&[conf.to_str().unwrap(), "--sentinel"]);
    for p in [pp, rp, sp] {
        wait_tcp(p).await;
    }

    // The sentinel must know a replica in sync, or there is nobody to promote.
    let sentinel_url = format!("redis://127.0.0.1:{sp}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ready = async {
            let client = redis::Client::open(sentinel_url.as_str())?;
            let mut c = client.get_multiplexed_async_connection().await?;
            let replicas: Vec<std::collections::HashMap<String, String>> = redis::cmd("SENTINEL")
                .arg("REPLICAS")
                .arg("rfmaster")
                .query_async(&mut c)
                .await?;
            Ok::<_, redis::RedisError>(replicas.iter().any(|r| {
                r.get("flags").is_some_and(|f| f == "slave")
                    && r.get("master-link-status").is_some_and(|s| s == "ok")
            }))
        };
        if ready.await.unwrap_or(false) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sentinel never saw the replica"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let prefix = format!("rf-test-{:016x}", rand::random::<u64>());
    let a = node(sp, &prefix, Routing::Channel).await;
    let b = node(sp, &prefix, Routing::Channel).await;
    eventually("the nodes see each other", Duration::from_secs(10), || {
        [&a, &b]
            .iter()
            .all(|n| n.adapter.connected() && n.adapter.nodes() == 1)
    })
    .await;
    let mut sub = b.server.client().await;
    sub.subscribe("ticks").await;

    // Publish numbered events through A without pause, through the failover.
    let published = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let api = a.server.http();
        let (published, stop) = (published.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let n = published.fetch_add(1, Ordering::SeqCst) + 1;
                api.publish(&["ticks"], "tick", &n.to_string()).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let mut got: Vec<u64> = Vec::new();
    read_until(
        &mut sub,
        &mut got,
        tokio::time::Instant::now() + Duration::from_secs(10),
        Some(20),
    )
    .await;
    assert!(got.len() >= 20, "events crossed before the failover");

    // The primary dies; the sentinel promotes the replica.
    let _ = primary.0.kill();
    let _ = primary.0.wait();
    let killed_at = published.load(Ordering::SeqCst);
    // Events cross again: something published well after the kill arrives.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        read_until(
            &mut sub,
            &mut got,
            tokio::time::Instant::now() + Duration::from_millis(500),
            None,
        )
        .await;
        let last = got.last().copied().unwrap_or(0);
        if last > killed_at + 50 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no event crossed after the failover (last {last}, killed at {killed_at})"
        );
    }
    stop.store(true, Ordering::SeqCst);
    publisher.await.unwrap();
    read_until(
        &mut sub,
        &mut got,
        tokio::time::Instant::now() + Duration::from_millis(500),
        None,
    )
    .await;

    // Never duplicated, never reordered.
    assert!(
        got.windows(2).all(|w| w[1] > w[0]),
        "duplicated or out of order"
    );
    let total = published.load(Ordering::SeqCst);
    let missing = total - got.len() as u64;
    eprintln!(
        "published {total}, delivered {}, missing {missing}, counted lost by A {}, dropped by A {}",
        got.len(),
        a.adapter.lost(),
        a.adapter.dropped()
    );
    assert!(a.adapter.lost() > 0, "the publisher saw the primary go");
    let _ = std::fs::remove_dir_all(&dir);
}
