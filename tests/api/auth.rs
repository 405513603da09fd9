//! SPEC section 3: accounts, sessions and tokens, as the app uses them.

use axum::{Router, routing::get};
use persona::{app::AppState, auth::AdminUser};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, assert_error, expect_json};

#[tokio::test]
async fn register_answers_the_user_and_a_token_pair() {
    let app = TestApp::spawn().await;
    let body = expect_json(
        app.post_json(
            "/api/v1/auth/register",
            &json!({"email": "  Ana@Example.com ", "password": PASSWORD, "displayName": "Ana"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(body["expiresIn"], 900);
    assert!(body["accessToken"].as_str().unwrap().split('.').count() == 3);
    assert!(body["refreshToken"].as_str().unwrap().len() >= 43);
    let user = &body["user"];
    assert_eq!(user["email"], "ana@example.com");
    assert_eq!(user["displayName"], "Ana");
    assert_eq!(user["role"], "user");
    assert_eq!(user["emailVerified"], false);
    assert_eq!(user["deviceCount"], 0);
    assert!(uuid::Uuid::parse_str(user["id"].as_str().unwrap()).is_ok());
    assert!(user.get("passwordHash").is_none() && !body.to_string().contains("argon2"));
}

#[tokio::test]
async fn register_validates_and_refuses_a_taken_email() {
    let app = TestApp::spawn().await;
    let response = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": "nope", "password": "short"}),
        )
        .await;
    let error = assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(error["details"]["email"].is_array(), "{error}");
    assert!(error["details"]["password"].is_array(), "{error}");

    app.register("ana@example.com").await;
    let again = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": "ANA@example.com", "password": PASSWORD}),
        )
        .await;
    assert_error(again, StatusCode::CONFLICT, "email_taken").await;

    let missing = app
        .post_json("/api/v1/auth/register", &json!({"email": "b@example.com"}))
        .await;
    assert_error(
        missing,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn login_does_not_tell_unknown_emails_from_wrong_passwords() {
    let app = TestApp::spawn().await;
    app.register("ana@example.com").await;
    let wrong = app.try_login("ana@example.com", "wrong-password").await;
    let wrong = assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let unknown = app.try_login("bob@example.com", "wrong-password").await;
    let unknown = assert_error(unknown, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(wrong["message"], unknown["message"]);

    let session = app.login("ANA@example.com").await;
    assert_eq!(session.user["email"], "ana@example.com");
}

#[tokio::test]
async fn me_and_profile_need_a_valid_token() {
    let app = TestApp::spawn().await;
    let session = app.register("ana@example.com").await;
    for path in ["/api/v1/auth/me", "/api/v1/auth/profile", "/api/auth/me"] {
        let response = app.get_as(&session.access, path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["user"]["email"], "ana@example.com");
        assert!(body["user"]["createdAt"].as_str().unwrap().ends_with('Z'));
    }
    assert_error(
        app.get("/api/v1/auth/me").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert_error(
        app.get_as("garbage", "/api/v1/auth/me").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let basic = app
        .client
        .get(app.url("/api/v1/auth/me"))
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    assert_error(basic, StatusCode::UNAUTHORIZED, "unauthorized").await;

    // A token from another server (other keys) is refused.
    let other = TestApp::spawn().await;
    let foreign = other.register("ana@example.com").await;
    assert_error(
        app.get_as(&foreign.access, "/api/v1/auth/me").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn an_unsigned_token_is_refused() {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let app = TestApp::spawn().await;
    let session = app.register("ana@example.com").await;
    let payload = session.access.split('.').nth(1).unwrap();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let forged = format!("{header}.{payload}.");
    assert_error(
        app.get_as(&forged, "/api/v1/auth/me").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_session() {
    let app = TestApp::spawn().await;
    let first = app.register("ana@example.com").await;
    let second = expect_json(
        app.post_json(
            "/api/v1/auth/refresh",
            &json!({"refreshToken": first.refresh}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let second_refresh = second["refreshToken"].as_str().unwrap().to_owned();
    let second_access = second["accessToken"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, first.refresh);
    assert_eq!(
        app.get_as(&second_access, "/api/v1/auth/me").await.status(),
        StatusCode::OK
    );

    // The first token again: reuse. The whole session ends, new tokens included.
    let reused = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({"refreshToken": first.refresh}),
        )
        .await;
    assert_error(reused, StatusCode::UNAUTHORIZED, "token_reused").await;
    let after = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({"refreshToken": second_refresh}),
        )
        .await;
    assert_error(after, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_error(
        app.get_as(&second_access, "/api/v1/auth/me").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;

    let unknown = app
        .post_json("/api/v1/auth/refresh", &json!({"refreshToken": "made-up"}))
        .await;
    assert_error(unknown, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn refresh_grace_lets_a_concurrent_retry_through() {
    let app =
        TestApp::spawn_with(|c| c.auth.refresh_grace = std::time::Duration::from_secs(30)).await;
    let first = app.register("ana@example.com").await;
    let a = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({"refreshToken": first.refresh}),
        )
        .await;
    let b = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({"refreshToken": first.refresh}),
        )
        .await;
    assert_eq!(a.status(), StatusCode::OK);
    assert_eq!(b.status(), StatusCode::OK);
}

#[tokio::test]
async fn logout_ends_the_access_token_at_once() {
    let app = TestApp::spawn().await;
    let session = app.register("ana@example.com").await;
    let other = app.login("ana@example.com").await;
    assert_eq!(
        app.get_as(&session.access, "/api/v1/auth/me")
            .await
            .status(),
        StatusCode::OK
    );
    let response = app
        .post_as(&session.access, "/api/v1/auth/logout", &json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_error(
        app.get_as(&session.access, "/api/v1/auth/me").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let refresh = app
        .post_json(
            "/api/v1/auth/refresh",
            &json!({"refreshToken": session.refresh}),
        )
        .await;
    assert_error(refresh, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // Other sessions live on.
    assert_eq!(
        app.get_as(&other.access, "/api/v1/auth/me").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn logout_all_ends_every_session() {
    let app = TestApp::spawn().await;
    let a = app.register("ana@example.com").await;
    let b = app.login("ana@example.com").await;
    let response = app
        .post_as(&a.access, "/api/v1/auth/logout-all", &json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    for token in [&a.access, &b.access] {
        assert_eq!(
            app.get_as(token, "/api/v1/auth/me").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn sessions_are_listed_and_revocable_by_their_owner_only() {
    let app = TestApp::spawn().await;
    let first = app.register("ana@example.com").await;
    let second = app.login("ana@example.com").await;
    let list = app
        .call(Method::GET, "/api/v1/auth/sessions")
        .bearer(&first.access)
        .expect(StatusCode::OK)
        .await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items.iter().filter(|s| s["current"] == true).count(), 1);
    let other_id = items.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(items.iter().any(|s| s["deviceName"] == "test"));

    // Someone else cannot see or end it.
    let mallory = app.register("mallory@example.com").await;
    let response = app
        .client
        .delete(app.url(&format!("/api/v1/auth/sessions/{other_id}")))
        .bearer_auth(&mallory.access)
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(
        app.get_as(&second.access, "/api/v1/auth/me").await.status(),
        StatusCode::OK
    );

    let response = app
        .client
        .delete(app.url(&format!("/api/v1/auth/sessions/{other_id}")))
        .bearer_auth(&first.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_as(&second.access, "/api/v1/auth/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn change_password_keeps_this_session_and_ends_the_others() {
    let app = TestApp::spawn().await;
    let mine = app.register("ana@example.com").await;
    let other = app.login("ana@example.com").await;
    let wrong = app
        .post_as(
            &mine.access,
            "/api/v1/auth/change-password",
            &json!({"currentPassword": "nope-nope", "newPassword": "brand-new-pass"}),
        )
        .await;
    assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let weak = app
        .post_as(
            &mine.access,
            "/api/v1/auth/change-password",
            &json!({"currentPassword": PASSWORD, "newPassword": "short"}),
        )
        .await;
    assert_error(weak, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;

    let ok = app
        .post_as(
            &mine.access,
            "/api/v1/auth/change-password",
            &json!({"currentPassword": PASSWORD, "newPassword": "brand-new-pass"}),
        )
        .await;
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_as(&mine.access, "/api/v1/auth/me").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get_as(&other.access, "/api/v1/auth/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let login = app.try_login("ana@example.com", "brand-new-pass").await;
    assert_eq!(login.status(), StatusCode::OK);
}

#[tokio::test]
async fn profile_updates_name_and_email_with_the_current_password() {
    let app = TestApp::spawn().await;
    let ana = app.register("ana@example.com").await;
    app.register("bob@example.com").await;
    let put = |body: Value| {
        let app = &app;
        let token = ana.access.clone();
        async move {
            app.client
                .put(app.url("/api/v1/auth/profile"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let renamed: Value = put(json!({"displayName": "Ana B."}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(renamed["user"]["displayName"], "Ana B.");

    let no_password = put(json!({"email": "ana2@example.com"})).await;
    let error = assert_error(
        no_password,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(error["details"]["currentPassword"].is_array());
    let wrong = put(json!({"email": "ana2@example.com", "currentPassword": "wrong-pass"})).await;
    assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let taken = put(json!({"email": "bob@example.com", "currentPassword": PASSWORD})).await;
    assert_error(taken, StatusCode::CONFLICT, "email_taken").await;
    let moved: Value = put(json!({"email": "Ana2@example.com", "currentPassword": PASSWORD}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(moved["user"]["email"], "ana2@example.com");
    assert_eq!(moved["user"]["displayName"], "Ana B.");
}

#[tokio::test]
async fn verify_reports_the_token_expiry() {
    let app = TestApp::spawn().await;
    let ana = app.register("ana@example.com").await;
    let body = app
        .call(Method::POST, "/api/v1/auth/verify")
        .bearer(&ana.access)
        .json(&json!({}))
        .expect(StatusCode::OK)
        .await;
    assert_eq!(body["valid"], true);
    assert_eq!(body["user"]["email"], "ana@example.com");
    let expires = time::OffsetDateTime::parse(
        body["expiresAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = expires - time::OffsetDateTime::now_utc();
    assert!(
        left.whole_seconds() > 800 && left.whole_seconds() <= 900,
        "{left}"
    );
}

#[tokio::test]
async fn forgot_password_is_always_202_and_reset_tokens_are_single_use() {
    let app = TestApp::spawn().await;
    let ana = app.register("ana@example.com").await;
    for email in ["ana@example.com", "nobody@example.com"] {
        let response = app
            .post_json("/api/v1/auth/forgot-password", &json!({"email": email}))
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    // Without SMTP the admin issues the token.
    let user_id = ana.user["id"].as_str().unwrap();
    let token = persona::features::accounts::issue_user_token(
        &app.state,
        user_id,
        persona::features::accounts::Purpose::ResetPassword,
    )
    .await
    .unwrap();
    let reset = app
        .post_json(
            "/api/v1/auth/reset-password",
            &json!({"token": token, "newPassword": "after-reset-1"}),
        )
        .await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_as(&ana.access, "/api/v1/auth/me").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let again = app
        .post_json(
            "/api/v1/auth/reset-password",
            &json!({"token": token, "newPassword": "after-reset-2"}),
        )
        .await;
    assert_error(again, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let login = app.try_login("ana@example.com", "after-reset-1").await;
    assert_eq!(login.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_disabled_account_cannot_sign_in_or_use_its_tokens() {
    let app = TestApp::spawn().await;
    let ana = app.register("ana@example.com").await;
    app.sql(
        "UPDATE users SET disabled = 1 WHERE email = ?1",
        "ana@example.com",
    )
    .await;
    assert_error(
        app.get_as(&ana.access, "/api/v1/auth/me").await,
        StatusCode::FORBIDDEN,
        "account_disabled",
    )
    .await;
    let login = app.try_login("ana@example.com", PASSWORD).await;
    assert_error(login, StatusCode::FORBIDDEN, "account_disabled").await;
}

#[tokio::test]
async fn admin_routes_refuse_users() {
    let routes: Router<AppState> = Router::new().route(
        "/test/admin",
        get(|AdminUser(user): AdminUser| async move { user.user_id.to_string() }),
    );
    let app = TestApp::spawn_with_routes(|_| {}, routes).await;
    let ana = app.register("ana@example.com").await;
    assert_error(
        app.get_as(&ana.access, "/test/admin").await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    app.sql(
        "UPDATE users SET role = 'admin' WHERE email = ?1",
        "ana@example.com",
    )
    .await;
    let response = app.get_as(&ana.access, "/test/admin").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.text().await.unwrap(),
        ana.user["id"].as_str().unwrap()
    );
}

#[tokio::test]
async fn a_password_hash_is_upgraded_when_the_parameters_change() {
    let mut app = TestApp::spawn().await;
    app.register("ana@example.com").await;
    app.stop().await;
    let mut config = app.state.config.clone();
    config.auth.argon2_memory_kib = 2048;
    let dir = std::mem::replace(&mut app.dir, tempfile::tempdir().unwrap());
    let stronger = TestApp::spawn_in(dir, move |c| *c = config).await;
    stronger.login("ana@example.com").await;
    let hash: String = stronger
        .state
        .db
        .read(|c| Ok(c.query_row("SELECT password_hash FROM users", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert!(hash.contains("m=2048"), "{hash}");
}
