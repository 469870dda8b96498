//! The binary: flags and env vars, one-line errors with exit code 2, `--help`, serving with the
//! development defaults, Laravel `.env` names, and SIGTERM closing clients with 4200.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_rf-broadcast");

async fn wait_up(port: u16) {
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/up")).await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server did not come up on {port}");
}

fn clean_env(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars() {
        if k.starts_with("RF_")
            || k.starts_with("PUSHER_")
            || k.starts_with("REVERB_")
            || k.starts_with("BROADCAST_")
        {
            cmd.env_remove(k);
        }
    }
    cmd
}

#[test]
fn bad_values_exit_2_with_one_line() {
    for args in [
        vec!["--port", "nope"],
        vec!["--host", "not-an-ip"],
        vec!["--activity-timeout", "0"],
        vec!["--app-key", "has:colon"],
        vec!["--apps-file", "/nonexistent/apps.json"],
        vec!["--no-such-flag"],
    ] {
        let out = clean_env(&mut Command::new(BIN))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
        assert!(!err.trim().is_empty());
    }
}

#[test]
fn help_documents_the_flags() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--app-id",
        "--app-key",
        "--app-secret",
        "--host",
        "--port",
        "--dev-auth",
        "--max-event-bytes",
        "PUSHER_APP_ID",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
}

#[tokio::test]
async fn serves_with_laravel_env_names_and_closes_4200_on_sigterm() {
    let port = free_port();
    let child = clean_env(&mut Command::new(BIN))
        .env("REVERB_APP_KEY", "reverb-key")
        .env("REVERB_APP_ID", "reverb-id")
        .env("REVERB_APP_SECRET", "reverb-secret")
        .env("BROADCAST_CONNECTION", "reverb")
        .env("PUSHER_APP_KEY", "ignored-pusher-key")
        .args(["--port", &port.to_string(), "--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = KillOnDrop(child);
    wait_up(port).await;
    let mut c = Client::connect(&format!("ws://127.0.0.1:{port}/app/reverb-key?protocol=7")).await;
    c.expect_next("pusher:connection_established").await;
    let mut wrong = Client::connect(&format!("ws://127.0.0.1:{port}/app/ignored-pusher-key")).await;
    assert_eq!(
        wrong.expect_next("pusher:error").await["data"]["code"],
        4001
    );
    // SIGTERM: the client is told to reconnect (4200) and the process exits.
    let pid = child.0.id();
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    c.expect_close_code(4200).await;
    let mut child = child;
    for _ in 0..100 {
        if let Ok(Some(status)) = child.0.try_wait() {
            assert!(status.success());
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server did not exit after SIGTERM");
}

#[tokio::test]
async fn dev_auth_signs_subscriptions_and_serves_the_demo() {
    let port = free_port();
    let _child = KillOnDrop(
        clean_env(&mut Command::new(BIN))
            .args([
                "--port",
                &port.to_string(),
                "--dev-auth",
                "--log-level",
                "error",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_up(port).await;
    let mut c = Client::established(
        &format!("ws://127.0.0.1:{port}/app/app-key"),
        "app-key",
        "app-secret",
    )
    .await;
    let socket_id = c.socket_id.clone();
    let http = reqwest::Client::new();
    let r: serde_json::Value = http
        .post(format!("http://127.0.0.1:{port}/broadcasting/auth"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "socket_id={socket_id}&channel_name=presence-demo&user_id=ada"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    c.send(serde_json::json!({"event":"pusher:subscribe","data":{"channel":"presence-demo","auth":r["auth"],"channel_data":r["channel_data"]}}))
        .await;
    let ok = c
        .expect_next("pusher_internal:subscription_succeeded")
        .await;
    assert!(ok["data"].as_str().unwrap().contains("\"ada\""));
    let page = http
        .get(format!("http://127.0.0.1:{port}/demo"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    // Without --dev-auth the endpoint does not exist.
    let s = TestServer::start().await;
    let r = http
        .post(format!("http://{}/pusher/auth", s.addr))
        .body("socket_id=1.1&channel_name=private-x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[test]
fn a_taken_port_exits_2_naming_the_address_and_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut child = KillOnDrop(
        clean_env(&mut Command::new(BIN))
            .args(["--port", &port.to_string(), "--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut status = None;
    for _ in 0..200 {
        if let Some(s) = child.0.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let status = status.expect("the server kept running on a taken port");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("already in use"), "{err}");
    assert!(err.contains("--port") && err.contains("RF_PORT"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    drop(taken);
}
