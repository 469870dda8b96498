//! Pusher error codes (`pusher:error` codes and WebSocket close codes), in one place.
//!
//! pusher-js decides whether to reconnect from the close code alone: 4000-4099 and 4300+ give
//! up, 4100-4199 back off, 4200-4299 reconnect at once (`docs/pusher-protocol.md` §1.5).

/// The codes this server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    /// Unknown app key (error + close; the client does not retry).
    AppDoesNotExist = 4001,
    /// App disabled (error + close).
    AppDisabled = 4003,
    /// App over its connection quota (error + close).
    OverConnectionQuota = 4004,
    /// Unsupported protocol version.
    UnsupportedProtocol = 4007,
    /// Unauthorized: bad sign-in, terminated by the app, client event from a non-member.
    Unauthorized = 4009,
    /// Over capacity: this client's outbound queue overflowed (slow consumer), or its address
    /// opened more new connections than the app's rate allows; clients back off (1 s).
    OverCapacity = 4100,
    /// Generic "reconnect now": server shutting down; as an error only, invalid message format.
    ReconnectImmediately = 4200,
    /// No pong/activity within the activity timeout plus pong wait.
    PongNotReceived = 4201,
    /// Client event rejected (rate limit, disabled, too large): error only.
    ClientEventRejected = 4301,
    /// Watchlist over its limit: error only.
    WatchlistLimit = 4302,
}

impl ErrorCode {
    pub fn code(self) -> u16 {
        self as u16
    }
}
