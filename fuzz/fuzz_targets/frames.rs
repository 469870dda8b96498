//! Client frames: every line of the input is one WebSocket text frame from one connection,
//! handled by the same code a real connection runs (parse, `pusher:` events, subscribe,
//! unsubscribe, sign-in, client events). Nothing may panic, and the connection leaves no
//! channel, member or user behind when it goes.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut a = common::session();
    let mut b = common::session();
    for (i, frame) in text.split('\n').take(64).enumerate() {
        // Two connections take turns, so fan-out and client events reach another socket.
        let s = if i % 2 == 0 { &mut a } else { &mut b };
        common::handle(s, frame);
    }
    common::end(a);
    common::end(b);
    common::assert_nothing_left();
});
