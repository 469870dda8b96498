//! Channel authorization in an axum app that embeds rf-broadcast: the Pusher endpoints, plus
//! `POST /broadcasting/auth` and `/broadcasting/user-auth` (and `/pusher/auth`,
//! `/pusher/user-auth`) answering for users signed in with a bearer JWT.
//!
//! - App: id `app-id`, key `app-key`, secret `app-secret`; serves on `127.0.0.1:3000` (`PORT`
//!   overrides).
//! - Users: `Authorization: Bearer <JWT>`, HS256 signed with `JWT_SECRET` (default
//!   `example-secret`), `sub` = user id, `name` = display name, `exp` required.
//! - `private-user.{id}`: only the user whose id is `{id}`.
//! - `presence-room.{name}`: any signed-in user, as `user_info` `{"name": <name claim>}`.
//! - User sign-in (`pusher.signin()`): any signed-in user, with the same `user_info`.
//!
//! Run: `cargo run --example authorized`. Make a token for user `1` named Ada, valid an hour
//! (plain shell and openssl; any JWT library does the same):
//!
//! ```sh
//! b64() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
//! header=$(printf '{"alg":"HS256","typ":"JWT"}' | b64)
//! payload=$(printf '{"sub":"1","name":"Ada","exp":%d}' $(( $(date +%s) + 3600 )) | b64)
//! sig=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -hmac example-secret -binary | b64)
//! TOKEN="$header.$payload.$sig"
//! curl -s localhost:3000/broadcasting/auth -H "Authorization: Bearer $TOKEN" \
//!      -d socket_id=1234.5678 -d channel_name=private-user.1      # {"auth":"app-key:..."}
//! ```
//!
//! Point Laravel Echo at it (pusher-js sends the header with every auth request):
//!
//! ```js
//! window.Echo = new Echo({
//!   broadcaster: 'pusher', key: 'app-key', cluster: 'mt1',
//!   wsHost: '127.0.0.1', wsPort: 3000, forceTLS: false, enabledTransports: ['ws'],
//!   authEndpoint: '/broadcasting/auth',            // Echo's default
//!   auth: { headers: { Authorization: `Bearer ${token}` } },
//!   userAuthentication: { endpoint: '/broadcasting/user-auth', headers: { Authorization: `Bearer ${token}` } },
//! });
//! Echo.private('user.1').listen('.note', (e) => console.log(e));
//! Echo.join('room.lobby').here((members) => console.log(members)); // [{name: 'Ada'}, ...]
//! ```

use axum::Router;
use rf_broadcast::{
    authorization_router, websocket_router, App, Authorizer, JwtResolver, MemoryBroadcaster,
    SignIn, User,
};
use serde_json::json;

/// The routes of the example: who may use which channel.
pub fn authorizer(jwt_secret: &str) -> Authorizer {
    let users = JwtResolver::hs256(jwt_secret).expect("JWT_SECRET must not be empty");
    Authorizer::builder(users)
        .private("user.{id}", |user: User, params| async move {
            Ok(params.get("id") == Some(user.id.as_str()))
        })
        .presence("room.{name}", |user: User, _params| async move {
            Ok(Some(json!({ "name": user.claim("name") })))
        })
        .sign_in(|user: User| async move {
            Ok(Some(
                SignIn::new().user_info(json!({ "name": user.claim("name") })),
            ))
        })
        .build()
}

/// The whole app: the Pusher endpoints and the auth endpoints on one broadcaster.
pub fn app(broadcaster: &MemoryBroadcaster, jwt_secret: &str) -> Router {
    Router::new()
        .merge(websocket_router(broadcaster))
        .merge(authorization_router(broadcaster, authorizer(jwt_secret)))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // RUST_LOG through the library's filter: at trace it keeps the WebSocket library's frames
    // (and the signatures in them) out of the log (SECURITY.md, "Logs").
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(rf_broadcast::log_filter(&directives))
        .init();
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p.parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "PORT must be a port number",
            )
        })?,
        Err(_) => 3000,
    };
    let jwt_secret = std::env::var("JWT_SECRET").unwrap_or_else(|_| "example-secret".into());
    let broadcaster = MemoryBroadcaster::new(vec![App::new("app-id", "app-key", "app-secret")]);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!(
        "authorized example on http://{} (Pusher key app-key, POST /broadcasting/auth)",
        listener.local_addr()?
    );
    axum::serve(listener, app(&broadcaster, &jwt_secret)).await
}
