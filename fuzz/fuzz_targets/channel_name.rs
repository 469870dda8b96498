//! Channel names: validation and the kind a name's prefix selects. A name that passes is
//! 1 to `max` bytes; the kind never panics, and only private, presence and encrypted kinds
//! need a signature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rf_broadcast::testing::{validate_channel_name, ChannelKind};

const MAX: usize = 200;

fuzz_target!(|data: &[u8]| {
    let name = String::from_utf8_lossy(data);
    let valid = validate_channel_name(&name, MAX).is_ok();
    if valid {
        assert!(
            !name.is_empty() && name.len() <= MAX,
            "accepted {} bytes",
            name.len()
        );
    }
    let info = ChannelKind::of(&name);
    if info.kind.needs_auth() {
        assert!(
            name.starts_with("private-") || name.starts_with("presence-"),
            "{name:?} needs auth without a private/presence prefix"
        );
    }
    if name.starts_with("private-") || name.starts_with("presence-") {
        assert!(
            info.kind.needs_auth(),
            "{name:?} would be joined without a signature"
        );
    }
});
