//! SPEC section 2: request ids, security headers, CORS, compression.

use reqwest::{StatusCode, header};

use crate::helpers::TestApp;

#[tokio::test]
async fn a_request_id_is_generated_when_the_client_sends_none() {
    let app = TestApp::spawn().await;
    let response = app.get("/health").await;
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let other = app.get("/health").await;
    assert_ne!(other.headers()["x-request-id"].to_str().unwrap(), id);
}

#[tokio::test]
async fn a_sane_client_request_id_is_echoed() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "app-42.retry:1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "app-42.retry:1");
}

#[tokio::test]
async fn an_unsafe_client_request_id_is_replaced() {
    let app = TestApp::spawn().await;
    for bad in ["has spaces", "quote\"s", &"x".repeat(129)] {
        let response = app
            .client
            .get(app.url("/nope"))
            .header("x-request-id", bad)
            .send()
            .await
            .unwrap();
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_ne!(id, bad);
        assert!(uuid::Uuid::parse_str(&id).is_ok());
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["requestId"], id.as_str());
    }
}

#[tokio::test]
async fn security_headers_are_on_every_response() {
    let app = TestApp::spawn().await;
    for path in ["/health", "/no/such/route", "/api/v1/nothing"] {
        let response = app.get(path).await;
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(
            headers["content-security-policy"], "default-src 'none'; frame-ancestors 'none'",
            "{path}"
        );
        assert!(
            headers.get("strict-transport-security").is_none(),
            "HSTS off by default"
        );
    }
}

#[tokio::test]
async fn hsts_is_sent_when_enabled() {
    let app = TestApp::spawn_with(|c| c.server.hsts = true).await;
    let response = app.get("/health").await;
    assert!(
        response.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
}

#[tokio::test]
async fn cors_allows_listed_origins_only() {
    let app =
        TestApp::spawn_with(|c| c.server.cors_origins = vec!["https://app.example.com".into()])
            .await;

    let allowed = app
        .client
        .get(app.url("/health"))
        .header(header::ORIGIN, "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        allowed.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.com"
    );

    let refused = app
        .client
        .get(app.url("/health"))
        .header(header::ORIGIN, "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert!(
        refused
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none()
    );

    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/auth/login"))
        .header(header::ORIGIN, "https://app.example.com")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert_eq!(
        preflight.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.com"
    );
    let allowed_headers = preflight.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed_headers.contains("authorization"),
        "{allowed_headers}"
    );
    // CORS answers a preflight itself; it still carries a request id (SPEC 2: every response).
    let id = preflight.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");

    let refused_preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/auth/login"))
        .header(header::ORIGIN, "https://evil.example.com")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .send()
        .await
        .unwrap();
    assert!(
        refused_preflight
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none()
    );
}

/// A response to a request without `Origin` (the app, curl) skips CORS's work but keeps its
/// `Vary`, so a shared cache never hands a browser an answer made without `Origin`; a browser's
/// request on an allowed origin gets the headers it may read.
#[tokio::test]
async fn answers_vary_on_origin_with_or_without_one() {
    for (origins, allowed) in [
        ("https://app.example.com", "https://app.example.com"),
        ("*", "*"),
    ] {
        answers_vary_on_origin(origins, allowed).await;
    }
}

/// Every `Vary` line of an answer, lower case, joined.
fn vary(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all(header::VARY)
        .iter()
        .map(|value| value.to_str().unwrap().to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn answers_vary_on_origin(origins: &str, allowed: &str) {
    let app = TestApp::spawn_with(|c| c.server.cors_origins = vec![origins.into()]).await;
    for path in ["/health", "/api/v1/auth/me", "/api/v1/no-such-route"] {
        let plain = app.client.get(app.url(path)).send().await.unwrap();
        let vary_plain = vary(&plain);
        assert!(
            vary_plain.contains("origin"),
            "{origins} {path}: {vary_plain}"
        );
        assert!(
            plain
                .headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .is_none()
        );

        let browser = app
            .client
            .get(app.url(path))
            .header(header::ORIGIN, "https://app.example.com")
            .send()
            .await
            .unwrap();
        assert_eq!(browser.status(), plain.status(), "{path}");
        if origins != "*" {
            assert_eq!(vary(&browser), vary_plain, "{path}");
        }
        assert_eq!(
            browser.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            allowed
        );
        let exposed = browser.headers()[header::ACCESS_CONTROL_EXPOSE_HEADERS]
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        assert!(exposed.contains("x-request-id"), "{path}: {exposed}");
    }
}

#[tokio::test]
async fn no_cors_headers_by_default() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/health"))
        .header(header::ORIGIN, "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none()
    );
}

#[tokio::test]
async fn responses_are_compressed_when_the_client_accepts_it() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/api-docs/openapi.json"))
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
}

/// A client that names no encoding gets the identity, and a compressible answer says it has
/// other encodings (`Vary: accept-encoding`) exactly as when the client names one, so a cache
/// in between keeps the two apart; a small answer has no such variants.
#[tokio::test]
async fn a_client_that_names_no_encoding_gets_identity_and_vary() {
    let app = TestApp::spawn().await;
    for accept in [None, Some("gzip"), Some("br;q=1.0, gzip;q=0.5")] {
        let mut request = app.client.get(app.url("/api-docs/openapi.json"));
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT_ENCODING, accept);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let encoding = response.headers().get(header::CONTENT_ENCODING);
        let expected = accept.map(|accept| {
            if accept.starts_with("br") {
                "br"
            } else {
                "gzip"
            }
        });
        assert_eq!(
            encoding.map(|value| value.to_str().unwrap()),
            expected,
            "{accept:?}: {:?}",
            response.headers()
        );
        assert!(
            vary(&response).contains("accept-encoding"),
            "{accept:?}: {}",
            vary(&response)
        );
        if accept.is_none() {
            let body = response.bytes().await.unwrap();
            serde_json::from_slice::<serde_json::Value>(&body).expect("the plain document");
        }
    }
    // Several `Accept-Encoding` lines count together, as in tower-http.
    let response = app
        .client
        .get(app.url("/api-docs/openapi.json"))
        .header(header::ACCEPT_ENCODING, "foo")
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
    let session = app.register("plain@example.com").await;
    let response = app.get_as(&session.access, "/api/v1/auth/me").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        !vary(&response).contains("accept-encoding"),
        "{}",
        vary(&response)
    );
}

/// Deflating a few hundred bytes saves a few hundred bytes and costs a compressor's state
/// (hundreds of KiB allocated and zeroed per response): small answers go as they are, even
/// to the clients that always ask for gzip (browsers, aiohttp, httpx, Dart's `http`).
#[tokio::test]
async fn small_responses_are_not_compressed() {
    let app = TestApp::spawn().await;
    let session = app.register("small@example.com").await;
    let response = app
        .client
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth(&session.access)
        .header(header::ACCEPT_ENCODING, "gzip, deflate")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers().get(header::CONTENT_ENCODING).is_none(),
        "{:?}",
        response.headers()
    );
    let body = response.bytes().await.unwrap();
    assert!(body.len() < 1024, "{} bytes", body.len());
}

#[tokio::test]
async fn the_api_is_mounted_at_both_prefixes() {
    let app = TestApp::spawn().await;
    // Unknown paths under either prefix get the API's JSON 404 rather than anything else.
    for path in ["/api/v1/unknown", "/api/unknown"] {
        let response = app.get(path).await;
        crate::helpers::assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    }
}

/// One line per request when it is answered: method, path (never the query string), request
/// id, status and latency.
#[tokio::test]
async fn each_request_is_logged_once_with_its_id_and_status_but_not_its_query() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let (mut child, address) = crate::helpers::serve_logged(dir.path(), &log_path, &[]).await;
    let client = crate::helpers::http_client();
    let get = |path: &str, id: &str| {
        client
            .get(format!("http://{address}{path}"))
            .header("x-request-id", id)
            .send()
    };
    assert_eq!(
        get("/health?token=hunter2-in-a-query", "log-line-1")
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        get("/nope", "log-line-2").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let _ = child.kill();
    let _ = child.wait();

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(!log.contains("hunter2"), "the query string was logged");
    let finished = |id: &str| -> Vec<serde_json::Value> {
        log.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["message"] == "finished" && e["span"]["request_id"] == id)
            .collect()
    };
    let health = finished("log-line-1");
    assert_eq!(health.len(), 1, "{log}");
    assert_eq!(health[0]["level"], "INFO");
    assert_eq!(health[0]["status"], 200);
    assert_eq!(health[0]["span"]["method"], "GET");
    assert_eq!(health[0]["span"]["path"], "/health");
    assert!(health[0]["latency_ms"].as_f64().is_some(), "{}", health[0]);
    let missing = finished("log-line-2");
    assert_eq!(missing.len(), 1, "{log}");
    assert_eq!(missing[0]["status"], 404);
}
