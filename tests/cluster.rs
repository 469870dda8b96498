//! Several nodes joined over Redis behave as one server: publishes, client events, presence,
//! API counts, terminate, watchlists and cache channels across nodes; a node killed with
//! SIGKILL leaves no ghost members; a Redis restart is survived (and what was published
//! meanwhile counted missed by the node it never reached).
//!
//! Needs a Redis on 127.0.0.1:6379 (each test uses its own random prefix) and, for the
//! restart test, `redis-server` on the PATH (started on a spare port).

mod common;

use common::*;
use rf_broadcast::testing;
use rf_broadcast::{Apps, Hub, HubSettings, RedisAdapter, RedisSettings, Routing, ServerOptions};
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const REDIS: &str = "redis://127.0.0.1:6379";

fn prefix() -> String {
    format!("rf-test-{:016x}", rand::random::<u64>())
}

fn settings(url: &str, prefix: &str, routing: Routing) -> RedisSettings {
    RedisSettings {
        url: url.into(),
        prefix: prefix.into(),
        routing,
        heartbeat: Duration::from_millis(500),
        node_expiry: Duration::from_millis(2_000),
        request_timeout: Duration::from_millis(1_000),
        ..RedisSettings::default()
    }
}

struct Node {
    server: TestServer,
    adapter: Arc<RedisAdapter>,
}

async fn node(url: &str, prefix: &str, routing: Routing) -> Node {
    let hub = Hub::new(Apps::new(vec![app()]), HubSettings::default());
    let adapter = RedisAdapter::start(&hub, settings(url, prefix, routing)).unwrap();
    let server = TestServer::from_hub(hub, app(), ServerOptions::default()).await;
    Node { server, adapter }
}

/// `n` nodes sharing a fresh prefix, once each sees all the others.
async fn cluster_on(url: &str, routing: Routing, n: usize) -> Vec<Node> {
    let p = prefix();
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(node(url, &p, routing).await);
    }
    eventually("every node sees the others", || {
        nodes
            .iter()
            .all(|x| x.adapter.connected() && x.adapter.nodes() == n - 1)
    })
    .await;
    nodes
}

async fn cluster(routing: Routing, n: usize) -> Vec<Node> {
    cluster_on(REDIS, routing, n).await
}

/// Run a test body once per routing mode: `name::partition` and `name::channel`.
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

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn data(v: &Value) -> Value {
    serde_json::from_str(v["data"].as_str().unwrap()).unwrap()
}

async fn publish_reaches_every_node_once_in_order(routing: Routing) {
    let nodes = cluster(routing, 3).await;
    let mut clients = Vec::new();
    for n in &nodes {
        let mut c = n.server.client().await;
        c.subscribe("orders").await;
        clients.push(c);
    }
    // Another deployment on the same Redis (other prefix) must not see any of it.
    let other = node(REDIS, &prefix(), routing).await;
    let mut stranger = other.server.client().await;
    stranger.subscribe("orders").await;

    let api = nodes[0].server.http();
    for i in 0..20 {
        let (status, _) = api.publish(&["orders"], "placed", &i.to_string()).await;
        assert_eq!(status, 200);
    }
    for c in &mut clients {
        for i in 0..20 {
            let v = c.expect_next("placed").await;
            assert_eq!(v["data"], i.to_string());
        }
        c.expect_silence(Duration::from_millis(300)).await;
    }
    stranger.expect_silence(Duration::from_millis(100)).await;
    for n in &nodes {
        assert_eq!(n.adapter.missed(), 0, "no false alarm");
    }
}

both!(publish_reaches_every_node_once_in_order);

async fn socket_id_exclusion_works_across_nodes(routing: Routing) {
    let nodes = cluster(routing, 3).await;
    let mut x = nodes[1].server.client().await;
    let mut y = nodes[2].server.client().await;
    x.subscribe("news").await;
    y.subscribe("news").await;
    let (status, _) = nodes[0]
        .server
        .http()
        .post(
            "/apps/app-id/events",
            &json!({"name":"n","channel":"news","data":"1","socket_id":x.socket_id}),
        )
        .await;
    assert_eq!(status, 200);
    y.expect_next("n").await;
    x.expect_silence(Duration::from_millis(400)).await;
}

both!(socket_id_exclusion_works_across_nodes);

async fn client_events_cross_nodes(routing: Routing) {
    let nodes = cluster(routing, 2).await;
    let mut a = nodes[0].server.client().await;
    let mut b = nodes[1].server.client().await;
    a.subscribe_private("private-chat").await;
    b.subscribe_private("private-chat").await;
    a.send(json!({"event":"client-typing","channel":"private-chat","data":{"who":"a"}}))
        .await;
    let v = b.expect_next("client-typing").await;
    assert_eq!(v["data"], json!({"who":"a"}));
    b.send(json!({"event":"client-wave","channel":"private-chat","data":{}}))
        .await;
    a.expect_next("client-wave").await;
    a.expect_silence(Duration::from_millis(300)).await;
    b.expect_silence(Duration::from_millis(100)).await;
}

both!(client_events_cross_nodes);

async fn presence_is_cluster_wide(routing: Routing) {
    let nodes = cluster(routing, 3).await;
    let room = "presence-room";
    let users_on = |i: usize| testing::presence_users(&nodes[i].server.hub, "app-id", room);

    let mut a1 = nodes[0].server.client().await;
    a1.join(room, "u1", json!({"n":"one"})).await;
    eventually("B knows u1", || users_on(1) == ["u1"]).await;

    let mut b2 = nodes[1].server.client().await;
    let p = b2.join(room, "u2", json!({"n":"two"})).await;
    assert_eq!(p["presence"]["count"], 2);
    assert_eq!(p["presence"]["hash"]["u1"], json!({"n":"one"}));
    let added = a1.expect_next("pusher_internal:member_added").await;
    assert_eq!(data(&added)["user_id"], "u2");
    eventually("C knows u1 and u2", || users_on(2).len() == 2).await;

    // u1's second connection, on another node: nobody hears of it.
    let mut c1 = nodes[2].server.client().await;
    let p = c1.join(room, "u1", json!({"n":"one"})).await;
    assert_eq!(p["presence"]["count"], 2);
    b2.expect_silence(Duration::from_millis(300)).await;
    a1.expect_silence(Duration::from_millis(10)).await;

    // A public channel occupied only on node A.
    let mut pub_a = nodes[0].server.client().await;
    pub_a.subscribe("lobby").await;

    for n in &nodes {
        let api = n.server.http();
        let (s, v) = api
            .get(
                &format!("/apps/app-id/channels/{room}"),
                &[("info", "user_count,subscription_count")],
            )
            .await;
        assert_eq!(s, 200);
        assert_eq!(
            v,
            json!({"occupied":true,"user_count":2,"subscription_count":3})
        );
        let (_, v) = api
            .get(
                "/apps/app-id/channels",
                &[("filter_by_prefix", "presence-"), ("info", "user_count")],
            )
            .await;
        assert_eq!(v, json!({"channels":{room:{"user_count":2}}}));
        let (_, v) = api
            .get("/apps/app-id/channels", &[("info", "subscription_count")])
            .await;
        assert_eq!(v["channels"]["lobby"], json!({"subscription_count":1}));
        assert_eq!(v["channels"][room], json!({"subscription_count":3}));
        let (_, v) = api
            .get(&format!("/apps/app-id/channels/{room}/users"), &[])
            .await;
        let mut ids: Vec<String> = v["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        assert_eq!(ids, ["u1", "u2"]);
    }

    // u1's first connection goes: u1 is still on C, so nobody hears anything.
    drop(a1);
    b2.expect_silence(Duration::from_millis(400)).await;
    // u1's last connection goes: everyone else hears member_removed once.
    drop(c1);
    let removed = b2.expect_next("pusher_internal:member_removed").await;
    assert_eq!(data(&removed)["user_id"], "u1");
    b2.expect_silence(Duration::from_millis(300)).await;
    eventually("A forgot u1", || users_on(0) == ["u2"]).await;
}

both!(presence_is_cluster_wide);

async fn terminate_connections_across_nodes(routing: Routing) {
    let nodes = cluster(routing, 3).await;
    let mut b = nodes[1].server.client().await;
    let mut c = nodes[2].server.client().await;
    let mut other = nodes[2].server.client().await;
    b.signin(r#"{"id":"42"}"#).await;
    c.signin(r#"{"id":"42"}"#).await;
    other.signin(r#"{"id":"43"}"#).await;
    let (s, _) = nodes[0]
        .server
        .http()
        .post("/apps/app-id/users/42/terminate_connections", &json!({}))
        .await;
    assert_eq!(s, 200);
    b.expect_close_code(4009).await;
    c.expect_close_code(4009).await;
    other.expect_silence(Duration::from_millis(300)).await;
}

both!(terminate_connections_across_nodes);

async fn watchlist_and_server_to_user_across_nodes(routing: Routing) {
    let nodes = cluster(routing, 2).await;
    let mut w = nodes[0].server.client().await;
    w.signin(r#"{"id":"w","watchlist":["7"]}"#).await;
    let v = w.expect_next("pusher_internal:watchlist_events").await;
    assert_eq!(
        data(&v)["events"],
        json!([{"name":"offline","user_ids":["7"]}])
    );
    let mut seven = nodes[1].server.client().await;
    seven.signin(r#"{"id":"7"}"#).await;
    let v = w.expect_next("pusher_internal:watchlist_events").await;
    assert_eq!(
        data(&v)["events"],
        json!([{"name":"online","user_ids":["7"]}])
    );

    // A watcher signing in later on another node sees 7 online at once.
    let mut w2 = nodes[0].server.client().await;
    w2.signin(r#"{"id":"w2","watchlist":["7"]}"#).await;
    let v = w2.expect_next("pusher_internal:watchlist_events").await;
    assert_eq!(
        data(&v)["events"],
        json!([{"name":"online","user_ids":["7"]}])
    );

    // #server-to-user-7 published on node A reaches 7 on node B.
    nodes[0]
        .server
        .http()
        .publish(&["#server-to-user-7"], "hello", "{}")
        .await;
    seven.expect_next("hello").await;

    drop(seven);
    let v = w.expect_next("pusher_internal:watchlist_events").await;
    assert_eq!(
        data(&v)["events"],
        json!([{"name":"offline","user_ids":["7"]}])
    );
}

both!(watchlist_and_server_to_user_across_nodes);

async fn cache_channels_across_nodes(routing: Routing) {
    let nodes = cluster(routing, 2).await;
    let (s, _) = nodes[0]
        .server
        .http()
        .publish(&["cache-ticker"], "price", r#"{"p":1}"#)
        .await;
    assert_eq!(s, 200);
    eventually("B cached it", || {
        testing::has_cached_event(&nodes[1].server.hub, "app-id", "cache-ticker")
    })
    .await;
    let mut c = nodes[1].server.client().await;
    c.subscribe("cache-ticker").await;
    let v = c.expect_next("price").await;
    assert_eq!(v["data"], r#"{"p":1}"#);
    let (_, v) = nodes[1]
        .server
        .http()
        .get("/apps/app-id/channels/cache-ticker", &[("info", "cache")])
        .await;
    assert_eq!(v["cache"]["data"], r#"{"p":1}"#);
}

both!(cache_channels_across_nodes);

// ---------------------------------------------------------------------------------------------
// Faults

/// The real binary as a cluster node.
async fn spawn_node(prefix: &str, routing: Routing) -> (KillOnDrop, TestClientSide) {
    let routing = match routing {
        Routing::Partition => "partition",
        Routing::Channel => "channel",
    };
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_rf-broadcast"))
        .args(["--port", &port.to_string()])
        .args(["--adapter", "redis", "--redis-url", REDIS])
        .args(["--redis-prefix", prefix])
        .args(["--redis-routing", routing])
        .args(["--node-heartbeat", "1", "--node-expiry", "3"])
        .args(["--log-level", "warn"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let proc = KillOnDrop(child);
    wait_tcp(port).await;
    (proc, TestClientSide { port })
}

struct TestClientSide {
    port: u16,
}

impl TestClientSide {
    async fn client(&self) -> Client {
        let url = format!(
            "ws://127.0.0.1:{}/app/app-key?protocol=7&client=js&version=8.4.0&flash=false",
            self.port
        );
        let mut c = Client::connect(&url).await;
        let est = c.expect_event("pusher:connection_established").await;
        c.socket_id = data(&est)["socket_id"].as_str().unwrap().to_string();
        c.key = "app-key".into();
        c.secret = "app-secret".into();
        c
    }

    fn http(&self) -> Api {
        Api {
            base: format!("http://127.0.0.1:{}", self.port),
            app: app(),
            http: reqwest::Client::new(),
        }
    }
}

async fn users_of(api: &Api, channel: &str) -> Vec<String> {
    let (_, v) = api
        .get(&format!("/apps/app-id/channels/{channel}/users"), &[])
        .await;
    let mut ids: Vec<String> = v["users"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|u| u["id"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

async fn killed_node_leaves_no_ghost_members(routing: Routing) {
    let p = prefix();
    let (mut victim, a) = spawn_node(&p, routing).await;
    let (_survivor, b) = spawn_node(&p, routing).await;
    let room = "presence-ghosts";
    let mut a1 = a.client().await;
    a1.join(room, "u1", json!({})).await;
    let api_b = b.http();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while users_of(&api_b, room).await != ["u1"] {
        assert!(tokio::time::Instant::now() < deadline, "B never saw u1");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut b2 = b.client().await;
    let p2 = b2.join(room, "u2", json!({})).await;
    assert_eq!(p2["presence"]["count"], 2);

    // SIGKILL: no goodbye, the socket just vanishes.
    victim.0.kill().unwrap();
    let killed = tokio::time::Instant::now();
    let v = tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            match b2.next(Duration::from_secs(8)).await {
                Some(v) if v["event"] == "pusher_internal:member_removed" => return v,
                Some(_) => continue,
                None => panic!("no member_removed"),
            }
        }
    })
    .await
    .expect("member_removed within heartbeat + expiry");
    assert_eq!(data(&v)["user_id"], "u1");
    // Documented bound: node expiry (3 s) + one heartbeat (1 s).
    assert!(
        killed.elapsed() <= Duration::from_secs(5),
        "{:?}",
        killed.elapsed()
    );
    assert_eq!(users_of(&api_b, room).await, ["u2"]);
    let (_, v) = api_b
        .get(
            &format!("/apps/app-id/channels/{room}"),
            &[("info", "user_count,subscription_count")],
        )
        .await;
    assert_eq!(
        v,
        json!({"occupied":true,"user_count":1,"subscription_count":1})
    );
}

both!(killed_node_leaves_no_ghost_members);

fn start_redis(port: u16) -> KillOnDrop {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server on the PATH");
    KillOnDrop(child)
}

async fn redis_restart_is_survived(routing: Routing) {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let mut redis = start_redis(port);
    wait_tcp(port).await;
    let nodes = cluster_on(&url, routing, 2).await;
    let room = "presence-restart";
    let mut a1 = nodes[0].server.client().await;
    a1.join(room, "u1", json!({})).await;
    let mut b2 = nodes[1].server.client().await;
    let mut local = nodes[0].server.client().await;
    local.subscribe("feed").await;
    b2.subscribe("feed").await;
    eventually("B knows u1", || {
        testing::presence_users(&nodes[1].server.hub, "app-id", room) == ["u1"]
    })
    .await;
    b2.join(room, "u2", json!({})).await;
    a1.expect_event("pusher_internal:member_added").await;
    nodes[0]
        .server
        .http()
        .publish(&["feed"], "before", "0")
        .await;
    b2.expect_event("before").await;
    local.expect_next("before").await;

    // Redis goes away.
    redis.0.kill().unwrap();
    let _ = redis.0.wait();
    eventually("both nodes noticed", || {
        nodes.iter().all(|n| !n.adapter.connected())
    })
    .await;
    // Local clients are still served.
    nodes[0]
        .server
        .http()
        .publish(&["feed"], "during", "1")
        .await;
    local.expect_next("during").await;
    // Presence changes during the outage: u3 joins on A.
    let mut a3 = nodes[0].server.client().await;
    a3.join(room, "u3", json!({})).await;
    // Outage longer than a node expiry: nobody is declared dead meanwhile.
    tokio::time::sleep(Duration::from_millis(2_500)).await;

    let _redis = start_redis(port);
    wait_tcp(port).await;
    eventually("both nodes reconnected and see each other", || {
        nodes
            .iter()
            .all(|n| n.adapter.connected() && n.adapter.nodes() == 1)
    })
    .await;
    // State was rebuilt: B learns about u3 (and tells its client), counts are right.
    let v = b2.expect_event("pusher_internal:member_added").await;
    assert_eq!(data(&v)["user_id"], "u3");
    for n in &nodes {
        let (_, v) = n
            .server
            .http()
            .get(
                &format!("/apps/app-id/channels/{room}"),
                &[("info", "user_count,subscription_count")],
            )
            .await;
        assert_eq!(
            v,
            json!({"occupied":true,"user_count":3,"subscription_count":3})
        );
    }
    // Publishing across nodes works again.
    nodes[0]
        .server
        .http()
        .publish(&["feed"], "after", "2")
        .await;
    let v = b2.expect_event("after").await;
    assert_eq!(v["data"], "2");
    // What A published while Redis was away never reached B, and B counted it when the next
    // message on the same Redis channel came: "during" (and with partition routing u3's
    // arrival, on the same partition channel as "after"; on its own it stays unseen).
    let expected = match routing {
        Routing::Partition => 2,
        Routing::Channel => 1,
    };
    assert_eq!(nodes[1].adapter.missed(), expected);
    assert_eq!(nodes[0].adapter.missed(), 0);
    // u1 and u2 were never removed while Redis was away.
    let mut ids = testing::presence_users(&nodes[1].server.hub, "app-id", room);
    ids.sort();
    assert_eq!(ids, ["u1", "u2", "u3"]);
}

both!(redis_restart_is_survived);
