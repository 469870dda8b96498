//! The [`Authorizer`]: the app's channel routes, its user resolver and its sign-in rule, and
//! the decisions the auth endpoints make with them (validate, route, run the callback with a
//! deadline and a panic guard, sign with the app's key and secret through [`crate::auth`]).

use super::refusal::Refusal;
use super::routes::{guarded, ChannelParams, Guarded, Pattern};
use super::user::{User, UserResolver};
use crate::apps::App;
use crate::auth;
use axum::http::request::Parts;
use base64::Engine;
use futures_util::FutureExt;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type PrivateFn = Box<dyn Fn(User, ChannelParams) -> BoxFuture<Result<bool, Refusal>> + Send + Sync>;
type PresenceFn =
    Box<dyn Fn(User, ChannelParams) -> BoxFuture<Result<Option<Value>, Refusal>> + Send + Sync>;
type SignInFn = Box<dyn Fn(User) -> BoxFuture<Result<Option<SignIn>, Refusal>> + Send + Sync>;

/// Default for [`AuthorizerBuilder::max_body_bytes`]: an auth body is two short fields.
const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024;
/// Default for [`AuthorizerBuilder::callback_timeout`].
const DEFAULT_CALLBACK_TIMEOUT: Duration = Duration::from_secs(10);

/// What a sign-in callback answers for a user who may sign in: the `user_info` other
/// connections see and the user ids whose online/offline state this user watches.
///
/// ```
/// use rf_broadcast::SignIn;
/// use serde_json::json;
///
/// let answer = SignIn::new()
///     .user_info(json!({"name": "Ada"}))
///     .watchlist(["2", "3"]);
/// # let _ = answer;
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SignIn {
    user_info: Option<Value>,
    watchlist: Vec<String>,
}

impl SignIn {
    /// Sign in with the user's id alone.
    pub fn new() -> SignIn {
        SignIn::default()
    }

    /// The `user_info` of the sign-in.
    pub fn user_info(mut self, info: Value) -> SignIn {
        self.user_info = Some(info);
        self
    }

    /// The watchlist: user ids this user is told about when they come online or go offline.
    pub fn watchlist<S: Into<String>>(mut self, ids: impl IntoIterator<Item = S>) -> SignIn {
        self.watchlist = ids.into_iter().map(Into::into).collect();
        self
    }
}

struct Inner {
    resolver: Box<dyn UserResolver>,
    private: Vec<(Pattern, PrivateFn)>,
    presence: Vec<(Pattern, PresenceFn)>,
    sign_in: Option<SignInFn>,
    app_id: Option<String>,
    master_key: Option<[u8; 32]>,
    max_body_bytes: usize,
    callback_timeout: Duration,
}

/// Channel authorization for an app that embeds rf-broadcast, Laravel's
/// `Broadcast::channel(...)` in Rust: routes over channel names with named parameters, a user
/// resolver, and an optional sign-in rule. Mount it with [`crate::authorization_router`].
///
/// Routes are matched against the channel name without its `private-encrypted-`, `private-`
/// or `presence-` prefix; `{name}` matches one or more characters other than `.`; the first
/// route that matches decides, and a channel no route matches is refused (403).
/// [`private`](AuthorizerBuilder::private) routes serve `private-` and `private-encrypted-`
/// channels, [`presence`](AuthorizerBuilder::presence) routes serve `presence-` channels.
/// Callbacks are async, get the [`User`] and the [`ChannelParams`], and run with a deadline
/// and a panic guard: a callback that fails, panics or overruns answers 500/503, never takes
/// the server down.
///
/// Encrypted channels (`private-encrypted-…`) need no different rule: the per-channel shared
/// secret is `SHA-256(channel name ‖ master key)`, handed to the client library in the auth
/// answer as `shared_secret` when the builder has the app's
/// [`encryption_master_key`](AuthorizerBuilder::encryption_master_key); the server never sees
/// it or the plaintext.
///
/// ```
/// use rf_broadcast::{App, Authorizer, JwtResolver, SignIn, User};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let authorizer = Authorizer::builder(JwtResolver::hs256("jwt-secret").unwrap())
///     .private("orders.{id}", |user: User, params| async move {
///         // e.g. look the order up in the database
///         Ok(params.get("id") == Some(user.id.as_str()))
///     })
///     .presence("room.{name}", |user: User, _params| async move {
///         Ok(Some(json!({ "name": user.claim_str("name") })))
///     })
///     .sign_in(|user: User| async move { Ok(Some(SignIn::new().user_info(json!({"id": user.id})))) })
///     .build();
///
/// // What the endpoints do, without HTTP:
/// let app = App::new("app-id", "app-key", "app-secret");
/// let answer = authorizer
///     .authorize_channel(&app, User::new("7"), "123.456", "private-orders.7")
///     .await
///     .unwrap();
/// assert!(answer["auth"].as_str().unwrap().starts_with("app-key:"));
///
/// let refused = authorizer
///     .authorize_channel(&app, User::new("7"), "123.456", "private-orders.8")
///     .await
///     .unwrap_err();
/// assert_eq!(refused.status(), 403);
///
/// let presence = authorizer
///     .authorize_channel(&app, User::new("7").with_claim("name", json!("Ada")), "123.456", "presence-room.lobby")
///     .await
///     .unwrap();
/// assert_eq!(presence["channel_data"], r#"{"user_id":"7","user_info":{"name":"Ada"}}"#);
/// # }
/// ```
#[derive(Clone)]
pub struct Authorizer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("private", &patterns(&self.inner.private))
            .field("presence", &patterns(&self.inner.presence))
            .field("sign_in", &self.inner.sign_in.is_some())
            .field("app_id", &self.inner.app_id)
            .finish_non_exhaustive()
    }
}

/// Builds an [`Authorizer`]; see there.
pub struct AuthorizerBuilder {
    inner: Inner,
}

impl Authorizer {
    /// Start an authorizer with the app's way of finding the user of a request.
    pub fn builder(resolver: impl UserResolver) -> AuthorizerBuilder {
        AuthorizerBuilder {
            inner: Inner {
                resolver: Box::new(resolver),
                private: Vec::new(),
                presence: Vec::new(),
                sign_in: None,
                app_id: None,
                master_key: None,
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                callback_timeout: DEFAULT_CALLBACK_TIMEOUT,
            },
        }
    }

    /// The app id set with [`AuthorizerBuilder::app_id`], if any.
    pub(crate) fn app_id(&self) -> Option<&str> {
        self.inner.app_id.as_deref()
    }

    pub(crate) fn max_body_bytes(&self) -> usize {
        self.inner.max_body_bytes
    }

    /// The user of a request (401 when none; 500 if the resolver panics).
    pub(crate) async fn resolve_user(&self, parts: &Parts) -> Result<User, Refusal> {
        let resolved = AssertUnwindSafe(self.inner.resolver.resolve(parts))
            .catch_unwind()
            .await
            .map_err(|_| Refusal::server_error("the user resolver panicked"))?;
        let user = resolved.ok_or_else(Refusal::unauthenticated)?;
        if user.id.is_empty() {
            return Err(Refusal::server_error(
                "the user resolver returned an empty id",
            ));
        }
        Ok(user)
    }

    /// The body of a `POST /broadcasting/auth` answer for `user` on `channel`:
    /// `{"auth"}` for a private channel (plus `shared_secret` for an encrypted one when the
    /// master key is set), `{"auth", "channel_data"}` for presence. 400 for a malformed
    /// socket id or channel name, 403 when no route allows it.
    pub async fn authorize_channel(
        &self,
        app: &App,
        user: User,
        socket_id: &str,
        channel: &str,
    ) -> Result<Value, Refusal> {
        check_socket_id(socket_id)?;
        crate::protocol::validate_channel_name(channel, app.max_channel_name_len)
            .map_err(|e| Refusal::bad_request(format!("invalid channel_name: {e}")))?;
        let Some(kind) = guarded(channel) else {
            return Err(Refusal::bad_request(
                "channel_name must be a private- or presence- channel",
            ));
        };
        match kind {
            Guarded::Private { routed, encrypted } => {
                let Some((params, callback)) = first_match(&self.inner.private, routed) else {
                    tracing::debug!(channel, "no private channel route matches");
                    return Err(Refusal::forbidden());
                };
                let allowed = self.guard(callback(user, params), channel).await?;
                if !allowed {
                    return Err(Refusal::forbidden());
                }
                let auth = auth::channel_auth(&app.key, &app.secret, socket_id, channel, None);
                let mut answer = json!({ "auth": auth });
                if encrypted {
                    if let Some(key) = &self.inner.master_key {
                        answer["shared_secret"] = Value::String(shared_secret(channel, key));
                    }
                }
                Ok(answer)
            }
            Guarded::Presence { routed } => {
                let Some((params, callback)) = first_match(&self.inner.presence, routed) else {
                    tracing::debug!(channel, "no presence channel route matches");
                    return Err(Refusal::forbidden());
                };
                let user_id = user.id.clone();
                let Some(info) = self.guard(callback(user, params), channel).await? else {
                    return Err(Refusal::forbidden());
                };
                if user_id.len() > app.max_user_id_len {
                    return Err(Refusal::server_error(format!(
                        "user id longer than the app's max_user_id_len ({})",
                        app.max_user_id_len
                    )));
                }
                let mut member = Map::new();
                member.insert("user_id".into(), Value::String(user_id));
                if !info.is_null() {
                    member.insert("user_info".into(), info);
                }
                let channel_data = Value::Object(member).to_string();
                if channel_data.len() > app.max_presence_member_bytes {
                    return Err(Refusal::server_error(format!(
                        "presence channel_data is {} bytes, over the app's max_presence_member_bytes ({})",
                        channel_data.len(),
                        app.max_presence_member_bytes
                    )));
                }
                let auth = auth::channel_auth(
                    &app.key,
                    &app.secret,
                    socket_id,
                    channel,
                    Some(&channel_data),
                );
                Ok(json!({ "auth": auth, "channel_data": channel_data }))
            }
        }
    }

    /// The body of a `POST /broadcasting/user-auth` answer (`pusher:signin`):
    /// `{"auth", "user_data"}` with `user_data` = `{"id", "user_info"?, "watchlist"?}`.
    /// 400 for a malformed socket id, 403 when sign-in is not enabled or the callback refuses.
    pub async fn authenticate_user(
        &self,
        app: &App,
        user: User,
        socket_id: &str,
    ) -> Result<Value, Refusal> {
        check_socket_id(socket_id)?;
        let Some(callback) = &self.inner.sign_in else {
            tracing::debug!("user sign-in is not enabled (AuthorizerBuilder::sign_in)");
            return Err(Refusal::forbidden());
        };
        let user_id = user.id.clone();
        let Some(answer) = self.guard(callback(user), "user sign-in").await? else {
            return Err(Refusal::forbidden());
        };
        let mut data = Map::new();
        data.insert("id".into(), Value::String(user_id));
        if let Some(info) = answer.user_info {
            data.insert("user_info".into(), info);
        }
        if !answer.watchlist.is_empty() {
            data.insert("watchlist".into(), json!(answer.watchlist));
        }
        let user_data = Value::Object(data).to_string();
        let auth = auth::user_auth(&app.key, &app.secret, socket_id, &user_data);
        Ok(json!({ "auth": auth, "user_data": user_data }))
    }

    /// Run an app callback with the deadline, turning a panic into a 500 and an overrun into
    /// a 503.
    async fn guard<T>(
        &self,
        callback: BoxFuture<Result<T, Refusal>>,
        what: &str,
    ) -> Result<T, Refusal> {
        match tokio::time::timeout(
            self.inner.callback_timeout,
            AssertUnwindSafe(callback).catch_unwind(),
        )
        .await
        {
            Ok(Ok(answer)) => answer,
            Ok(Err(_panic)) => Err(Refusal::server_error(format!(
                "the authorization callback for {what} panicked"
            ))),
            Err(_elapsed) => {
                tracing::error!(what, "authorization callback timed out");
                Err(Refusal::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "Authorization timed out.",
                ))
            }
        }
    }
}

impl AuthorizerBuilder {
    /// A route for `private-{pattern}` and `private-encrypted-{pattern}` channels. The
    /// callback answers `Ok(true)` to allow, `Ok(false)` to refuse (403), or `Err` to answer
    /// with that refusal.
    ///
    /// # Panics
    /// When the pattern is malformed (empty, an unclosed `{`, a parameter name other than
    /// letters, digits and `_`, or used twice): routes are part of the program, like axum's.
    pub fn private<F, Fut>(mut self, pattern: &str, callback: F) -> AuthorizerBuilder
    where
        F: Fn(User, ChannelParams) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<bool, Refusal>> + Send + 'static,
    {
        let pattern = compile(pattern);
        let callback = Arc::new(callback);
        let callback: PrivateFn = Box::new(move |user, params| {
            let callback = callback.clone();
            // Called inside the future, so a panic in the call itself is caught too.
            Box::pin(async move { callback(user, params).await })
        });
        self.inner.private.push((pattern, callback));
        self
    }

    /// A route for `presence-{pattern}` channels. The callback answers `Ok(Some(user_info))`
    /// to let the user join with that `user_info` (`Value::Null` for none), `Ok(None)` to
    /// refuse (403), or `Err` to answer with that refusal. The member's `user_id` is the
    /// user's id.
    ///
    /// # Panics
    /// When the pattern is malformed, as [`private`](AuthorizerBuilder::private).
    pub fn presence<F, Fut>(mut self, pattern: &str, callback: F) -> AuthorizerBuilder
    where
        F: Fn(User, ChannelParams) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<Value>, Refusal>> + Send + 'static,
    {
        let pattern = compile(pattern);
        let callback = Arc::new(callback);
        let callback: PresenceFn = Box::new(move |user, params| {
            let callback = callback.clone();
            Box::pin(async move { callback(user, params).await })
        });
        self.inner.presence.push((pattern, callback));
        self
    }

    /// Enable user sign-in (`pusher:signin`, `POST /broadcasting/user-auth`). The callback
    /// answers `Ok(Some(SignIn))` to sign the user in, `Ok(None)` to refuse (403), or `Err`.
    /// Without it, sign-in requests are refused (403), as in Laravel without
    /// `Broadcast::resolveAuthenticatedUserUsing`.
    pub fn sign_in<F, Fut>(mut self, callback: F) -> AuthorizerBuilder
    where
        F: Fn(User) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<SignIn>, Refusal>> + Send + 'static,
    {
        let callback = Arc::new(callback);
        self.inner.sign_in = Some(Box::new(move |user| {
            let callback = callback.clone();
            Box::pin(async move { callback(user).await })
        }));
        self
    }

    /// Sign for this app of the broadcaster (default: its first app).
    pub fn app_id(mut self, id: impl Into<String>) -> AuthorizerBuilder {
        self.inner.app_id = Some(id.into());
        self
    }

    /// The app's encryption master key (32 bytes; the one the Pusher SDKs take as
    /// `encryptionMasterKeyBase64`): `private-encrypted-` answers then carry the channel's
    /// `shared_secret`, which pusher-js needs to decrypt.
    pub fn encryption_master_key(mut self, key: [u8; 32]) -> AuthorizerBuilder {
        self.inner.master_key = Some(key);
        self
    }

    /// Largest auth request body accepted (default 8 KiB);
    /// larger: 413.
    pub fn max_body_bytes(mut self, bytes: usize) -> AuthorizerBuilder {
        self.inner.max_body_bytes = bytes;
        self
    }

    /// How long a route or sign-in callback may take (default 10 s); longer: 503.
    pub fn callback_timeout(mut self, timeout: Duration) -> AuthorizerBuilder {
        self.inner.callback_timeout = timeout;
        self
    }

    /// The authorizer.
    pub fn build(self) -> Authorizer {
        Authorizer {
            inner: Arc::new(self.inner),
        }
    }
}

fn patterns<F>(routes: &[(Pattern, F)]) -> Vec<&str> {
    routes.iter().map(|(p, _)| p.source()).collect()
}

fn compile(pattern: &str) -> Pattern {
    match Pattern::parse(pattern) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// The first route matching `name`: its parameters and callback.
fn first_match<'a, F>(routes: &'a [(Pattern, F)], name: &str) -> Option<(ChannelParams, &'a F)> {
    routes
        .iter()
        .find_map(|(p, f)| p.matches(name).map(|params| (params, f)))
}

/// A Pusher socket id is `\d+\.\d+`.
fn check_socket_id(socket_id: &str) -> Result<(), Refusal> {
    let valid = socket_id.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.bytes().all(|c| c.is_ascii_digit())
    });
    if valid {
        Ok(())
    } else {
        Err(Refusal::bad_request("Invalid socket ID"))
    }
}

/// `base64(SHA-256(channel ‖ master_key))`, what the Pusher SDKs derive for an encrypted
/// channel.
fn shared_secret(channel: &str, master_key: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(channel.as_bytes());
    h.update(master_key);
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn app() -> App {
        App::new("app-id", "app-key", "app-secret")
    }

    fn nobody(_: &Parts) -> Option<User> {
        None
    }

    fn authorizer() -> Authorizer {
        Authorizer::builder(nobody)
            .private("user.{id}", |user: User, p: ChannelParams| async move {
                Ok(p.get("id") == Some(user.id.as_str()))
            })
            .private("user.{id}", |_, _| async { Ok(true) }) // never reached: first match wins
            .private("vault", |_, _| async { Ok(true) })
            .private("broken", |_, _| async {
                Err(Refusal::server_error("the database is down"))
            })
            .private("teapot", |_, _| async {
                Err(Refusal::new(StatusCode::IM_A_TEAPOT, "short and stout"))
            })
            .private("panics", |_, _| async { panic!("callback bug") })
            .private("panics-early", |_, _| -> BoxFuture<Result<bool, Refusal>> {
                panic!("callback bug before its future")
            })
            .private("slow", |_, _| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(true)
            })
            .presence("room.{name}", |user: User, p: ChannelParams| async move {
                Ok((p.get("name") != Some("closed"))
                    .then(|| serde_json::json!({"name": user.claim_str("name")})))
            })
            .presence("anonymous", |_, _| async { Ok(Some(Value::Null)) })
            .presence("huge", |_, _| async { Ok(Some(json!("x".repeat(5000)))) })
            .callback_timeout(Duration::from_millis(100))
            .encryption_master_key(std::array::from_fn(|i| i as u8))
            .build()
    }

    async fn channel(name: &str) -> Result<Value, Refusal> {
        authorizer()
            .authorize_channel(&app(), User::new("7"), "1.1", name)
            .await
    }

    #[tokio::test]
    async fn private_routes_allow_refuse_and_sign_with_the_auth_code() {
        let ok = channel("private-user.7").await.unwrap();
        assert_eq!(
            ok,
            json!({"auth": auth::channel_auth("app-key", "app-secret", "1.1", "private-user.7", None)})
        );
        let s = auth::channel_string_to_sign("1.1", "private-user.7", None);
        assert!(auth::verify_auth(ok["auth"].as_str(), "app-key", "app-secret", &s).is_ok());
        assert_eq!(channel("private-user.8").await.unwrap_err().status(), 403);
        assert_eq!(channel("private-nothing").await.unwrap_err().status(), 403);
        // Routes are per kind: a presence route does not serve a private channel.
        assert_eq!(channel("private-room.a").await.unwrap_err().status(), 403);
    }

    #[tokio::test]
    async fn encrypted_channels_use_private_routes_and_carry_the_shared_secret() {
        let ok = channel("private-encrypted-vault").await.unwrap();
        // The same answer as the pusher Node SDK with the protocol's test master key.
        assert_eq!(
            ok,
            json!({
                "auth": "app-key:b4fb36887549feef86f0ecbf34c322a5d504fdf8d6615df933616170f0087f9c",
                "shared_secret": "wp8Orjt2S4H4n8dDP7pa2A9reduRTTedbaiVnjqomsc="
            })
        );
        let without_key = Authorizer::builder(nobody)
            .private("vault", |_, _| async { Ok(true) })
            .build()
            .authorize_channel(&app(), User::new("7"), "1.1", "private-encrypted-vault")
            .await
            .unwrap();
        assert!(without_key.get("shared_secret").is_none());
    }

    #[tokio::test]
    async fn presence_routes_answer_the_member() {
        let user = User::new("7").with_claim("name", json!("Ada"));
        let ok = authorizer()
            .authorize_channel(&app(), user, "1.1", "presence-room.lobby")
            .await
            .unwrap();
        let data = r#"{"user_id":"7","user_info":{"name":"Ada"}}"#;
        assert_eq!(ok["channel_data"], data);
        assert_eq!(
            ok["auth"],
            auth::channel_auth(
                "app-key",
                "app-secret",
                "1.1",
                "presence-room.lobby",
                Some(data)
            )
        );
        assert_eq!(
            channel("presence-room.closed").await.unwrap_err().status(),
            403
        );
        let anon = channel("presence-anonymous").await.unwrap();
        assert_eq!(anon["channel_data"], r#"{"user_id":"7"}"#);
        // Over the server's member size limit: the app's mistake, said clearly.
        assert_eq!(channel("presence-huge").await.unwrap_err().status(), 500);
    }

    #[tokio::test]
    async fn failing_panicking_and_slow_callbacks_answer_without_taking_anything_down() {
        assert_eq!(channel("private-broken").await.unwrap_err().status(), 500);
        assert_eq!(channel("private-teapot").await.unwrap_err().status(), 418);
        assert_eq!(channel("private-panics").await.unwrap_err().status(), 500);
        assert_eq!(
            channel("private-panics-early").await.unwrap_err().status(),
            500
        );
        assert_eq!(channel("private-slow").await.unwrap_err().status(), 503);
        // Still serving.
        assert!(channel("private-user.7").await.is_ok());
    }

    #[tokio::test]
    async fn malformed_requests_are_400() {
        let a = authorizer();
        for socket_id in ["", "1", "1.", ".1", "1.1.1", "a.1", "1.1 ", "١.١"] {
            let e = a
                .authorize_channel(&app(), User::new("7"), socket_id, "private-user.7")
                .await
                .unwrap_err();
            assert_eq!(e.status(), 400, "{socket_id:?}");
            assert_eq!(e.message(), "Invalid socket ID");
        }
        let long = format!("private-user.{}", "7".repeat(300));
        for bad in ["", "orders", "private-bad name", &long, "#server-to-user-7"] {
            let e = channel(bad).await.unwrap_err();
            assert_eq!(e.status(), 400, "{bad}");
        }
    }

    #[tokio::test]
    async fn sign_in_needs_the_callback() {
        let off = authorizer()
            .authenticate_user(&app(), User::new("7"), "1.1")
            .await
            .unwrap_err();
        assert_eq!(off.status(), 403);

        let on = Authorizer::builder(nobody)
            .sign_in(|user: User| async move {
                Ok((user.id != "banned").then(|| {
                    SignIn::new()
                        .user_info(json!({"name": "Ada"}))
                        .watchlist(["2", "3"])
                }))
            })
            .build();
        let ok = on
            .authenticate_user(&app(), User::new("7"), "1.1")
            .await
            .unwrap();
        let data = r#"{"id":"7","user_info":{"name":"Ada"},"watchlist":["2","3"]}"#;
        assert_eq!(
            ok,
            json!({"auth": auth::user_auth("app-key", "app-secret", "1.1", data), "user_data": data})
        );
        let banned = on
            .authenticate_user(&app(), User::new("banned"), "1.1")
            .await
            .unwrap_err();
        assert_eq!(banned.status(), 403);
        let bad = on
            .authenticate_user(&app(), User::new("7"), "x")
            .await
            .unwrap_err();
        assert_eq!(bad.status(), 400);
    }

    #[test]
    #[should_panic(expected = "orders.{id")]
    fn malformed_patterns_panic_when_the_authorizer_is_built() {
        let _ = Authorizer::builder(nobody).private("orders.{id", |_, _| async { Ok(true) });
    }
}
