//! Running the `rf-broadcast` binary in tests: a clean environment (no RF_*, Laravel or DB_*
//! variables from the caller), its log captured to a file the test can read, and waiting until
//! it serves.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Output};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_rf-broadcast");

/// A command for the binary without the caller's configuration variables.
pub fn command() -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if [
            "RF_",
            "PUSHER_",
            "REVERB_",
            "BROADCAST_",
            "DB_",
            "REDIS_",
            "DATABASE_URL",
        ]
        .iter()
        .any(|p| k.starts_with(p))
        {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Run to completion (a subcommand, or a start that must fail).
pub fn run(args: &[&str]) -> Output {
    command().args(args).output().unwrap()
}

/// A scratch directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("rf-{tag}-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running server, killed when dropped; its log goes to `log`.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
    _dir: TempDir,
}

impl Server {
    /// Start on a free port with these arguments and extra environment variables.
    pub async fn start(args: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = TempDir::new("server");
        let log = dir.path("server.log");
        let port = free_port();
        let mut cmd = command();
        cmd.args(["--port", &port.to_string()]).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let mut server = Server {
            child,
            port,
            log,
            _dir: dir,
        };
        server.wait_up().await;
        server
    }

    async fn wait_up(&mut self) {
        for _ in 0..200 {
            if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{}/up", self.port)).await {
                if r.status() == 200 {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("server exited with {status}: {}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server did not come up: {}", self.logs());
    }

    /// Still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the log contains `text`.
    pub async fn wait_log(&self, text: &str, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if self.logs().contains(text) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }

    pub fn ws_url(&self, key: &str) -> String {
        format!(
            "ws://127.0.0.1:{}/app/{key}?protocol=7&client=js&version=8.4.0",
            self.port
        )
    }

    pub fn signal(&self, sig: &str) {
        Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
    }

    /// POST an event to app `id` signed with `key`/`secret`; the HTTP status.
    pub async fn publish(&self, id: &str, key: &str, secret: &str, channel: &str) -> u16 {
        let path = format!("/apps/{id}/events");
        let body = serde_json::json!({"name":"e","channels":[channel],"data":"{}"}).to_string();
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let query = rf_broadcast::testing::auth::sign_http_request(
            key,
            secret,
            "POST",
            &path,
            body.as_bytes(),
            ts,
            &[],
        );
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}{path}?{query}", self.port))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
