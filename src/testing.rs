//! Internals that tests, fuzz targets (`fuzz/`) and benchmarks reach, in one place, so the
//! rest of the crate can stay private. Not part of the library's API: hidden from the docs and
//! free to change with any release. A plain list of re-exports; no code of its own.

pub use crate::api::{parse_query, verify as verify_request};
pub use crate::apps::{App, Apps};
pub use crate::auth::{
    channel_auth, channel_string_to_sign, http_string_to_sign, sign, sign_http_request, user_auth,
    verify_auth,
};
pub use crate::config::Cli;
pub use crate::hub::{Hub, HubSettings};
pub use crate::protocol::{
    decode_data, parse_frame, parse_member, parse_user_data, validate_channel_name, ChannelKind,
    SigninData, SubscribeData,
};
pub use crate::server::{router, AppState, ServerOptions};
pub use crate::ws::handler::Session;
pub use crate::ws::Flow;
