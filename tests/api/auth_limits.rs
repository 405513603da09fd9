//! SPEC section 3's limits and mail: per-IP limits, per-account backoff, SMTP resets and
//! email verification against a real SMTP listener on loopback.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::mpsc;

use crate::helpers::{
    PASSWORD, TestApp, assert_error, expect_json, slow_smtp_listener, smtp_listener,
};

#[tokio::test]
async fn logins_per_ip_are_limited_with_retry_after() {
    let app = TestApp::spawn_with(|c| c.rate_limit.login_per_ip_per_minute = 3).await;
    for _ in 0..3 {
        let response = app.try_login("x@example.com", "whatever1").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response = app.try_login("x@example.com", "whatever1").await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Other routes are not affected by the login limit.
    assert_eq!(app.get("/health").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_route_has_the_general_per_ip_limit() {
    let app = TestApp::spawn_with(|c| c.rate_limit.per_ip_per_minute = 5).await;
    for _ in 0..5 {
        assert_eq!(app.get("/health").await.status(), StatusCode::OK);
    }
    let response = app.get("/health").await;
    assert!(response.headers().contains_key("retry-after"));
    assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn repeated_failures_for_one_account_back_off() {
    let app = TestApp::spawn_with(|c| c.rate_limit.login_per_ip_per_minute = 1000).await;
    app.register("ana@example.com").await;
    for _ in 0..5 {
        let response = app.try_login("ana@example.com", "wrong-pass").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // Even the right password waits now.
    let response = app.try_login("ana@example.com", PASSWORD).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Unknown emails are throttled the same way (no enumeration through 429s).
    for _ in 0..5 {
        app.try_login("ghost@example.com", "wrong-pass").await;
    }
    let ghost = app.try_login("ghost@example.com", "wrong-pass").await;
    assert_eq!(ghost.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another account is unaffected.
    app.register("bob@example.com").await;
    app.login("bob@example.com").await;
}

/// The token in a mail: the line after the one announcing it.
fn token_in(mail: &str) -> String {
    let unfolded = mail.replace("=\n", "");
    let lines: Vec<&str> = unfolded.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("code"))
        .expect("mail announces a code");
    lines[at + 1..]
        .iter()
        .map(|l| l.trim())
        .find(|l| !l.is_empty())
        .unwrap()
        .to_owned()
}

async fn app_with_smtp() -> (TestApp, mpsc::UnboundedReceiver<String>) {
    app_with_smtp_port(smtp_listener().await).await
}

async fn app_with_smtp_port(
    (port, mails): (u16, mpsc::UnboundedReceiver<String>),
) -> (TestApp, mpsc::UnboundedReceiver<String>) {
    let app = TestApp::spawn_with(move |c| {
        c.smtp.host = Some("127.0.0.1".into());
        c.smtp.port = Some(port);
        c.smtp.starttls = Some(false);
        c.smtp.from = Some("Persona <persona@example.com>".into());
    })
    .await;
    (app, mails)
}

#[tokio::test]
async fn shutdown_waits_for_a_mail_still_being_sent() {
    // The relay takes 300 ms to greet: the mail is still on its way when shutdown begins.
    let (mut app, mut mails) =
        app_with_smtp_port(slow_smtp_listener(Duration::from_millis(300)).await).await;
    let response = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": "ana@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    app.stop().await;
    let mail = mails
        .try_recv()
        .expect("the verification mail went out before the stop");
    assert!(mail.contains("Subject: Confirm your email"), "{mail}");
}

#[tokio::test]
async fn forgot_password_mails_a_single_use_reset_token() {
    let (app, mut mails) = app_with_smtp().await;
    app.register("ana@example.com").await;
    // The verification mail sent at registration comes first.
    let welcome = tokio::time::timeout(Duration::from_secs(10), mails.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(welcome.contains("To: ana@example.com"), "{welcome}");

    let response = app
        .post_json(
            "/api/v1/auth/forgot-password",
            &json!({"email": "ana@example.com"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let mail = tokio::time::timeout(Duration::from_secs(10), mails.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        mail.contains("Subject: Reset your Persona password"),
        "{mail}"
    );
    let token = token_in(&mail);

    let reset = app
        .post_json(
            "/api/v1/auth/reset-password",
            &json!({"token": token, "newPassword": "mailed-reset-1"}),
        )
        .await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    let login = app.try_login("ana@example.com", "mailed-reset-1").await;
    assert_eq!(login.status(), StatusCode::OK);

    // No mail for an unknown address, and still 202.
    let response = app
        .post_json(
            "/api/v1/auth/forgot-password",
            &json!({"email": "ghost@example.com"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), mails.recv())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn email_verification_with_the_mailed_token() {
    let (app, mut mails) = app_with_smtp().await;
    let ana = app.register("ana@example.com").await;
    let mail = tokio::time::timeout(Duration::from_secs(10), mails.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(mail.contains("Subject: Confirm your email"), "{mail}");

    // Resending invalidates the first token.
    let response = app
        .post_as(&ana.access, "/api/v1/auth/resend-verification", &json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let second = tokio::time::timeout(Duration::from_secs(10), mails.recv())
        .await
        .unwrap()
        .unwrap();
    let stale = app
        .post_json(
            "/api/v1/auth/verify-email",
            &json!({"token": token_in(&mail)}),
        )
        .await;
    assert_error(stale, StatusCode::UNAUTHORIZED, "invalid_token").await;

    let body = expect_json(
        app.post_json(
            "/api/v1/auth/verify-email",
            &json!({"token": token_in(&second)}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["user"]["emailVerified"], true);
}
