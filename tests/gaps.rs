//! Gap detection between nodes (`RedisAdapter::missed`): a node whose link to Redis is cut
//! while another publishes without pause counts exactly the events it never received; a
//! channel unsubscribed and subscribed again under interest routing, and a node that expired
//! and came back, start new counts (nothing published while nobody listened is counted); the
//! last numbers kept are bounded by the channels listened to and the nodes alive.
//!
//! Needs a Redis on 127.0.0.1:6379 (each test uses its own random prefix). A node's link can be
//! cut: it reaches Redis through a TCP proxy that closes its connections and refuses new ones
//! for a while.

mod common;

use common::*;
use rf_broadcast::testing;
use rf_broadcast::{Apps, Hub, HubSettings, RedisAdapter, RedisSettings, Routing, ServerOptions};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const REDIS: &str = "redis://127.0.0.1:6379";

struct Node {
    server: TestServer,
    adapter: Arc<RedisAdapter>,
}

async fn node(url: &str, prefix: &str, routing: Routing) -> Node {
    let hub = Hub::new(Apps::new(vec![app()]), HubSettings::default());
    let settings = RedisSettings {
        url: url.into(),
        prefix: prefix.into(),
        routing,
        heartbeat: Duration::from_millis(300),
        node_expiry: Duration::from_millis(1_500),
        unsubscribe_linger: Duration::from_millis(200),
        ..RedisSettings::default()
    };
    let adapter = RedisAdapter::start(&hub, settings).unwrap();
    let server = TestServer::from_hub(hub, app(), ServerOptions::default()).await;
    Node { server, adapter }
}

/// Two nodes on a fresh prefix, once they see each other; the second reaches Redis at `b_url`.
async fn pair(b_url: &str, routing: Routing) -> (Node, Node) {
    let p = format!("rf-test-{:016x}", rand::random::<u64>());
    let a = node(REDIS, &p, routing).await;
    let b = node(b_url, &p, routing).await;
    eventually("the nodes see each other", Duration::from_secs(8), || {
        [&a, &b]
            .iter()
            .all(|n| n.adapter.connected() && n.adapter.nodes() == 1)
    })
    .await;
    (a, b)
}

async fn eventually(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A TCP proxy to the test Redis that can be cut: every connection through it closed at once,
/// and new ones refused until the cut ends.
struct CutLink {
    url: String,
    state: Arc<Mutex<LinkState>>,
}

#[derive(Default)]
struct LinkState {
    pipes: Vec<tokio::task::AbortHandle>,
    closed_until: Option<Instant>,
}

impl CutLink {
    async fn start() -> CutLink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(LinkState::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let closed = shared
                    .lock()
                    .unwrap()
                    .closed_until
                    .is_some_and(|t| Instant::now() < t);
                if closed {
                    continue; // dropped: the connection is closed at once
                }
                let Ok(up) = tokio::net::TcpStream::connect("127.0.0.1:6379").await else {
                    continue;
                };
                let (mut down_r, mut down_w) = down.into_split();
                let (mut up_r, mut up_w) = up.into_split();
                let to = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut down_r, &mut up_w).await;
                });
                let from = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut up_r, &mut down_w).await;
                });
                let mut s = shared.lock().unwrap();
                s.pipes.push(to.abort_handle());
                s.pipes.push(from.abort_handle());
            }
        });
        CutLink {
            url: format!("redis://127.0.0.1:{port}"),
            state,
        }
    }

    /// Close every connection through the link now, and refuse new ones for `d`.
    fn cut(&self, d: Duration) {
        let mut s = self.state.lock().unwrap();
        s.closed_until = Some(Instant::now() + d);
        for pipe in s.pipes.drain(..) {
            pipe.abort();
        }
    }
}

/// Read `tick` numbers into `got` until one `>= last` arrived (or `within` passed).
async fn read_ticks(sub: &mut Client, got: &mut Vec<u64>, last: u64, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline && got.last().is_none_or(|&l| l < last) {
        if let Some(v) = sub.next(Duration::from_millis(100)).await {
            if v["event"] == "tick" {
                got.push(v["data"].as_str().unwrap().parse().unwrap());
            }
        }
    }
}

/// Publish numbered `tick`s on `channel` through `node` without pause until stopped; returns
/// the count of publishes made and the stop switch.
fn keep_publishing(
    node: &Node,
    channel: &'static str,
) -> (Arc<AtomicU64>, Arc<AtomicBool>, tokio::task::JoinHandle<()>) {
    let api = node.server.http();
    let published = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (p, s) = (published.clone(), stop.clone());
    let task = tokio::spawn(async move {
        while !s.load(Ordering::SeqCst) {
            let n = p.load(Ordering::SeqCst) + 1;
            let (status, _) = api.publish(&[channel], "tick", &n.to_string()).await;
            assert_eq!(status, 200);
            p.store(n, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    });
    (published, stop, task)
}

/// The adapter's Prometheus series `name`, as a scrape would read it.
fn series(adapter: &Arc<RedisAdapter>, name: &str) -> f64 {
    let registry = prometheus::Registry::new();
    registry.register(Box::new(adapter.collector())).unwrap();
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no series {name} in {text}"))
        .parse()
        .unwrap()
}

/// Node B's link to Redis is cut for a while (its subscription and its publishing connection
/// closed, reconnections refused) while node A publishes without pause to a channel B has a
/// subscriber for. Every event is delivered to B's subscriber once and in order, or counted
/// missed by B: delivered + missed == published, with something missed.
async fn a_cut_subscription_counts_what_it_missed(routing: Routing) {
    let link = CutLink::start().await;
    let (a, b) = pair(&link.url, routing).await;
    let mut sub = b.server.client().await;
    sub.subscribe("ticks").await;
    let (published, stop, publisher) = keep_publishing(&a, "ticks");

    let mut got = Vec::new();
    read_ticks(&mut sub, &mut got, 30, Duration::from_secs(10)).await;
    assert!(got.len() >= 30, "events crossed before the cut");
    assert_eq!(b.adapter.missed(), 0);

    link.cut(Duration::from_millis(800));
    eventually("B lost its subscription", Duration::from_secs(5), || {
        !b.adapter.connected()
    })
    .await;
    eventually("B is back", Duration::from_secs(10), || {
        b.adapter.connected()
    })
    .await;
    // Events cross again, some way after the cut.
    let resumed = published.load(Ordering::SeqCst);
    read_ticks(&mut sub, &mut got, resumed + 50, Duration::from_secs(15)).await;
    assert!(
        got.last().is_some_and(|&l| l >= resumed + 50),
        "no event crossed after the cut"
    );
    stop.store(true, Ordering::SeqCst);
    publisher.await.unwrap();
    let total = published.load(Ordering::SeqCst);
    read_ticks(&mut sub, &mut got, total, Duration::from_secs(5)).await;
    assert_eq!(got.last(), Some(&total), "the last event arrived");

    assert!(
        got.windows(2).all(|w| w[1] > w[0]),
        "duplicated or out of order"
    );
    let (delivered, missed) = (got.len() as u64, b.adapter.missed());
    eprintln!("{routing:?}: published {total}, delivered {delivered}, missed {missed}");
    assert!(missed > 0, "the cut lost events");
    assert_eq!(
        delivered + missed,
        total,
        "every event delivered or counted missed"
    );
    assert_eq!(
        series(&b.adapter, "rf_broadcast_redis_missed_total"),
        missed as f64
    );
    // A received nothing numbered from B: nothing to miss.
    assert_eq!(a.adapter.missed(), 0);
}

#[tokio::test]
async fn a_cut_subscription_counts_what_it_missed_partition() {
    a_cut_subscription_counts_what_it_missed(Routing::Partition).await;
}

#[tokio::test]
async fn a_cut_subscription_counts_what_it_missed_channel() {
    a_cut_subscription_counts_what_it_missed(Routing::Channel).await;
}

/// Interest routing: B's subscriber leaves, B unsubscribes the channel's Redis channel (after
/// the linger), a subscriber comes back and B subscribes again, four times, while A publishes
/// without pause. What A published while B was not subscribed was not for B: never counted.
/// Without forgetting the channel's last number at the `UNSUBSCRIBE`, each return would count
/// the events of the pause.
#[tokio::test]
async fn resubscribed_channels_start_a_new_count() {
    let (a, b) = pair(REDIS, Routing::Channel).await;
    let (published, stop, publisher) = keep_publishing(&a, "churn");
    for round in 0..4 {
        let mut sub = b.server.client().await;
        sub.subscribe("churn").await;
        let from = published.load(Ordering::SeqCst);
        let mut got = Vec::new();
        read_ticks(&mut sub, &mut got, from + 20, Duration::from_secs(10)).await;
        assert!(got.len() >= 20, "round {round}: events crossed");
        assert_eq!(testing::redis_baselines(&b.adapter), 1);
        drop(sub);
        eventually(
            "B unsubscribed after the linger",
            Duration::from_secs(5),
            || b.adapter.channel_subscriptions() == 0,
        )
        .await;
        eventually(
            "B forgot the channel's numbers",
            Duration::from_secs(5),
            || testing::redis_baselines(&b.adapter) == 0,
        )
        .await;
        // A's number of the channel moves on while nobody on B listens.
        let now = published.load(Ordering::SeqCst);
        eventually("A published meanwhile", Duration::from_secs(5), || {
            published.load(Ordering::SeqCst) >= now + 20
        })
        .await;
    }
    stop.store(true, Ordering::SeqCst);
    publisher.await.unwrap();
    assert_eq!(b.adapter.missed(), 0, "nothing missed, nothing counted");
}

/// A node that expired (its link cut for longer than the node expiry) is forgotten with its
/// numbers: what it published while away was counted lost on its side, and on its return its
/// numbers start a new count on the other node rather than a hole.
#[tokio::test]
async fn expired_nodes_are_forgotten_with_their_numbers() {
    let link = CutLink::start().await;
    // A is behind the link this time; B listens.
    let p = format!("rf-test-{:016x}", rand::random::<u64>());
    let b = node(REDIS, &p, Routing::Partition).await;
    let a = node(&link.url, &p, Routing::Partition).await;
    eventually("the nodes see each other", Duration::from_secs(8), || {
        [&a, &b]
            .iter()
            .all(|n| n.adapter.connected() && n.adapter.nodes() == 1)
    })
    .await;
    let mut sub = b.server.client().await;
    sub.subscribe("news").await;
    let api = a.server.http();
    api.publish(&["news"], "tick", "1").await;
    sub.expect_next("tick").await;
    assert_eq!(testing::redis_baselines(&b.adapter), 1);

    link.cut(Duration::from_millis(3_000));
    eventually("B forgot A", Duration::from_secs(6), || {
        b.adapter.nodes() == 0
    })
    .await;
    assert_eq!(testing::redis_baselines(&b.adapter), 0);
    for i in 2..=4 {
        api.publish(&["news"], "tick", &i.to_string()).await;
    }
    eventually("A counted them lost", Duration::from_secs(5), || {
        a.adapter.lost() >= 3
    })
    .await;
    eventually("A is back", Duration::from_secs(10), || {
        a.adapter.connected() && b.adapter.nodes() == 1
    })
    .await;
    api.publish(&["news"], "tick", "5").await;
    let v = sub.expect_next("tick").await;
    assert_eq!(v["data"], "5");
    assert_eq!(b.adapter.missed(), 0);
    assert_eq!(testing::redis_baselines(&b.adapter), 1);
}
