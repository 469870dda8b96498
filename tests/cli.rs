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

/// The long flags `--help` lists (`--help` and `--version` aside).
fn help_flags(help: &str) -> Vec<String> {
    help.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l
                .strip_prefix("-h, ")
                .or(l.strip_prefix("-V, "))
                .unwrap_or(l);
            let flag = l.strip_prefix("--")?;
            let name: String = flag
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
                .collect();
            (!name.is_empty()).then(|| format!("--{name}"))
        })
        .filter(|f| f != "--help" && f != "--version")
        .collect()
}

/// The flags of the configuration reference: the first cell of each row of its table.
fn reference_flags(doc: &str) -> Vec<String> {
    let table = doc
        .split("## Configuration reference")
        .nth(1)
        .expect("docs/operations.md has the configuration reference")
        .lines()
        .skip_while(|l| !l.starts_with("| flag |"))
        .take_while(|l| l.starts_with('|'))
        .skip(2);
    table
        .filter_map(|row| {
            let cell = row.split('|').nth(1)?.trim();
            let flag = cell.strip_prefix('`')?.split(['`', ' ']).next()?;
            flag.starts_with("--").then(|| flag.to_string())
        })
        .collect()
}

#[test]
fn help_documents_the_flags_and_the_docs_document_every_flag() {
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
    let flags = help_flags(&text);
    assert!(flags.len() > 70, "{flags:?}");
    // The one-table configuration reference lists exactly the flags --help lists, and the
    // README (the front door) names every one.
    let root = env!("CARGO_MANIFEST_DIR");
    let doc = std::fs::read_to_string(format!("{root}/docs/operations.md")).unwrap();
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let documented = reference_flags(&doc);
    let missing: Vec<_> = flags.iter().filter(|f| !documented.contains(f)).collect();
    assert!(
        missing.is_empty(),
        "docs/operations.md's configuration reference lacks {missing:?}"
    );
    let stale: Vec<_> = documented.iter().filter(|f| !flags.contains(f)).collect();
    assert!(
        stale.is_empty(),
        "docs/operations.md's configuration reference lists flags --help does not: {stale:?}"
    );
    let mut seen = std::collections::HashSet::new();
    let twice: Vec<_> = documented.iter().filter(|f| !seen.insert(*f)).collect();
    assert!(twice.is_empty(), "listed twice: {twice:?}");
    let not_in_readme: Vec<_> = flags
        .iter()
        .filter(|f| !readme.contains(&format!("`{f}")))
        .collect();
    assert!(
        not_in_readme.is_empty(),
        "README.md lacks {not_in_readme:?}"
    );
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
