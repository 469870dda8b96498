//! One Pusher client connection, reduced to what a benchmark needs: open the socket, read
//! `pusher:connection_established`, subscribe (with a locally signed auth for private
//! channels), and find the sequence number and send timestamp inside a benchmark event
//! without a full JSON parse.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::auth::{channel_auth, Creds};
use crate::target::{Endpoint, Target};

pub type Ws = WebSocketStream<TcpStream>;

pub const PONG: &str = r#"{"event":"pusher:pong","data":{}}"#;

/// Why a connection attempt failed, with a short stable label for counting.
#[derive(Debug)]
pub struct ConnError {
    pub stage: &'static str,
    pub label: String,
}

impl ConnError {
    fn io(stage: &'static str, e: &std::io::Error) -> ConnError {
        let label = match e.raw_os_error() {
            Some(libc::EMFILE) | Some(libc::ENFILE) => {
                "EMFILE: loadgen open-file limit".to_string()
            }
            Some(libc::EADDRNOTAVAIL) => "EADDRNOTAVAIL: out of local ports".to_string(),
            Some(libc::ECONNREFUSED) => "ECONNREFUSED".to_string(),
            Some(libc::ECONNRESET) => "ECONNRESET".to_string(),
            _ => format!("{:?}", e.kind()),
        };
        ConnError { stage, label }
    }
    fn other(stage: &'static str, label: impl Into<String>) -> ConnError {
        ConnError {
            stage,
            label: label.into(),
        }
    }
}

fn ws_err(stage: &'static str, e: tokio_tungstenite::tungstenite::Error) -> ConnError {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Io(io) => ConnError::io(stage, &io),
        E::Http(r) => ConnError::other(stage, format!("HTTP {}", r.status())),
        E::ConnectionClosed | E::AlreadyClosed => ConnError::other(stage, "closed"),
        E::Protocol(p) => ConnError::other(stage, format!("protocol: {p}")),
        other => ConnError::other(stage, format!("{other}")),
    }
}

pub fn ws_config() -> WebSocketConfig {
    // Small buffers: thousands of idle connections should cost the load generator little.
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20))
}

/// Opens a Pusher connection; returns the socket and its socket_id once
/// `pusher:connection_established` has arrived.
pub async fn open(
    target: &Target,
    ep: &Endpoint,
    rcvbuf: Option<u32>,
) -> Result<(Ws, String), ConnError> {
    let sock = if ep.addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| ConnError::io("socket", &e))?;
    if let Some(b) = rcvbuf {
        let _ = sock.set_recv_buffer_size(b);
    }
    let stream = sock
        .connect(ep.addr)
        .await
        .map_err(|e| ConnError::io("tcp connect", &e))?;
    let _ = stream.set_nodelay(true);
    let url = target.ws_url(ep);
    let (mut ws, _resp) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config()))
            .await
            .map_err(|e| ws_err("ws handshake", e))?;
    loop {
        let msg = ws
            .next()
            .await
            .ok_or_else(|| ConnError::other("established", "closed"))?;
        match msg.map_err(|e| ws_err("established", e))? {
            Message::Text(t) => {
                if event_name(t.as_str()) == Some("pusher:connection_established") {
                    let sid = socket_id_of(t.as_str())
                        .ok_or_else(|| ConnError::other("established", "no socket_id"))?;
                    return Ok((ws, sid));
                }
                if event_name(t.as_str()) == Some("pusher:error") {
                    return Err(ConnError::other(
                        "established",
                        format!("pusher:error {}", error_code(t.as_str())),
                    ));
                }
            }
            Message::Close(f) => {
                let code = f.map(|f| u16::from(f.code)).unwrap_or(0);
                return Err(ConnError::other("established", format!("close {code}")));
            }
            _ => {}
        }
    }
}

/// Subscribes and waits for `pusher_internal:subscription_succeeded`. Private channels get an
/// auth signed with the app secret.
pub async fn subscribe(
    ws: &mut Ws,
    creds: &Creds,
    socket_id: &str,
    channel: &str,
) -> Result<(), ConnError> {
    let auth = if channel.starts_with("private-") {
        channel_auth(creds, socket_id, channel)
    } else {
        String::new()
    };
    let frame = format!(
        r#"{{"event":"pusher:subscribe","data":{{"channel":"{channel}","auth":"{auth}"}}}}"#
    );
    ws.send(Message::text(frame))
        .await
        .map_err(|e| ws_err("subscribe send", e))?;
    loop {
        let msg = ws
            .next()
            .await
            .ok_or_else(|| ConnError::other("subscribe", "closed"))?;
        match msg.map_err(|e| ws_err("subscribe", e))? {
            Message::Text(t) => match event_name(t.as_str()) {
                Some("pusher_internal:subscription_succeeded") => return Ok(()),
                Some("pusher:subscription_error") => {
                    return Err(ConnError::other("subscribe", "subscription_error"))
                }
                Some("pusher:error") => {
                    return Err(ConnError::other(
                        "subscribe",
                        format!("pusher:error {}", error_code(t.as_str())),
                    ))
                }
                Some("pusher:ping") => {
                    let _ = ws.send(Message::text(PONG)).await;
                }
                _ => {}
            },
            Message::Close(f) => {
                let code = f.map(|f| u16::from(f.code)).unwrap_or(0);
                return Err(ConnError::other("subscribe", format!("close {code}")));
            }
            _ => {}
        }
    }
}

/// Open + subscribe, timing both stages.
pub async fn open_subscribed(
    target: &Target,
    idx: usize,
    channel: &str,
    rcvbuf: Option<u32>,
    timeout: Duration,
) -> Result<(Ws, String, Duration, Duration), ConnError> {
    let fut = async {
        let t0 = Instant::now();
        let (mut ws, sid) = open(target, target.ws_for(idx), rcvbuf).await?;
        let t1 = Instant::now();
        subscribe(&mut ws, &target.creds, &sid, channel).await?;
        Ok((ws, sid, t1 - t0, t1.elapsed()))
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(ConnError::other("connect+subscribe", "timeout")),
    }
}

/// The `event` of a frame: a cheap scan for `"event":"`, falling back to a JSON parse.
pub fn event_name(frame: &str) -> Option<&str> {
    const K: &str = "\"event\":\"";
    if let Some(p) = frame.find(K) {
        let rest = &frame[p + K.len()..];
        return rest.find('"').map(|e| &rest[..e]);
    }
    None
}

fn socket_id_of(frame: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(frame).ok()?;
    let data = v.get("data")?;
    let data: serde_json::Value = match data {
        serde_json::Value::String(s) => serde_json::from_str(s).ok()?,
        other => other.clone(),
    };
    data.get("socket_id")?.as_str().map(str::to_string)
}

/// The code of a pusher:error frame (data may be an object or a JSON string).
pub fn error_code(frame: &str) -> String {
    let v: serde_json::Value = match serde_json::from_str(frame) {
        Ok(v) => v,
        Err(_) => return "?".into(),
    };
    let data = match v.get("data") {
        Some(serde_json::Value::String(s)) => {
            serde_json::from_str(s).unwrap_or(serde_json::Value::Null)
        }
        Some(d) => d.clone(),
        None => serde_json::Value::Null,
    };
    match data.get("code") {
        Some(c) => c.to_string(),
        None => "?".into(),
    }
}

/// The benchmark payload inside an event's data: `#<seq>:<send_us>:<tag>#` then padding.
/// Channel names, event names and socket ids cannot contain `#`, so the first `#` in the frame
/// starts the marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub seq: u64,
    pub sent_us: u64,
    pub tag: u32,
}

pub fn make_data(m: Mark, padding: &str) -> String {
    format!("#{}:{}:{}#{}", m.seq, m.sent_us, m.tag, padding)
}

pub fn find_mark(frame: &[u8]) -> Option<Mark> {
    let start = frame.iter().position(|&b| b == b'#')? + 1;
    let mut nums = [0u64; 3];
    let mut i = start;
    for (k, slot) in nums.iter_mut().enumerate() {
        let term = if k == 2 { b'#' } else { b':' };
        let s = i;
        let mut v: u64 = 0;
        while i < frame.len() && frame[i].is_ascii_digit() {
            v = v.checked_mul(10)?.checked_add((frame[i] - b'0') as u64)?;
            i += 1;
        }
        if i == s || i >= frame.len() || frame[i] != term {
            return None;
        }
        i += 1;
        *slot = v;
    }
    Some(Mark {
        seq: nums[0],
        sent_us: nums[1],
        tag: nums[2] as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_mark_in_relayed_event() {
        let m = Mark {
            seq: 42,
            sent_us: 1_700_000_000_123_456,
            tag: 3,
        };
        let frame = format!(
            r#"{{"event":"bench","channel":"c-1","data":"{}"}}"#,
            make_data(m, "xxxx")
        );
        assert_eq!(find_mark(frame.as_bytes()), Some(m));
        assert_eq!(event_name(&frame), Some("bench"));
    }

    #[test]
    fn rejects_malformed_marks() {
        assert_eq!(find_mark(b"{\"event\":\"x\"}"), None);
        assert_eq!(find_mark(b"#12:34#"), None);
        assert_eq!(find_mark(b"#12:a:1#"), None);
        assert_eq!(find_mark(b"#99999999999999999999999:1:1#"), None);
    }

    #[test]
    fn socket_id_from_string_encoded_data() {
        let f = r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"123.456\",\"activity_timeout\":120}"}"#;
        assert_eq!(socket_id_of(f).as_deref(), Some("123.456"));
    }
}
