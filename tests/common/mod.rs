//! Test harness: the real server on an ephemeral port (in this process, over real sockets),
//! a small WebSocket client that speaks Pusher frames, and a signed HTTP client.
#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use rf_broadcast::testing::auth;
use rf_broadcast::{App, AppState, Apps, Hub, HubSettings, ServerOptions};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const WAIT: Duration = Duration::from_secs(5);

pub struct TestServer {
    pub addr: SocketAddr,
    pub hub: Arc<Hub>,
    pub app: App,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

pub fn app() -> App {
    App::new("app-id", "app-key", "app-secret")
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::with(
            vec![app()],
            HubSettings::default(),
            ServerOptions::default(),
        )
        .await
    }

    pub async fn with_app(app: App) -> TestServer {
        Self::with(vec![app], HubSettings::default(), ServerOptions::default()).await
    }

    pub async fn with(apps: Vec<App>, hub: HubSettings, options: ServerOptions) -> TestServer {
        let first = apps[0].clone();
        let hub = Hub::new(Apps::new(apps), hub);
        Self::from_hub(hub, first, options).await
    }

    /// Serve an existing hub (for instance one with a cluster adapter installed).
    pub async fn from_hub(hub: Arc<Hub>, first: App, options: ServerOptions) -> TestServer {
        Self::from_state(AppState::new(hub, options), first).await
    }

    /// Serve a prepared state (for instance one counting API rates cluster-wide).
    pub async fn from_state(state: AppState, first: App) -> TestServer {
        let hub = state.hub.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            rf_broadcast::serve(listener, state, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        TestServer {
            addr,
            hub,
            app: first,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Trigger graceful shutdown and wait for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), h).await;
        }
    }

    pub fn ws_url(&self, key: &str) -> String {
        format!(
            "ws://{}/app/{key}?protocol=7&client=js&version=8.4.0&flash=false",
            self.addr
        )
    }

    /// A connected client (after `connection_established`).
    pub async fn client(&self) -> Client {
        Client::established(&self.ws_url(&self.app.key), &self.app.key, &self.app.secret).await
    }

    pub fn http(&self) -> Api {
        Api {
            base: format!("http://{}", self.addr),
            app: self.app.clone(),
            http: reqwest::Client::new(),
        }
    }
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process (server binary, redis-server) killed when dropped.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Client {
    pub ws: Ws,
    pub socket_id: String,
    pub key: String,
    pub secret: String,
}

/// How a connection ended, as the client saw it.
#[derive(Debug)]
pub enum Ended {
    Closed(Option<CloseFrame>),
    Dropped,
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Client {
            ws,
            socket_id: String::new(),
            key: String::new(),
            secret: String::new(),
        }
    }

    /// Connect and read `connection_established`; remembers the socket id and the credentials
    /// used to sign subscriptions.
    pub async fn established(url: &str, key: &str, secret: &str) -> Client {
        let mut c = Client::connect(url).await;
        let est = c.expect_event("pusher:connection_established").await;
        let data: Value = serde_json::from_str(est["data"].as_str().unwrap()).unwrap();
        c.socket_id = data["socket_id"].as_str().unwrap().to_string();
        c.key = key.to_string();
        c.secret = secret.to_string();
        c
    }

    pub async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    pub async fn send_raw(&mut self, m: Message) {
        self.ws.send(m).await.unwrap();
    }

    /// Next text frame as JSON, or None on close / timeout.
    pub async fn next(&mut self, within: Duration) -> Option<Value> {
        loop {
            match tokio::time::timeout(within, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(&t).unwrap()),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                _ => return None,
            }
        }
    }

    /// Next frame whose event is `event` (skipping others), or panic.
    pub async fn expect_event(&mut self, event: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(v) if v["event"] == event => return v,
                Some(_) => continue,
                None => panic!("expected {event}, got nothing"),
            }
        }
    }

    /// The very next frame must be `event`.
    pub async fn expect_next(&mut self, event: &str) -> Value {
        let v = self
            .next(WAIT)
            .await
            .unwrap_or_else(|| panic!("expected {event}, got nothing"));
        assert_eq!(v["event"], event, "frame: {v}");
        v
    }

    /// Assert no text frame arrives within `d`.
    pub async fn expect_silence(&mut self, d: Duration) {
        if let Some(v) = self.next(d).await {
            panic!("expected nothing, got {v}");
        }
    }

    /// Read until the connection ends; returns the close frame.
    pub async fn expect_close(&mut self) -> Ended {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Ok(Some(Ok(Message::Close(f)))) => return Ended::Closed(f),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_))) | Ok(None) => return Ended::Dropped,
                Err(_) => panic!("connection did not close"),
            }
        }
    }

    pub async fn expect_close_code(&mut self, code: u16) {
        match self.expect_close().await {
            Ended::Closed(Some(f)) => assert_eq!(u16::from(f.code), code, "reason: {}", f.reason),
            other => panic!("expected close {code}, got {other:?}"),
        }
    }

    pub async fn subscribe(&mut self, channel: &str) -> Value {
        self.send(json!({"event":"pusher:subscribe","data":{"channel":channel,"auth":""}}))
            .await;
        self.expect_event("pusher_internal:subscription_succeeded")
            .await
    }

    pub fn auth_for(&self, channel: &str, channel_data: Option<&str>) -> String {
        auth::channel_auth(
            &self.key,
            &self.secret,
            &self.socket_id,
            channel,
            channel_data,
        )
    }

    pub async fn subscribe_private(&mut self, channel: &str) -> Value {
        let a = self.auth_for(channel, None);
        self.send(json!({"event":"pusher:subscribe","data":{"channel":channel,"auth":a}}))
            .await;
        let v = self
            .expect_event("pusher_internal:subscription_succeeded")
            .await;
        assert_eq!(v["channel"], channel);
        v
    }

    /// Join a presence channel; returns the decoded presence block.
    pub async fn join(&mut self, channel: &str, user_id: &str, info: Value) -> Value {
        let cd = json!({"user_id": user_id, "user_info": info}).to_string();
        let a = self.auth_for(channel, Some(&cd));
        self.send(json!({"event":"pusher:subscribe","data":{"channel":channel,"auth":a,"channel_data":cd}}))
            .await;
        let v = self
            .expect_event("pusher_internal:subscription_succeeded")
            .await;
        serde_json::from_str(v["data"].as_str().unwrap()).unwrap()
    }

    pub async fn signin(&mut self, user_data: &str) -> Value {
        let a = auth::user_auth(&self.key, &self.secret, &self.socket_id, user_data);
        self.send(json!({"event":"pusher:signin","data":{"auth":a,"user_data":user_data}}))
            .await;
        self.expect_event("pusher:signin_success").await
    }
}

pub struct Api {
    pub base: String,
    pub app: App,
    pub http: reqwest::Client,
}

/// A response's status and its body as JSON (or as a string when it is not JSON).
async fn status_and_body(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// The query string that signs a POST of `body` to `path` (as the SDKs sign it, now).
pub fn signed_post(key: &str, secret: &str, path: &str, body: &[u8]) -> String {
    auth::sign_http_request(key, secret, "POST", path, body, now(), &[])
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Api {
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, body.to_string().as_bytes(), &self.app.secret, now())
            .await
    }

    pub async fn post_raw(&self, path: &str, body: &[u8], secret: &str, ts: u64) -> (u16, Value) {
        let q = auth::sign_http_request(&self.app.key, secret, "POST", path, body, ts, &[]);
        self.post_query(path, &q, body).await
    }

    /// POST `body` to `url_path` with a ready-made query string.
    pub async fn post_query(&self, url_path: &str, query: &str, body: &[u8]) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{}?{}", self.base, url_path, query))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        status_and_body(r).await
    }

    pub async fn get(&self, path: &str, extra: &[(&str, &str)]) -> (u16, Value) {
        let q = auth::sign_http_request(
            &self.app.key,
            &self.app.secret,
            "GET",
            path,
            b"",
            now(),
            extra,
        );
        self.get_query(path, &q).await
    }

    pub async fn get_query(&self, path: &str, query: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{}?{}", self.base, path, query))
            .send()
            .await
            .unwrap();
        status_and_body(r).await
    }

    pub async fn publish(&self, channels: &[&str], name: &str, data: &str) -> (u16, Value) {
        self.post(
            &format!("/apps/{}/events", self.app.id),
            &json!({"name": name, "channels": channels, "data": data}),
        )
        .await
    }
}

/// Wait (at most 10 s) until something listens on 127.0.0.1:`port`.
pub async fn wait_tcp(port: u16) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "port {port} never opened"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// Read events named `e` until `n` arrived (their `data`), answering the server's
/// `pusher:ping`s as pusher-js does; panics when one does not come within 10 s.
pub async fn read_events(c: &mut Client, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < n {
        let v = c
            .next(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("only {} of {n} events arrived: {got:?}", got.len()));
        match v["event"].as_str() {
            Some("e") => got.push(v["data"].as_str().unwrap_or_default().to_string()),
            Some("pusher:ping") => c.send(json!({"event":"pusher:pong","data":{}})).await,
            _ => {}
        }
    }
    got
}
