//! SPEC section 6: AI scripts.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error};

#[tokio::test]
async fn defaults_are_seeded_and_listed_with_an_etag() {
    let app = TestApp::spawn().await;
    let s = app.register("ana@example.com").await;
    let response = app.get_as(&s.access, "/api/v1/ai/scripts").await;
    assert_eq!(response.status(), StatusCode::OK);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let names: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "chat_persona",
            "crisis_check",
            "home_content",
            "mood_analysis",
            "psychology_analysis"
        ]
    );
    let mood = &body["items"][3];
    assert_eq!(mood["version"], "1");
    assert_eq!(mood["isActive"], true);
    assert!(mood["content"]["system"].as_str().unwrap().contains("JSON"));

    let cached = app
        .client
        .get(app.url("/api/v1/ai/scripts"))
        .bearer_auth(&s.access)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(cached.headers()["etag"], etag.as_str());

    // A restart does not seed twice.
    let app = app.restart().await;
    let again = app
        .call(Method::GET, "/api/v1/ai/scripts")
        .bearer(&s.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(again["items"].as_array().unwrap().len(), 5);
    // Anonymous callers get nothing.
    assert_error(
        app.get("/api/v1/ai/scripts").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn versions_activation_and_deactivation() {
    let app = TestApp::spawn().await;
    let root = app.admin("root@example.com").await;
    let user = app.register("ana@example.com").await;
    let etag_before = app
        .get_as(&user.access, "/api/v1/ai/scripts")
        .await
        .headers()["etag"]
        .clone();

    let created = app
        .post_as(
            &root.access,
            "/api/v1/ai/scripts",
            &json!({"name": "greeting", "description": "hello", "content": {"template": "Hi {{name}}"}}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(
        (created["version"].clone(), created["isActive"].clone()),
        (json!("1"), json!(true))
    );

    // A second version is inactive until activated.
    let v2 = app
        .call(Method::POST, "/api/v1/ai/scripts")
        .bearer(&root.access)
        .json(&json!({"name": "greeting", "content": {"template": "Hello {{name}}"}}))
        .expect(StatusCode::CREATED)
        .await;
    assert_eq!(
        (v2["version"].clone(), v2["isActive"].clone()),
        (json!("2"), json!(false))
    );
    let active = app
        .call(Method::GET, "/api/v1/ai/scripts/greeting")
        .bearer(&user.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(active["version"], "1");
    let pinned = app
        .call(Method::GET, "/api/v1/ai/scripts/greeting?version=2")
        .bearer(&user.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(pinned["content"]["template"], "Hello {{name}}");
    assert_error(
        app.get_as(&user.access, "/api/v1/ai/scripts/greeting?version=9")
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    let switched = app
        .put_as(
            &root.access,
            "/api/v1/ai/scripts/greeting/active",
            &json!({"version": 2}),
        )
        .await;
    assert_eq!(switched.status(), StatusCode::OK);
    let active = app
        .call(Method::GET, "/api/v1/ai/scripts/greeting")
        .bearer(&user.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(active["version"], "2");
    let etag_after = app
        .get_as(&user.access, "/api/v1/ai/scripts")
        .await
        .headers()["etag"]
        .clone();
    assert_ne!(etag_before, etag_after, "the list changed, so did its ETag");

    // Duplicate version: 409.
    assert_error(
        app.post_as(
            &root.access,
            "/api/v1/ai/scripts",
            &json!({"name": "greeting", "version": 2, "content": {"system": "x"}}),
        )
        .await,
        StatusCode::CONFLICT,
        "already_exists",
    )
    .await;

    let gone = app
        .delete_as(&root.access, "/api/v1/ai/scripts/greeting")
        .await;
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    assert_error(
        app.get_as(&user.access, "/api/v1/ai/scripts/greeting")
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.put_as(
            &root.access,
            "/api/v1/ai/scripts/greeting/active",
            &json!({"version": 9}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.delete_as(&root.access, "/api/v1/ai/scripts/nothing")
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.get_as(&user.access, "/api/v1/ai/scripts/Not-Valid")
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn only_admins_change_scripts() {
    let app = TestApp::spawn().await;
    let user = app.register("ana@example.com").await;
    assert_error(
        app.post_as(
            &user.access,
            "/api/v1/ai/scripts",
            &json!({"name": "x", "content": {"system": "x"}}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_error(
        app.put_as(
            &user.access,
            "/api/v1/ai/scripts/chat_persona/active",
            &json!({"version": 1}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_error(
        app.delete_as(&user.access, "/api/v1/ai/scripts/chat_persona")
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
}

#[tokio::test]
async fn invalid_scripts_are_422() {
    let app = TestApp::spawn().await;
    let root = app.admin("root@example.com").await;
    for (body, field) in [
        (
            json!({"name": "Bad Name", "content": {"system": "x"}}),
            "name",
        ),
        (json!({"name": "ok", "content": {}}), "content"),
        (json!({"name": "ok", "content": "text"}), "content"),
        (
            json!({"name": "ok", "content": {"system": "x", "temperature": 5}}),
            "content",
        ),
        (
            json!({"name": "ok", "content": {"system": "x", "unknown": 1}}),
            "content",
        ),
        (
            json!({"name": "ok", "version": "1 0", "content": {"system": "x"}}),
            "version",
        ),
    ] {
        let error = assert_error(
            app.post_as(&root.access, "/api/v1/ai/scripts", &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert!(error["details"].get(field).is_some(), "{body}: {error}");
    }
}

#[test]
fn admin_scripts_seed_list_export_import() {
    let run = |dir: &std::path::Path, args: &[&str]| {
        let output = crate::helpers::persona_command(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let dir = tempfile::tempdir().unwrap();
    // The first start seeded the defaults: seeding again adds nothing.
    let seeded = run(dir.path(), &["admin", "scripts", "seed"]);
    assert!(
        seeded.contains("0 script version(s) added, 5 already present"),
        "{seeded}"
    );
    let list = run(dir.path(), &["admin", "scripts", "list"]);
    assert!(
        list.contains("mood_analysis") && list.contains("yes"),
        "{list}"
    );

    // A directory of new scripts.
    let extra = dir.path().join("extra");
    std::fs::create_dir(&extra).unwrap();
    std::fs::write(
        extra.join("journal.json"),
        r#"{"name": "journal_prompt", "version": 1, "content": {"template": "Write about {{topic}}"}}"#,
    )
    .unwrap();
    let added = run(
        dir.path(),
        &["admin", "scripts", "seed", "--dir", extra.to_str().unwrap()],
    );
    assert!(added.contains("added journal_prompt v1"), "{added}");

    // Export, import into another server's database.
    let file = dir.path().join("scripts.json");
    let exported = run(
        dir.path(),
        &[
            "admin",
            "scripts",
            "export",
            "--out",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        exported.contains("exported 6 script version(s)"),
        "{exported}"
    );
    let other = tempfile::tempdir().unwrap();
    let imported = run(
        other.path(),
        &["admin", "scripts", "import", file.to_str().unwrap()],
    );
    assert!(
        imported.contains("1 script version(s) added, 5 already present"),
        "{imported}"
    );
    assert!(run(other.path(), &["admin", "scripts", "list"]).contains("journal_prompt"));
}

#[tokio::test]
async fn versions_are_strings_bumped_in_their_last_number() {
    let app = TestApp::spawn().await;
    let root = app.admin("root@example.com").await;
    let create = |body: Value| {
        app.call(Method::POST, "/api/v1/ai/scripts")
            .bearer(&root.access)
            .json(&body)
    };
    let first = create(json!({"name": "semver", "version": "1.0.0", "content": {"system": "a"}}))
        .expect(StatusCode::CREATED)
        .await;
    assert_eq!(first["version"], "1.0.0");
    let next = create(json!({"name": "semver", "content": {"system": "b"}}))
        .expect(StatusCode::CREATED)
        .await;
    assert_eq!(next["version"], "1.0.1");
    create(json!({"name": "semver", "version": "1.10.0", "content": {"system": "c"}}))
        .expect(StatusCode::CREATED)
        .await;
    create(json!({"name": "semver", "version": "1.9.9", "content": {"system": "d"}}))
        .expect(StatusCode::CREATED)
        .await;
    // The newest by precedence is 1.10.0, though 1.9.9 came later.
    let bumped = create(json!({"name": "semver", "content": {"system": "e"}}))
        .expect(StatusCode::CREATED)
        .await;
    assert_eq!(bumped["version"], "1.10.1");

    let dated =
        create(json!({"name": "monthly", "version": "2025.07", "content": {"system": "a"}}))
            .expect(StatusCode::CREATED)
            .await;
    assert_eq!(dated["version"], "2025.07");
    let bumped = create(json!({"name": "monthly", "content": {"system": "b"}}))
        .expect(StatusCode::CREATED)
        .await;
    assert_eq!(bumped["version"], "2025.08");
    let fetched = app
        .call(Method::GET, "/api/v1/ai/scripts/monthly?version=2025.08")
        .bearer(&root.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(fetched["content"]["system"], "b");

    create(json!({"name": "named", "version": "beta", "content": {"system": "a"}}))
        .expect(StatusCode::CREATED)
        .await;
    assert_error(
        create(json!({"name": "named", "content": {"system": "b"}}))
            .send()
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
}
