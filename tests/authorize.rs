//! Black-box tests of the auth endpoints an embedding app mounts with
//! `authorization_router`: the example app (`examples/authorized.rs`) and a router with
//! misbehaving callbacks, served on an ephemeral port and driven over real HTTP; the answers
//! are then used by a real WebSocket client, so the server accepts what the endpoint signs.
//! The RS256 keys in `tests/fixtures/` are test-only keys made with `openssl genpkey`.

#[path = "../examples/authorized.rs"]
#[allow(dead_code)]
mod authorized;
mod common;

use axum::http::request::Parts;
use common::Client;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use rf_broadcast::{
    authorization_router, websocket_router, App, Authorizer, Broadcaster, Channel, JwtResolver,
    MemoryBroadcaster, Refusal, User,
};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

const SECRET: &str = "example-secret";

async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// The example app on a fresh broadcaster.
async fn example() -> (SocketAddr, MemoryBroadcaster) {
    let broadcaster = MemoryBroadcaster::new(vec![App::new("app-id", "app-key", "app-secret")]);
    let addr = serve(authorized::app(&broadcaster, SECRET)).await;
    (addr, broadcaster)
}

fn token(sub: &str, name: &str, exp_in: i64, secret: &str) -> String {
    let exp = jsonwebtoken::get_current_timestamp() as i64 + exp_in;
    encode(
        &Header::default(),
        &json!({"sub": sub, "name": name, "exp": exp}),
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn ada() -> String {
    token("1", "Ada", 3600, SECRET)
}

struct Req<'a> {
    path: &'a str,
    token: Option<String>,
    content_type: Option<&'a str>,
    body: Vec<u8>,
}

impl<'a> Req<'a> {
    fn form(path: &'a str, token: Option<String>, body: &str) -> Req<'a> {
        Req {
            path,
            token,
            content_type: Some("application/x-www-form-urlencoded"),
            body: body.as_bytes().to_vec(),
        }
    }
    fn json(path: &'a str, token: Option<String>, body: Value) -> Req<'a> {
        Req {
            path,
            token,
            content_type: Some("application/json"),
            body: body.to_string().into_bytes(),
        }
    }
    async fn send(self, addr: SocketAddr) -> (u16, Value) {
        let mut r = reqwest::Client::new()
            .post(format!("http://{addr}{}", self.path))
            .body(self.body);
        if let Some(t) = self.token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        if let Some(ct) = self.content_type {
            r = r.header("content-type", ct);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

async fn connect(addr: SocketAddr) -> Client {
    Client::established(
        &format!("ws://{addr}/app/app-key?protocol=7"),
        "app-key",
        "app-secret",
    )
    .await
}

#[tokio::test]
async fn private_channel_auth_is_accepted_by_the_server() {
    let (addr, broadcaster) = example().await;
    let mut c = connect(addr).await;
    for path in ["/broadcasting/auth", "/pusher/auth"] {
        let body = format!("socket_id={}&channel_name=private-user.1", c.socket_id);
        let (status, answer) = Req::form(path, Some(ada()), &body).send(addr).await;
        assert_eq!(status, 200, "{path}: {answer}");
        assert_eq!(answer.as_object().unwrap().len(), 1, "{answer}");
        assert!(answer["auth"].as_str().unwrap().starts_with("app-key:"));
    }
    let body = format!("socket_id={}&channel_name=private-user.1", c.socket_id);
    let (_, answer) = Req::form("/broadcasting/auth", Some(ada()), &body)
        .send(addr)
        .await;
    c.send(json!({"event": "pusher:subscribe", "data": {"channel": "private-user.1", "auth": answer["auth"]}}))
        .await;
    let ok = c
        .expect_event("pusher_internal:subscription_succeeded")
        .await;
    assert_eq!(ok["channel"], "private-user.1");
    assert!(broadcaster.is_subscribed(&c.socket_id, &Channel::private("user.1")));
}

#[tokio::test]
async fn presence_auth_carries_the_callbacks_user_info_in_both_encodings() {
    let (addr, broadcaster) = example().await;
    let mut c = connect(addr).await;
    let (status, form) = Req::form(
        "/broadcasting/auth",
        Some(ada()),
        &format!("socket_id={}&channel_name=presence-room.lobby", c.socket_id),
    )
    .send(addr)
    .await;
    assert_eq!(status, 200, "{form}");
    let (status, from_json) = Req::json(
        "/broadcasting/auth",
        Some(ada()),
        json!({"socket_id": c.socket_id, "channel_name": "presence-room.lobby"}),
    )
    .send(addr)
    .await;
    assert_eq!(status, 200, "{from_json}");
    assert_eq!(form, from_json, "form and JSON bodies answer the same");
    assert_eq!(
        form["channel_data"],
        r#"{"user_id":"1","user_info":{"name":"Ada"}}"#
    );
    c.send(json!({"event": "pusher:subscribe", "data": {
        "channel": "presence-room.lobby", "auth": form["auth"], "channel_data": form["channel_data"]}}))
        .await;
    let ok = c
        .expect_event("pusher_internal:subscription_succeeded")
        .await;
    let presence: Value = serde_json::from_str(ok["data"].as_str().unwrap()).unwrap();
    assert_eq!(presence["presence"]["hash"]["1"], json!({"name": "Ada"}));
    let members = broadcaster.presence(&Channel::presence("room.lobby"));
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].user_id, "1");
}

#[tokio::test]
async fn user_sign_in_is_accepted_by_the_server() {
    let (addr, _) = example().await;
    let mut c = connect(addr).await;
    for path in ["/broadcasting/user-auth", "/pusher/user-auth"] {
        let (status, answer) = Req::form(path, Some(ada()), &format!("socket_id={}", c.socket_id))
            .send(addr)
            .await;
        assert_eq!(status, 200, "{path}: {answer}");
        assert_eq!(
            answer["user_data"],
            r#"{"id":"1","user_info":{"name":"Ada"}}"#
        );
    }
    let (_, answer) = Req::json(
        "/broadcasting/user-auth",
        Some(ada()),
        json!({"socket_id": c.socket_id}),
    )
    .send(addr)
    .await;
    c.send(json!({"event": "pusher:signin", "data": answer}))
        .await;
    let ok = c.expect_event("pusher:signin_success").await;
    assert_eq!(ok["data"]["user_data"], answer["user_data"]);
}

#[tokio::test]
async fn no_forged_or_expired_token_is_401() {
    let (addr, _) = example().await;
    let expired = token("1", "Ada", -3600, SECRET);
    let forged = token("1", "Ada", 3600, "not-the-secret");
    let cases = [
        None,
        Some(expired),
        Some(forged),
        Some("garbage".to_string()),
    ];
    for t in cases {
        for (path, body) in [
            (
                "/broadcasting/auth",
                "socket_id=1.1&channel_name=private-user.1",
            ),
            ("/broadcasting/user-auth", "socket_id=1.1"),
        ] {
            let (status, answer) = Req::form(path, t.clone(), body).send(addr).await;
            assert_eq!(status, 401, "{path} {t:?}: {answer}");
            assert_eq!(answer, json!({"message": "Unauthenticated."}));
        }
    }
}

#[tokio::test]
async fn refused_routes_are_403() {
    let (addr, _) = example().await;
    for channel in [
        "private-user.2",     // another user's channel
        "private-user.1.x",   // {id} is one dot-free segment
        "private-orders.1",   // no route
        "presence-user.1",    // private route, presence channel
        "private-room.lobby", // presence route, private channel
    ] {
        let (status, answer) = Req::form(
            "/broadcasting/auth",
            Some(ada()),
            &format!("socket_id=1.1&channel_name={channel}"),
        )
        .send(addr)
        .await;
        assert_eq!(status, 403, "{channel}: {answer}");
        assert_eq!(answer, json!({"message": "This action is unauthorized."}));
    }
}

#[tokio::test]
async fn malformed_bodies_are_400_or_413() {
    let (addr, _) = example().await;
    let long = format!("private-user.{}", "1".repeat(250));
    let cases: Vec<(Req, u16)> = vec![
        (
            Req {
                path: "/broadcasting/auth",
                token: Some(ada()),
                content_type: None,
                body: vec![],
            },
            400,
        ),
        (
            Req::form(
                "/broadcasting/auth",
                Some(ada()),
                "channel_name=private-user.1",
            ),
            400,
        ),
        (
            Req::form("/broadcasting/auth", Some(ada()), "socket_id=1.1"),
            400,
        ),
        (
            Req::form(
                "/broadcasting/auth",
                Some(ada()),
                "socket_id=1.1&channel_name=",
            ),
            400,
        ),
        (
            Req::form(
                "/broadcasting/auth",
                Some(ada()),
                "socket_id=11&channel_name=private-user.1",
            ),
            400,
        ),
        (
            Req::form(
                "/broadcasting/auth",
                Some(ada()),
                "socket_id=1.1x&channel_name=private-user.1",
            ),
            400,
        ),
        (
            Req::form(
                "/broadcasting/auth",
                Some(ada()),
                "socket_id=a.b&channel_name=private-user.1",
            ),
            400,
        ),
        (
            Req::form(
                "/broadcasting/auth",
                Some(ada()),
                "socket_id=1.1&channel_name=public",
            ),
            400,
        ),
        (
            Req::form(
                "/broadcasting/auth",
                Some(ada()),
                "socket_id=1.1&channel_name=private-a%20b",
            ),
            400,
        ),
        (
            Req::form(
                "/broadcasting/auth",
                Some(ada()),
                &format!("socket_id=1.1&channel_name={long}"),
            ),
            400,
        ),
        (
            Req::form(
                "/broadcasting/auth",
                Some(ada()),
                "socket_id=1.1&channel_name=%FF%FE",
            ),
            400,
        ),
        (
            Req::form("/broadcasting/user-auth", Some(ada()), "socket_id=1"),
            400,
        ),
        (Req::form("/broadcasting/user-auth", Some(ada()), ""), 400),
        (
            Req {
                path: "/broadcasting/auth",
                token: Some(ada()),
                content_type: Some("application/json"),
                body: b"{not json".to_vec(),
            },
            400,
        ),
        (
            Req::json(
                "/broadcasting/auth",
                Some(ada()),
                json!(["socket_id", "1.1"]),
            ),
            400,
        ),
        (
            Req::json(
                "/broadcasting/auth",
                Some(ada()),
                json!({"socket_id": 1.1, "channel_name": "private-user.1"}),
            ),
            400,
        ),
        (
            Req {
                path: "/broadcasting/auth",
                token: Some(ada()),
                content_type: None,
                body: vec![0xff, 0xfe, 0x00],
            },
            400,
        ),
        (
            Req::form("/broadcasting/auth", Some(ada()), &"a".repeat(20_000)),
            413,
        ),
    ];
    for (req, want) in cases {
        let what = format!(
            "{} {:?}",
            req.path,
            String::from_utf8_lossy(&req.body[..req.body.len().min(60)])
        );
        let (status, answer) = req.send(addr).await;
        assert_eq!(status, want, "{what}: {answer}");
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {answer}"
        );
    }
    // Still serving.
    let (status, _) = Req::form(
        "/broadcasting/auth",
        Some(ada()),
        "socket_id=1.1&channel_name=private-user.1",
    )
    .send(addr)
    .await;
    assert_eq!(status, 200);
}

/// Routes whose callbacks fail, panic or hang; a resolver that reads a header.
fn misbehaving() -> Authorizer {
    Authorizer::builder(|req: &Parts| {
        let id = req.headers.get("x-user")?.to_str().ok()?;
        (id != "resolver-panic")
            .then(|| User::new(id))
            .or_else(|| panic!("resolver bug"))
    })
    .private("fails", |_, _| async {
        Err(Refusal::server_error("database down"))
    })
    .private("errs", |_, _| async {
        let n: u32 = "not a number".parse()?;
        Ok(n > 0)
    })
    .private("panics", |_, _| async { panic!("callback bug") })
    .private("hangs", |_, _| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(true)
    })
    .private("ok", |_, _| async { Ok(true) })
    .callback_timeout(Duration::from_millis(200))
    .build()
}

#[tokio::test]
async fn failing_panicking_and_hanging_callbacks_answer_and_the_server_stays_up() {
    let broadcaster = MemoryBroadcaster::new(vec![App::new("app-id", "app-key", "app-secret")]);
    let router = axum::Router::new()
        .merge(websocket_router(&broadcaster))
        .merge(authorization_router(&broadcaster, misbehaving()));
    let addr = serve(router).await;
    let ask = |user: &'static str, channel: &'static str| async move {
        let r = reqwest::Client::new()
            .post(format!("http://{addr}/broadcasting/auth"))
            .header("x-user", user)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("socket_id=1.1&channel_name=private-{channel}"))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap())
    };
    assert_eq!(
        ask("7", "fails").await,
        (500, json!({"message": "Server Error"}))
    );
    assert_eq!(
        ask("7", "errs").await,
        (500, json!({"message": "Server Error"}))
    );
    assert_eq!(
        ask("7", "panics").await,
        (500, json!({"message": "Server Error"}))
    );
    assert_eq!(
        ask("resolver-panic", "ok").await,
        (500, json!({"message": "Server Error"}))
    );
    let (status, _) = ask("7", "hangs").await;
    assert_eq!(status, 503);
    // Sign-in was not enabled on this authorizer.
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/broadcasting/user-auth"))
        .header("x-user", "7")
        .body("socket_id=1.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // Still serving, HTTP and WebSocket.
    assert_eq!(ask("7", "ok").await.0, 200);
    let c = connect(addr).await;
    assert!(!c.socket_id.is_empty());
}

#[tokio::test]
async fn rs256_tokens_resolve_users() {
    let broadcaster = MemoryBroadcaster::new(vec![App::new("app-id", "app-key", "app-secret")]);
    let resolver = JwtResolver::rs256_pem(include_str!("fixtures/jwt-rs256-public.pem")).unwrap();
    let authorizer = Authorizer::builder(resolver)
        .private("user.{id}", |user: User, p| async move {
            Ok(p.get("id") == Some(user.id.as_str()))
        })
        .build();
    let addr = serve(authorization_router(&broadcaster, authorizer)).await;
    let key = EncodingKey::from_rsa_pem(include_bytes!("fixtures/jwt-rs256-private.pem")).unwrap();
    let exp = jsonwebtoken::get_current_timestamp() + 600;
    let rs = encode(
        &Header::new(Algorithm::RS256),
        &json!({"sub": "5", "exp": exp}),
        &key,
    )
    .unwrap();
    let body = "socket_id=1.1&channel_name=private-user.5";
    assert_eq!(
        Req::form("/broadcasting/auth", Some(rs), body)
            .send(addr)
            .await
            .0,
        200
    );
    // An HS256 token is not accepted by an RS256 resolver.
    let hs = token("5", "x", 600, SECRET);
    assert_eq!(
        Req::form("/broadcasting/auth", Some(hs), body)
            .send(addr)
            .await
            .0,
        401
    );
}
