//! WebSocket conformance from outside: a raw-socket client (`raw/`) sends hand-made frames to
//! `/app/{key}` on the real server (its own socket settings, `ServerOptions::default()`) and
//! checks the exact bytes that come back. Organised like the Autobahn TestSuite (sections 1-7
//! and 9); each test names the Autobahn cases it mirrors. A text message here is a Pusher
//! frame, so where Autobahn expects an echo these tests expect the Pusher answer (a padded
//! `pusher:ping` gets `pusher:pong`; an unknown event's name comes back in its `pusher:error`).
//! Summary: docs/ws-conformance.md.

mod common;
mod raw;

use common::TestServer;
use raw::*;
use std::time::{Duration, Instant};

async fn client(s: &TestServer) -> RawClient {
    RawClient::established(s.addr, "app-key").await
}

const PUSHER_PING: &str = r#"{"event":"pusher:ping","data":{}}"#;

/// A `pusher:ping` padded with JSON whitespace to exactly `len` bytes.
fn ping_of(len: usize) -> Vec<u8> {
    let mut v = PUSHER_PING.as_bytes().to_vec();
    assert!(len >= v.len());
    v.resize(len, b' ');
    v
}

/// The largest message the server takes (`--max-frame-bytes`).
fn max_message() -> usize {
    rf_broadcast::ServerOptions::default().max_frame_bytes
}

/// Autobahn's close-code check: after our close, the server echoes exactly these bytes.
async fn close_and_expect(c: &mut RawClient, payload: &[u8], reply: &[u8]) {
    c.send_frame(CLOSE, payload).await;
    c.expect_close_reply(reply).await;
}

// =============================================================================================
// 1. Framing

/// Autobahn 1.1.1-1.1.6 and 1.2.1-1.2.6: text and binary messages of 0, 125, 126, 127, 128,
/// 65535 and 65536 bytes (7-bit, 16-bit and 64-bit payload lengths) are read whole.
#[tokio::test]
async fn case_1_1_and_1_2_payload_length_encodings() {
    let s = TestServer::start().await;
    let mut c = client(&s).await;
    // 1.1.1: an empty text message is read (and is not Pusher JSON).
    c.send_frame(TEXT, b"").await;
    assert_eq!(c.expect_pusher("pusher:error").await["data"]["code"], 4200);
    for len in [125, 126, 127, 128, 65535, max_message()] {
        for opcode in [TEXT, BINARY] {
            c.send_frame(opcode, &ping_of(len)).await;
            c.expect_pusher("pusher:pong").await;
        }
    }
}

/// Autobahn 1.1.8 and 1.2.8: a 65536-byte message written in 997-byte chops.
#[tokio::test]
async fn case_1_1_8_message_in_chops() {
    let s = TestServer::start().await;
    let mut c = client(&s).await;
    for opcode in [TEXT, BINARY] {
        let frame = client_frame(true, 0, opcode, &ping_of(max_message()), true);
        c.send_chopped(&frame, 997).await;
        c.expect_pusher("pusher:pong").await;
    }
}

/// RFC 6455 §5.1 (no Autobahn case: it tests servers with masked frames only): an unmasked
/// client frame fails the connection with 1002.
#[tokio::test]
async fn unmasked_client_frame_closes_1002() {
    let s = TestServer::start().await;
    let mut c = client(&s).await;
    c.send(&client_frame(true, 0, TEXT, PUSHER_PING.as_bytes(), false))
        .await;
    c.expect_failed(1002, "Protocol error").await;
}

// =============================================================================================
// 2. Pings and pongs

/// Autobahn 2.1-2.4: a ping (empty, text, binary, 125 bytes) gets a pong with its payload.
#[tokio::test]
async fn case_2_1_to_2_4_pings_get_exact_pongs() {
    let s = TestServer::start().await;
    let mut c = client(&s).await;
    let payloads: [&[u8]; 4] = [
        b"",
        b"Hello, world!",
        &[0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff],
        &[b'*'; 125],
    ];
    for payload in payloads {
        c.send_frame(PING, payload).await;
        c.expect_bytes(&server_frame(PONG, payload)).await;
    }
}

/// Autobahn 2.5: a ping with a 126-byte payload fails with 1002 (not 1009).
#[tokio::test]
async fn case_2_5_oversized_ping_closes_1002() {
    let s = TestServer::start().await;
    let mut c = client(&s).await;
    c.send_frame(PING, &[b'x'; 126]).await;
    c.expect_failed(1002, "Protocol error").await;
}

/// Autobahn 2.6: a 125-byte ping written one byte at a time.
#[tokio::test]
async fn case_2_6_ping_in_one_byte_chops() {
    let s = TestServer::start().await;
    let mut c = client(&s).await;
    let payload = [b'p'; 125];
    c.send_chopped(&client_frame(true, 0, PING, &payload, true), 1)
        .await;
    c.expect_bytes(&server_frame(PONG, &payload)).await;
}

/// Autobahn 2.7-2.9: unsolicited pongs (empty, with payload) are ignored; the next ping's
/// pong is the next thing the server sends.
#[tokio::test]
async fn case_2_7_to_2_9_unsolicited_pongs_are_ignored() {
    let s = TestServer::start().await;
    let mut c = client(&s).await;
    c.send_frame(PONG, b"").await;
    c.send_frame(PONG, b"unsolicited pong payload").await;
    c.send_frame(PING, b"ping payload").await;
    c.expect_bytes(&server_frame(PONG, b"ping payload")).await;
}

/// Autobahn 2.10-2.11: ten pings in a row (whole, then in 1-byte chops) get ten pongs in
/// order.
#[tokio::test]
async fn case_2_10_and_2_11_ten_pings_ten_pongs() {
    let s = TestServer::start().await;
    let mut c = client(&s).await;
    for chop in [usize::MAX, 1] {
        let mut all = Vec::new();
        for i in 0..10 {
            all.extend(client_frame(
                true,
                0,
                PING,
                format!("payload-{i}").as_bytes(),
                true,
            ));
        }
        c.send_chopped(&all, chop.min(all.len())).await;
        for i in 0..10 {
            let pong = server_frame(PONG, format!("payload-{i}").as_bytes());
            c.expect_bytes(&pong).await;
        }
    }
}

// =============================================================================================
// 3. Reserved bits

/// Autobahn 3.1-3.7: a frame with a reserved bit set (text, binary, ping, close; after a
/// valid message, before a ping) fails with 1002; what came before is still answered and
/// what comes after is not.
#[tokio::test]
async fn case_3_reserved_bits_close_1002() {
    let s = TestServer::start().await;
    // (Autobahn case, rsv bits, opcode, valid text before, ping after)
    let cases = [
        ("3.1", 0b100, TEXT, false, false),
        ("3.2", 0b010, TEXT, true, false),
        ("3.3", 0b001, TEXT, true, true),
        ("3.4", 0b110, TEXT, true, true),
        ("3.5", 0b101, BINARY, false, false),
        ("3.6", 0b011, PING, false, false),
        ("3.7", 0b111, CLOSE, false, false),
    ];
    for (case, rsv, opcode, before, after) in cases {
        let mut c = client(&s).await;
        if before {
            c.send_text(PUSHER_PING).await;
        }
        let payload: &[u8] = if opcode == CLOSE { &[0x03, 0xe8] } else { b"x" };
        c.send_with(true, rsv, opcode, payload).await;
        if after {
            c.send_frame(PING, b"after").await;
        }
        if before {
            c.expect_pusher("pusher:pong").await;
        }
        eprintln!("Autobahn {case}");
        c.expect_failed(1002, "Protocol error").await;
    }
}

// =============================================================================================
// 4. Opcodes

/// Autobahn 4.1.1-4.1.5 (reserved data opcodes 3-7) and 4.2.1-4.2.5 (reserved control
/// opcodes 11-15): fail with 1002, after answering a message sent before them.
#[tokio::test]
async fn case_4_reserved_opcodes_close_1002() {
    let s = TestServer::start().await;
    for opcode in [3u8, 4, 5, 6, 7, 11, 12, 13, 14, 15] {
        let mut c = client(&s).await;
        c.send_text(PUSHER_PING).await;
        c.send_frame(opcode, b"reserved").await;
        c.send_frame(PING, b"after").await;
        c.expect_pusher("pusher:pong").await;
        eprintln!("opcode {opcode}");
        c.expect_failed(1002, "Protocol error").await;
    }
}

// =============================================================================================
// 5. Fragmentation

/// Autobahn 5.1-5.2: a fragmented ping or pong fails with 1002.
#[tokio::test]
async fn case_5_1_and_5_2_fragmented_control_frames_close_1002() {
    let s = TestServer::start().await;
    for opcode in [PING, PONG] {
        let mut c = client(&s).await;
        c.send_with(false, 0, opcode, b"frag").await;
        c.send_with(true, 0, CONTINUATION, b"ment").await;
        c.expect_failed(1002, "Protocol error").await;
    }
}

/// Autobahn 5.3-5.8: a message in two fragments (whole writes, chopped, with a ping between
/// the fragments) is read as one; the ping is answered at once.
#[tokio::test]
async fn case_5_3_to_5_8_fragmented_messages() {
    let s = TestServer::start().await;
    let mut c = client(&s).await;
    let (a, b) = PUSHER_PING.as_bytes().split_at(10);
    // 5.3 / 5.4: two fragments.
    c.send_with(false, 0, TEXT, a).await;
    c.send_with(true, 0, CONTINUATION, b).await;
    c.expect_pusher("pusher:pong").await;
    // 5.5: the same, chopped into 1-byte writes.
    let mut bytes = client_frame(false, 0, TEXT, a, true);
    bytes.extend(client_frame(true, 0, CONTINUATION, b, true));
    c.send_chopped(&bytes, 1).await;
    c.expect_pusher("pusher:pong").await;
    // 5.6 / 5.7 / 5.8: a ping between the fragments.
    c.send_with(false, 0, TEXT, a).await;
    c.send_frame(PING, b"between").await;
    c.expect_bytes(&server_frame(PONG, b"between")).await;
    c.send_with(true, 0, CONTINUATION, b).await;
    c.expect_pusher("pusher:pong").await;
}

/// Autobahn 5.9-5.14: a continuation with no message to continue fails with 1002.
#[tokio::test]
async fn case_5_9_to_5_14_stray_continuations_close_1002() {
    let s = TestServer::start().await;
    for fin in [true, false] {
        let mut c = client(&s).await;
        c.send_with(fin, 0, CONTINUATION, b"nothing to continue")
            .await;
        c.expect_failed(1002, "Protocol error").await;
    }
}

/// Autobahn 5.15-5.18: a new text message while one is still open fails with 1002.
#[tokio::test]
async fn case_5_15_to_5_18_interleaved_messages_close_1002() {
    let s = TestServer::start().await;
    let mut c = client(&s).await;
    c.send_with(false, 0, TEXT, b"{\"event\":").await;
    c.send_with(false, 0, TEXT, b"\"pusher:ping\"}").await;
    c.expect_failed(1002, "Protocol error").await;
}

/// Autobahn 5.19-5.20: a message in five fragments with pings between them: every ping is
/// answered as it arrives and the message once it is whole.
#[tokio::test]
async fn case_5_19_and_5_20_fragments_with_pings_between() {
    let s = TestServer::start().await;
    let mut c = client(&s).await;
    let parts: Vec<&[u8]> = PUSHER_PING.as_bytes().chunks(7).collect();
    assert_eq!(parts.len(), 5);
    for (i, part) in parts.iter().enumerate() {
        let first = i == 0;
        let last = i == parts.len() - 1;
        c.send_with(last, 0, if first { TEXT } else { CONTINUATION }, part)
            .await;
        if i == 1 || i == 3 {
            let payload = format!("ping-{i}");
            c.send_frame(PING, payload.as_bytes()).await;
            c.expect_bytes(&server_frame(PONG, payload.as_bytes()))
                .await;
        }
    }
    c.expect_pusher("pusher:pong").await;
}

// =============================================================================================
// 6. UTF-8 handling

/// A Pusher frame whose answer repeats `text`: an unknown event's name comes back in the
/// `pusher:error` message.
fn echoing(text: &str) -> Vec<u8> {
    format!(r#"{{"event":"pusher:{text}","data":{{}}}}"#).into_bytes()
}

async fn expect_echo(c: &mut RawClient, text: &str) {
    let v = c.expect_pusher("pusher:error").await;
    assert_eq!(
        v["data"]["message"],
        format!("Unsupported event: pusher:{text}")
    );
}

/// Autobahn 6.1.1-6.1.3: empty fragments make an empty (or unchanged) message.
#[tokio::test]
async fn case_6_1_empty_fragments() {
    let s = TestServer::start().await;
    let mut c = client(&s).await;
    c.send_with(false, 0, TEXT, b"").await;
    c.send_with(false, 0, CONTINUATION, b"").await;
    c.send_with(true, 0, CONTINUATION, b"").await;
    assert_eq!(c.expect_pusher("pusher:error").await["data"]["code"], 4200);
    c.send_with(false, 0, TEXT, b"").await;
    c.send_with(false, 0, CONTINUATION, PUSHER_PING.as_bytes())
        .await;
    c.send_with(true, 0, CONTINUATION, b"").await;
    c.expect_pusher("pusher:pong").await;
}

/// Autobahn 6.2.1-6.2.4: valid UTF-8 in one frame, in fragments split at every byte (so
/// inside code points), and chopped into 1-byte writes, arrives intact.
#[tokio::test]
async fn case_6_2_valid_utf8_split_inside_code_points() {
    let s = TestServer::start().await;
    let mut c = client(&s).await;
    let text = "Hello-µ@ßöäüàá-UTF-8!!κόσμε";
    let message = echoing(text);
    // 6.2.1: one frame.
    c.send_frame(TEXT, &message).await;
    expect_echo(&mut c, text).await;
    // 6.2.2 / 6.2.3: one fragment per byte, so every multi-byte character is split.
    for (i, byte) in message.iter().enumerate() {
        let opcode = if i == 0 { TEXT } else { CONTINUATION };
        c.send_with(i == message.len() - 1, 0, opcode, &[*byte])
            .await;
    }
    expect_echo(&mut c, text).await;
    // 6.2.4: one frame, written one byte at a time.
    c.send_chopped(&client_frame(true, 0, TEXT, &message, true), 1)
        .await;
    expect_echo(&mut c, text).await;
}

/// Autobahn 6.3.1-6.3.2: invalid UTF-8 in one frame, or in fragments of one byte, fails with
/// 1007.
#[tokio::test]
async fn case_6_3_invalid_utf8_closes_1007() {
    let s = TestServer::start().await;
    let invalid: &[u8] =
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64";
    let mut c = client(&s).await;
    c.send_frame(TEXT, invalid).await;
    c.expect_failed(1007, "Invalid UTF-8").await;
    let mut c = client(&s).await;
    for (i, byte) in invalid.iter().enumerate() {
        let opcode = if i == 0 { TEXT } else { CONTINUATION };
        c.send_with(i == invalid.len() - 1, 0, opcode, &[*byte])
            .await;
    }
    c.expect_failed(1007, "Invalid UTF-8").await;
}

/// Autobahn 6.4.1-6.4.4: fail fast. The server closes with 1007 as soon as a fragment holds
/// an invalid sequence, before the message's last fragment is sent.
#[tokio::test]
async fn case_6_4_invalid_utf8_fails_fast() {
    let s = TestServer::start().await;
    // 6.4.1/6.4.3: a code point above U+10FFFF in the middle fragment;
    // 6.4.2/6.4.4: its first byte ends one fragment, the invalid second byte starts the next.
    let cases: [(&[u8], &[u8]); 2] = [
        (
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",
            b"\xf4\x90\x80\x80",
        ),
        (
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4",
            b"\x90\x80\x80",
        ),
    ];
    for (first, second) in cases {
        let mut c = client(&s).await;
        c.send_with(false, 0, TEXT, first).await;
        c.send_with(false, 0, CONTINUATION, second).await;
        // No final fragment: the close must come without it.
        c.expect_failed(1007, "Invalid UTF-8").await;
    }
}

/// Autobahn 6.5-6.23 (a selection): boundary code points pass; overlong forms, surrogates,
/// code points above U+10FFFF, lone continuation bytes, truncated sequences and 0xfe/0xff
/// fail with 1007.
#[tokio::test]
async fn case_6_5_to_6_23_utf8_sequences() {
    let s = TestServer::start().await;
    let mut c = client(&s).await;
    // 6.5.x, 6.6.x, 6.7.x, 6.11.x: valid, including the first and last of each length.
    for text in [
        "κόσμε",
        "\u{80}",
        "\u{7ff}",
        "\u{800}",
        "\u{ffff}",
        "\u{10000}",
        "\u{10ffff}",
        "\u{d7ff}\u{e000}\u{fffd}",
    ] {
        c.send_frame(TEXT, &echoing(text)).await;
        expect_echo(&mut c, text).await;
    }
    let invalid: [(&str, &[u8]); 11] = [
        ("6.8.1 5-byte sequence", b"\xf8\x88\x80\x80\x80"),
        ("6.8.2 6-byte sequence", b"\xfc\x84\x80\x80\x80\x80"),
        ("6.9.1 over U+10FFFF", b"\xf4\x90\x80\x80"),
        ("6.10.1 lone continuation", b"\x80"),
        ("6.12.1 continuation run", b"\x80\xbf\x80\xbf"),
        ("6.14.1 truncated 3-byte", b"\xe0\x80"),
        ("6.17.1 overlong slash", b"\xc0\xaf"),
        ("6.18.1 overlong U+07FF", b"\xe0\x9f\xbf"),
        ("6.19.1 surrogate", b"\xed\xa0\x80"),
        ("6.21.1 surrogate pair", b"\xed\xa0\x80\xed\xb0\x80"),
        ("6.23.x 0xfe 0xff", b"\xfe\xff"),
    ];
    for (case, bytes) in invalid {
        let mut c = client(&s).await;
        let mut message = b"{\"event\":\"pusher:".to_vec();
        message.extend_from_slice(bytes);
        message.extend_from_slice(b"\"}");
        c.send_frame(TEXT, &message).await;
        eprintln!("Autobahn {case}");
        c.expect_failed(1007, "Invalid UTF-8").await;
    }
}

// =============================================================================================
// 7. Close handling

/// Autobahn 7.1.1: a message, then a close: the message is answered, the close echoed
/// (exactly `88 02 03 e8`), then the server closes TCP.
#[tokio::test]
async fn case_7_1_1_message_then_close() {
    let s = TestServer::start().await;
    let mut c = client(&s).await;
    c.send_text(PUSHER_PING).await;
    c.expect_pusher("pusher:pong").await;
    close_and_expect(&mut c, &[0x03, 0xe8], &[0x88, 0x02, 0x03, 0xe8]).await;
}

/// Autobahn 7.1.2-7.1.5: after the client's close, a second close, a ping, a message or the
/// rest of a fragmented message are not answered: only the close echo, then TCP closed.
#[tokio::test]
async fn case_7_1_2_to_7_1_5_nothing_after_close() {
    let s = TestServer::start().await;
    let close = client_frame(true, 0, CLOSE, &[0x03, 0xe8], true);
    let afters: [Vec<u8>; 4] = [
        close.clone(),
        client_frame(true, 0, PING, b"after close", true),
        client_frame(true, 0, TEXT, PUSHER_PING.as_bytes(), true),
        client_frame(true, 0, CONTINUATION, b"rest", true),
    ];
    for (i, after) in afters.iter().enumerate() {
        let mut c = client(&s).await;
        let mut bytes = Vec::new();
        if i == 3 {
            bytes.extend(client_frame(false, 0, TEXT, b"{\"event\":", true));
        }
        bytes.extend(&close);
        bytes.extend(after);
        c.send(&bytes).await;
        c.expect_close_reply(&[0x88, 0x02, 0x03, 0xe8]).await;
    }
}

/// Autobahn 7.3.1: a close with no payload is answered with a close with no payload (the
/// exact echo: tungstenite replies to an empty close with an empty one), then TCP closed.
#[tokio::test]
async fn case_7_3_1_empty_close_is_echoed_empty() {
    let s = TestServer::start().await;
    let mut c = client(&s).await;
    close_and_expect(&mut c, b"", &[0x88, 0x00]).await;
}

/// Autobahn 7.3.2: a close with a 1-byte payload fails with 1002.
#[tokio::test]
async fn case_7_3_2_one_byte_close_payload_closes_1002() {
    let s = TestServer::start().await;
    let mut c = client(&s).await;
    c.send_frame(CLOSE, &[0x03]).await;
    c.expect_failed(1002, "Protocol error").await;
}

/// Autobahn 7.3.3-7.3.5: a close with a code, with a reason, with a 123-byte reason (125-byte
/// payload) is echoed byte for byte.
#[tokio::test]
async fn case_7_3_3_to_7_3_5_close_reasons_are_echoed() {
    let s = TestServer::start().await;
    let long = "*".repeat(123);
    for reason in ["", "Hello World!", long.as_str()] {
        let mut c = client(&s).await;
        let payload = close_payload(1000, reason.as_bytes());
        close_and_expect(&mut c, &payload, &server_close(1000, reason)).await;
    }
}

/// Autobahn 7.3.6: a close whose payload is over 125 bytes fails with 1002.
#[tokio::test]
async fn case_7_3_6_oversized_close_closes_1002() {
    let s = TestServer::start().await;
    let mut c = client(&s).await;
    c.send_frame(CLOSE, &close_payload(1000, &[b'*'; 124]))
        .await;
    c.expect_failed(1002, "Protocol error").await;
}

/// Autobahn 7.5.1: a close reason that is not UTF-8 fails with 1007.
#[tokio::test]
async fn case_7_5_1_invalid_utf8_close_reason_closes_1007() {
    let s = TestServer::start().await;
    let mut c = client(&s).await;
    let reason =
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64";
    c.send_frame(CLOSE, &close_payload(1000, reason)).await;
    c.expect_failed(1007, "Invalid UTF-8").await;
}

/// Autobahn 7.7.1-7.7.13: every close code allowed on the wire (RFC 6455 §7.4.1-7.4.2) is
/// echoed: the reply carries the client's code.
#[tokio::test]
async fn case_7_7_valid_close_codes_are_echoed() {
    let s = TestServer::start().await;
    for code in [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
    ] {
        let mut c = client(&s).await;
        let payload = close_payload(code, b"");
        close_and_expect(&mut c, &payload, &server_close(code, "")).await;
    }
}

/// Autobahn 7.9.1-7.9.9 and 7.13.1-7.13.2: a close code not allowed on the wire (reserved,
/// unassigned, "no status"/"abnormal" which must never be sent, or above 4999) is answered
/// with 1002.
#[tokio::test]
async fn case_7_9_and_7_13_invalid_close_codes_get_1002() {
    let s = TestServer::start().await;
    for code in [
        0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        let mut c = client(&s).await;
        let payload = close_payload(code, b"");
        let reply = server_close(1002, "Protocol violation");
        close_and_expect(&mut c, &payload, &reply).await;
    }
}

/// Not in Autobahn (it drives the close from the client): a connection refused at the
/// handshake gets its `pusher:error`, then close 4001, and TCP is closed after our reply.
#[tokio::test]
async fn refused_connection_closes_after_the_handshake() {
    let s = TestServer::start().await;
    let mut c = RawClient::upgrade(s.addr, "/app/no-such-key").await;
    assert_eq!(c.expect_pusher("pusher:error").await["data"]["code"], 4001);
    c.expect_failed(4001, "Application does not exist").await;
}

// =============================================================================================
// 9. Limits and performance

/// Autobahn 9.1.x-9.2.x (limit side): a message one byte over `--max-frame-bytes` fails
/// with 1009, as text or binary, in one frame or as fragments that add up to too much.
#[tokio::test]
async fn case_9_1_messages_over_the_limit_close_1009() {
    let s = TestServer::start().await;
    for opcode in [TEXT, BINARY] {
        let mut c = client(&s).await;
        c.send_frame(opcode, &vec![b' '; max_message() + 1]).await;
        c.expect_failed(1009, "Frame too large").await;
    }
    let mut c = client(&s).await;
    let half = vec![b' '; max_message() / 2 + 1];
    c.send_with(false, 0, TEXT, &half).await;
    c.send_with(true, 0, CONTINUATION, &half).await;
    c.expect_failed(1009, "Frame too large").await;
}

/// Autobahn 9.3.x-9.4.x: a message of the largest size in fragments of 64 B to 64 KiB, and
/// 9.5.x-9.6.x: the same message written in chops of 64 B to 64 KiB.
#[tokio::test]
async fn case_9_3_to_9_6_largest_message_fragmented_and_chopped() {
    let s = TestServer::start().await;
    let mut c = client(&s).await;
    let message = ping_of(max_message());
    let started = Instant::now();
    for opcode in [TEXT, BINARY] {
        for fragment in [64, 256, 1024, 4096, 16384, 65536] {
            let mut bytes = Vec::new();
            let parts: Vec<&[u8]> = message.chunks(fragment).collect();
            for (i, part) in parts.iter().enumerate() {
                let op = if i == 0 { opcode } else { CONTINUATION };
                bytes.extend(client_frame(i == parts.len() - 1, 0, op, part, true));
            }
            c.send(&bytes).await;
            c.expect_pusher("pusher:pong").await;
        }
        for chop in [64, 128, 256, 512, 1024, 2048, 65536] {
            let frame = client_frame(true, 0, opcode, &message, true);
            c.send_chopped(&frame, chop).await;
            c.expect_pusher("pusher:pong").await;
        }
    }
    eprintln!("9.3-9.6: 26 messages of 64 KiB in {:?}", started.elapsed());
}

/// Autobahn 9.7.x-9.8.x: 1,000 messages of 0 B... 4 KiB (text and binary) sent back to back,
/// all answered, in order, in bounded time.
#[tokio::test]
async fn case_9_7_and_9_8_many_messages() {
    let s = TestServer::start().await;
    let mut c = client(&s).await;
    for opcode in [TEXT, BINARY] {
        for size in [PUSHER_PING.len(), 64, 256, 1024, 4096] {
            let one = client_frame(true, 0, opcode, &ping_of(size), true);
            let all: Vec<u8> = one.iter().copied().cycle().take(one.len() * 1000).collect();
            let started = Instant::now();
            c.send(&all).await;
            for _ in 0..1000 {
                c.expect_pusher("pusher:pong").await;
            }
            let took = started.elapsed();
            eprintln!("9.7/9.8 opcode {opcode}: 1000 x {size} B answered in {took:?}");
            assert!(took < Duration::from_secs(10), "{took:?}");
        }
    }
}
