//! The API document tells the whole truth: every status an operation answers is listed for it
//! in `/api-docs/openapi.json`. Each test walks every operation of the document served by a
//! running server, sends the bad requests that apply to it (no token, a bad token, a body
//! that is not JSON, no content type, a body over the limit, a `limit` out of range), and
//! fails with the list of answers whose status the document does not list.

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp};

/// A path parameter no resource has: a well-formed UUID, also a valid device id and an
/// invalid script name (so every `{…}` route reaches its own lookup).
const MISSING_ID: &str = "00000000-0000-4000-8000-000000000000";

/// One operation of the document.
struct Operation {
    method: Method,
    path: String,
    spec: Value,
}

impl Operation {
    /// The URL path with every `{param}` filled with [`MISSING_ID`].
    fn concrete_path(&self) -> String {
        let mut out = String::new();
        let mut rest = self.path.as_str();
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let end = rest[start..]
                .find('}')
                .map_or(rest.len(), |e| start + e + 1);
            out.push_str(MISSING_ID);
            rest = &rest[end..];
        }
        out.push_str(rest);
        out
    }

    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    fn documents(&self, status: StatusCode) -> bool {
        self.spec["responses"][status.as_str()].is_object()
    }

    fn has_json_body(&self) -> bool {
        self.spec["requestBody"]["content"]["application/json"].is_object()
    }

    fn has_query(&self, name: &str) -> bool {
        self.spec["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["in"] == "query" && p["name"] == name)
    }
}

/// A server whose limits stay out of the way (the probes are many, and quick), with a small
/// body limit so that a body over it is cheap to send.
async fn app() -> TestApp {
    TestApp::spawn_with(|c| {
        c.rate_limit.per_ip_per_minute = 100_000;
        c.rate_limit.login_per_ip_per_minute = 100_000;
        c.rate_limit.search_per_minute = 100_000;
        c.server.max_body = bytesize::ByteSize::kib(4);
        c.backups.max_size = bytesize::ByteSize::kib(1);
    })
    .await
}

/// Every operation of the document the server serves.
async fn operations(app: &TestApp) -> Vec<Operation> {
    let response = app.get("/api-docs/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    let doc: Value = response.json().await.unwrap();
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, spec) in item.as_object().expect("path item") {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            if spec.is_object() && !matches!(method, Method::OPTIONS | Method::HEAD) {
                operations.push(Operation {
                    method,
                    path: path.clone(),
                    spec: spec.clone(),
                });
            }
        }
    }
    assert!(operations.len() > 40, "{} operations", operations.len());
    operations
}

/// An admin's access token: admin routes then get past the role check to the part under test.
async fn admin_token(app: &TestApp) -> String {
    let session = app.register("docs-admin@example.com").await;
    app.sql(
        "UPDATE users SET role = 'admin' WHERE email = ?1",
        "docs-admin@example.com",
    )
    .await;
    session.access
}

/// Sends what `probe` builds for each operation it applies to (to the operation's path and
/// `query`) and returns one line per answer whose status the operation does not document.
async fn undocumented(
    app: &TestApp,
    query: &str,
    what: &str,
    probe: impl Fn(&Operation, reqwest::RequestBuilder) -> Option<reqwest::RequestBuilder>,
) -> Vec<String> {
    let mut found = Vec::new();
    let mut probed = 0;
    for op in operations(app).await {
        let url = app.url(&format!("{}{query}", op.concrete_path()));
        let request = app.client.request(op.method.clone(), url);
        let Some(request) = probe(&op, request) else {
            continue;
        };
        probed += 1;
        let status = request.send().await.unwrap().status();
        if !op.documents(status) {
            found.push(format!("{}: {what}{query} answered {status}", op.name()));
        }
    }
    assert!(probed > 0, "no operation to probe for {what}");
    found
}

fn assert_none(found: Vec<String>) {
    assert!(
        found.is_empty(),
        "{} answers the document does not list:\n{}",
        found.len(),
        found.join("\n")
    );
}

#[tokio::test]
async fn requests_without_a_token_answer_documented_statuses() {
    let app = app().await;
    assert_none(
        undocumented(&app, "", "no token", |op, request| {
            Some(if op.has_json_body() {
                request.json(&json!({}))
            } else {
                request
            })
        })
        .await,
    );
}

#[tokio::test]
async fn requests_with_an_invalid_token_answer_documented_statuses() {
    let app = app().await;
    assert_none(
        undocumented(&app, "", "an invalid token", |op, request| {
            let request = request.bearer_auth("not-a-token");
            Some(if op.has_json_body() {
                request.json(&json!({}))
            } else {
                request
            })
        })
        .await,
    );
}

#[tokio::test]
async fn bodies_that_are_not_json_answer_a_documented_status() {
    let app = app().await;
    let token = admin_token(&app).await;
    assert_none(
        undocumented(&app, "", "a body that is not JSON", |op, request| {
            op.has_json_body().then(|| {
                request
                    .bearer_auth(&token)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body("{\"not json")
            })
        })
        .await,
    );
}

#[tokio::test]
async fn bodies_without_a_json_content_type_answer_a_documented_status() {
    let app = app().await;
    let token = admin_token(&app).await;
    let mut found = undocumented(&app, "", "a body without a content type", |op, request| {
        op.has_json_body()
            .then(|| request.bearer_auth(&token).body("{}"))
    })
    .await;
    found.extend(
        undocumented(&app, "", "a text/plain body", |op, request| {
            op.has_json_body().then(|| {
                request
                    .bearer_auth(&token)
                    .header(header::CONTENT_TYPE, "text/plain")
                    .body("{}")
            })
        })
        .await,
    );
    assert_none(found);
}

#[tokio::test]
async fn bodies_over_the_limit_answer_a_documented_status() {
    let app = app().await;
    let token = admin_token(&app).await;
    // Over every route's limit (the conversations' own is 2 MiB).
    let big = json!({"padding": "x".repeat(2 * 1024 * 1024 + 1024)}).to_string();
    assert_none(
        undocumented(&app, "", "a body over the limit", |op, request| {
            op.has_json_body().then(|| {
                request
                    .bearer_auth(&token)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(big.clone())
            })
        })
        .await,
    );
}

#[tokio::test]
async fn list_limits_out_of_range_or_malformed_answer_a_documented_status() {
    let app = app().await;
    let token = admin_token(&app).await;
    let mut found = Vec::new();
    for limit in ["0", "101", "many"] {
        found.extend(
            undocumented(
                &app,
                &format!("?limit={limit}"),
                "a limit",
                |op, request| op.has_query("limit").then(|| request.bearer_auth(&token)),
            )
            .await,
        );
    }
    assert_none(found);
}

#[tokio::test]
async fn plain_requests_by_a_signed_in_admin_answer_documented_statuses() {
    let app = app().await;
    admin_token(&app).await;
    let mut found = Vec::new();
    for op in operations(&app).await {
        // A fresh session each time: logout and its kin end the one they are sent with.
        let login = app.try_login("docs-admin@example.com", PASSWORD).await;
        let token = login.json::<Value>().await.unwrap()["accessToken"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut request = app
            .client
            .request(op.method.clone(), app.url(&op.concrete_path()))
            .bearer_auth(&token);
        if op.has_json_body() {
            request = request.json(&json!({}));
        }
        let status = request.send().await.unwrap().status();
        if !op.documents(status) {
            found.push(format!("{}: a plain request answered {status}", op.name()));
        }
    }
    assert_none(found);
}
