//! The console's listener and routes, and the checks every request passes first: the host
//! (without a token), the origin (state-changing requests), the token (with one), and the
//! security headers every answer carries.
//!
//! Routes: `GET /` (the page), `GET /app.js`, `GET /app.css`, `GET|POST /login`,
//! `POST /logout`, and under `/api/`: `stream` (SSE), `overview`, `channels`, `channel`,
//! `connections`, `POST disconnect`, `POST publish`. The assets are compiled into the binary;
//! the CSP lets the page load nothing but them.

use super::auth::{clear_cookie, Access, Denied};
use super::stream::{self, Feed};
use super::{api, ConsoleSettings};
use crate::hub::Hub;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::net::TcpListener;

const INDEX_HTML: &str = include_str!("assets/index.html");
const LOGIN_HTML: &str = include_str!("assets/login.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// Self only: the page runs its own script and stylesheet, talks to its own origin, and may
/// not be framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Largest request body the console accepts (a login form, a published event).
const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every console handler sees.
#[derive(Clone)]
pub struct Console {
    pub hub: Arc<Hub>,
    pub feed: Arc<Feed>,
    pub access: Arc<Access>,
    pub settings: Arc<ConsoleSettings>,
}

/// Bind the console's listener (after `ConsoleSettings::check`).
pub async fn bind(settings: &ConsoleSettings) -> std::io::Result<TcpListener> {
    TcpListener::bind(settings.addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "cannot listen on {} for the debug console: {e}",
                settings.addr
            ),
        )
    })
}

/// Start observing the hub (and, with `attempts`, the webhook sender's attempt reports) and
/// serve the console on `listener` in a task of its own.
pub fn serve(
    listener: TcpListener,
    hub: Arc<Hub>,
    settings: ConsoleSettings,
    attempts: Option<stream::Attempts>,
) -> tokio::task::JoinHandle<()> {
    let console = Console {
        feed: Feed::start(&hub, &settings, attempts),
        access: Arc::new(Access::new(&settings)),
        hub,
        settings: Arc::new(settings),
    };
    let app = router(console);
    tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, service).await {
            tracing::error!("debug console stopped: {e}");
        }
    })
}

fn router(console: Console) -> Router {
    Router::new()
        .route("/", get(index))
        .route(
            "/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/app.css",
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }),
        )
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route(
            "/api/stream",
            get(|State(c): State<Console>| async move { stream::stream(&c.feed) }),
        )
        .route("/api/overview", get(api::overview))
        .route("/api/channels", get(api::channels))
        .route("/api/channel", get(api::channel))
        .route("/api/connections", get(api::connections))
        .route("/api/disconnect", post(api::disconnect))
        .route("/api/publish", post(api::publish))
        .layer(middleware::from_fn_with_state(console.clone(), guard))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(console)
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn index() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8")
}

/// Paths reachable without a token: the login form and the stylesheet it uses.
fn public(method: &Method, path: &str) -> bool {
    path == "/login" || (method == Method::GET && path == "/app.css")
}

/// Whether `host` (a `Host` header) names this machine's loopback interface.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A state-changing request must come from the console's own page: its `Origin` (when the
/// browser sends one, which browsers do for every POST) must be `http://{Host}`, and
/// `Sec-Fetch-Site` (when present) must not say another site sent it.
fn same_origin(headers: &HeaderMap) -> bool {
    let get = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" && site != "none" {
            return false;
        }
    }
    match get(header::ORIGIN) {
        None => true,
        Some(origin) => {
            let host = get(header::HOST).unwrap_or("");
            !host.is_empty()
                && (origin == format!("http://{host}") || origin == format!("https://{host}"))
        }
    }
}

fn plain(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.to_string(),
    )
        .into_response()
}

/// The login page with a message in it.
fn login_with(status: StatusCode, message: &str) -> Response {
    let body = LOGIN_HTML.replace("<!--message-->", message);
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn denied(denied: Denied, api: bool) -> Response {
    let mut response = match (denied, api) {
        (Denied::Unauthorized, true) => {
            let mut r = (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({ "error": "A console token is required" })),
            )
                .into_response();
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            r
        }
        (Denied::Unauthorized, false) => login_with(StatusCode::UNAUTHORIZED, ""),
        (Denied::TooManyAttempts(_), true) => plain(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong tokens from this address; try again later",
        ),
        (Denied::TooManyAttempts(_), false) => login_with(
            StatusCode::TOO_MANY_REQUESTS,
            "<p class=\"error\">Too many wrong tokens from this address; try again later.</p>",
        ),
    };
    if let Denied::TooManyAttempts(secs) = denied {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn peer_of(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip())
}

/// Every request: host, origin and token checks, then the security headers on the answer.
/// (`Referrer-Policy: same-origin`, not `no-referrer`: with `no-referrer` Chromium sends
/// `Origin: null` on form posts, which the origin check must refuse.)
async fn guard(State(c): State<Console>, req: Request, next: Next) -> Response {
    let mut response = check(&c, req, next).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    response
}

async fn check(c: &Console, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // Without a token only loopback is served, and only under a loopback name: a page on
    // another site that rebinds its DNS name to 127.0.0.1 is refused.
    if !c.access.required() && !loopback_host(host) {
        return plain(
            StatusCode::MISDIRECTED_REQUEST,
            "This console answers only to localhost",
        );
    }
    let method = req.method().clone();
    if !matches!(method, Method::GET | Method::HEAD) && !same_origin(headers) {
        return plain(StatusCode::FORBIDDEN, "Cross-origin requests are refused");
    }
    let path = req.uri().path().to_string();
    if !public(&method, &path) {
        let get = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
        let cookies: Vec<&str> = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let cookies = cookies.join("; ");
        if let Err(d) = c
            .access
            .check(get(header::AUTHORIZATION), Some(&cookies), peer_of(&req))
        {
            return denied(d, path.starts_with("/api/"));
        }
    }
    next.run(req).await
}

async fn login_page(State(c): State<Console>) -> Response {
    if !c.access.required() {
        return redirect("/", None);
    }
    login_with(StatusCode::OK, "")
}

fn redirect(to: &'static str, cookie: Option<String>) -> Response {
    let mut r = Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, to);
    if let Some(cookie) = cookie {
        r = r.header(header::SET_COOKIE, cookie);
    }
    r.body(Body::empty()).unwrap_or_default()
}

/// The token field of an `application/x-www-form-urlencoded` body.
fn form_token(body: &[u8]) -> String {
    let body = String::from_utf8_lossy(body);
    body.split('&')
        .find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == "token").then(|| {
                percent_encoding::percent_decode_str(&v.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            })
        })
        .unwrap_or_default()
}

async fn login(State(c): State<Console>, req: Request) -> Response {
    let peer = peer_of(&req);
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => Bytes::new(),
    };
    match c.access.login(&form_token(&body), peer) {
        Ok(session) if c.access.required() => redirect("/", Some(c.access.set_cookie(&session))),
        Ok(_) => redirect("/", None),
        Err(Denied::Unauthorized) => login_with(
            StatusCode::UNAUTHORIZED,
            "<p class=\"error\">Wrong token.</p>",
        ),
        Err(d) => denied(d, false),
    }
}

async fn logout() -> Response {
    redirect("/login", Some(clear_cookie()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names() {
        for ok in [
            "127.0.0.1:9602",
            "localhost:1",
            "LOCALHOST",
            "[::1]:9602",
            "127.1.2.3",
        ] {
            assert!(loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example:9602",
            "10.0.0.1:9602",
            "",
            "[2001:db8::1]:1",
            "localhost.evil.com",
        ] {
            assert!(!loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn origins() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:9602"));
        assert!(same_origin(&h), "no Origin: not a browser");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:9602"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:9602"),
        );
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h));
    }

    #[test]
    fn form_tokens() {
        assert_eq!(form_token(b"token=a%2Fb+c&x=1"), "a/b c");
        assert_eq!(form_token(b"x=1"), "");
    }
}
