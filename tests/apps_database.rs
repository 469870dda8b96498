//! The PostgreSQL app store end to end, against the machine's PostgreSQL on 127.0.0.1:5432
//! (user postgres, trust auth) in a database of this test's own, created and dropped here:
//! the `apps` subcommands, two nodes following every change within a second, bad rows, an
//! unreachable database at start (exit 2), and a database that goes away and comes back.

mod binary;
mod common;

use binary::{run, Server};
use common::Client;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database of this test's own, dropped when it goes.
struct TestDb {
    name: String,
}

impl TestDb {
    async fn create() -> TestDb {
        let name = format!("rf_test_{:016x}", rand::random::<u64>());
        let (client, conn) = tokio_postgres::connect(ADMIN_URL, tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432 (user postgres) is needed for this test");
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        TestDb { name }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    fn url_via(&self, port: u16) -> String {
        format!(
            "postgres://postgres:not-shown@127.0.0.1:{port}/{}",
            self.name
        )
    }

    async fn sql(&self, sql: &str) {
        let (client, conn) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client.batch_execute(sql).await.unwrap();
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(ADMIN_URL, tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            })
        })
        .join();
    }
}

/// `rf-broadcast apps ...` against `url`: (exit code, stdout, stderr).
fn apps(url: &str, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["apps"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--apps-database-url", url]);
    let out = run(&all);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Poll until a connection with `key` is established on `server`; how long it took.
async fn until_accepted(server: &Server, key: &str, within: Duration) -> Duration {
    let started = Instant::now();
    while started.elapsed() < within {
        let mut c = Client::connect(&server.ws_url(key)).await;
        if let Some(v) = c.next(Duration::from_secs(2)).await {
            if v["event"] == "pusher:connection_established" {
                return started.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "key {key} not accepted within {within:?}: {}",
        server.logs()
    );
}

/// Poll until publishing with this secret answers `status`; how long it took.
async fn until_publish(server: &Server, app: (&str, &str, &str), status: u16) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        if server.publish(app.0, app.1, app.2, "news").await == status {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("publish never answered {status}: {}", server.logs());
}

/// Within a second, as the README promises (with a little slack for a loaded CI machine).
const LIVE: Duration = Duration::from_millis(1_500);

#[tokio::test]
async fn subcommands_and_two_nodes_following_live() {
    let db = TestDb::create().await;
    let url = db.url();
    let (code, out, err) = apps(&url, &["add", "--id", "a", "--key", "ka"]);
    assert_eq!(code, 0, "{err}");
    let secret_a = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("secret: "))
        .unwrap()
        .to_string();
    assert_eq!(secret_a.len(), 64, "{out}");
    let (code, out, _) = apps(&url, &["list"]);
    assert_eq!(code, 0);
    assert!(out.contains("ka") && !out.contains(&secret_a[4..]), "{out}");
    // A list setting goes into its JSONB column and comes back.
    let (code, _, err) = apps(
        &url,
        &[
            "set",
            "a",
            "allowed_origins",
            r#"["https://*.example.com"]"#,
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = apps(&url, &["list"]);
    assert!(
        out.contains(r#"allowed_origins=["https://*.example.com"]"#),
        "{out}"
    );
    assert_eq!(apps(&url, &["set", "a", "allowed_origins", "null"]).0, 0);
    let (code, _, err) = apps(&url, &["add", "--id", "a", "--key", "other"]);
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");

    let node1 = Server::start(&["--apps-database-url", &url], &[]).await;
    let node2 = Server::start(&[], &[("RF_APPS_DATABASE_URL", &url)]).await;
    let mut on1 = Client::established(&node1.ws_url("ka"), "ka", &secret_a).await;
    let mut on2 = Client::established(&node2.ws_url("ka"), "ka", &secret_a).await;
    assert_eq!(node1.publish("a", "ka", &secret_a, "news").await, 200);

    // Added: works on every node within a second.
    let (code, _, err) = apps(&url, &["add", "--id", "b", "--key", "kb", "--secret", "sb"]);
    assert_eq!(code, 0, "{err}");
    for node in [&node1, &node2] {
        let took = until_accepted(node, "kb", LIVE).await;
        assert!(took < LIVE, "{took:?}");
    }
    let mut b1 = Client::established(&node1.ws_url("kb"), "kb", "sb").await;

    // Rotated secret: the old one stops working, the new one works.
    let (code, out, _) = apps(&url, &["rotate-secret", "b"]);
    assert_eq!(code, 0);
    let secret_b = out
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap()
        .to_string();
    assert_eq!(secret_b.len(), 64, "{out}");
    assert!(until_publish(&node2, ("b", "kb", "sb"), 401).await < LIVE);
    assert_eq!(node2.publish("b", "kb", &secret_b, "news").await, 200);

    // A bad value is refused before it reaches the table.
    let (code, _, err) = apps(&url, &["set", "b", "max_connections", "many"]);
    assert_eq!(code, 1);
    assert!(err.contains("max_connections"), "{err}");
    let (code, _, err) = apps(&url, &["set", "b", "max_conections", "5"]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown field"), "{err}");

    // Disabled: its connections get 4003 on every node.
    let started = Instant::now();
    let (code, _, _) = apps(&url, &["set", "a", "enabled", "false"]);
    assert_eq!(code, 0);
    on1.expect_close_code(4003).await;
    on2.expect_close_code(4003).await;
    assert!(started.elapsed() < LIVE + Duration::from_millis(500));

    // Removed: 4001; unknown id: exit 1.
    let (code, _, _) = apps(&url, &["remove", "b"]);
    assert_eq!(code, 0);
    b1.expect_close_code(4001).await;
    assert_eq!(apps(&url, &["remove", "b"]).0, 1);

    // A row broken by hand keeps its app's previous settings; nothing else is disturbed.
    apps(&url, &["add", "--id", "c", "--key", "kc", "--secret", "sc"]);
    until_accepted(&node1, "kc", LIVE).await;
    db.sql("UPDATE rf_broadcast_apps SET activity_timeout = -5 WHERE id = 'c'")
        .await;
    assert!(
        node1
            .wait_log("app \"c\" has a bad row", Duration::from_secs(3))
            .await,
        "{}",
        node1.logs()
    );
    until_accepted(&node1, "kc", LIVE).await;
    assert!(!node1.logs().contains(&secret_a));
}

#[test]
fn unreachable_database_at_start_exits_2_naming_the_host() {
    let started = Instant::now();
    let out = run(&[
        "--apps-database-url",
        "postgres://postgres:hunter2@127.0.0.1:1/apps",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("127.0.0.1:1/apps"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let out = run(&[
        "apps",
        "list",
        "--apps-database-url",
        "postgres://127.0.0.1:1/x",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

/// A TCP forwarder to PostgreSQL that the test can cut and restore.
struct Proxy {
    port: u16,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    async fn start(port: u16) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut pipes = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                pipes.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect("127.0.0.1:5432").await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Proxy {
            port,
            task: Some(task),
        }
    }

    /// Cut every connection and stop accepting.
    async fn cut(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

#[tokio::test]
async fn a_database_that_goes_away_is_logged_and_survived() {
    let db = TestDb::create().await;
    apps(
        &db.url(),
        &["add", "--id", "a", "--key", "ka", "--secret", "sa"],
    );
    let mut proxy = Proxy::start(0).await;
    let via = db.url_via(proxy.port);
    let mut server = Server::start(&["--apps-database-url", &via], &[]).await;
    let mut c = Client::established(&server.ws_url("ka"), "ka", "sa").await;
    proxy.cut().await;
    assert!(
        server
            .wait_log("serving the apps loaded before", Duration::from_secs(5))
            .await,
        "{}",
        server.logs()
    );
    // Still serving: the old connection, a new one, the HTTP API.
    assert_eq!(server.publish("a", "ka", "sa", "news").await, 200);
    until_accepted(&server, "ka", Duration::from_secs(2)).await;
    c.send(serde_json::json!({"event":"pusher:ping","data":{}}))
        .await;
    c.expect_event("pusher:pong").await;
    let logs = server.logs();
    assert!(
        logs.contains(&format!("127.0.0.1:{}", proxy.port)),
        "{logs}"
    );
    assert!(!logs.contains("not-shown"), "{logs}");

    // A change made while it was away arrives once it is back.
    apps(
        &db.url(),
        &["add", "--id", "b", "--key", "kb", "--secret", "sb"],
    );
    let _proxy = Proxy::start(proxy.port).await;
    assert!(
        server
            .wait_log("reachable again", Duration::from_secs(10))
            .await,
        "{}",
        server.logs()
    );
    until_accepted(&server, "kb", Duration::from_secs(3)).await;
    assert!(server.alive());
}
