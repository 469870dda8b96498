//! Which close a failed WebSocket read earns, decided by the error's type (tungstenite's
//! `Error`, `ProtocolError` and `CapacityError` variants), never by its message text, so a
//! dependency upgrade that rewords a message cannot change a close code.
//!
//! axum wraps tungstenite's error in `axum::Error`; its `source()` is the tungstenite error.
//! The `tungstenite` dependency is pinned to the version axum's `tokio-tungstenite` uses: if
//! they ever differ the downcast finds nothing, every read error counts as a protocol error,
//! and the close-code tests in `tests/ws_conformance.rs` fail.

use super::refusal::Refusal;
use tungstenite::error::{CapacityError, Error, ProtocolError};

/// The refusal a read error is answered with; `None` when the socket is gone (nothing can be
/// sent: reset, closed, IO error).
pub fn refusal_for(e: &axum::Error) -> Option<Refusal> {
    let source = std::error::Error::source(e);
    match source.and_then(|s| s.downcast_ref::<Error>()) {
        Some(e) => classify(e),
        None => {
            tracing::debug!(error = %e, "websocket read error of an unknown type");
            Some(Refusal::ProtocolViolation)
        }
    }
}

fn classify(e: &Error) -> Option<Refusal> {
    tracing::debug!(error = %e, "websocket read error");
    match e {
        Error::ConnectionClosed | Error::AlreadyClosed | Error::Io(_) | Error::Tls(_) => None,
        Error::Capacity(CapacityError::MessageTooLong { .. }) => Some(Refusal::FrameTooBig),
        Error::Capacity(CapacityError::TooManyHeaders) => Some(Refusal::ProtocolViolation),
        Error::Utf8(_) => Some(Refusal::InvalidUtf8),
        // The peer dropped TCP without a close frame: nobody to tell.
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        Error::Protocol(_) => Some(Refusal::ProtocolViolation),
        // Write-side or client-side conditions a read does not produce; a protocol error if
        // a future version does.
        _ => Some(Refusal::ProtocolViolation),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn via_axum(e: Error) -> Option<Refusal> {
        refusal_for(&axum::Error::new(e))
    }

    #[test]
    fn close_codes_follow_the_error_type() {
        let too_long = CapacityError::MessageTooLong {
            size: 2,
            max_size: 1,
        };
        assert_eq!(
            via_axum(Error::Capacity(too_long)),
            Some(Refusal::FrameTooBig)
        );
        let utf8 = Error::Utf8("invalid utf-8".into());
        assert_eq!(via_axum(utf8), Some(Refusal::InvalidUtf8));
        for p in [
            ProtocolError::ControlFrameTooBig,
            ProtocolError::FragmentedControlFrame,
            ProtocolError::NonZeroReservedBits,
            ProtocolError::UnknownDataFrameType(3),
            ProtocolError::UnknownControlFrameType(11),
            ProtocolError::UnexpectedContinueFrame,
            ProtocolError::InvalidCloseSequence,
            ProtocolError::UnmaskedFrameFromClient,
        ] {
            assert_eq!(
                via_axum(Error::Protocol(p)),
                Some(Refusal::ProtocolViolation)
            );
        }
        assert_eq!(via_axum(Error::ConnectionClosed), None);
        let reset = ProtocolError::ResetWithoutClosingHandshake;
        assert_eq!(via_axum(Error::Protocol(reset)), None);
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(via_axum(Error::Io(io)), None);
    }
}
