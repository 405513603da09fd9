//! SPEC section 4: device sync metadata.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error};

async fn report(
    app: &TestApp,
    token: &str,
    device: &str,
    version: i64,
    hash: &str,
) -> reqwest::Response {
    app.post_as(
        token,
        "/api/v1/sync/status",
        &json!({"deviceId": device, "syncVersion": version, "dataHash": hash}),
    )
    .await
}

#[tokio::test]
async fn a_report_is_stored_and_carries_the_server_epoch() {
    let app = TestApp::spawn().await;
    let s = app.register("ana@example.com").await;
    let response = app
        .post_as(
            &s.access,
            "/api/v1/sync/status",
            &json!({"deviceId": "pixel-7", "syncVersion": 3, "dataHash": "abc123",
                    "deviceName": "Ana's Pixel", "platform": "android"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let epoch = response.headers()["x-server-epoch"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["deviceId"], "pixel-7");
    assert_eq!(body["syncVersion"], 3);
    assert_eq!(body["dataHash"], "abc123");
    assert_eq!(body["deviceName"], "Ana's Pixel");
    assert_eq!(body["platform"], "android");
    assert_eq!(body["isActive"], true);
    assert!(body["lastSyncAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(body["serverEpoch"], epoch.as_str());
    assert_eq!(epoch.len(), 32);

    let one = app
        .call(Method::GET, "/api/v1/sync/status/pixel-7")
        .bearer(&s.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(one["syncVersion"], 3);
    assert_eq!(one["serverEpoch"], epoch.as_str());

    // The user's summary fields follow.
    let me = app
        .call(Method::GET, "/api/v1/auth/me")
        .bearer(&s.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(me["user"]["deviceCount"], 1);
    assert!(me["user"]["lastSyncAt"].is_string());

    // The same routes under /api, and the epoch survives a restart.
    let legacy = app.get_as(&s.access, "/api/sync/status").await;
    assert_eq!(legacy.status(), StatusCode::OK);
    let app = app.restart().await;
    let again = app.get_as(&s.access, "/api/v1/sync/status").await;
    assert_eq!(again.headers()["x-server-epoch"], epoch.as_str());
}

#[tokio::test]
async fn versions_may_only_move_forward() {
    let app = TestApp::spawn().await;
    let s = app.register("ana@example.com").await;
    assert_eq!(
        report(&app, &s.access, "d1", 5, "aa").await.status(),
        StatusCode::OK
    );
    // Same version and hash: an idempotent retry.
    assert_eq!(
        report(&app, &s.access, "d1", 5, "aa").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        report(&app, &s.access, "d1", 6, "bb").await.status(),
        StatusCode::OK
    );

    let older = assert_error(
        report(&app, &s.access, "d1", 4, "cc").await,
        StatusCode::CONFLICT,
        "sync_conflict",
    )
    .await;
    assert_eq!(older["details"]["syncVersion"], 6);
    assert_eq!(older["details"]["dataHash"], "bb");

    let forked = assert_error(
        report(&app, &s.access, "d1", 6, "zz").await,
        StatusCode::CONFLICT,
        "sync_conflict",
    )
    .await;
    assert_eq!(forked["details"]["dataHash"], "bb");

    // The stored row did not change.
    let row = app
        .call(Method::GET, "/api/v1/sync/status/d1")
        .bearer(&s.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(
        (row["syncVersion"].clone(), row["dataHash"].clone()),
        (json!(6), json!("bb"))
    );
}

#[tokio::test]
async fn the_device_list_summarizes_active_devices() {
    let app = TestApp::spawn().await;
    let s = app.register("ana@example.com").await;
    let empty = app
        .call(Method::GET, "/api/v1/sync/status")
        .bearer(&s.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(empty["devices"], json!([]));
    assert_eq!(empty["summary"]["deviceCount"], 0);
    assert_eq!(empty["summary"]["latestVersion"], Value::Null);

    report(&app, &s.access, "phone", 7, "aa").await;
    report(&app, &s.access, "tablet", 7, "aa").await;
    let list = app
        .call(Method::GET, "/api/v1/sync/status")
        .bearer(&s.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(list["devices"].as_array().unwrap().len(), 2);
    assert_eq!(list["summary"]["deviceCount"], 2);
    assert_eq!(list["summary"]["latestVersion"], 7);
    assert_eq!(list["summary"]["allInSync"], true);
    assert!(list["serverEpoch"].is_string());

    report(&app, &s.access, "laptop", 9, "bb").await;
    let list = app
        .call(Method::GET, "/api/v1/sync/status")
        .bearer(&s.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(list["summary"]["latestVersion"], 9);
    assert_eq!(list["summary"]["allInSync"], false);
}

#[tokio::test]
async fn validate_tells_where_a_device_stands() {
    let app = TestApp::spawn().await;
    let s = app.register("ana@example.com").await;
    let validate = |version: i64, hash: &'static str| {
        let (app, token) = (&app, s.access.clone());
        async move {
            let response = app
                .post_as(
                    &token,
                    "/api/v1/sync/validate",
                    &json!({"deviceId": "tablet", "syncVersion": version, "dataHash": hash}),
                )
                .await;
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.unwrap()
        }
    };
    let nothing = validate(1, "aa").await;
    assert_eq!(nothing["status"], "ahead");
    assert_eq!(nothing["latest"], Value::Null);

    report(&app, &s.access, "phone", 5, "aa").await;
    assert_eq!(validate(5, "aa").await["status"], "in_sync");
    assert_eq!(validate(4, "aa").await["status"], "behind");
    assert_eq!(validate(6, "cc").await["status"], "ahead");
    let diverged = validate(5, "bb").await;
    assert_eq!(diverged["status"], "diverged");
    assert_eq!(diverged["latest"]["deviceId"], "phone");
    assert!(diverged["serverEpoch"].is_string());
}

#[tokio::test]
async fn deactivating_a_device() {
    let app = TestApp::spawn().await;
    let s = app.register("ana@example.com").await;
    report(&app, &s.access, "old-phone", 9, "aa").await;
    report(&app, &s.access, "new-phone", 3, "bb").await;

    let response = app
        .delete_as(&s.access, "/api/v1/sync/devices/old-phone")
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.headers().contains_key("x-server-epoch"));

    let list = app
        .call(Method::GET, "/api/v1/sync/status")
        .bearer(&s.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(list["summary"]["deviceCount"], 1);
    assert_eq!(list["summary"]["latestVersion"], 3);
    let old = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["deviceId"] == "old-phone")
        .unwrap();
    assert_eq!(old["isActive"], false);
    let me = app
        .call(Method::GET, "/api/v1/auth/me")
        .bearer(&s.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(me["user"]["deviceCount"], 1);

    // An inactive device is not the reference for validate.
    let v = app
        .call(Method::POST, "/api/v1/sync/validate")
        .bearer(&s.access)
        .json(&json!({"deviceId": "new-phone", "syncVersion": 3, "dataHash": "bb"}))
        .expect(StatusCode::OK)
        .await;
    assert_eq!(v["status"], "in_sync");

    // Reporting again brings it back.
    report(&app, &s.access, "old-phone", 10, "cc").await;
    let me = app
        .call(Method::GET, "/api/v1/auth/me")
        .bearer(&s.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(me["user"]["deviceCount"], 2);

    assert_error(
        app.delete_as(&s.access, "/api/v1/sync/devices/never-seen")
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn another_users_device_is_a_404() {
    let app = TestApp::spawn().await;
    let ana = app.register("ana@example.com").await;
    let bob = app.register("bob@example.com").await;
    report(&app, &ana.access, "ana-phone", 1, "aa").await;

    let response = app
        .get_as(&bob.access, "/api/v1/sync/status/ana-phone")
        .await;
    assert!(
        response.headers().contains_key("x-server-epoch"),
        "error answers under /sync carry the epoch too"
    );
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    assert_error(
        app.delete_as(&bob.access, "/api/v1/sync/devices/ana-phone")
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let list = app
        .call(Method::GET, "/api/v1/sync/status")
        .bearer(&bob.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(list["devices"], json!([]));
    // Bob reporting the same device id makes his own row; Ana's is untouched.
    report(&app, &bob.access, "ana-phone", 0, "ff").await;
    let row = app
        .call(Method::GET, "/api/v1/sync/status/ana-phone")
        .bearer(&ana.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(row["syncVersion"], 1);
}

#[tokio::test]
async fn bad_reports_are_422_with_the_field() {
    let app = TestApp::spawn().await;
    let s = app.register("ana@example.com").await;
    for (body, field) in [
        (
            json!({"deviceId": "", "syncVersion": 1, "dataHash": "aa"}),
            "deviceId",
        ),
        (
            json!({"deviceId": "a b", "syncVersion": 1, "dataHash": "aa"}),
            "deviceId",
        ),
        (
            json!({"deviceId": "x".repeat(129), "syncVersion": 1, "dataHash": "aa"}),
            "deviceId",
        ),
        (
            json!({"deviceId": "d", "syncVersion": -1, "dataHash": "aa"}),
            "syncVersion",
        ),
        (
            json!({"deviceId": "d", "syncVersion": 1, "dataHash": "not hex!"}),
            "dataHash",
        ),
        (
            json!({"deviceId": "d", "syncVersion": 1, "dataHash": "a".repeat(129)}),
            "dataHash",
        ),
        (
            json!({"deviceId": "d", "syncVersion": "1", "dataHash": "aa"}),
            "syncVersion",
        ),
        (
            json!({"deviceId": "d", "syncVersion": 1.5, "dataHash": "aa"}),
            "syncVersion",
        ),
        (json!({"deviceId": "d", "syncVersion": 1}), "body"),
    ] {
        let error = assert_error(
            app.post_as(&s.access, "/api/v1/sync/status", &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert!(error["details"].get(field).is_some(), "{body} → {error}");
    }
    // Without a token: 401.
    let response = app
        .post_json(
            "/api/v1/sync/status",
            &json!({"deviceId": "d", "syncVersion": 1, "dataHash": "aa"}),
        )
        .await;
    assert_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn concurrent_reports_from_many_devices_all_land() {
    let app = TestApp::spawn().await;
    let s = app.register("ana@example.com").await;
    let reports = (0..40).map(|i| {
        let (app, token) = (&app, s.access.clone());
        async move {
            report(
                app,
                &token,
                &format!("device-{}", i % 8),
                i,
                &format!("{i:x}"),
            )
            .await
            .status()
        }
    });
    let statuses = futures_util::future::join_all(reports).await;
    // Every report either landed or lost to a newer one of the same device: no 5xx, no lock
    // errors.
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    let me = app
        .call(Method::GET, "/api/v1/auth/me")
        .bearer(&s.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(me["user"]["deviceCount"], 8);
}

#[tokio::test]
async fn devices_per_user_are_capped() {
    let app = TestApp::spawn_with(|c| c.sync.max_devices = 3).await;
    let s = app.register("ana@example.com").await;
    for device in ["a", "b", "c"] {
        assert_eq!(
            report(&app, &s.access, device, 1, "aa").await.status(),
            StatusCode::OK
        );
    }
    let error = assert_error(
        report(&app, &s.access, "d", 1, "aa").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(
        error["details"]["deviceId"][0]
            .as_str()
            .unwrap()
            .contains('3'),
        "{error}"
    );
    // Known devices keep syncing.
    assert_eq!(
        report(&app, &s.access, "a", 2, "bb").await.status(),
        StatusCode::OK
    );
    // A deactivated device frees its place (and its row goes when another needs it).
    app.call(Method::DELETE, "/api/v1/sync/devices/a")
        .bearer(&s.access)
        .expect(StatusCode::NO_CONTENT)
        .await;
    assert_eq!(
        report(&app, &s.access, "d", 1, "aa").await.status(),
        StatusCode::OK
    );
    let list = app
        .call(Method::GET, "/api/v1/sync/status")
        .bearer(&s.access)
        .expect(StatusCode::OK)
        .await;
    let ids: Vec<&str> = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["deviceId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{list}");
    assert!(!ids.contains(&"a"), "{list}");
    // Coming back is appearing again: over the cap, refused.
    assert_error(
        report(&app, &s.access, "a", 3, "cc").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let me = app
        .call(Method::GET, "/api/v1/auth/me")
        .bearer(&s.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(me["user"]["deviceCount"], 3);
    // The cap is per user.
    let bob = app.register("bob@example.com").await;
    assert_eq!(
        report(&app, &bob.access, "d", 1, "aa").await.status(),
        StatusCode::OK
    );
}
