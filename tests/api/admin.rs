//! SPEC section 13: the admin console's API (`/api/v1/admin`) and its page (`/admin`). The
//! browser drives the page in `scripts/console-browser.sh`; here every rule is checked over
//! HTTP.

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, assert_error, expect_json};

/// `POST /admin/users/{id}/{action}` as `token`, whatever it answers.
async fn act(app: &TestApp, token: &str, id: &str, action: &str) -> reqwest::Response {
    app.post_as(
        token,
        &format!("/api/v1/admin/users/{id}/{action}"),
        &json!({}),
    )
    .await
}

const GETS: [&str; 5] = [
    "/api/v1/admin/overview",
    "/api/v1/admin/users",
    "/api/v1/admin/usage",
    "/api/v1/admin/scripts",
    "/api/v1/admin/crisis",
];

fn actions(id: &str) -> Vec<String> {
    ["disable", "enable", "promote", "reset-token"]
        .iter()
        .map(|a| format!("/api/v1/admin/users/{id}/{a}"))
        .collect()
}

#[tokio::test]
async fn admin_routes_are_401_without_a_token_and_403_for_users() {
    let app = TestApp::spawn().await;
    let user = app.register("ana@example.com").await;
    let id = user.user["id"].as_str().unwrap().to_owned();
    for path in GETS {
        assert_error(
            app.get(path).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
        assert_error(
            app.get_as(&user.access, path).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
    }
    for path in actions(&id) {
        assert_error(
            app.call(Method::POST, &path).send().await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
        assert_error(
            app.post_as(&user.access, &path, &json!({})).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
    }
    // The user was not changed by any of it.
    let me = expect_json(
        app.get_as(&user.access, "/api/v1/auth/me").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(me["user"]["role"], "user");
}

/// Records an AI call of `user_id` now, as the proxy's meter does.
async fn usage_row(app: &TestApp, user_id: &str, model: &'static str, tokens: i64) {
    let user_id = user_id.to_owned();
    app.state
        .db
        .write(move |tx| {
            tx.execute(
                "INSERT INTO ai_usage (user_id, endpoint, model, status, prompt_tokens,
                     completion_tokens, total_tokens, latency_ms, day, created_at)
                 VALUES (?1, 'chat', ?2, 'ok', ?3, ?3, 2 * ?3, 100, date('now'), unixepoch())",
                rusqlite::params![user_id, model, tokens],
            )?;
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn the_overview_reports_the_server_at_a_glance() {
    let app = TestApp::spawn().await;
    let root = app.admin("root@example.com").await;
    let ana = app.register("ana@example.com").await;
    app.register("ben@example.com").await;
    app.sql(
        "UPDATE users SET disabled = 1 WHERE email = ?1",
        "ben@example.com",
    )
    .await;
    usage_row(&app, ana.user["id"].as_str().unwrap(), "m1", 10).await;
    usage_row(&app, ana.user["id"].as_str().unwrap(), "m2", 5).await;
    app.post_as(
        &ana.access,
        "/api/v1/crisis/check",
        &json!({"text": "I'm going to kill myself tonight, I have the pills ready."}),
    )
    .await;

    let o = expect_json(
        app.get_as(&root.access, "/api/v1/admin/overview").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(o["version"], env!("CARGO_PKG_VERSION"));
    assert!(o["uptimeSeconds"].is_u64());
    assert_eq!(o["database"], "ok");
    assert_eq!(o["ai"]["upstream"], "unconfigured");
    assert_eq!(o["users"], json!({"total": 3, "admins": 1, "disabled": 1}));
    // This test's own requests at least (the counter is per process, shared by tests).
    assert!(o["requestsLastMinute"].as_u64().unwrap() >= 6, "{o}");
    assert_eq!(o["aiToday"], json!({"requests": 2, "totalTokens": 30}));
    assert_eq!(o["crisisEventsToday"], 1);
}

#[tokio::test]
async fn users_are_searched_and_paged_by_email() {
    let app = TestApp::spawn().await;
    let root = app.admin("root@example.com").await;
    for email in ["cara@other.org", "ana@example.com", "ben@example.com"] {
        app.register(email).await;
    }
    let found = expect_json(
        app.get_as(&root.access, "/api/v1/admin/users?q=EXAMPLE.com&limit=2")
            .await,
        StatusCode::OK,
    )
    .await;
    let emails = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["email"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(emails(&found), ["ana@example.com", "ben@example.com"]);
    assert!(found["items"][0].get("passwordHash").is_none());
    assert_eq!(found["items"][0]["role"], "user");
    let cursor = found["nextCursor"].as_str().unwrap();
    let rest = expect_json(
        app.get_as(
            &root.access,
            &format!("/api/v1/admin/users?q=example.com&limit=2&cursor={cursor}"),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(emails(&rest), ["root@example.com"]);
    assert!(rest["nextCursor"].is_null());
    for bad in ["limit=0", "limit=101"] {
        assert_error(
            app.get_as(&root.access, &format!("/api/v1/admin/users?{bad}"))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    assert_error(
        app.get_as(&root.access, "/api/v1/admin/users?cursor=nonsense")
            .await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    let long = "x".repeat(201);
    assert_error(
        app.get_as(&root.access, &format!("/api/v1/admin/users?q={long}"))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn disabling_takes_effect_at_once_and_enabling_undoes_it() {
    let app = TestApp::spawn().await;
    let root = app.admin("root@example.com").await;
    let ana = app.register("ana@example.com").await;
    let id = ana.user["id"].as_str().unwrap();
    // The user's token is in use (and cached) before the admin acts.
    expect_json(
        app.get_as(&ana.access, "/api/v1/auth/me").await,
        StatusCode::OK,
    )
    .await;

    let disabled = expect_json(act(&app, &root.access, id, "disable").await, StatusCode::OK).await;
    assert_eq!(disabled["disabled"], true);
    assert_error(
        app.get_as(&ana.access, "/api/v1/auth/me").await,
        StatusCode::FORBIDDEN,
        "account_disabled",
    )
    .await;
    assert_error(
        app.try_login("ana@example.com", PASSWORD).await,
        StatusCode::FORBIDDEN,
        "account_disabled",
    )
    .await;

    let enabled = expect_json(act(&app, &root.access, id, "enable").await, StatusCode::OK).await;
    assert_eq!(enabled["disabled"], false);
    // Disabling ended the old sessions; a new sign-in works.
    let again = app.login("ana@example.com").await;
    expect_json(
        app.get_as(&again.access, "/api/v1/auth/me").await,
        StatusCode::OK,
    )
    .await;

    // An administrator cannot lock themselves out.
    let own = root.user["id"].as_str().unwrap();
    let error = assert_error(
        act(&app, &root.access, own, "disable").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(error["details"]["id"].is_array());
    // Unknown and malformed ids name no account.
    for id in ["00000000-0000-4000-8000-000000000000", "not-a-uuid"] {
        for path in actions(id) {
            assert_error(
                app.post_as(&root.access, &path, &json!({})).await,
                StatusCode::NOT_FOUND,
                "not_found",
            )
            .await;
        }
    }
}

#[tokio::test]
async fn promotion_and_reset_tokens_work_through_the_api() {
    let app = TestApp::spawn().await;
    let root = app.admin("root@example.com").await;
    let ana = app.register("ana@example.com").await;
    let id = ana.user["id"].as_str().unwrap();

    let promoted = expect_json(act(&app, &root.access, id, "promote").await, StatusCode::OK).await;
    assert_eq!(promoted["role"], "admin");
    let ana_admin = app.login("ana@example.com").await;
    expect_json(
        app.get_as(&ana_admin.access, "/api/v1/admin/overview")
            .await,
        StatusCode::OK,
    )
    .await;

    let reset = expect_json(
        act(&app, &root.access, id, "reset-token").await,
        StatusCode::OK,
    )
    .await;
    assert!(reset["expiresAt"].is_string());
    let token = reset["token"].as_str().unwrap();
    app.call(Method::POST, "/api/v1/auth/reset-password")
        .json(&json!({"token": token, "newPassword": "a brand new password"}))
        .expect(StatusCode::NO_CONTENT)
        .await;
    expect_json(
        app.try_login("ana@example.com", "a brand new password")
            .await,
        StatusCode::OK,
    )
    .await;
}

#[tokio::test]
async fn usage_is_reported_per_day_and_per_user() {
    let app = TestApp::spawn().await;
    let root = app.admin("root@example.com").await;
    let ana = app.register("ana@example.com").await;
    let ben = app.register("ben@example.com").await;
    usage_row(&app, ana.user["id"].as_str().unwrap(), "m1", 10).await;
    usage_row(&app, ben.user["id"].as_str().unwrap(), "m1", 1).await;
    usage_row(&app, ben.user["id"].as_str().unwrap(), "m2", 3).await;
    let r = expect_json(
        app.get_as(&root.access, "/api/v1/admin/usage?days=7").await,
        StatusCode::OK,
    )
    .await;
    let today = time::OffsetDateTime::now_utc().date().to_string();
    assert_eq!(r["byDay"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["byDay"][0]["key"], today);
    assert_eq!(r["byDay"][0]["model"], "m1");
    assert_eq!(r["byDay"][0]["requests"], 2);
    assert_eq!(r["byDay"][0]["totalTokens"], 22);
    let by_user: Vec<(String, String, i64)> = r["byUser"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["key"].as_str().unwrap().to_owned(),
                u["model"].as_str().unwrap().to_owned(),
                u["totalTokens"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by_user,
        [
            ("ana@example.com".into(), "m1".into(), 20),
            ("ben@example.com".into(), "m1".into(), 2),
            ("ben@example.com".into(), "m2".into(), 6),
        ]
    );
    for bad in ["days=0", "days=367", "days=x"] {
        let response = app
            .get_as(&root.access, &format!("/api/v1/admin/usage?{bad}"))
            .await;
        assert!(
            matches!(
                response.status(),
                StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST
            ),
            "{bad}: {}",
            response.status()
        );
    }
}

#[tokio::test]
async fn the_script_catalogue_shows_every_version_and_which_is_active() {
    let app = TestApp::spawn().await;
    let root = app.admin("root@example.com").await;
    let created = expect_json(
        app.post_as(
            &root.access,
            "/api/v1/ai/scripts",
            &json!({"name": "mood_analysis", "version": "9.0.0", "description": "newer",
                    "content": {"system": "s", "template": "{{text}}"}}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(created["isActive"], false);
    let catalog = expect_json(
        app.get_as(&root.access, "/api/v1/admin/scripts").await,
        StatusCode::OK,
    )
    .await;
    let mood = catalog["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "mood_analysis")
        .unwrap()
        .clone();
    let versions = mood["versions"].as_array().unwrap();
    assert!(versions.len() >= 2, "{mood}");
    assert!(
        versions
            .iter()
            .any(|v| v["version"] == "9.0.0" && v["active"] == false)
    );
    assert_ne!(mood["active"], "9.0.0");
    assert!(catalog["items"][0].get("content").is_none());

    app.put_as(
        &root.access,
        "/api/v1/ai/scripts/mood_analysis/active",
        &json!({"version": "9.0.0"}),
    )
    .await;
    let catalog = expect_json(
        app.get_as(&root.access, "/api/v1/admin/scripts").await,
        StatusCode::OK,
    )
    .await;
    let mood = catalog["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "mood_analysis")
        .unwrap()
        .clone();
    assert_eq!(mood["active"], "9.0.0");
    assert_eq!(
        mood["versions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["active"] == true)
            .count(),
        1
    );
}

#[tokio::test]
async fn the_crisis_report_counts_events_and_failed_deliveries_without_text() {
    let app = TestApp::spawn().await;
    let root = app.admin("root@example.com").await;
    let ana = app.register("ana@example.com").await;
    let text = "I'm going to kill myself tonight, the rope is ready.";
    app.post_as(&ana.access, "/api/v1/crisis/check", &json!({"text": text}))
        .await;
    app.post_as(&ana.access, "/api/v1/crisis/check", &json!({"text": text}))
        .await;
    // A webhook delivery that gave up, as the outbox leaves it.
    app.state
        .db
        .write(|tx| {
            tx.execute(
                "INSERT INTO crisis_notifications (event_id, channel, status, attempts,
                     last_attempt_at, last_error)
                 SELECT id, 'webhook', 'failed', 8, unixepoch(), 'the receiver answered 503'
                 FROM crisis_events LIMIT 1",
                [],
            )?;
            Ok(())
        })
        .await
        .unwrap();
    let response = app
        .get_as(&root.access, "/api/v1/admin/crisis?days=1")
        .await;
    let body = response.text().await.unwrap();
    assert!(!body.contains("rope") && !body.contains("kill"), "{body}");
    let r: Value = serde_json::from_str(&body).unwrap();
    let today = time::OffsetDateTime::now_utc().date().to_string();
    assert_eq!(
        r["byDay"],
        json!([{"day": today, "level": "high", "source": "check", "events": 2}])
    );
    let failed = &r["failedDeliveries"][0];
    assert_eq!(failed["channel"], "webhook");
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["attempts"], 8);
    assert_eq!(failed["level"], "high");
    assert_eq!(failed["lastError"], "the receiver answered 503");
}

#[tokio::test]
async fn the_console_is_served_with_a_strict_csp() {
    let app = TestApp::spawn().await;
    for path in ["/admin", "/admin/"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        for needed in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(needed), "{csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        let html = response.text().await.unwrap();
        // No inline script or style: every script is a same-origin file.
        assert!(html.contains(r#"<script type="module" src="/admin/app.js"></script>"#));
        assert_eq!(html.matches("<script").count(), 1);
        assert!(!html.contains("style=") && !html.contains("<style"));
        assert!(!html.contains("http://") && !html.contains("https://"));
    }
    let js = app.get("/admin/app.js").await;
    assert_eq!(js.status(), StatusCode::OK);
    assert!(
        js.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let etag = js.headers()[header::ETAG].to_str().unwrap().to_owned();
    let body = js.text().await.unwrap();
    // The token lives in memory: the script never touches browser storage or cookies.
    for stored in [
        "localStorage",
        "sessionStorage",
        "document.cookie",
        "indexedDB",
        "eval(",
    ] {
        assert!(!body.contains(stored), "{stored}");
    }
    let again = app
        .call(Method::GET, "/admin/app.js")
        .header("if-none-match", &etag)
        .send()
        .await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    for path in ["/admin/app.css", "/admin/icon.svg"] {
        assert_eq!(app.get(path).await.status(), StatusCode::OK, "{path}");
    }
    assert_error(
        app.get("/admin/secrets.toml").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.get("/admin/../persona.db").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}
