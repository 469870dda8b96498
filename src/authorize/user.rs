//! Who is asking: the [`User`] an auth request is made for, and the [`UserResolver`] the app
//! supplies to find it from the request (its session cookie, a header, or what a `tower` auth
//! layer put in the request's extensions).

use async_trait::async_trait;
use axum::http::request::Parts;
use serde_json::{Map, Value};

/// The signed-in user an authorization request is made for.
///
/// `id` becomes the presence member's `user_id` and the `id` of a user sign-in; `claims` is
/// whatever else the resolver knows (a JWT's claims, a session's fields) for the callbacks.
///
/// ```
/// use rf_broadcast::User;
/// use serde_json::json;
///
/// let user = User::new("42").with_claim("name", json!("Ada"));
/// assert_eq!(user.id, "42");
/// assert_eq!(user.claim_str("name"), Some("Ada"));
/// assert_eq!(user.claim("email"), None);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct User {
    /// The user's id (presence `user_id`, sign-in `id`).
    pub id: String,
    /// Everything else known about the user.
    pub claims: Map<String, Value>,
}

impl User {
    /// A user with this id and no claims.
    pub fn new(id: impl Into<String>) -> User {
        User {
            id: id.into(),
            claims: Map::new(),
        }
    }

    /// Add a claim.
    pub fn with_claim(mut self, name: impl Into<String>, value: Value) -> User {
        self.claims.insert(name.into(), value);
        self
    }

    /// A claim by name.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims.get(name)
    }

    /// A claim that is a JSON string.
    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }
}

/// Finds the user an auth request is made for, from the request's head (method, URI,
/// headers, cookies, extensions). `None` means nobody is signed in: the endpoint answers 401.
///
/// A plain closure over [`Parts`] is a resolver; an async one (a session store, a database)
/// implements the trait, for instance with `#[async_trait::async_trait]`. [`crate::JwtResolver`]
/// is a ready-made one for bearer tokens.
///
/// ```
/// use axum::http::request::Parts;
/// use rf_broadcast::{Authorizer, User};
///
/// /// What an auth layer earlier in the stack put in the request.
/// #[derive(Clone)]
/// struct SessionUser(String);
///
/// // From a tower layer's extension:
/// let _ = Authorizer::builder(|req: &Parts| {
///     req.extensions.get::<SessionUser>().map(|s| User::new(s.0.clone()))
/// });
///
/// // From a cookie:
/// let _ = Authorizer::builder(|req: &Parts| {
///     let cookies = req.headers.get("cookie")?.to_str().ok()?;
///     let uid = cookies.split(';').find_map(|c| c.trim().strip_prefix("uid="))?;
///     Some(User::new(uid))
/// });
/// ```
///
/// An async resolver:
///
/// ```
/// use axum::http::request::Parts;
/// use rf_broadcast::{User, UserResolver};
///
/// struct Sessions; // e.g. a pool of database connections
///
/// #[async_trait::async_trait]
/// impl UserResolver for Sessions {
///     async fn resolve(&self, req: &Parts) -> Option<User> {
///         let token = req.headers.get("x-session")?.to_str().ok()?.to_string();
///         tokio::task::yield_now().await; // look the session up
///         (token == "s3cret").then(|| User::new("7"))
///     }
/// }
/// ```
#[async_trait]
pub trait UserResolver: Send + Sync + 'static {
    /// The signed-in user, or `None`.
    async fn resolve(&self, request: &Parts) -> Option<User>;
}

#[async_trait]
impl<F> UserResolver for F
where
    F: Fn(&Parts) -> Option<User> + Send + Sync + 'static,
{
    async fn resolve(&self, request: &Parts) -> Option<User> {
        self(request)
    }
}
