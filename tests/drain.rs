//! Health and drain, through the binary and its signals: `/ready` turns 503 the moment SIGTERM
//! arrives while `/up` stays 200, new clients are still served during `--drain-delay`, then every
//! client gets 4200 and the process exits within `--shutdown-grace`; a second SIGTERM exits at
//! once; SIGHUP no longer kills the process; `/ready` follows the Redis adapter's connection.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rf-broadcast");

fn start(args: &[&str]) -> (KillOnDrop, u16) {
    let port = free_port();
    let child = Command::new(BIN)
        .args(["--port", &port.to_string(), "--log-level", "warn"])
        .args(args)
        .env_remove("RF_DRAIN_DELAY")
        .env_remove("RF_SHUTDOWN_GRACE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (KillOnDrop(child), port)
}

async fn status(port: u16, path: &str) -> Option<u16> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

async fn wait_ready(port: u16) {
    for _ in 0..100 {
        if status(port, "/ready").await == Some(200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server never became ready on {port}");
}

fn signal(child: &KillOnDrop, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &child.0.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name} failed");
}

async fn wait_exit(child: &mut KillOnDrop, within: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < within {
        if let Ok(Some(status)) = child.0.try_wait() {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

async fn client(port: u16) -> Client {
    Client::established(
        &format!("ws://127.0.0.1:{port}/app/app-key?protocol=7"),
        "app-key",
        "app-secret",
    )
    .await
}

/// One readiness poll: time since the poller started, and the status (None: no answer).
type Poll = (Duration, Option<u16>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_closes_every_client_with_4200_and_exits() {
    let (mut child, port) = start(&["--drain-delay", "1", "--shutdown-grace", "2"]);
    wait_ready(port).await;
    let mut clients = Vec::new();
    for i in 0..3 {
        let mut c = client(port).await;
        c.subscribe(&format!("room-{i}")).await;
        clients.push(c);
    }

    // A readiness poller, as a load balancer runs it: (time since SIGTERM, status).
    let seen: Arc<Mutex<Vec<Poll>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let poller = {
        let (seen, stop) = (seen.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let s = status(port, "/ready").await;
                seen.lock().unwrap().push((t0.elapsed(), s));
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    signal(&child, "TERM");
    let sent = Instant::now();
    let since_signal = sent - t0;

    // At once: not ready, still alive, still serving new clients.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(status(port, "/ready").await, Some(503));
    assert_eq!(status(port, "/up").await, Some(200));
    let mut late = client(port).await;
    late.subscribe("late").await;
    assert!(
        sent.elapsed() < Duration::from_millis(900),
        "drain test too slow"
    );

    // After the drain delay every client, the late one too, is told to reconnect.
    clients.push(late);
    for c in &mut clients {
        let error = c.expect_event("pusher:error").await;
        assert_eq!(error["data"]["code"], 4200);
        c.expect_close_code(4200).await;
    }
    let closed_after = sent.elapsed();
    assert!(
        closed_after >= Duration::from_millis(950),
        "closed before the drain delay: {closed_after:?}"
    );
    let status = wait_exit(&mut child, Duration::from_secs(3))
        .await
        .expect("did not exit within the grace period");
    assert!(status.success(), "{status:?}");
    let exited_after = sent.elapsed();
    assert!(
        exited_after < Duration::from_secs(1) + Duration::from_secs(2) + Duration::from_millis(500),
        "{exited_after:?}"
    );
    stop.store(true, Ordering::Relaxed);
    poller.await.unwrap();

    // The poller saw 200 before the signal and never 200 after it (allowing one request in
    // flight when it arrived).
    let seen = seen.lock().unwrap().clone();
    assert!(seen
        .iter()
        .any(|(t, s)| *t < since_signal && *s == Some(200)));
    let after: Vec<_> = seen
        .iter()
        .filter(|(t, _)| *t > since_signal + Duration::from_millis(60))
        .collect();
    assert!(!after.is_empty());
    assert!(
        after.iter().all(|(_, s)| *s != Some(200)),
        "ready after SIGTERM: {after:?}"
    );
    assert!(after.iter().any(|(_, s)| *s == Some(503)));
}

#[tokio::test]
async fn a_second_sigterm_exits_at_once() {
    let (mut child, port) = start(&["--drain-delay", "30"]);
    wait_ready(port).await;
    let _c = client(port).await;
    signal(&child, "TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(child.0.try_wait().unwrap().is_none(), "exited during drain");
    assert_eq!(status(port, "/ready").await, Some(503));
    signal(&child, "TERM");
    assert!(
        wait_exit(&mut child, Duration::from_millis(800))
            .await
            .is_some(),
        "a second SIGTERM did not exit at once"
    );
}

#[tokio::test]
async fn sighup_does_not_kill_the_process() {
    let (mut child, port) = start(&[]);
    wait_ready(port).await;
    let mut c = client(port).await;
    c.subscribe("before-hup").await;
    signal(&child, "HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "SIGHUP ended the process"
    );
    assert_eq!(status(port, "/ready").await, Some(200));
    c.subscribe("after-hup").await;
}

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

async fn ready_becomes(port: u16, want: u16, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if status(port, "/ready").await == Some(want) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn ready_follows_the_redis_adapter_while_up_stays_200() {
    let redis_port = free_port();
    let url = format!("redis://127.0.0.1:{redis_port}");
    let (_child, port) = start(&["--adapter", "redis", "--redis-url", &url]);
    // Redis is not there yet: alive, not ready.
    let mut up = false;
    for _ in 0..100 {
        if status(port, "/up").await == Some(200) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "server did not come up");
    assert_eq!(status(port, "/ready").await, Some(503));
    let redis = start_redis(redis_port);
    assert!(
        ready_becomes(port, 200, Duration::from_secs(10)).await,
        "not ready once Redis is up"
    );
    drop(redis);
    assert!(
        ready_becomes(port, 503, Duration::from_secs(10)).await,
        "still ready after Redis went away"
    );
    assert_eq!(status(port, "/up").await, Some(200));
}
