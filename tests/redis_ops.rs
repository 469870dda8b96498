//! The Redis adapter as an operator meets it: `--redis-required` refusing to start without
//! Redis (exit 2, naming host and port, never the password), outage warnings that name the
//! server and are rate-limited, and `rediss://` against a local TLS redis-server with a
//! certificate this test makes.

mod binary;
mod common;

use binary::{free_port, run, Server, TempDir};
use common::{Client, KillOnDrop};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn redis_required_without_redis_exits_2_naming_it() {
    let port = free_port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}");
    let started = Instant::now();
    let out = run(&[
        "--adapter",
        "redis",
        "--redis-url",
        &url,
        "--redis-required",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[tokio::test]
async fn outage_warnings_name_the_server_and_are_rate_limited() {
    let port = free_port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}");
    let server = Server::start(&["--adapter", "redis", "--redis-url", &url], &[]).await;
    // The subscriber retries with a backoff of 0.1 s doubling to 2 s: about 6 attempts here.
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    let logs = server.logs();
    let warnings = logs
        .lines()
        .filter(|l| l.contains("cannot subscribe to Redis at"))
        .count();
    assert!(warnings >= 1, "{logs}");
    assert!(warnings <= 3, "not rate-limited: {logs}");
    assert!(logs.contains(&format!("127.0.0.1:{port}")), "{logs}");
    assert!(!logs.contains("hunter2"), "{logs}");
    // Still serving its own clients.
    let mut c = Client::connect(&server.ws_url("app-key")).await;
    c.expect_next("pusher:connection_established").await;
}

fn openssl(dir: &TempDir, args: &[&str]) {
    let status = Command::new("openssl")
        .current_dir(&dir.0)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("the openssl command line tool is needed for this test");
    assert!(status.success(), "openssl {args:?}");
}

/// A CA and a server certificate for 127.0.0.1 signed by it, in `dir`.
fn make_certificates(dir: &TempDir) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req", "-x509", "-days", "1", "-keyout", "ca.key", "-out", "ca.pem",
    ];
    ca.extend(ec);
    ca.extend([
        "-subj",
        "/CN=rf-broadcast test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    let mut csr = vec![
        "req",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ];
    csr.extend(ec);
    openssl(dir, &csr);
    std::fs::write(
        dir.path("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "1",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-extfile",
            "ext.cnf",
        ],
    );
}

#[tokio::test]
async fn rediss_urls_join_nodes_over_tls() {
    let dir = TempDir::new("rediss");
    make_certificates(&dir);
    let tls_port = free_port();
    let path = |n: &str| dir.path(n).to_str().unwrap().to_string();
    let _redis = KillOnDrop(
        Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &tls_port.to_string(),
                "--bind",
                "127.0.0.1",
                "--tls-cert-file",
                &path("server.pem"),
                "--tls-key-file",
                &path("server.key"),
                "--tls-ca-cert-file",
                &path("ca.pem"),
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (built with TLS) is needed for this test"),
    );
    let url = format!("rediss://127.0.0.1:{tls_port}");
    let prefix = format!("rf-tls-{:08x}", rand::random::<u32>());
    let args = [
        "--adapter",
        "redis",
        "--redis-url",
        &url,
        "--redis-prefix",
        &prefix,
        "--redis-required",
        "--app-id",
        "a",
        "--app-key",
        "ka",
        "--app-secret",
        "sa",
    ];
    let ca = path("ca.pem");
    // redis-server may take a moment to listen: --redis-required would refuse a start before.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let env = [("SSL_CERT_FILE", ca.as_str())];
    let node1 = Server::start(&args, &env).await;
    let node2 = Server::start(&args, &env).await;
    assert!(
        node2
            .wait_log("subscribed to Redis at", Duration::from_secs(5))
            .await,
        "{}",
        node2.logs()
    );
    assert!(
        node1
            .wait_log("subscribed to Redis at", Duration::from_secs(5))
            .await,
        "{}",
        node1.logs()
    );
    let mut c = Client::established(&node2.ws_url("ka"), "ka", "sa").await;
    c.subscribe("news").await;
    assert_eq!(node1.publish("a", "ka", "sa", "news").await, 200);
    c.expect_event("e").await;

    // Without the CA the certificate is refused, and --redis-required says so.
    let out = run(&args);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("127.0.0.1:{tls_port}")), "{err}");
}

#[tokio::test]
async fn apps_added_on_reload_reach_every_node() {
    if std::net::TcpStream::connect("127.0.0.1:6379").is_err() {
        panic!("a Redis on 127.0.0.1:6379 is needed (scripts/prepare.sh starts one)");
    }
    let dir = TempDir::new("cluster-reload");
    let file = dir.path("apps.json");
    std::fs::write(&file, r#"[{"id":"a","key":"ka","secret":"sa"}]"#).unwrap();
    let prefix = format!("rf-reload-{:08x}", rand::random::<u32>());
    let args = [
        "--adapter",
        "redis",
        "--redis-prefix",
        &prefix,
        "--apps-file",
        file.to_str().unwrap(),
    ];
    let node1 = Server::start(&args, &[]).await;
    let node2 = Server::start(&args, &[]).await;
    for n in [&node1, &node2] {
        assert!(
            n.wait_log("subscribed to Redis at", Duration::from_secs(5))
                .await
        );
    }
    std::fs::write(
        &file,
        r#"[{"id":"a","key":"ka","secret":"sa"},{"id":"b","key":"kb","secret":"sb"}]"#,
    )
    .unwrap();
    node1.signal("HUP");
    node2.signal("HUP");
    for n in [&node1, &node2] {
        assert!(
            n.wait_log("added: b", Duration::from_secs(5)).await,
            "{}",
            n.logs()
        );
    }
    let mut c = Client::established(&node2.ws_url("kb"), "kb", "sb").await;
    c.subscribe("news").await;
    // The adapter subscribes the new app's Redis channel right after the reload.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        assert_eq!(node1.publish("b", "kb", "sb", "news").await, 200);
        if c.next(Duration::from_millis(200))
            .await
            .is_some_and(|v| v["event"] == "e")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node2 never got app b's event from node1"
        );
    }
}
