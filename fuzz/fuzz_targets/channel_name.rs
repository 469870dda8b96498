//! Channel names: validation and the kind a name's prefix selects. A name that passes is
//! 1 to `max` bytes; every `private-` and `presence-` name is of a kind that needs a signature,
//! `#server-to-user-` ones are for their user only, and only the rest are public.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rf_broadcast::testing::{validate_channel_name, ChannelInfo, ChannelKind};

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
    let info = ChannelInfo::of(&name);
    let signed = name.starts_with("private-") || name.starts_with("presence-");
    let for_user = name.starts_with("#server-to-user-");
    match info.kind {
        ChannelKind::Private | ChannelKind::Encrypted | ChannelKind::Presence => {
            assert!(
                signed,
                "{name:?} needs a signature without a private/presence prefix"
            )
        }
        ChannelKind::ServerToUser => assert!(for_user, "{name:?}"),
        ChannelKind::Public => assert!(
            !signed && !for_user,
            "{name:?} would be joined without a signature"
        ),
    }
    if info.cache {
        assert!(name.contains("cache-"), "{name:?} is a cache channel");
    }
});
