//! A raw-socket WebSocket client for conformance tests: it writes hand-made frames (masked, or
//! deliberately broken) to a plain `TcpStream` and reads back exactly the bytes the server
//! sends, so tests can check frames byte for byte where a WebSocket library would hide or
//! repair them.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a read waits for the server before the test fails.
pub const READ_WAIT: Duration = Duration::from_secs(5);

pub const CONTINUATION: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// The mask every client frame uses (any value is valid; a fixed one keeps failures readable).
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// One frame as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    /// The three reserved bits, as the low bits of this byte.
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
    /// The frame exactly as it arrived.
    pub bytes: Vec<u8>,
}

impl Frame {
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.payload).expect("server text is UTF-8")
    }

    pub fn json(&self) -> serde_json::Value {
        assert_eq!(self.opcode, TEXT, "expected a text frame, got {self:?}");
        serde_json::from_slice(&self.payload).expect("server text is JSON")
    }

    /// The close code of a close frame (`None` when it has no payload).
    pub fn close_code(&self) -> Option<u16> {
        assert_eq!(self.opcode, CLOSE, "expected a close frame, got {self:?}");
        (self.payload.len() >= 2).then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// A client frame's bytes: header, mask (when `masked`) and the masked payload.
pub fn client_frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | ((rsv & 0x7) << 4) | (opcode & 0xf)];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&MASK);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// A close payload: the code, then the reason.
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// The exact bytes of an unmasked, final server frame with a payload under 126 bytes.
pub fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut out = vec![0x80 | opcode, payload.len() as u8];
    out.extend_from_slice(payload);
    out
}

/// The exact bytes of an unmasked server close frame with this code and reason.
pub fn server_close(code: u16, reason: &str) -> Vec<u8> {
    server_frame(CLOSE, &close_payload(code, reason.as_bytes()))
}

pub struct RawClient {
    stream: TcpStream,
    /// Bytes read but not yet parsed.
    buf: Vec<u8>,
}

impl RawClient {
    /// Open `path` (for instance `/app/app-key`) with a WebSocket upgrade; the server's `101`
    /// is checked and consumed.
    pub async fn upgrade(addr: SocketAddr, path: &str) -> RawClient {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut client = RawClient {
            stream,
            buf: Vec::new(),
        };
        let head = loop {
            if let Some(end) = client.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = client.buf.drain(..end + 4).collect();
                break String::from_utf8(head).unwrap();
            }
            assert!(client.fill().await, "server closed during the handshake");
        };
        assert!(head.starts_with("HTTP/1.1 101"), "no upgrade: {head}");
        // RFC 6455 §1.3's example key and its accept value.
        assert!(
            head.to_ascii_lowercase()
                .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
            "{head}"
        );
        client
    }

    /// Upgrade and read `pusher:connection_established`.
    pub async fn established(addr: SocketAddr, key: &str) -> RawClient {
        let mut c = RawClient::upgrade(addr, &format!("/app/{key}")).await;
        let first = c.frame().await.expect("connection_established");
        assert_eq!(first.json()["event"], "pusher:connection_established");
        c
    }

    /// Read more bytes; false at end of stream (or reset).
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::time::timeout(READ_WAIT, self.stream.read(&mut chunk))
            .await
            .expect("the server answers in time")
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        // A server that already closed may reset: tests then look at what was read.
        let _ = self.stream.write_all(bytes).await;
    }

    /// Send bytes in pieces of `chunk` bytes, each its own write (Autobahn's "chopped").
    pub async fn send_chopped(&mut self, bytes: &[u8], chunk: usize) {
        for piece in bytes.chunks(chunk) {
            self.send(piece).await;
            let _ = self.stream.flush().await;
        }
    }

    /// Send one masked frame with these header bits.
    pub async fn send_with(&mut self, fin: bool, rsv: u8, opcode: u8, payload: &[u8]) {
        self.send(&client_frame(fin, rsv, opcode, payload, true))
            .await;
    }

    /// Send one masked, final frame.
    pub async fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        self.send(&client_frame(true, 0, opcode, payload, true))
            .await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.send_frame(TEXT, text.as_bytes()).await;
    }

    /// The next whole frame; `None` when the server closed TCP.
    pub async fn frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.parse() {
                return Some(frame);
            }
            if !self.fill().await {
                assert!(
                    self.buf.is_empty(),
                    "stream ended inside a frame: {:?}",
                    self.buf
                );
                return None;
            }
        }
    }

    /// The next frame that is not text (skipping Pusher frames such as `pusher:error`).
    pub async fn control_frame(&mut self) -> Option<Frame> {
        loop {
            let f = self.frame().await?;
            if f.opcode != TEXT {
                return Some(f);
            }
        }
    }

    /// The next Pusher frame with this event.
    pub async fn event(&mut self, event: &str) -> serde_json::Value {
        loop {
            let f = self.frame().await.expect("a frame");
            if f.opcode == TEXT && f.json()["event"] == event {
                return f.json();
            }
        }
    }

    fn parse(&mut self) -> Option<Frame> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        let masked = b[1] & 0x80 != 0;
        let (len, mut at) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => return None,
            n => (n as usize, 2),
        };
        let mask = if masked {
            if b.len() < at + 4 {
                return None;
            }
            at += 4;
            Some([b[at - 4], b[at - 3], b[at - 2], b[at - 1]])
        } else {
            None
        };
        if b.len() < at + len {
            return None;
        }
        let mut payload = b[at..at + len].to_vec();
        if let Some(m) = mask {
            for (i, x) in payload.iter_mut().enumerate() {
                *x ^= m[i % 4];
            }
        }
        let frame = Frame {
            fin: b[0] & 0x80 != 0,
            rsv: (b[0] >> 4) & 0x7,
            opcode: b[0] & 0xf,
            masked,
            payload,
            bytes: b[..at + len].to_vec(),
        };
        self.buf.drain(..at + len);
        Some(frame)
    }

    /// The next frame, which must be a Pusher frame with this event.
    pub async fn expect_pusher(&mut self, event: &str) -> serde_json::Value {
        let f = self.frame().await.expect("a Pusher frame");
        let v = f.json();
        assert_eq!(v["event"], event, "{v}");
        v
    }

    /// The next frame, which must be exactly these bytes.
    pub async fn expect_bytes(&mut self, bytes: &[u8]) {
        let f = self.frame().await.expect("a frame");
        assert_eq!(f.bytes, bytes, "{f:?}");
    }

    /// The server's answer to our close: exactly these bytes, then TCP closed.
    pub async fn expect_close_reply(&mut self, bytes: &[u8]) {
        self.expect_bytes(bytes).await;
        self.expect_eof().await;
    }

    /// Expect the server to close TCP next (nothing more than what `frame` skips).
    pub async fn expect_eof(&mut self) {
        if let Some(f) = self.frame().await {
            panic!("expected the server to close TCP, got {f:?}");
        }
    }

    /// Expect the server to fail the connection with this close code: a close frame with
    /// exactly these bytes (no Pusher frame before it), then, after our close reply, TCP closed.
    pub async fn expect_failed(&mut self, code: u16, reason: &str) {
        let f = self.frame().await.expect("a close frame");
        assert_eq!(
            f.bytes,
            server_close(code, reason),
            "{f:?} {}",
            String::from_utf8_lossy(&f.payload)
        );
        self.send_frame(CLOSE, &close_payload(code, b"")).await;
        self.expect_eof().await;
    }
}
