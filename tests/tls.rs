//! Built-in TLS through the binary, with certificates the test makes (rcgen): `wss://` and
//! `https://` on one port, SIGHUP swapping the certificate for new handshakes while an open
//! connection keeps working, a bad file on reload keeping the old certificate, and a bad
//! certificate or key at start exiting 2 with a message naming the file.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_rf-broadcast");

/// A fresh directory for this test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rf-tls-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A self-signed certificate for localhost / 127.0.0.1: (cert PEM, key PEM, cert DER).
fn make_cert() -> (String, String, Vec<u8>) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    (
        ck.cert.pem(),
        ck.signing_key.serialize_pem(),
        ck.cert.der().to_vec(),
    )
}

fn write_pair(dir: &Path, cert: &str, key: &str) -> (PathBuf, PathBuf) {
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert).unwrap();
    std::fs::write(&k, key).unwrap();
    (c, k)
}

/// A TLS client trusting only `der`.
fn connector(der: &[u8]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(der.to_vec())).unwrap();
    #[allow(deprecated)] // the server's provider (ring), see src/tls.rs
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn tls_connect(port: u16, der: &[u8]) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    connector(der)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// One HTTP/1.1 request over TLS; the whole answer as text.
async fn https(port: u16, der: &[u8], request: String) -> String {
    let mut tls = tls_connect(port, der).await.unwrap();
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn start(cert: &Path, key: &Path, log: &Path) -> (KillOnDrop, u16) {
    let port = free_port();
    let child = Command::new(BIN)
        .args(["--port", &port.to_string(), "--log-level", "info"])
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (KillOnDrop(child), port)
}

async fn wait_up(port: u16, der: &[u8]) {
    for _ in 0..100 {
        if let Ok(Ok(mut tls)) =
            tokio::time::timeout(Duration::from_millis(500), tls_connect(port, der)).await
        {
            let _ = tls
                .write_all(b"GET /up HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .await;
            let mut answer = Vec::new();
            let _ = tls.read_to_end(&mut answer).await;
            if answer.starts_with(b"HTTP/1.1 200") {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("TLS server did not come up on {port}");
}

type Wss = tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>;

async fn wss(port: u16, der: &[u8]) -> Wss {
    let tls = tls_connect(port, der).await.unwrap();
    let url = format!("wss://localhost:{port}/app/app-key?protocol=7");
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    assert_eq!(
        next(&mut ws).await["event"],
        "pusher:connection_established"
    );
    ws
}

async fn next(ws: &mut Wss) -> Value {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no frame in time")
            .expect("closed")
            .unwrap();
        if let Message::Text(t) = m {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

async fn subscribe(ws: &mut Wss, channel: &str) {
    let frame = json!({"event": "pusher:subscribe", "data": {"channel": channel}});
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
    let v = next(ws).await;
    assert_eq!(v["event"], "pusher_internal:subscription_succeeded", "{v}");
}

#[tokio::test]
async fn wss_and_https_on_one_port_and_sighup_swaps_the_certificate() {
    let dir = scratch("serve");
    let (cert_a, key_a, der_a) = make_cert();
    let (cert, key) = write_pair(&dir, &cert_a, &key_a);
    let log = dir.join("server.log");
    let (child, port) = start(&cert, &key, &log);
    wait_up(port, &der_a).await;

    // wss:// subscribe, https:// publish, the event arrives.
    let mut ws = wss(port, &der_a).await;
    subscribe(&mut ws, "secure").await;
    let body = json!({"name": "greet", "channel": "secure", "data": "{\"hi\":1}"}).to_string();
    let query = signed_post(
        "app-key",
        "app-secret",
        "/apps/app-id/events",
        body.as_bytes(),
    );
    let answer = https(
        port,
        &der_a,
        format!(
            "POST /apps/app-id/events?{query} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let event = next(&mut ws).await;
    assert_eq!(
        (event["event"].as_str(), event["channel"].as_str()),
        (Some("greet"), Some("secure"))
    );
    // Plain HTTP on the TLS port is not served.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    plain
        .write_all(b"GET /up HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(WAIT, plain.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert!(!buf[..n].starts_with(b"HTTP/1.1 200"));

    // New certificate, SIGHUP: new handshakes get it, the open connection carries on.
    let (cert_b, key_b, der_b) = make_cert();
    write_pair(&dir, &cert_b, &key_b);
    let hup = || {
        Command::new("kill")
            .args(["-HUP", &child.0.id().to_string()])
            .status()
            .unwrap()
    };
    hup();
    let mut swapped = false;
    for _ in 0..50 {
        if tls_connect(port, &der_b).await.is_ok() {
            swapped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(swapped, "the reloaded certificate is not served");
    assert!(
        tls_connect(port, &der_a).await.is_err(),
        "the old certificate is still served"
    );
    subscribe(&mut ws, "after-reload").await;
    let mut ws_b = wss(port, &der_b).await;
    subscribe(&mut ws_b, "new-cert").await;

    // A broken key on reload: the process lives, certificate B stays, the log says why.
    std::fs::write(
        dir.join("key.pem"),
        "-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    hup();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut child = child;
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "a bad reload ended the process"
    );
    tls_connect(port, &der_b)
        .await
        .expect("certificate B was dropped");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("TLS reload failed, keeping the previous certificate")
            && text.contains("key.pem"),
        "{text}"
    );
    subscribe(&mut ws, "after-bad-reload").await;
}

#[test]
fn bad_certificate_or_key_at_start_exits_2_naming_the_file() {
    let dir = scratch("bad");
    let (cert, key, _) = make_cert();
    let (_, other_key, _) = make_cert();
    let good_cert = dir.join("good-cert.pem");
    let good_key = dir.join("good-key.pem");
    let junk = dir.join("junk.pem");
    let mismatched = dir.join("other-key.pem");
    std::fs::write(&good_cert, &cert).unwrap();
    std::fs::write(&good_key, &key).unwrap();
    std::fs::write(&junk, "hello, not a PEM file\n").unwrap();
    std::fs::write(&mismatched, &other_key).unwrap();
    let missing = dir.join("missing.pem");
    for (cert, key, named) in [
        (&missing, &good_key, &missing),
        (&junk, &good_key, &junk),
        (&good_cert, &junk, &junk),
        (&good_cert, &mismatched, &mismatched),
    ] {
        let out = Command::new(BIN)
            .args(["--port", "0"])
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&named.display().to_string()),
            "{} not named: {stderr}",
            named.display()
        );
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    // One without the other is refused too.
    let out = Command::new(BIN)
        .args(["--port", "0"])
        .arg("--tls-cert")
        .arg(&good_cert)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
