//! The debug console's access rules, against the real binary: a non-loopback address without
//! a token stops the start (exit 2, nothing listens); with a token, no token and a wrong one
//! get 401, the right one (bearer or the login form's cookie) gets in, wrong tokens are
//! rate-limited; state-changing requests from another origin are refused; without a token only
//! loopback names are answered. The page itself is tested in a real browser
//! (compat-tests/test/console.test.mjs).

mod common;

use common::*;
use reqwest::header;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_rf-broadcast");
const TOKEN: &str = "a-console-token-for-tests";

fn command() -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("RF_") || k.starts_with("PUSHER_") || k.starts_with("REVERB_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Start the binary with the console on `cport`; waits until the console answers.
async fn start(cport: u16, extra: &[&str]) -> KillOnDrop {
    let port = free_port().to_string();
    let cport_s = cport.to_string();
    let mut args = vec![
        "--port",
        &port,
        "--console",
        "--console-port",
        &cport_s,
        "--log-level",
        "warn",
    ];
    args.extend_from_slice(extra);
    let child = command()
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = KillOnDrop(child);
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", cport))
            .await
            .is_ok()
        {
            return guard;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the console did not listen on {cport}");
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[test]
fn a_public_address_without_a_token_stops_the_start() {
    let port = free_port();
    let out = command()
        .args([
            "--port",
            &port.to_string(),
            "--console",
            "--console-host",
            "0.0.0.0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("token is required"), "{err}");
    let all = format!("{err}{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        !all.contains("listening"),
        "nothing may listen first: {all}"
    );

    // A token that is too short is refused the same way.
    let out = command()
        .args(["--console", "--console-token", "short"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn the_token_from_the_environment_allows_a_public_address() {
    let cport = free_port();
    let port = free_port();
    let child = command()
        .args([
            "--port",
            &port.to_string(),
            "--console",
            "--console-host",
            "0.0.0.0",
        ])
        .args(["--console-port", &cport.to_string(), "--log-level", "warn"])
        .env("RF_CONSOLE_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(child);
    let url = format!("http://127.0.0.1:{cport}/api/overview");
    let mut status = None;
    for _ in 0..200 {
        if let Ok(r) = http().get(&url).bearer_auth(TOKEN).send().await {
            status = Some(r.status().as_u16());
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(status, Some(200));
    let r = http().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn no_token_wrong_token_right_token() {
    let cport = free_port();
    let _server = start(cport, &["--console-token", TOKEN]).await;
    let base = format!("http://127.0.0.1:{cport}");
    let c = http();

    // No token: 401 everywhere but the login form.
    for path in [
        "/",
        "/app.js",
        "/api/overview",
        "/api/stream",
        "/api/connections?app=app-id",
    ] {
        let r = c.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert!(r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'"));
    }
    let r = c.get(format!("{base}/api/overview")).send().await.unwrap();
    assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
    let page = c
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("name=\"token\""),
        "the 401 page is the login form"
    );
    assert_eq!(
        c.get(format!("{base}/login"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Wrong token: 401.
    let r = c
        .get(format!("{base}/api/overview"))
        .bearer_auth("not-the-token-at-all")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .post(format!("{base}/login"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("token=wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get(header::SET_COOKIE).is_none());

    // Right token: as a bearer token, and at the login form for a cookie.
    let r = c
        .get(format!("{base}/api/overview"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["apps"], serde_json::json!(["app-id"]));
    assert!(!body.to_string().contains("app-secret"));
    let r = c
        .get(format!("{base}/api/stream"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    drop(r);

    let r = c
        .post(format!("{base}/login"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let set = r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains(TOKEN), "the cookie is not the token");
    let cookie = set.split(';').next().unwrap().to_string();
    let r = c
        .get(format!("{base}/"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Live log"));

    // State-changing requests from another origin are refused, even with the token.
    let publish = serde_json::json!({
        "app_id": "app-id", "channel": "news", "event": "e", "data": "{}"
    });
    let r = c
        .post(format!("{base}/api/publish"))
        .header(header::COOKIE, &cookie)
        .header(header::ORIGIN, "http://evil.example")
        .json(&publish)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .post(format!("{base}/api/publish"))
        .header(header::COOKIE, &cookie)
        .header(header::ORIGIN, format!("http://127.0.0.1:{cport}"))
        .json(&publish)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The event creator refuses what the HTTP API refuses.
    let r = c
        .post(format!("{base}/api/publish"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({
            "app_id": "app-id", "channel": "bad channel", "event": "e", "data": "{}"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn wrong_tokens_are_rate_limited() {
    let cport = free_port();
    let _server = start(
        cport,
        &["--console-token", TOKEN, "--console-auth-failures", "3"],
    )
    .await;
    let url = format!("http://127.0.0.1:{cport}/api/overview");
    let c = http();
    for _ in 0..3 {
        let r = c
            .get(&url)
            .bearer_auth("wrong-wrong-wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = c
        .get(&url)
        .bearer_auth("wrong-wrong-wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key(header::RETRY_AFTER));
    // Blocked: the right token is not even looked at until the window passes.
    let r = c.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 429);
}

#[tokio::test]
async fn without_a_token_only_loopback_names_are_answered() {
    let cport = free_port();
    let _server = start(cport, &[]).await;
    let url = format!("http://127.0.0.1:{cport}/api/overview");
    let c = http();
    assert_eq!(c.get(&url).send().await.unwrap().status(), 200);
    let r = c
        .get(&url)
        .header(header::HOST, "rebound.evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 421);
    let r = c
        .get(format!("http://127.0.0.1:{cport}/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "no token: no login form");
}
