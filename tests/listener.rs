//! The listener's limits, from outside over real sockets: slowloris sockets are closed within
//! `--handshake-timeout` while a normal client connects and subscribes at once; an API body that
//! never arrives whole and an idle keep-alive socket are closed too; the per-IP cap and the
//! pending-handshake cap refuse what they should and only that. (The per-app connection rate
//! per IP, 429 before the upgrade, is in `tests/rate_limit.rs`.)

mod common;

use common::*;
use rf_broadcast::{HubSettings, ServerOptions};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const BIN: &str = env!("CARGO_BIN_EXE_rf-broadcast");

/// A TCP connection to `addr` from the loopback address `from` (127.0.0.x: one "client IP").
async fn connect_from(from: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((from, 0)))
        .expect("bind a 127.0.0.x source address");
    socket.connect(addr).await.unwrap()
}

/// Wait until the server closes `tcp` (EOF or reset), for at most `within`; the time it took.
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .ok()
    .map(|_| start.elapsed())
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// A WebSocket upgrade over `tcp`: the open WebSocket, or the HTTP status it got.
async fn upgrade(tcp: TcpStream, addr: SocketAddr) -> Result<Ws, u16> {
    let url = format!("ws://{addr}/app/app-key?protocol=7");
    match tokio_tungstenite::client_async(url, tcp).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("upgrade failed without an HTTP answer: {e}"),
    }
}

/// Time for a fresh client to connect, get `connection_established` and have a subscription
/// confirmed.
async fn connect_and_subscribe(addr: SocketAddr) -> Duration {
    let start = Instant::now();
    let url = format!("ws://{addr}/app/app-key?protocol=7&client=js&version=8.4.0");
    let mut client = Client::established(&url, "app-key", "app-secret").await;
    client.subscribe("lobby").await;
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_sockets_do_not_stop_a_client_and_are_closed_within_the_timeout() {
    const SLOW: usize = 500;
    const TIMEOUT: Duration = Duration::from_secs(2);
    let port = free_port();
    let _server = KillOnDrop(
        Command::new(BIN)
            .args(["--port", &port.to_string(), "--handshake-timeout", "2"])
            .env("RF_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut up = false;
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "server did not come up");

    // Half send nothing; half send half an upgrade request, then one byte every 300 ms.
    let mut tasks = Vec::new();
    for i in 0..SLOW {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let opened = Instant::now();
        tasks.push(tokio::spawn(async move {
            let mut buf = [0u8; 256];
            if i % 2 == 1 {
                tcp.write_all(
                    b"GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n",
                )
                .await
                .unwrap();
            }
            let mut trickle = tokio::time::interval(Duration::from_millis(300));
            loop {
                tokio::select! {
                    read = tcp.read(&mut buf) => match read {
                        Ok(0) | Err(_) => return Some(opened.elapsed()),
                        Ok(_) => return None, // an answer: not what a slowloris should get
                    },
                    _ = trickle.tick(), if i % 2 == 1 => {
                        if tcp.write_all(b"X").await.is_err() {
                            return Some(opened.elapsed());
                        }
                    }
                    _ = tokio::time::sleep(TIMEOUT * 3) => return None,
                }
            }
        }));
    }

    let mut times = Vec::new();
    for _ in 0..5 {
        times.push(connect_and_subscribe(addr).await);
    }
    let typical = median(times.clone());
    eprintln!("connect + subscribe beside {SLOW} slowloris sockets: {times:?}");
    assert!(
        typical < Duration::from_millis(50),
        "connect + subscribe took {times:?} beside {SLOW} slowloris sockets"
    );

    let mut latest = Duration::ZERO;
    for task in tasks {
        let closed = task
            .await
            .unwrap()
            .expect("a slowloris socket was left open");
        latest = latest.max(closed);
    }
    eprintln!("last slowloris socket closed after {latest:?}");
    assert!(
        latest < TIMEOUT + Duration::from_millis(1_000),
        "the last slowloris socket was closed after {latest:?}"
    );
    // Still serving normally afterwards.
    assert!(connect_and_subscribe(addr).await < Duration::from_secs(1));
}

fn options(f: impl FnOnce(&mut ServerOptions)) -> ServerOptions {
    let mut o = ServerOptions::default();
    f(&mut o);
    o
}

#[tokio::test]
async fn an_api_body_that_never_arrives_and_an_idle_keep_alive_socket_are_closed() {
    let s = TestServer::with(
        vec![app()],
        HubSettings::default(),
        options(|o| o.handshake_timeout = Duration::from_millis(500)),
    )
    .await;
    // Headers promise 100 bytes, 10 arrive.
    let mut tcp = TcpStream::connect(s.addr).await.unwrap();
    tcp.write_all(
        b"POST /apps/app-id/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\":\"e",
    )
    .await
    .unwrap();
    let took = closed_within(&mut tcp, Duration::from_secs(3))
        .await
        .expect("a half-sent body kept its socket");
    assert!(took < Duration::from_millis(1_200), "{took:?}");

    // A complete request is answered; then the idle keep-alive socket gets the same limit.
    let mut tcp = TcpStream::connect(s.addr).await.unwrap();
    tcp.write_all(b"GET /up HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    let idle = Instant::now();
    closed_within(&mut tcp, Duration::from_secs(3))
        .await
        .expect("an idle keep-alive socket stayed open");
    assert!(idle.elapsed() >= Duration::from_millis(400));

    // A request head past the 64 KiB buffer is answered 431, not buffered whole.
    let mut tcp = TcpStream::connect(s.addr).await.unwrap();
    let big = format!(
        "GET /up HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(300_000)
    );
    let _ = tcp.write_all(big.as_bytes()).await;
    let mut head = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), tcp.read_to_end(&mut head)).await;
    assert!(
        head.starts_with(b"HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&head)
    );

    // A WebSocket is not subject to it.
    let mut c = s.client().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    c.subscribe("still-here").await;
    s.stop().await;
}

#[tokio::test]
async fn per_ip_cap_refuses_the_extra_sockets_of_one_address_only() {
    let s = TestServer::with(
        vec![app()],
        HubSettings::default(),
        options(|o| o.max_connections_per_ip = 5),
    )
    .await;
    // Upgraded WebSockets count as well as pending sockets.
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(
            upgrade(connect_from([127, 0, 0, 2], s.addr).await, s.addr)
                .await
                .unwrap(),
        );
    }
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(connect_from([127, 0, 0, 2], s.addr).await);
    }
    let mut extra = connect_from([127, 0, 0, 2], s.addr).await;
    assert!(
        closed_within(&mut extra, Duration::from_secs(1))
            .await
            .is_some(),
        "the sixth socket from 127.0.0.2 was kept"
    );
    // Another address is not affected.
    assert!(connect_and_subscribe(s.addr).await < Duration::from_secs(1));
    // A freed slot is usable again.
    held.pop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    upgrade(connect_from([127, 0, 0, 2], s.addr).await, s.addr)
        .await
        .unwrap();
    s.stop().await;
}

#[tokio::test]
async fn pending_handshake_cap_counts_only_sockets_that_have_not_upgraded() {
    let s = TestServer::with(
        vec![app()],
        HubSettings::default(),
        options(|o| {
            o.max_pending_handshakes = 4;
            o.handshake_timeout = Duration::from_millis(700);
        }),
    )
    .await;
    // WebSockets are not pending.
    let mut clients = Vec::new();
    for _ in 0..6 {
        clients.push(s.client().await);
    }
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(s.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut extra = TcpStream::connect(s.addr).await.unwrap();
    let refused = closed_within(&mut extra, Duration::from_millis(500))
        .await
        .expect("a fifth pending socket was kept");
    assert!(refused < Duration::from_millis(300), "{refused:?}");
    // Once the silent ones time out, there is room again.
    for tcp in &mut silent {
        closed_within(tcp, Duration::from_secs(2))
            .await
            .expect("a silent socket outlived the handshake timeout");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(connect_and_subscribe(s.addr).await < Duration::from_secs(1));
    clients[0].subscribe("fine").await;
    s.stop().await;
}
