//! What a hostile client tries against accounts (issue 14), each closed and proven over real
//! HTTP: parallel guessing, junk emails, look-alike emails, stale reset tokens, IPv6
//! address hopping and cache flushing.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, assert_error, expect_json};

#[tokio::test]
async fn parallel_wrong_guesses_are_counted_before_hashing() {
    let app = TestApp::spawn_with(|c| c.rate_limit.login_per_ip_per_minute = 1000).await;
    app.register("ana@example.com").await;
    let guesses = (0..20).map(|_| app.try_login("ana@example.com", "wrong-pass"));
    let answers = futures_util::future::join_all(guesses).await;
    let checked = answers
        .iter()
        .filter(|r| r.status() == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = answers
        .iter()
        .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .count();
    // Five free failures; every attempt past them waits for the backoff, in flight or not.
    assert!(
        checked <= 5,
        "{checked} of 20 parallel guesses were checked"
    );
    assert_eq!(checked + throttled, 20);
    assert!(
        answers
            .iter()
            .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
            .all(|r| r.headers().contains_key("retry-after"))
    );
    // Even the right password waits now.
    let right = app.try_login("ana@example.com", PASSWORD).await;
    assert_error(right, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn a_right_password_releases_its_counted_attempt() {
    let app = TestApp::spawn_with(|c| c.rate_limit.login_per_ip_per_minute = 1000).await;
    app.register("ana@example.com").await;
    // Ten good logins in a row: counted before the hash, each is released when it succeeds.
    for _ in 0..10 {
        app.login("ana@example.com").await;
    }
}

#[tokio::test]
async fn junk_login_emails_are_422_and_leave_no_trace() {
    let app = TestApp::spawn_with(|c| c.rate_limit.login_per_ip_per_minute = 1000).await;
    // About a megabyte: as much as the body limit lets through.
    let huge = format!("{}@example.com", "a".repeat(1_000_000));
    let long = format!("{}@{}.com", "a".repeat(60), "b".repeat(200)); // 265 bytes
    let started = Instant::now();
    for email in [huge.as_str(), long.as_str(), "not-an-email", "a@b"] {
        for _ in 0..10 {
            let response = app.try_login(email, "wrong-pass").await;
            let error = assert_error(
                response,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            )
            .await;
            assert!(error["details"]["email"].is_array(), "{error}");
        }
    }
    // Refused before any hashing or lookup, and nothing was remembered for them.
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(app.state.auth.throttle.tracked(), 0);
    // A well-formed unknown email is tracked once, whatever its length.
    let fine = format!("{}@example.com", "g".repeat(64));
    for _ in 0..3 {
        let response = app.try_login(&fine, "wrong-pass").await;
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    assert_eq!(app.state.auth.throttle.tracked(), 1);
    // The other routes that take an email say 422 too.
    for path in ["/api/v1/auth/register", "/api/v1/auth/forgot-password"] {
        let response = app
            .post_json(path, &json!({"email": huge, "password": PASSWORD}))
            .await;
        assert_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
}

#[tokio::test]
async fn look_alike_emails_are_one_account() {
    let app = TestApp::spawn().await;
    let precomposed = "jos\u{e9}@example.com";
    let decomposed = "jose\u{301}@example.com";
    let ana = app.register(precomposed).await;
    assert_eq!(ana.user["email"], precomposed);
    let again = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": decomposed, "password": PASSWORD}),
        )
        .await;
    assert_error(again, StatusCode::CONFLICT, "email_taken").await;
    let upper = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": "JOSE\u{301}@EXAMPLE.COM", "password": PASSWORD}),
        )
        .await;
    assert_error(upper, StatusCode::CONFLICT, "email_taken").await;
    // Either form signs in to the one account, which keeps the composed form.
    for email in [precomposed, decomposed] {
        let session = app.login(email).await;
        assert_eq!(session.user["id"], ana.user["id"]);
        assert_eq!(session.user["email"], precomposed);
    }
    // A decomposed form is stored composed.
    let bob = app.register("bjo\u{308}rn@example.com").await;
    assert_eq!(bob.user["email"], "bj\u{f6}rn@example.com");
}

#[tokio::test]
async fn an_email_stored_before_normalization_signs_in_after_an_upgrade() {
    let app = TestApp::spawn().await;
    let ana = app.register("ana@example.com").await;
    // The database of an older server: a decomposed email, stored as it was typed.
    app.state
        .db
        .write(|tx| {
            tx.execute(
                "UPDATE users SET email = ?1 WHERE email = 'ana@example.com'",
                ["jose\u{301}@example.com"],
            )?;
            tx.execute("DELETE FROM server_meta WHERE key = 'emails_nfc'", [])?;
            Ok(())
        })
        .await
        .unwrap();
    let app = app.restart().await;
    for email in ["jos\u{e9}@example.com", "jose\u{301}@example.com"] {
        let session = app.login(email).await;
        assert_eq!(session.user["id"], ana.user["id"]);
        assert_eq!(session.user["email"], "jos\u{e9}@example.com");
    }
}

async fn reset_token(
    app: &TestApp,
    user: &Value,
    purpose: persona::features::accounts::Purpose,
) -> String {
    persona::features::accounts::issue_user_token(&app.state, user["id"].as_str().unwrap(), purpose)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_reset_token_stops_working_after_a_password_or_email_change() {
    use persona::features::accounts::Purpose;
    let app = TestApp::spawn().await;
    let ana = app.register("ana@example.com").await;

    let token = reset_token(&app, &ana.user, Purpose::ResetPassword).await;
    app.call(Method::POST, "/api/v1/auth/change-password")
        .bearer(&ana.access)
        .json(&json!({"currentPassword": PASSWORD, "newPassword": "changed-pass-1"}))
        .expect(StatusCode::NO_CONTENT)
        .await;
    let stale = app
        .post_json(
            "/api/v1/auth/reset-password",
            &json!({"token": token, "newPassword": "attacker-pass"}),
        )
        .await;
    assert_error(stale, StatusCode::UNAUTHORIZED, "invalid_token").await;

    let token = reset_token(&app, &ana.user, Purpose::ResetPassword).await;
    let verify = reset_token(&app, &ana.user, Purpose::VerifyEmail).await;
    app.call(Method::PUT, "/api/v1/auth/profile")
        .bearer(&ana.access)
        .json(&json!({"email": "ana2@example.com", "currentPassword": "changed-pass-1"}))
        .expect(StatusCode::OK)
        .await;
    let stale = app
        .post_json(
            "/api/v1/auth/reset-password",
            &json!({"token": token, "newPassword": "attacker-pass"}),
        )
        .await;
    assert_error(stale, StatusCode::UNAUTHORIZED, "invalid_token").await;
    // A verification token mailed to the old address does not verify the new one.
    let stale = app
        .post_json("/api/v1/auth/verify-email", &json!({"token": verify}))
        .await;
    assert_error(stale, StatusCode::UNAUTHORIZED, "invalid_token").await;

    // A token issued after the change works.
    let token = reset_token(&app, &ana.user, Purpose::ResetPassword).await;
    let fresh = app
        .post_json(
            "/api/v1/auth/reset-password",
            &json!({"token": token, "newPassword": "after-reset-1"}),
        )
        .await;
    assert_eq!(fresh.status(), StatusCode::NO_CONTENT);
}

/// Ends bob's sessions behind the server's back, as another process (the admin CLI) would:
/// the server sees it within `SESSION_CACHE_TTL`, or at once if something evicts bob's cached
/// session state.
async fn revoke_behind_the_cache(app: &TestApp, email: &'static str) {
    app.state
        .db
        .write(move |tx| {
            tx.execute(
                "UPDATE sessions SET revoked_at = 1
                 WHERE user_id = (SELECT id FROM users WHERE email = ?1)",
                [email],
            )?;
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn one_users_password_change_or_token_reuse_evicts_only_their_sessions() {
    let app = TestApp::spawn().await;
    let ana = app.register("ana@example.com").await;
    let ana_other = app.login("ana@example.com").await;

    // Password change: ana's other session ends at once, bob's cached state is untouched.
    let bob = app.register("bob@example.com").await;
    let started = Instant::now();
    app.call(Method::GET, "/api/v1/auth/me")
        .bearer(&bob.access)
        .expect(StatusCode::OK)
        .await;
    revoke_behind_the_cache(&app, "bob@example.com").await;
    app.call(Method::POST, "/api/v1/auth/change-password")
        .bearer(&ana.access)
        .json(&json!({"currentPassword": PASSWORD, "newPassword": "changed-pass-1"}))
        .expect(StatusCode::NO_CONTENT)
        .await;
    let bob_after = app.get_as(&bob.access, "/api/v1/auth/me").await.status();
    assert_error(
        app.get_as(&ana_other.access, "/api/v1/auth/me").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    // Past the cache lifetime bob's answer says nothing about the eviction.
    if started.elapsed() < persona::auth::SESSION_CACHE_TTL {
        assert_eq!(
            bob_after,
            StatusCode::OK,
            "bob's cached session was flushed"
        );
    }

    // Refresh-token reuse: the same for ana's session.
    let bob = app.login("bob@example.com").await;
    let started = Instant::now();
    app.call(Method::GET, "/api/v1/auth/me")
        .bearer(&bob.access)
        .expect(StatusCode::OK)
        .await;
    revoke_behind_the_cache(&app, "bob@example.com").await;
    expect_json(
        app.post_json(
            "/api/v1/auth/refresh",
            &json!({"refreshToken": ana.refresh}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let reused = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({"refreshToken": ana.refresh}),
        )
        .await;
    assert_error(reused, StatusCode::UNAUTHORIZED, "token_reused").await;
    let bob_after = app.get_as(&bob.access, "/api/v1/auth/me").await.status();
    assert_error(
        app.get_as(&ana.access, "/api/v1/auth/me").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    if started.elapsed() < persona::auth::SESSION_CACHE_TTL {
        assert_eq!(
            bob_after,
            StatusCode::OK,
            "bob's cached session was flushed"
        );
    }
}

#[tokio::test]
async fn ipv6_clients_are_limited_per_64_network() {
    let app = TestApp::spawn_with(|c| {
        c.server.trusted_proxies = vec!["127.0.0.1/32".into()];
        c.rate_limit.per_ip_per_minute = 3;
    })
    .await;
    let health_from = |ip: &'static str| {
        app.call(Method::GET, "/health")
            .header("x-forwarded-for", ip)
            .send()
    };
    // Four addresses of one /64 share its three requests a minute.
    for ip in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:abcd::3"] {
        assert_eq!(health_from(ip).await.status(), StatusCode::OK, "{ip}");
    }
    let hopped = health_from("2001:db8:1:2:ffff:ffff:ffff:fffe").await;
    assert_error(hopped, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // The next /64 is another client; IPv4 clients keep a limit per address.
    assert_eq!(
        health_from("2001:db8:1:3::1").await.status(),
        StatusCode::OK
    );
    assert_eq!(health_from("198.51.100.7").await.status(), StatusCode::OK);
    assert_eq!(health_from("198.51.100.8").await.status(), StatusCode::OK);
}
