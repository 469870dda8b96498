//! Channel authorization for apps that embed rf-broadcast: what Laravel's
//! `Broadcast::channel('orders.{id}', ...)` and `Broadcast::routes()` give a PHP app, for an
//! axum app. The app says who the user of a request is (a [`UserResolver`], e.g. the bearer
//! [`JwtResolver`]) and which users may use which channels (routes on an [`Authorizer`]);
//! [`authorization_router`] serves the auth endpoints Echo and pusher-js call, signing with
//! the embedded app's key and secret.
//!
//! Files: `routes.rs` (pattern matching), `user.rs` (users and resolvers), `jwt.rs` (bearer
//! JWTs), `refusal.rs` (error answers), `authorizer.rs` (routes, callbacks, signing),
//! `endpoints.rs` (the HTTP endpoints).

mod authorizer;
mod endpoints;
mod jwt;
mod refusal;
mod routes;
mod user;

pub use authorizer::{Authorizer, AuthorizerBuilder, SignIn};
pub use endpoints::authorization_router;
pub use jwt::{JwtKeyError, JwtResolver};
pub use refusal::Refusal;
pub use routes::ChannelParams;
pub use user::{User, UserResolver};
