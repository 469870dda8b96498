//! The non-200 answers of the auth endpoints, as one type: what a callback returns to refuse
//! with a particular status, what `?` turns an app error into, and what the endpoints send for
//! bad requests. Bodies are Laravel's JSON error shape, `{"message": "..."}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An auth request answered with an error status and `{"message": ...}`.
///
/// Route callbacks return `Err(Refusal)` to answer with a status of their choosing; any
/// `std::error::Error` converts into a 500 with `?` (the error is logged, the client sees
/// `"Server Error"`, as Laravel shows outside debug mode).
///
/// ```
/// use axum::http::StatusCode;
/// use rf_broadcast::Refusal;
///
/// assert_eq!(Refusal::forbidden().status(), StatusCode::FORBIDDEN);
/// assert_eq!(Refusal::unauthenticated().message(), "Unauthenticated.");
///
/// fn lookup() -> Result<u32, std::num::ParseIntError> { "x".parse() }
/// fn callback() -> Result<bool, Refusal> {
///     let _n = lookup()?; // a 500 for the client, the error in the log
///     Ok(true)
/// }
/// assert_eq!(callback().unwrap_err().status(), StatusCode::INTERNAL_SERVER_ERROR);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    /// Any status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
        }
    }

    /// 403: the user may not use this channel (what a refusing route answers).
    pub fn forbidden() -> Refusal {
        Refusal::new(StatusCode::FORBIDDEN, "This action is unauthorized.")
    }

    /// 401: nobody is signed in.
    pub fn unauthenticated() -> Refusal {
        Refusal::new(StatusCode::UNAUTHORIZED, "Unauthenticated.")
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::BAD_REQUEST, message)
    }

    /// 500: the app failed; `cause` is logged, the client sees "Server Error".
    pub fn server_error(cause: impl std::fmt::Display) -> Refusal {
        tracing::error!(%cause, "channel authorization failed");
        Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "Server Error")
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `message` of the body.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Refusal {
    fn from(e: E) -> Refusal {
        Refusal::server_error(e)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "message": self.message })),
        )
            .into_response()
    }
}
