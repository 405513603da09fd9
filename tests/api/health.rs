use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, assert_error, expect_json};

#[tokio::test]
async fn health_reports_status_uptime_and_version() {
    let app = TestApp::spawn().await;
    let body = expect_json(app.get("/health").await, StatusCode::OK).await;
    assert_eq!(body["status"], "OK");
    assert!(body["message"].as_str().is_some());
    assert!(body["uptime"].as_f64().unwrap() >= 0.0);
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let timestamp = body["timestamp"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339)
            .is_ok()
    );
    assert!(timestamp.ends_with('Z'), "UTC: {timestamp}");
}

#[tokio::test]
async fn readiness_checks_the_database() {
    let app = TestApp::spawn().await;
    let body = expect_json(app.get("/health/ready").await, StatusCode::OK).await;
    assert_eq!(body["database"], "ok");

    // A database that cannot be reached makes the server unready.
    app.state.db.close().await;
    let response = app.get("/health/ready").await;
    assert_error(response, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = TestApp::spawn().await;
    app.get("/health").await;
    app.get("/no/such/route").await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/health",status="200"}"#),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
}

/// The value of one `http_requests_total` series in `/metrics` (0 when absent).
async fn requests_counted(app: &TestApp, labels: &str) -> u64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    let series = format!("http_requests_total{{{labels}}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .map_or(0, |value| value.trim().parse().unwrap())
}

#[tokio::test]
async fn api_routes_are_counted_under_the_mount_they_were_served_at() {
    let app = TestApp::spawn().await;
    let s = app.register("mounts@example.com").await;
    // The recorder is the process's, shared with the tests running beside this one: the
    // counts may grow by more than this test's requests, never by less.
    let v1 = r#"method="GET",route="/api/v1/auth/me",status="200""#;
    let alias = r#"method="GET",route="/api/auth/me",status="200""#;
    let missing = r#"method="GET",route="unmatched",status="404""#;
    let before = [
        requests_counted(&app, v1).await,
        requests_counted(&app, alias).await,
        requests_counted(&app, missing).await,
    ];
    for path in ["/api/v1/auth/me", "/api/auth/me", "/api/v1/auth/me"] {
        let response = app.get_as(&s.access, path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let me: serde_json::Value = response.json().await.unwrap();
        assert_eq!(me["user"]["email"], "mounts@example.com", "{path}");
    }
    // Under the mount but no route: the API's 404, in the error shape.
    let response = app.get("/api/v1/no/such/route?x=1").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    let after = [
        requests_counted(&app, v1).await,
        requests_counted(&app, alias).await,
        requests_counted(&app, missing).await,
    ];
    assert!(after[0] >= before[0] + 2, "{before:?} -> {after:?}");
    assert!(after[1] > before[1], "{before:?} -> {after:?}");
    assert!(after[2] > before[2], "{before:?} -> {after:?}");
}

#[tokio::test]
async fn invented_methods_do_not_add_metric_series() {
    let app = TestApp::spawn().await;
    for i in 0..30 {
        let method = reqwest::Method::from_bytes(format!("BREW{i}").as_bytes()).unwrap();
        let response = app.call(method, "/health").send().await;
        assert!(response.status().is_client_error(), "{}", response.status());
    }
    app.call(
        reqwest::Method::from_bytes(b"get").unwrap(),
        "/no/such/route",
    )
    .send()
    .await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(!text.contains("BREW"), "a client's method became a label");
    assert!(
        !text.contains(r#"method="get""#),
        "a client's method became a label"
    );
    assert!(
        text.contains(r#"http_requests_total{method="other",route="/health""#),
        "{text}"
    );
    // Every label value is one of a fixed set: methods, route templates, status codes.
    for line in text
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
    {
        let method = line
            .split("method=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(
            [
                "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"
            ]
            .contains(&method),
            "{line}"
        );
        let route = line
            .split("route=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(route == "unmatched" || route.starts_with('/'), "{line}");
    }
}

#[tokio::test]
async fn api_docs_are_served_from_the_binary() {
    let app = TestApp::spawn().await;
    let page = app.get("/api-docs/").await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(page.text().await.unwrap().contains("swagger"));
    let script = app.get("/api-docs/swagger-ui-bundle.js").await;
    assert_eq!(script.status(), StatusCode::OK);

    let redirect = app.client.get(app.url("/api-docs")).send().await.unwrap();
    assert_eq!(
        redirect.status(),
        StatusCode::OK,
        "followed the redirect to /api-docs/"
    );

    let doc: Value = app
        .get("/api-docs/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    for path in [
        "/health",
        "/health/ready",
        "/metrics",
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/sessions/{id}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}
