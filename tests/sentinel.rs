//! Nodes joined through Redis Sentinel follow a failover: a primary, a replica and a sentinel
//! are started on spare loopback ports; the primary is killed while node A publishes without
//! pause; the sentinel promotes the replica, both nodes move to it, and events cross again.
//! Every event reaches node B's subscriber at most once and in order, or is counted:
//!
//! `published == delivered + missed(B) + (dropped(A) - lost(A))`
//!
//! A numbers each message when its publishing task takes it from the queue, so an event either
//! never got a number (A's queue was full: counted in `dropped` but not in `lost`), or got one
//! and then reached B (delivered), or did not reach B, whether A's publish failed (A counts it
//! in `lost` too) or Redis took it while B was not yet subscribed to the new primary: then B
//! sees the hole in A's numbers when the next event arrives and counts it in `missed`. The
//! publisher's `lost` is thus part of B's `missed` (or, for a failed batch Redis took in part,
//! of what was delivered), so adding it in would count those twice. The test waits for the
//! last event, so no hole is left at the end, and keeps B from forgetting A (node expiry above
//! the failover's length), which would start a new count.
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
        node_expiry: Duration::from_millis(8_000),
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
async fn nodes_follow_a_sentinel_failover_partition() {
    nodes_follow_a_sentinel_failover(Routing::Partition).await;
}

#[tokio::test]
async fn nodes_follow_a_sentinel_failover_channel() {
    nodes_follow_a_sentinel_failover(Routing::Channel).await;
}

async fn nodes_follow_a_sentinel_failover(routing: Routing) {
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
    let a = node(sp, &prefix, routing).await;
    let b = node(sp, &prefix, routing).await;
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
                let n = published.load(Ordering::SeqCst) + 1;
                let (status, _) = api.publish(&["ticks"], "tick", &n.to_string()).await;
                assert_eq!(status, 200);
                published.store(n, Ordering::SeqCst);
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
    // Until the last event: no hole is left behind it.
    let total = published.load(Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.last() != Some(&total) && tokio::time::Instant::now() < deadline {
        read_until(
            &mut sub,
            &mut got,
            tokio::time::Instant::now() + Duration::from_millis(200),
            None,
        )
        .await;
    }
    assert_eq!(got.last(), Some(&total), "the last event arrived");

    // Never duplicated, never reordered.
    assert!(
        got.windows(2).all(|w| w[1] > w[0]),
        "duplicated or out of order"
    );
    let delivered = got.len() as u64;
    let (lost, dropped, missed) = (a.adapter.lost(), a.adapter.dropped(), b.adapter.missed());
    eprintln!(
        "{routing:?}: published {total}, delivered {delivered}, missed by B {missed}, \
         lost by A {lost}, dropped by A {dropped}"
    );
    assert!(lost > 0, "the publisher saw the primary go");
    // Every event delivered once, or counted (see the module docs).
    assert_eq!(
        delivered + missed + (dropped - lost),
        total,
        "published = delivered + missed + dropped before numbering"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
