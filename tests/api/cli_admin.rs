//! `persona admin user …` and `persona admin secrets rotate jwt`, against a running server
//! process sharing the data dir, as an admin would use them.

use std::{
    io::Write,
    process::{Output, Stdio},
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    PASSWORD, ServerProcess, http_client, persona_command, run_persona, stderr, stdout,
};

fn create_with_password(dir: &std::path::Path, email: &str, admin: bool) -> Output {
    let mut args = vec![
        "admin",
        "user",
        "create",
        "--email",
        email,
        "--password-stdin",
    ];
    if admin {
        args.push("--admin");
    }
    let mut child = persona_command(dir)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Retries `check` for up to `limit`: the CLI is another process, and the server notices
/// its changes within its session-cache and key-reload intervals.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

async fn login(server: &ServerProcess, email: &str, password: &str) -> reqwest::Response {
    http_client()
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

#[test]
fn user_create_list_and_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let created = create_with_password(dir.path(), "Root@Example.com", true);
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(
        stdout(&created).contains("created root@example.com (admin"),
        "{}",
        stdout(&created)
    );

    let generated = run_persona(
        dir.path(),
        &["admin", "user", "create", "--email", "ana@example.com"],
    );
    assert!(generated.status.success(), "{}", stderr(&generated));
    assert!(
        stdout(&generated).contains("password"),
        "{}",
        stdout(&generated)
    );

    let again = create_with_password(dir.path(), "root@example.com", false);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );

    let bad = run_persona(
        dir.path(),
        &["admin", "user", "create", "--email", "not-an-email"],
    );
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("--email"), "{}", stderr(&bad));

    let list = run_persona(dir.path(), &["admin", "user", "list"]);
    let listing = stdout(&list);
    assert!(
        listing.contains("root@example.com") && listing.contains("admin"),
        "{listing}"
    );
    assert!(listing.contains("ana@example.com"), "{listing}");

    for verb in ["disable", "enable", "promote", "reset-password"] {
        let output = run_persona(dir.path(), &["admin", "user", verb, "ghost@example.com"]);
        assert!(!output.status.success(), "{verb}");
        assert!(
            stderr(&output).contains("no account with the email ghost@example.com"),
            "{verb}: {}",
            stderr(&output)
        );
    }
}

#[tokio::test]
async fn disable_enable_promote_and_reset_reach_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    assert!(
        create_with_password(dir.path(), "ana@example.com", false)
            .status
            .success()
    );
    let session: Value = login(&server, "ana@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let token = session["accessToken"].as_str().unwrap().to_owned();
    let me = |token: String| {
        let url = server.url("/api/v1/auth/me");
        async move {
            http_client()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(me(token.clone()).await.status(), StatusCode::OK);

    assert!(
        run_persona(dir.path(), &["admin", "user", "disable", "ana@example.com"])
            .status
            .success()
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            me(token.clone()).await.status() != StatusCode::OK
        })
        .await,
        "the disabled account's token stopped working"
    );
    assert_eq!(
        login(&server, "ana@example.com", PASSWORD).await.status(),
        StatusCode::FORBIDDEN
    );

    assert!(
        run_persona(dir.path(), &["admin", "user", "enable", "ana@example.com"])
            .status
            .success()
    );
    assert!(
        run_persona(dir.path(), &["admin", "user", "promote", "ana@example.com"])
            .status
            .success()
    );
    let again: Value = login(&server, "ana@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["user"]["role"], "admin");

    let reset = run_persona(
        dir.path(),
        &["admin", "user", "reset-password", "ana@example.com"],
    );
    let printed = stdout(&reset);
    let token_line = printed
        .lines()
        .nth(1)
        .expect("the token line")
        .trim()
        .to_owned();
    let response = http_client()
        .post(server.url("/api/v1/auth/reset-password"))
        .json(&json!({"token": token_line, "newPassword": "set-by-admin-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT, "{printed}");
    assert_eq!(
        login(&server, "ana@example.com", "set-by-admin-1")
            .await
            .status(),
        StatusCode::OK
    );
}

fn kid_of(token: &str) -> String {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn rotating_the_jwt_key_logs_nobody_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    assert!(
        create_with_password(dir.path(), "ana@example.com", false)
            .status
            .success()
    );
    let before: Value = login(&server, "ana@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let old_token = before["accessToken"].as_str().unwrap().to_owned();
    let old_kid = kid_of(&old_token);

    let rotated = run_persona(dir.path(), &["admin", "secrets", "rotate", "jwt"]);
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    assert!(
        stdout(&rotated).contains("2 key(s) still verify"),
        "{}",
        stdout(&rotated)
    );

    // The server takes up the new key within its reload interval ...
    let signed_with_new = eventually(Duration::from_secs(12), || async {
        let body: Value = login(&server, "ana@example.com", PASSWORD)
            .await
            .json()
            .await
            .unwrap();
        kid_of(body["accessToken"].as_str().unwrap()) != old_kid
    })
    .await;
    assert!(signed_with_new, "new logins are signed with the new key");
    // ... and tokens signed with the old one keep working.
    let me = http_client()
        .get(server.url("/api/v1/auth/me"))
        .bearer_auth(&old_token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);

    // A second rotation right away keeps every key that may still have live tokens.
    let again = run_persona(dir.path(), &["admin", "secrets", "rotate", "jwt"]);
    assert!(
        stdout(&again).contains("3 key(s) still verify"),
        "{}",
        stdout(&again)
    );
}
