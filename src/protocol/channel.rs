//! Channel names: validation and the kind a name's prefix selects (`docs/pusher-protocol.md` §2.1-2.2).

/// What a channel name's prefix makes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    Public,
    Private,
    Encrypted,
    Presence,
    /// `#server-to-user-{id}`: only the connection signed in as `{id}` may subscribe.
    ServerToUser,
}

/// A channel's kind plus whether it is a cache channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelInfo {
    pub kind: ChannelKind,
    pub cache: bool,
}

pub const SERVER_TO_USER_PREFIX: &str = "#server-to-user-";

impl ChannelInfo {
    /// Classify a channel name by prefix, testing the longest prefixes first.
    pub fn of(name: &str) -> ChannelInfo {
        let (kind, cache) = if name.starts_with("private-encrypted-cache-") {
            (ChannelKind::Encrypted, true)
        } else if name.starts_with("private-encrypted-") {
            (ChannelKind::Encrypted, false)
        } else if name.starts_with("private-cache-") {
            (ChannelKind::Private, true)
        } else if name.starts_with("private-") {
            (ChannelKind::Private, false)
        } else if name.starts_with("presence-cache-") {
            (ChannelKind::Presence, true)
        } else if name.starts_with("presence-") {
            (ChannelKind::Presence, false)
        } else if name.starts_with(SERVER_TO_USER_PREFIX) {
            (ChannelKind::ServerToUser, false)
        } else if name.starts_with("cache-") {
            (ChannelKind::Public, true)
        } else {
            (ChannelKind::Public, false)
        };
        ChannelInfo { kind, cache }
    }
}

impl ChannelKind {
    /// Client events are allowed on private and presence channels only.
    pub fn allows_client_events(self) -> bool {
        matches!(self, ChannelKind::Private | ChannelKind::Presence)
    }
}

/// Why a channel name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelNameError {
    #[error("Channel name is empty")]
    Empty,
    #[error("Channel name is longer than {0} characters")]
    TooLong(usize),
    #[error("Channel name contains characters other than A-Z a-z 0-9 _ - = @ , . ;")]
    BadCharacters,
}

/// Valid names: 1..=max characters of `A-Z a-z 0-9 _ - = @ , . ;`, or `#server-to-user-` plus
/// such characters.
pub fn validate_channel_name(name: &str, max_len: usize) -> Result<(), ChannelNameError> {
    if name.is_empty() {
        return Err(ChannelNameError::Empty);
    }
    if name.len() > max_len {
        return Err(ChannelNameError::TooLong(max_len));
    }
    let body = name.strip_prefix('#').unwrap_or(name);
    if body.is_empty()
        || !body.bytes().all(allowed)
        || (name.starts_with('#') && !name.starts_with(SERVER_TO_USER_PREFIX))
    {
        return Err(ChannelNameError::BadCharacters);
    }
    Ok(())
}

fn allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'=' | b'@' | b',' | b'.' | b';')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_prefix() {
        let k = |n| ChannelInfo::of(n);
        assert_eq!(k("orders").kind, ChannelKind::Public);
        assert_eq!(k("private-a").kind, ChannelKind::Private);
        assert_eq!(k("private-encrypted-a").kind, ChannelKind::Encrypted);
        assert!(k("private-encrypted-cache-a").cache);
        assert_eq!(k("presence-cache-a").kind, ChannelKind::Presence);
        assert!(k("cache-a").cache && k("cache-a").kind == ChannelKind::Public);
        assert_eq!(k("#server-to-user-1").kind, ChannelKind::ServerToUser);
        assert!(!k("private-a").cache);
    }

    #[test]
    fn names_validated() {
        assert!(validate_channel_name("private-App.Models.User.1", 200).is_ok());
        assert!(validate_channel_name("a-zA-Z0-9_-=@,.;", 200).is_ok());
        assert!(validate_channel_name("#server-to-user-42", 200).is_ok());
        assert_eq!(validate_channel_name("", 200), Err(ChannelNameError::Empty));
        assert_eq!(
            validate_channel_name("a:b", 200),
            Err(ChannelNameError::BadCharacters)
        );
        assert_eq!(
            validate_channel_name("a b", 200),
            Err(ChannelNameError::BadCharacters)
        );
        assert_eq!(
            validate_channel_name("#other", 200),
            Err(ChannelNameError::BadCharacters)
        );
        assert_eq!(
            validate_channel_name("é", 200),
            Err(ChannelNameError::BadCharacters)
        );
        assert_eq!(
            validate_channel_name(&"a".repeat(201), 200),
            Err(ChannelNameError::TooLong(200))
        );
        assert!(validate_channel_name(&"a".repeat(200), 200).is_ok());
    }
}
