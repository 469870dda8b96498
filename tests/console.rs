//! The debug console's access rules, against the real binary: a non-loopback address without
//! a token stops the start (exit 2, nothing listens); with a token, no token and a wrong one
//! get 401, the right one (bearer or the login form's cookie) gets in, wrong tokens are
//! rate-limited; state-changing requests from another origin are refused; without a token only
//! loopback names are answered. What the live log says, read from its SSE stream: refusals
//! (wrong key; a `channel_data` that is not what was signed, with the string that was expected
//! to be signed and never the secret), webhook attempts against a real receiver (a failing one
//! gets a retry row, then a delivered one), and the API requests counter. The page itself is
//! tested in a real browser (compat-tests/test/console.test.mjs).

mod common;

use common::*;
use reqwest::header;
use std::process::{Command, Stdio};
use std::sync::Arc;
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
    start_on(free_port(), cport, extra).await
}

/// [`start`] with the server's own port chosen too.
async fn start_on(port: u16, cport: u16, extra: &[&str]) -> KillOnDrop {
    let port = port.to_string();
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

/// The console's live log as a test reads it: the SSE stream, one JSON row per `data:` line.
struct Log {
    response: reqwest::Response,
    buf: String,
    /// Everything read so far, verbatim (to look for what must never appear).
    raw: String,
}

impl Log {
    async fn open(cport: u16) -> Log {
        let response = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{cport}/api/stream"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        Log {
            response,
            buf: String::new(),
            raw: String::new(),
        }
    }

    /// The next row (waiting at most 10 s for it).
    async fn next(&mut self) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(end) = self.buf.find('\n') {
                let line: String = self.buf.drain(..=end).collect();
                if let Some(data) = line.trim_end().strip_prefix("data:") {
                    return serde_json::from_str(data.trim_start()).unwrap();
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .expect("no row within 10 s")
                .unwrap()
                .expect("the stream ended");
            let text = String::from_utf8_lossy(&chunk);
            self.raw.push_str(&text);
            self.buf.push_str(&text);
        }
    }

    /// The next row of `type` for which `pred` holds, skipping others.
    async fn expect(
        &mut self,
        kind: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        loop {
            let row = self.next().await;
            if row["type"] == kind && pred(&row) {
                return row;
            }
        }
    }
}

const SECRET: &str = "console-test-secret-8d1e77";

fn app_flags<'a>() -> Vec<&'a str> {
    vec![
        "--app-id",
        "app-id",
        "--app-key",
        "app-key",
        "--app-secret",
        SECRET,
    ]
}

#[tokio::test]
async fn refusals_are_logged_with_their_reason_and_never_the_secret() {
    let (port, cport) = (free_port(), free_port());
    let _server = start_on(port, cport, &app_flags()).await;
    let mut log = Log::open(cport).await;
    let url = format!("ws://127.0.0.1:{port}/app/app-key?protocol=7");
    let mut c = Client::established(&url, "app-key", SECRET).await;
    let sid = c.socket_id.clone();

    // A key that is not the app's.
    c.send(serde_json::json!({"event": "pusher:subscribe",
        "data": {"channel": "private-orders", "auth": "not-the-key:0123abcd"}}))
        .await;
    c.expect_event("pusher:subscription_error").await;
    let row = log
        .expect("subscription_refused", |r| r["channel"] == "private-orders")
        .await;
    assert_eq!(row["socket_id"], sid.as_str());
    assert_eq!(row["app_id"], "app-id");
    let reason = row["reason"].as_str().unwrap();
    assert!(
        reason.contains("Invalid key") && reason.contains("not-the-key"),
        "{reason}"
    );

    // channel_data that is not what was signed: the reason gives the string that was
    // expected to be signed, built from the channel_data sent.
    let signed = r#"{"user_id":"alice"}"#;
    let sent = r#"{"user_id":"mallory"}"#;
    let auth = c.auth_for("presence-room", Some(signed));
    c.send(serde_json::json!({"event": "pusher:subscribe",
        "data": {"channel": "presence-room", "auth": auth, "channel_data": sent}}))
        .await;
    c.expect_event("pusher:subscription_error").await;
    let row = log
        .expect("subscription_refused", |r| r["channel"] == "presence-room")
        .await;
    let reason = row["reason"].as_str().unwrap();
    assert!(reason.contains("Invalid signature"), "{reason}");
    assert!(
        reason.contains(&format!("{sid}:presence-room:{sent}")),
        "the string to sign in {reason}"
    );

    // The secret is in no row, nor in anything else the stream sent.
    assert!(!log.raw.contains(SECRET), "{}", log.raw);
}

#[tokio::test]
async fn the_api_requests_counter_counts_every_api_request() {
    let (port, cport) = (free_port(), free_port());
    // Metrics off: the count does not depend on the metrics middleware being there.
    let mut flags = app_flags();
    flags.extend(["--metrics", "false"]);
    let _server = start_on(port, cport, &flags).await;
    let api = Api {
        base: format!("http://127.0.0.1:{port}"),
        app: rf_broadcast::App::new("app-id", "app-key", SECRET),
        http: reqwest::Client::new(),
    };
    // Queries, a refused request (bad signature) and one publish.
    for _ in 0..4 {
        assert_eq!(api.get("/apps/app-id/channels", &[]).await.0, 200);
    }
    assert_eq!(
        api.get_query("/apps/app-id/channels", "auth_key=app-key")
            .await
            .0,
        401
    );
    assert_eq!(api.publish(&["news"], "e", "{}").await.0, 200);

    let overview = format!("http://127.0.0.1:{cport}/api/overview");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let totals = loop {
        let body: serde_json::Value = http()
            .get(&overview)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let totals = body["totals"].clone();
        if totals["api_requests"] == 6 || tokio::time::Instant::now() > deadline {
            break (totals, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (totals, body) = totals;
    assert_eq!(totals["api_requests"], 6, "{body}");
    assert_eq!(totals["api_publishes"], 1, "{body}");
    let per_second: u64 = body["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["api_requests"].as_u64().unwrap())
        .sum();
    assert_eq!(per_second, 6, "the samples add up to the total");
}

/// A webhook receiver that answers each request with the next of `statuses` (then 200).
async fn receiver(statuses: Vec<u16>) -> (u16, Arc<parking_lot::Mutex<Vec<u16>>>) {
    let plan = Arc::new(parking_lot::Mutex::new(std::collections::VecDeque::from(
        statuses,
    )));
    let answered = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let (p, a) = (plan.clone(), answered.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let status = p.lock().pop_front().unwrap_or(200);
            a.lock().push(status);
            async move { axum::http::StatusCode::from_u16(status).unwrap() }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, answered)
}

#[tokio::test]
async fn webhook_attempts_are_logged_with_their_status_and_retries() {
    let (hook_port, answered) = receiver(vec![500]).await;
    let (port, cport) = (free_port(), free_port());
    // Credentials in the URL and a token in its query: neither may reach the log.
    let hook =
        format!("http://hookuser:hook-pass-5c2e@127.0.0.1:{hook_port}/hook?token=q-secret-91f0");
    let mut flags = app_flags();
    flags.extend([
        "--webhook-url",
        &hook,
        "--webhook-events",
        "channel_occupied",
        "--webhook-batch-window",
        "0ms",
        "--webhook-retry-min-backoff",
        "100ms",
        "--webhook-retry-max-backoff",
        "200ms",
    ]);
    let _server = start_on(port, cport, &flags).await;
    let mut log = Log::open(cport).await;
    let url = format!("ws://127.0.0.1:{port}/app/app-key?protocol=7");
    let mut c = Client::established(&url, "app-key", SECRET).await;
    c.subscribe("orders").await;

    // The receiver answers 500: a row that says so and that it will be retried.
    let first = log.expect("webhook_attempt", |_| true).await;
    assert_eq!(first["app_id"], "app-id");
    assert_eq!(
        first["target"],
        format!("http://127.0.0.1:{hook_port}/hook")
    );
    assert_eq!(first["kinds"], serde_json::json!(["channel_occupied"]));
    assert_eq!(first["channels"], serde_json::json!(["orders"]));
    assert_eq!(first["events"], 1);
    assert_eq!(first["attempt"], 1);
    assert_eq!(first["status"], 500);
    assert_eq!(first["outcome"], "will_retry");
    let wait = first["retry_in_ms"].as_u64().unwrap();
    assert!((50..=100).contains(&wait), "{wait}");
    assert!(first["error"].as_str().unwrap().contains("500"), "{first}");
    assert!(first["time"].as_str().unwrap().ends_with('Z'));

    // The retry gets 200: delivered.
    let second = log.expect("webhook_attempt", |_| true).await;
    assert_eq!(second["attempt"], 2);
    assert_eq!(second["status"], 200);
    assert_eq!(second["outcome"], "delivered");
    assert_eq!(second["error"], serde_json::Value::Null);
    assert_eq!(second["retry_in_ms"], serde_json::Value::Null);
    assert_eq!(*answered.lock(), [500, 200]);

    for hidden in ["hook-pass-5c2e", "hookuser", "q-secret-91f0", SECRET] {
        assert!(!log.raw.contains(hidden), "{hidden} in {}", log.raw);
    }
}
