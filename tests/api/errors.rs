//! Every error status of SPEC section 2 in the envelope, whatever produced it. Routes that
//! no product endpoint can trigger on demand (a panic, a slow handler, a generic JSON body)
//! are added to the real middleware stack by the harness.

use std::time::Duration;

use axum::{
    Router,
    routing::{get, post},
};
use persona::{
    app::AppState,
    http::extract::{AppJson, AppQuery},
};
use reqwest::{StatusCode, header};
use serde::Deserialize;
use serde_json::json;

use crate::helpers::{TestApp, assert_error, expect_json};

#[derive(Deserialize)]
#[allow(dead_code)]
struct Signup {
    email: String,
    age: u8,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Page {
    limit: u32,
}

async fn panicking_handler() -> &'static str {
    panic!("secret detail: SELECT * FROM users")
}

fn test_routes() -> Router<AppState> {
    Router::new()
        .route("/test/echo", post(|AppJson(body): AppJson<Signup>| async move { AppJson(json!({"email": body.email})) }))
        .route("/test/page", get(|AppQuery(page): AppQuery<Page>| async move { page.limit.to_string() }))
        .route("/test/panic", get(panicking_handler))
        .route(
            "/test/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
}

#[tokio::test]
async fn a_request_timeout_of_centuries_is_no_timeout_not_a_500() {
    // Found in review: the deadline `now + limit` overflowed, and every request panicked.
    let app = TestApp::spawn_with(|c| {
        c.server.request_timeout = Duration::from_secs(300_000_000_000 * 31_557_600);
    })
    .await;
    assert_eq!(app.get("/health").await.status(), StatusCode::OK);
    let s = app.register("centuries@example.com").await;
    let me = app.get_as(&s.access, "/api/v1/auth/me").await;
    assert_eq!(me.status(), StatusCode::OK);
}

async fn app() -> TestApp {
    TestApp::spawn_with_routes(
        |c| {
            c.server.max_body = bytesize::ByteSize::kib(1);
            c.server.request_timeout = Duration::from_millis(300);
        },
        test_routes(),
    )
    .await
}

#[tokio::test]
async fn unknown_routes_are_404() {
    let app = app().await;
    assert_error(
        app.get("/nothing/here").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn wrong_method_is_405_in_the_envelope() {
    let app = app().await;
    let response = app.client.delete(app.url("/health")).send().await.unwrap();
    assert_error(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = app().await;
    let response = app
        .client
        .post(app.url("/test/echo"))
        .header(header::CONTENT_TYPE, "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let app = app().await;
    let response = app
        .client
        .post(app.url("/test/echo"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body("email=a")
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let response = app
        .client
        .post(app.url("/test/echo"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
}

#[tokio::test]
async fn well_formed_json_with_invalid_fields_is_422_naming_the_field() {
    let app = app().await;
    let response = app
        .post_json("/test/echo", &json!({"email": "a@b.c", "age": 300}))
        .await;
    let error = assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(error["details"]["age"][0].is_string(), "{error}");

    let body = expect_json(
        app.post_json("/test/echo", &json!({"email": "a@b.c", "age": 30}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["email"], "a@b.c");
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = app().await;
    let big = json!({"email": "x".repeat(2048), "age": 1});
    let response = app.post_json("/test/echo", &big).await;
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;

    // Without a Content-Length (chunked), the limit holds while reading.
    let chunks = futures_chunks(vec![
        b"{\"email\":\"".to_vec(),
        vec![b'x'; 4096],
        b"\",\"age\":1}".to_vec(),
    ]);
    let response = app
        .client
        .post(app.url("/test/echo"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
}

fn futures_chunks(
    chunks: Vec<Vec<u8>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    futures_util::stream::iter(chunks.into_iter().map(Ok))
}

#[tokio::test]
async fn a_bad_query_string_is_400() {
    let app = app().await;
    assert_error(
        app.get("/test/page?limit=lots").await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    assert_eq!(
        app.get("/test/page?limit=5").await.text().await.unwrap(),
        "5"
    );
}

#[tokio::test]
async fn a_panic_is_500_with_the_request_id_and_no_internals() {
    let app = app().await;
    let response = app
        .client
        .get(app.url("/test/panic"))
        .header("x-request-id", "panic-test-1")
        .send()
        .await
        .unwrap();
    let error = assert_error(response, StatusCode::INTERNAL_SERVER_ERROR, "internal").await;
    assert_eq!(error["requestId"], "panic-test-1");
    assert!(!error.to_string().contains("SELECT"), "{error}");

    // The server keeps serving.
    assert_eq!(app.get("/health").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_panic_answer_still_carries_the_cors_headers() {
    // A browser app on an allowed origin can read the 500's request id to report it.
    let app = TestApp::spawn_with_routes(
        |c| c.server.cors_origins = vec!["https://app.example.com".into()],
        test_routes(),
    )
    .await;
    let response = app
        .client
        .get(app.url("/test/panic"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_error(response, StatusCode::INTERNAL_SERVER_ERROR, "internal").await;
}

#[tokio::test]
async fn a_request_over_the_timeout_is_504() {
    let app = app().await;
    let started = std::time::Instant::now();
    let response = app.get("/test/slow").await;
    assert_error(response, StatusCode::GATEWAY_TIMEOUT, "request_timeout").await;
    assert!(started.elapsed() < Duration::from_secs(4));
}
