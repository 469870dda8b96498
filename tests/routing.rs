//! Interest routing (`Routing::Channel`) specifics: a node receives only the events of
//! channels it has subscribers for, its Redis subscriptions follow its local subscribers
//! (with the unsubscribe linger), and a subscriber joining while its node's `SUBSCRIBE` is in
//! flight misses nothing published after its `subscription_succeeded`.
//!
//! Needs a Redis on 127.0.0.1:6379 (each test uses its own random prefix). The cluster-wide
//! behaviour shared with partition routing is tested in both modes by `tests/cluster.rs`.

mod common;

use common::*;
use rf_broadcast::{Apps, Hub, HubSettings, RedisAdapter, RedisSettings, Routing, ServerOptions};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const REDIS: &str = "redis://127.0.0.1:6379";

struct Node {
    server: TestServer,
    adapter: Arc<RedisAdapter>,
}

async fn node(prefix: &str, routing: Routing) -> Node {
    node_via(REDIS, prefix, routing).await
}

async fn node_via(url: &str, prefix: &str, routing: Routing) -> Node {
    let hub = Hub::new(Apps::new(vec![app()]), HubSettings::default());
    let settings = RedisSettings {
        url: url.into(),
        prefix: prefix.into(),
        routing,
        heartbeat: Duration::from_millis(500),
        node_expiry: Duration::from_millis(2_000),
        unsubscribe_linger: Duration::from_millis(300),
        ..RedisSettings::default()
    };
    let adapter = RedisAdapter::start(&hub, settings).unwrap();
    let server = TestServer::from_hub(hub, app(), ServerOptions::default()).await;
    Node { server, adapter }
}

async fn pair(routing: Routing) -> (String, Node, Node) {
    pair_via(REDIS, routing).await
}

/// Two nodes; the second reaches Redis through `b_url`.
async fn pair_via(b_url: &str, routing: Routing) -> (String, Node, Node) {
    let p = format!("rf-test-{:016x}", rand::random::<u64>());
    let a = node(&p, routing).await;
    let b = node_via(b_url, &p, routing).await;
    eventually("the nodes see each other", || {
        [&a, &b]
            .iter()
            .all(|n| n.adapter.connected() && n.adapter.nodes() == 1)
    })
    .await;
    (p, a, b)
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TCP proxy to the test Redis that holds every byte the node sends for `delay` (order
/// kept): a slow link, so a `SUBSCRIBE` takes that long to take effect. Returns its URL.
async fn slow_link(delay: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((down, _)) = listener.accept().await {
            let Ok(up) = tokio::net::TcpStream::connect("127.0.0.1:6379").await else {
                continue;
            };
            let (mut down_r, mut down_w) = down.into_split();
            let (mut up_r, mut up_w) = up.into_split();
            let (tx, mut rx) =
                tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n @ 1..) = down_r.read(&mut buf).await {
                    let due = tokio::time::Instant::now() + delay;
                    if tx.send((due, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                while let Some((due, bytes)) = rx.recv().await {
                    tokio::time::sleep_until(due).await;
                    if up_w.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut up_r, &mut down_w).await;
            });
        }
    });
    format!("redis://127.0.0.1:{port}")
}

/// Subscribers of a Redis channel, as Redis counts them.
async fn numsub(channel: &str) -> i64 {
    let client = redis::Client::open(REDIS).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut conn)
        .await
        .unwrap();
    n
}

/// Messages node `n` receives from Redis while `f` runs (heartbeats included).
async fn inbound_during<F: std::future::Future<Output = ()>>(n: &Node, f: F) -> u64 {
    let before = n.adapter.received();
    f.await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    n.adapter.received() - before
}

async fn inbound_for_foreign_events(routing: Routing) -> u64 {
    let (_, a, b) = pair(routing).await;
    let mut here = a.server.client().await;
    here.subscribe("only-on-a").await;
    let api = a.server.http();
    inbound_during(&b, async {
        for i in 0..100 {
            api.publish(&["only-on-a"], "e", &i.to_string()).await;
        }
    })
    .await
}

#[tokio::test]
async fn a_node_receives_only_events_it_delivers() {
    let partition = inbound_for_foreign_events(Routing::Partition).await;
    let channel = inbound_for_foreign_events(Routing::Channel).await;
    eprintln!("B's inbound Redis messages for 100 events it does not deliver: partition {partition}, channel {channel}");
    assert!(partition >= 100, "partition routing: B got {partition}");
    // What is left is heartbeats (every 500 ms) and the like.
    assert!(channel < 20, "channel routing: B got {channel}");
}

#[tokio::test]
async fn subscriptions_follow_local_subscribers_with_a_linger() {
    let (p, a, b) = pair(Routing::Channel).await;
    let route = format!("{p}#app-id#ch#room");
    assert_eq!(numsub(&route).await, 0);
    let mut x = b.server.client().await;
    x.subscribe("room").await;
    // Confirmed before subscription_succeeded reached the client.
    assert_eq!(numsub(&route).await, 1);
    assert_eq!(b.adapter.channel_subscriptions(), 1);
    let mut y = b.server.client().await;
    y.subscribe("room").await;
    a.server.http().publish(&["room"], "hi", "1").await;
    x.expect_next("hi").await;
    y.expect_next("hi").await;

    // The last subscriber leaves and another comes back within the linger: Redis hears
    // nothing of it.
    let (commands, _) = b.adapter.routing_stats();
    drop(x);
    drop(y);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut z = b.server.client().await;
    z.subscribe("room").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(b.adapter.routing_stats().0, commands);
    assert_eq!(numsub(&route).await, 1);

    // Gone for longer than the linger: unsubscribed.
    drop(z);
    eventually("unsubscribed after the linger", || {
        b.adapter.channel_subscriptions() == 0
    })
    .await;
    assert_eq!(numsub(&route).await, 0);
    let (_, timeouts) = b.adapter.routing_stats();
    assert_eq!(timeouts, 0);
}

/// A publisher on node A publishes a numbered event to every channel without pause while
/// subscribers join them on node B, most of them as their channel's first subscriber there
/// (so while B's `SUBSCRIBE` is in flight), two at a time. B reaches Redis over a slow link
/// (60 ms), so a `SUBSCRIBE` takes effect long after a subscriber could have been answered.
/// Each subscriber must receive every event whose publish started after its
/// `subscription_succeeded`, once and in order.
#[tokio::test]
async fn no_gap_for_subscribers_joining_during_subscribe() {
    const CHANNELS: usize = 20;
    let slow = slow_link(Duration::from_millis(60)).await;
    let (_, a, b) = pair_via(&slow, Routing::Channel).await;
    let names: Vec<String> = (0..CHANNELS).map(|i| format!("gap-{i}")).collect();
    let started = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let api = a.server.http();
        let names = names.clone();
        let (started, stop) = (started.clone(), stop.clone());
        tokio::spawn(async move {
            let channels: Vec<&str> = names.iter().map(String::as_str).collect();
            while !stop.load(Ordering::SeqCst) {
                let seq = started.fetch_add(1, Ordering::SeqCst) + 1;
                let (s, _) = api.publish(&channels, "tick", &seq.to_string()).await;
                assert_eq!(s, 200);
            }
            api.publish(&channels, "end", "").await;
        })
    };
    // Let the publisher get going.
    while started.load(Ordering::SeqCst) < 5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut subscribers = Vec::new();
    for name in &names {
        for _ in 0..2 {
            let (server_b, name, started) = (&b.server, name.clone(), started.clone());
            subscribers.push(async move {
                let mut c = server_b.client().await;
                c.subscribe(&name).await;
                let bound = started.load(Ordering::SeqCst);
                (c, bound)
            });
        }
        // Two at once: the second often joins while the first's SUBSCRIBE is in flight.
    }
    let mut joined = Vec::new();
    let mut it = subscribers.into_iter();
    while let (Some(x), Some(y)) = (it.next(), it.next()) {
        let (x, y) = tokio::join!(x, y);
        joined.push(x);
        joined.push(y);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    publisher.await.unwrap();

    for (i, (mut c, bound)) in joined.into_iter().enumerate() {
        let mut seqs = Vec::new();
        loop {
            let v = c
                .next(Duration::from_secs(5))
                .await
                .unwrap_or_else(|| panic!("subscriber {i}: no end"));
            match v["event"].as_str() {
                Some("tick") => seqs.push(v["data"].as_str().unwrap().parse::<u64>().unwrap()),
                Some("end") => break,
                _ => {}
            }
        }
        let first = *seqs.first().unwrap_or(&u64::MAX);
        assert!(
            first <= bound + 1,
            "subscriber {i}: published after its subscription_succeeded from {} on, got from {first}",
            bound + 1
        );
        let contiguous = seqs.windows(2).all(|w| w[1] == w[0] + 1);
        assert!(contiguous, "subscriber {i}: gap or duplicate in {seqs:?}");
    }
    assert_eq!(b.adapter.routing_stats().1, 0, "no SUBSCRIBE timed out");
}
