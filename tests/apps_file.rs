//! The apps file as an operator meets it: strict (every mistake named by file, entry and
//! field, exit 2), TOML by extension, the development credentials only when nothing is
//! configured (and said so), and SIGHUP re-reading it without touching unchanged apps.

mod binary;
mod common;

use binary::{run, Server, TempDir};
use common::Client;
use std::time::Duration;

#[test]
fn mistakes_exit_2_naming_file_entry_and_field() {
    let dir = TempDir::new("apps-file");
    let cases = [
        (
            "apps.json",
            r#"[{"id":"a","key":"ka","secret":"sa"},{"id":"b","key":"kb"}]"#,
            vec!["apps.json", "apps[1]", "id \"b\"", "missing field `secret`"],
        ),
        (
            "apps.json",
            r#"[{"id":"a","key":"ka","secret":"sa","max_conections":5}]"#,
            vec!["apps[0]", "id \"a\"", "unknown field `max_conections`"],
        ),
        (
            "apps.json",
            r#"[{"id":"a","key":"k","secret":"s"},{"id":"b","key":"k","secret":"s"}]"#,
            vec!["apps[1]", "id \"b\"", "field `key`"],
        ),
        (
            "apps.toml",
            "[[apps]]\nid = \"a\"\nkey = \"ka\"\nsecret = \"sa\"\nenabled = \"yes\"\n",
            vec!["apps.toml", "apps[0]", "field `enabled`"],
        ),
    ];
    for (name, text, wanted) in cases {
        let path = dir.path(name);
        std::fs::write(&path, text).unwrap();
        let out = run(&["--apps-file", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        for w in wanted {
            assert!(err.contains(w), "{text}: {err} lacks {w}");
        }
    }
    // Partial credentials are never completed with the development ones.
    let out = run(&["--app-key", "k", "--app-id", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("app secret missing"));
}

#[tokio::test]
async fn development_credentials_are_announced() {
    let server = Server::start(&[], &[]).await;
    assert!(
        server
            .wait_log("PUBLIC development credentials", Duration::from_secs(5))
            .await,
        "{}",
        server.logs()
    );
    let dir = TempDir::new("apps-toml");
    let path = dir.path("apps.toml");
    std::fs::write(
        &path,
        "[[apps]]\nid = \"t\"\nkey = \"kt\"\nsecret = \"st\"\n",
    )
    .unwrap();
    let server = Server::start(&["--apps-file", path.to_str().unwrap()], &[]).await;
    let mut c = Client::connect(&server.ws_url("kt")).await;
    c.expect_next("pusher:connection_established").await;
    assert!(!server.logs().contains("development credentials"));
}

#[tokio::test]
async fn sighup_rereads_the_file() {
    let dir = TempDir::new("apps-reload");
    let path = dir.path("apps.json");
    std::fs::write(
        &path,
        r#"[{"id":"a","key":"ka","secret":"sa"},
            {"id":"b","key":"kb","secret":"sb"},
            {"id":"c","key":"kc","secret":"sc"}]"#,
    )
    .unwrap();
    let mut server = Server::start(&["--apps-file", path.to_str().unwrap()], &[]).await;
    let mut a = Client::established(&server.ws_url("ka"), "ka", "sa").await;
    a.subscribe("news").await;
    let mut b = Client::established(&server.ws_url("kb"), "kb", "sb").await;
    let mut c = Client::established(&server.ws_url("kc"), "kc", "sc").await;
    assert_eq!(server.publish("a", "ka", "sa", "news").await, 200);
    a.expect_event("e").await;

    // b removed, c disabled, a's secret changed, d added.
    std::fs::write(
        &path,
        r#"[{"id":"a","key":"ka","secret":"sa2"},
            {"id":"c","key":"kc","secret":"sc","enabled":false},
            {"id":"d","key":"kd","secret":"sd"}]"#,
    )
    .unwrap();
    server.signal("HUP");
    b.expect_close_code(4001).await;
    c.expect_close_code(4003).await;
    let mut d = Client::connect(&server.ws_url("kd")).await;
    d.expect_next("pusher:connection_established").await;
    assert_eq!(server.publish("a", "ka", "sa", "news").await, 401);
    assert_eq!(server.publish("a", "ka", "sa2", "news").await, 200);
    // a's connection was not touched: still subscribed, and gets the event.
    a.expect_event("e").await;

    // A file that fails validation keeps the apps in use.
    std::fs::write(&path, r#"[{"id":"a","key":"ka"}]"#).unwrap();
    server.signal("HUP");
    assert!(
        server
            .wait_log("apps not reloaded", Duration::from_secs(5))
            .await,
        "{}",
        server.logs()
    );
    assert!(server.logs().contains("missing field `secret`"));
    let mut d2 = Client::connect(&server.ws_url("kd")).await;
    d2.expect_next("pusher:connection_established").await;
    assert_eq!(server.publish("a", "ka", "sa2", "news").await, 200);
    a.expect_event("e").await;
    assert!(server.alive(), "server died on SIGHUP");
}
