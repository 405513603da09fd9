//! SPEC section 5: encrypted backups.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, expect_json, sample, sha256};

async fn upload_json(app: &TestApp, token: &str, data: &[u8]) -> Response {
    app.post_as(
        token,
        "/api/v1/sync/backup",
        &json!({"data": STANDARD.encode(data), "checksum": sha256(data), "deviceId": "phone",
                "metadata": {"appVersion": "2.1.0"}}),
    )
    .await
}

async fn upload_raw(app: &TestApp, token: &str, data: Vec<u8>, checksum: &str) -> Response {
    app.client
        .post(app.url("/api/v1/sync/backup"))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .header("x-checksum-sha256", checksum)
        .header("x-device-id", "tablet")
        .body(data)
        .send()
        .await
        .unwrap()
}

async fn list(app: &TestApp, token: &str) -> Vec<Value> {
    let body = expect_json(
        app.get_as(token, "/api/v1/sync/backups").await,
        StatusCode::OK,
    )
    .await;
    body["items"].as_array().unwrap().clone()
}

async fn download_raw(app: &TestApp, token: &str, path: &str) -> Response {
    app.client
        .get(app.url(path))
        .bearer_auth(token)
        .header("accept", "application/octet-stream")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn json_upload_then_download_both_ways() {
    let app = TestApp::spawn().await;
    let s = app.register("ana@example.com").await;
    let data = sample(1, 100_000);

    let response = upload_json(&app, &s.access, &data).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(response.headers().contains_key("x-server-epoch"));
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    assert_eq!(created["size"], 100_000);
    assert_eq!(created["checksum"], sha256(&data));
    assert!(created["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(created["deviceId"], "phone");
    assert_eq!(created["metadata"]["appVersion"], "2.1.0");

    for path in [
        "/api/v1/sync/backup/latest".to_owned(),
        format!("/api/v1/sync/backup/{id}"),
    ] {
        let response = app.get_as(&s.access, &path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["id"], id.as_str());
        assert_eq!(body["checksum"], sha256(&data));
        assert_eq!(body["size"], 100_000);
        assert_eq!(
            STANDARD.decode(body["data"].as_str().unwrap()).unwrap(),
            data
        );

        let raw = download_raw(&app, &s.access, &path).await;
        assert_eq!(raw.status(), StatusCode::OK);
        assert_eq!(raw.headers()["content-type"], "application/octet-stream");
        assert_eq!(raw.headers()["x-checksum-sha256"], sha256(&data).as_str());
        assert_eq!(raw.bytes().await.unwrap().as_ref(), data.as_slice());
    }

    // The list has metadata, never data.
    let items = list(&app, &s.access).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    assert!(items[0].get("data").is_none());
}

#[tokio::test]
async fn raw_upload_is_verified_and_stored() {
    let app = TestApp::spawn().await;
    let s = app.register("ana@example.com").await;
    let data = sample(2, 300_000);
    let response = upload_raw(&app, &s.access, data.clone(), &sha256(&data).to_uppercase()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["checksum"], sha256(&data));
    assert_eq!(created["deviceId"], "tablet");

    let raw = download_raw(&app, &s.access, "/api/v1/sync/backup/latest").await;
    assert_eq!(raw.bytes().await.unwrap().as_ref(), data.as_slice());
    // The /api alias serves the same routes.
    let legacy = download_raw(&app, &s.access, "/api/sync/backup/latest").await;
    assert_eq!(legacy.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_checksum_is_refused_and_leaves_nothing() {
    let app = TestApp::spawn().await;
    let s = app.register("ana@example.com").await;
    let data = sample(3, 10_000);
    let wrong = sha256(b"something else");

    assert_error(
        upload_raw(&app, &s.access, data.clone(), &wrong).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "checksum_mismatch",
    )
    .await;
    let response = app
        .post_as(
            &s.access,
            "/api/v1/sync/backup",
            &json!({"data": STANDARD.encode(&data), "checksum": wrong}),
        )
        .await;
    assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "checksum_mismatch",
    )
    .await;
    assert!(list(&app, &s.access).await.is_empty());
    assert_error(
        app.get_as(&s.access, "/api/v1/sync/backup/latest").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn bad_uploads_get_clear_errors() {
    let app = TestApp::spawn().await;
    let s = app.register("ana@example.com").await;
    let url = app.url("/api/v1/sync/backup");

    let text = app
        .client
        .post(&url)
        .bearer_auth(&s.access)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_error(
        text,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;

    let no_checksum = app
        .client
        .post(&url)
        .bearer_auth(&s.access)
        .header("content-type", "application/octet-stream")
        .body("hello")
        .send()
        .await
        .unwrap();
    let error = assert_error(
        no_checksum,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(
        error["details"].get("X-Checksum-SHA256").is_some(),
        "{error}"
    );

    for (body, field) in [
        (
            json!({"data": "%%%not base64", "checksum": sha256(b"x")}),
            "data",
        ),
        (json!({"data": "aGVsbG8=", "checksum": "abc"}), "checksum"),
        (
            json!({"data": "aGVsbG8=", "checksum": sha256(b"hello"), "deviceId": "a b"}),
            "deviceId",
        ),
        (
            json!({"data": "aGVsbG8=", "checksum": sha256(b"hello"), "metadata": {"x": "y".repeat(20_000)}}),
            "metadata",
        ),
        (json!({"checksum": sha256(b"hello")}), "body"),
    ] {
        let error = assert_error(
            app.post_as(&s.access, "/api/v1/sync/backup", &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert!(error["details"].get(field).is_some(), "{field}: {error}");
    }
    let malformed = app
        .client
        .post(&url)
        .bearer_auth(&s.access)
        .header("content-type", "application/json")
        .body("{\"data\":")
        .send()
        .await
        .unwrap();
    assert_error(malformed, StatusCode::BAD_REQUEST, "bad_request").await;

    // Without a token nothing is read.
    let anonymous = app
        .client
        .post(&url)
        .header("content-type", "application/octet-stream")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_error(anonymous, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert!(list(&app, &s.access).await.is_empty());
}

#[tokio::test]
async fn uploads_over_max_size_are_413() {
    let app = TestApp::spawn_with(|c| c.backups.max_size = bytesize::ByteSize::kib(64)).await;
    let s = app.register("ana@example.com").await;
    let big = sample(4, 64 * 1024 + 1);
    let exact = sample(5, 64 * 1024);

    assert_error(
        upload_raw(&app, &s.access, big.clone(), &sha256(&big)).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    assert_error(
        upload_json(&app, &s.access, &big).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    // A streamed body with no Content-Length is cut off when it grows past the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(8192).map(|c| Ok(c.to_vec())).collect();
    let streamed = app
        .client
        .post(app.url("/api/v1/sync/backup"))
        .bearer_auth(&s.access)
        .header("content-type", "application/octet-stream")
        .header("x-checksum-sha256", sha256(&big))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_error(streamed, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;

    // Exactly the limit is fine, in both forms.
    assert_eq!(
        upload_raw(&app, &s.access, exact.clone(), &sha256(&exact))
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        upload_json(&app, &s.access, &exact).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(list(&app, &s.access).await.len(), 2);
}

/// Writes a request with `Content-Length: declared` but only `sent` body bytes, then reads
/// what the server answers (within 5 s) and returns the status line.
fn raw_request(app: &TestApp, token: &str, declared: usize, sent: usize, close: bool) -> String {
    let mut stream = TcpStream::connect(app.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let head = format!(
        "POST /api/v1/sync/backup HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/octet-stream\r\nX-Checksum-SHA256: {}\r\n\
         Content-Length: {declared}\r\n\r\n",
        sha256(b"")
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&sample(6, sent)).unwrap();
    if close {
        stream.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn a_declared_oversize_body_is_refused_before_it_is_sent() {
    let app = TestApp::spawn().await;
    let s = app.register("ana@example.com").await;
    let token = s.access.clone();
    let app = std::sync::Arc::new(app);
    let status = tokio::task::spawn_blocking({
        let app = app.clone();
        // 1 GB declared, 10 bytes sent: the answer comes without waiting for the rest.
        move || raw_request(&app, &token, 1 << 30, 10, false)
    })
    .await
    .unwrap();
    assert!(status.contains(" 413 "), "{status}");
}

#[tokio::test]
async fn a_cut_off_upload_leaves_nothing() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    let s = app.register("ana@example.com").await;
    let token = s.access.clone();
    tokio::task::spawn_blocking({
        let app = app.clone();
        move || raw_request(&app, &token, 200_000, 100_000, true)
    })
    .await
    .unwrap();
    assert!(list(&app, &s.access).await.is_empty());
    let count: i64 = app
        .state
        .db
        .read(|conn| Ok(conn.query_row("SELECT count(*) FROM backups", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn only_the_newest_backups_are_kept() {
    let app = TestApp::spawn_with(|c| c.backups.retain = 2).await;
    let s = app.register("ana@example.com").await;
    let mut ids = Vec::new();
    for seed in 10..13 {
        let created: Value = upload_json(&app, &s.access, &sample(seed, 1000))
            .await
            .json()
            .await
            .unwrap();
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let items = list(&app, &s.access).await;
    let listed: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str()], "newest first");
    assert_error(
        app.get_as(&s.access, &format!("/api/v1/sync/backup/{}", ids[0]))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let latest = app
        .call(Method::GET, "/api/v1/sync/backup/latest")
        .bearer(&s.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(latest["id"], ids[2].as_str());

    // Retention is per user.
    let bob = app.register("bob@example.com").await;
    upload_json(&app, &bob.access, &sample(20, 10)).await;
    assert_eq!(list(&app, &s.access).await.len(), 2);
}

#[tokio::test]
async fn the_list_pages_with_a_cursor() {
    let app = TestApp::spawn().await;
    let s = app.register("ana@example.com").await;
    for seed in 30..33 {
        upload_json(&app, &s.access, &sample(seed, 100)).await;
    }
    let first = app
        .call(Method::GET, "/api/v1/sync/backups?limit=2")
        .bearer(&s.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["nextCursor"].as_str().unwrap();
    let second: Value = app
        .get_as(
            &s.access,
            &format!("/api/v1/sync/backups?limit=2&cursor={cursor}"),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["nextCursor"], Value::Null);
    assert_ne!(second["items"][0]["id"], first["items"][0]["id"]);

    assert_error(
        app.get_as(&s.access, "/api/v1/sync/backups?limit=0").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_error(
        app.get_as(&s.access, "/api/v1/sync/backups?cursor=nonsense")
            .await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
}

#[tokio::test]
async fn delete_and_other_users_backups() {
    let app = TestApp::spawn().await;
    let ana = app.register("ana@example.com").await;
    let bob = app.register("bob@example.com").await;
    let created: Value = upload_json(&app, &ana.access, &sample(40, 500))
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/api/v1/sync/backup/{}", created["id"].as_str().unwrap());

    // Bob sees nothing of Ana's: 404, never 403.
    assert_error(
        app.get_as(&bob.access, &path).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.delete_as(&bob.access, &path).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.get_as(&bob.access, "/api/v1/sync/backup/latest").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert!(list(&app, &bob.access).await.is_empty());
    assert_error(
        app.get_as(&ana.access, "/api/v1/sync/backup/not-a-uuid")
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    let response = app.delete_as(&ana.access, &path).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_error(
        app.get_as(&ana.access, &path).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.delete_as(&ana.access, &path).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn backup_bytes_never_reach_the_disk_in_clear() {
    let mut app = TestApp::spawn().await;
    let s = app.register("ana@example.com").await;
    let data = sample(50, 256 * 1024);
    assert_eq!(
        upload_raw(&app, &s.access, data.clone(), &sha256(&data))
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        upload_json(&app, &s.access, &data).await.status(),
        StatusCode::CREATED
    );
    // Read once, so whatever a download might leave behind is there too.
    download_raw(&app, &s.access, "/api/v1/sync/backup/latest")
        .await
        .bytes()
        .await
        .unwrap();
    app.stop().await;

    let probes: Vec<&[u8]> = (0..16)
        .map(|i| &data[i * 16_000..i * 16_000 + 24])
        .collect();
    let mut files = 0;
    for entry in walk(&app.dir.path().join("data")) {
        let bytes = std::fs::read(&entry).unwrap();
        files += 1;
        for probe in &probes {
            assert!(
                !bytes.windows(probe.len()).any(|w| w == *probe),
                "plaintext found in {}",
                entry.display()
            );
        }
    }
    assert!(
        files >= 2,
        "the data dir holds the database and the secrets"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn a_row_moved_to_another_user_fails_to_decrypt() {
    let app = TestApp::spawn().await;
    let ana = app.register("ana@example.com").await;
    let bob = app.register("bob@example.com").await;
    let created: Value = upload_json(&app, &ana.access, &sample(60, 2000))
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();

    app.sql(
        "UPDATE backups SET user_id = (SELECT id FROM users WHERE email = ?1)",
        "bob@example.com",
    )
    .await;
    let response = download_raw(&app, &bob.access, &format!("/api/v1/sync/backup/{id}")).await;
    let error = assert_error(response, StatusCode::INTERNAL_SERVER_ERROR, "internal").await;
    assert!(
        !error.to_string().contains("authentication"),
        "no internals: {error}"
    );
    let response = app.get_as(&bob.access, "/api/v1/sync/backup/latest").await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    // And for Ana it is gone, not readable.
    assert_error(
        app.get_as(&ana.access, "/api/v1/sync/backup/latest").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn a_row_given_another_id_fails_to_decrypt() {
    let app = TestApp::spawn().await;
    let ana = app.register("ana@example.com").await;
    upload_json(&app, &ana.access, &sample(61, 2000)).await;
    app.sql(
        "UPDATE backups SET id = '00000000-0000-4000-8000-000000000000' WHERE ?1 IS NOT NULL",
        "x",
    )
    .await;
    let response = app
        .get_as(
            &ana.access,
            "/api/v1/sync/backup/00000000-0000-4000-8000-000000000000",
        )
        .await;
    assert_error(response, StatusCode::INTERNAL_SERVER_ERROR, "internal").await;
}

#[tokio::test]
async fn concurrent_transfers_of_one_user_are_capped() {
    let app = TestApp::spawn_with(|c| c.backups.max_transfers = 1).await;
    let s = app.register("ana@example.com").await;
    let data = sample(7, 64 * 1024);
    // A slow raw upload: eight chunks, 150 ms apart.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        data.chunks(8 * 1024).map(|c| Ok(c.to_vec())).collect();
    let slow = futures_util::StreamExt::then(futures_util::stream::iter(chunks), |c| async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        c
    });
    let upload = app
        .client
        .post(app.url("/api/v1/sync/backup"))
        .bearer_auth(&s.access)
        .header("content-type", "application/octet-stream")
        .header("x-checksum-sha256", sha256(&data))
        .body(reqwest::Body::wrap_stream(slow))
        .send();
    let second = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let busy = upload_json(&app, &s.access, b"second").await;
        assert!(busy.headers().contains_key("retry-after"));
        assert_error(busy, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
        // Another user is not held up.
        let bob = app.register("bob@example.com").await;
        assert_eq!(
            upload_json(&app, &bob.access, b"bob's").await.status(),
            StatusCode::CREATED
        );
    };
    let (first, ()) = tokio::join!(upload, second);
    assert_eq!(first.unwrap().status(), StatusCode::CREATED);
    // Done: the place is free again.
    assert_eq!(
        upload_json(&app, &s.access, b"third").await.status(),
        StatusCode::CREATED
    );
    let latest = app
        .call(Method::GET, "/api/v1/sync/backup/latest")
        .bearer(&s.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(latest["size"], 5);
}

/// The user id of a registered session.
fn user_id(session: &crate::helpers::Session) -> String {
    session.user["id"].as_str().unwrap().to_owned()
}

/// `(format, key_version, chunk rows)` of backup `id`.
async fn stored_as(app: &TestApp, id: &str) -> (i64, i64, i64) {
    let id = id.to_owned();
    app.state
        .db
        .read(move |conn| {
            Ok(conn.query_row(
                "SELECT format, key_version,
                        (SELECT count(*) FROM backup_chunks WHERE backup_seq = seq)
                 FROM backups WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?)
        })
        .await
        .unwrap()
}

/// Reads the body chunk by chunk: the bytes received, and whether it ended in an error.
async fn read_to_end(mut response: Response) -> (Vec<u8>, bool) {
    let mut received = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => received.extend_from_slice(&chunk),
            Ok(None) => return (received, false),
            Err(_) => return (received, true),
        }
    }
}

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn a_multi_chunk_backup_streams_back_byte_identical_with_its_length() {
    let app = TestApp::spawn().await;
    let s = app.register("ana@example.com").await;
    let data = sample(70, 5 * MIB + 12_345);
    let response = upload_raw(&app, &s.access, data.clone(), &sha256(&data)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    // Sealed in the chunked format: six chunks of at most 1 MiB of plaintext.
    assert_eq!(stored_as(&app, &id).await, (2, 1, 6));

    let raw = download_raw(&app, &s.access, &format!("/api/v1/sync/backup/{id}")).await;
    assert_eq!(raw.status(), StatusCode::OK);
    assert_eq!(
        raw.headers()["content-length"],
        data.len().to_string().as_str()
    );
    assert_eq!(raw.headers()["x-checksum-sha256"], sha256(&data).as_str());
    assert_eq!(raw.headers()["content-type"], "application/octet-stream");
    let (bytes, failed) = read_to_end(raw).await;
    assert!(!failed);
    assert!(bytes == data, "raw download differs from the upload");

    let json = app.get_as(&s.access, "/api/v1/sync/backup/latest").await;
    assert_eq!(json.status(), StatusCode::OK);
    let length: usize = json.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let text = json.bytes().await.unwrap();
    assert_eq!(text.len(), length);
    let body: Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["size"], data.len());
    assert_eq!(body["deviceId"], "tablet");
    assert!(STANDARD.decode(body["data"].as_str().unwrap()).unwrap() == data);

    // Empty and exactly-one-chunk backups too.
    for data in [Vec::new(), sample(71, MIB)] {
        upload_raw(&app, &s.access, data.clone(), &sha256(&data)).await;
        let raw = download_raw(&app, &s.access, "/api/v1/sync/backup/latest").await;
        assert_eq!(
            raw.headers()["content-length"],
            data.len().to_string().as_str()
        );
        assert!(raw.bytes().await.unwrap() == data);
        let body = app
            .call(Method::GET, "/api/v1/sync/backup/latest")
            .bearer(&s.access)
            .expect(StatusCode::OK)
            .await;
        assert!(STANDARD.decode(body["data"].as_str().unwrap()).unwrap() == data);
    }
}

/// Writes backup `id` of `owner` as the server did before V10 (format 1: one
/// XChaCha20-Poly1305 message, associated data `persona-backup/v1\0owner\0id`, cut into 1 MiB
/// rows), sealed with the server's current backup key.
async fn insert_format_1(app: &TestApp, owner: &str, id: &str, data: &[u8]) {
    use chacha20poly1305::{
        XChaCha20Poly1305, XNonce,
        aead::{Aead, KeyInit, Payload},
    };
    let key = app.state.secrets().current_backup_key().clone();
    let nonce = [7u8; 24];
    let aad = format!("persona-backup/v1\0{owner}\0{id}");
    let sealed = XChaCha20Poly1305::new(&(*key.key.as_bytes()).into())
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: data,
                aad: aad.as_bytes(),
            },
        )
        .unwrap();
    let (owner, id, size, checksum) = (
        owner.to_owned(),
        id.to_owned(),
        data.len() as i64,
        sha256(data),
    );
    app.state
        .db
        .write(move |tx| {
            tx.execute(
                "INSERT INTO backups (id, user_id, size, checksum, key_version, nonce, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1700000000)",
                rusqlite::params![id, owner, size, checksum, key.version, nonce.as_slice()],
            )?;
            let seq = tx.last_insert_rowid();
            for (idx, chunk) in sealed.chunks(MIB).enumerate() {
                tx.execute(
                    "INSERT INTO backup_chunks (backup_seq, idx, data) VALUES (?1, ?2, ?3)",
                    rusqlite::params![seq, idx as i64, chunk],
                )?;
            }
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn an_old_format_backup_still_downloads_and_a_key_rotation_reseals_both_formats() {
    let app = TestApp::spawn().await;
    let s = app.register("ana@example.com").await;
    let old_data = sample(80, 2 * MIB + 500);
    let old_id = "00000000-0000-4000-8000-000000000001";
    insert_format_1(&app, &user_id(&s), old_id, &old_data).await;
    assert_eq!(stored_as(&app, old_id).await, (1, 1, 3));
    let new_data = sample(81, 3 * MIB + 7);
    let created: Value = upload_raw(&app, &s.access, new_data.clone(), &sha256(&new_data))
        .await
        .json()
        .await
        .unwrap();
    let new_id = created["id"].as_str().unwrap().to_owned();

    let check = |id: String, data: Vec<u8>| {
        let app = &app;
        let token = s.access.clone();
        async move {
            let path = format!("/api/v1/sync/backup/{id}");
            let raw = download_raw(app, &token, &path).await;
            assert_eq!(raw.status(), StatusCode::OK);
            assert_eq!(
                raw.headers()["content-length"],
                data.len().to_string().as_str()
            );
            assert_eq!(raw.headers()["x-checksum-sha256"], sha256(&data).as_str());
            assert!(raw.bytes().await.unwrap() == data, "raw {id}");
            let body = app
                .call(Method::GET, &path)
                .bearer(&token)
                .expect(StatusCode::OK)
                .await;
            assert!(STANDARD.decode(body["data"].as_str().unwrap()).unwrap() == data);
        }
    };
    check(old_id.to_owned(), old_data.clone()).await;
    check(new_id.clone(), new_data.clone()).await;

    // A rotation (what `persona admin secrets rotate backup-key` does): both are re-sealed
    // under version 2, the old one into the chunked format, and still read the same.
    let path = app.state.config.secrets_path();
    let mut secrets = (*app.state.secrets()).clone();
    secrets.backup_keys.push(persona::secrets::BackupKey {
        version: 2,
        created_at: time::OffsetDateTime::now_utc(),
        key: persona::secrets::Key256::generate().unwrap(),
    });
    secrets.replace(&path).unwrap();
    let mut seen = Vec::new();
    let resealed =
        persona::features::backups::reseal_all(&app.state, &secrets, |id| seen.push(id.to_owned()))
            .await
            .unwrap();
    assert_eq!(resealed, 2);
    assert_eq!(seen, [old_id.to_owned(), new_id.clone()]);
    assert_eq!(stored_as(&app, old_id).await, (2, 2, 3));
    assert_eq!(stored_as(&app, &new_id).await, (2, 2, 4));
    check(old_id.to_owned(), old_data).await;
    check(new_id, new_data).await;
}

async fn swap_chunks_1_and_2(app: &TestApp) {
    app.state
        .db
        .write(|tx| {
            for (from, to) in [(1, -1), (2, 1), (-1, 2)] {
                tx.execute(
                    "UPDATE backup_chunks SET idx = ?2 WHERE idx = ?1",
                    [from, to],
                )?;
            }
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_damaged_chunk_is_a_500_first_and_a_cut_transfer_later() {
    let app = TestApp::spawn().await;
    let s = app.register("ana@example.com").await;
    let data = sample(90, 4 * MIB);
    upload_raw(&app, &s.access, data.clone(), &sha256(&data)).await;
    let latest = "/api/v1/sync/backup/latest";

    // Chunks 1 and 2 swapped: the first chunk is sent, then the transfer breaks off.
    swap_chunks_1_and_2(&app).await;
    let raw = download_raw(&app, &s.access, latest).await;
    assert_eq!(raw.status(), StatusCode::OK);
    let (received, failed) = read_to_end(raw).await;
    assert!(failed, "the body ends in an error");
    assert!(received.len() < data.len());
    assert!(received[..] == data[..received.len()], "only right bytes");
    let json = app.get_as(&s.access, latest).await;
    assert_eq!(json.status(), StatusCode::OK);
    assert!(read_to_end(json).await.1);

    // The last chunk dropped (a truncated backup): the same.
    swap_chunks_1_and_2(&app).await;
    app.sql(
        "DELETE FROM backup_chunks WHERE idx = 3 AND ?1 IS NOT NULL",
        "x",
    )
    .await;
    let (received, failed) = read_to_end(download_raw(&app, &s.access, latest).await).await;
    assert!(failed);
    assert!(received.len() <= 3 * MIB);
    assert!(received[..] == data[..received.len()]);

    // A zeroed first chunk: nothing is sent but the error.
    app.sql(
        "UPDATE backup_chunks SET data = zeroblob(length(data)) WHERE idx = 0 AND ?1 IS NOT NULL",
        "x",
    )
    .await;
    assert_error(
        download_raw(&app, &s.access, latest).await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
    )
    .await;
    // And the transfer slots were all given back.
    let empty = upload_json(&app, &s.access, b"").await;
    assert_eq!(empty.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_backup_deleted_during_its_download_ends_the_transfer_short() {
    let app = TestApp::spawn().await;
    let s = app.register("ana@example.com").await;
    let data = sample(91, 24 * MIB);
    let created: Value = upload_raw(&app, &s.access, data.clone(), &sha256(&data))
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/api/v1/sync/backup/{}", created["id"].as_str().unwrap());

    let mut raw = download_raw(&app, &s.access, &path).await;
    assert_eq!(raw.status(), StatusCode::OK);
    let first = raw.chunk().await.unwrap().unwrap();
    // Deleted, and its place taken by a newer backup: the rest of the download is refused,
    // never served from the newcomer.
    let deleted = app.delete_as(&s.access, &path).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let other = sample(92, 24 * MIB);
    upload_raw(&app, &s.access, other.clone(), &sha256(&other)).await;

    let (rest, failed) = read_to_end(raw).await;
    assert!(failed, "the body ends in an error");
    let received = first.len() + rest.len();
    assert!(received < data.len(), "{received} bytes of {}", data.len());
    assert!(first[..] == data[..first.len()]);
    assert!(rest[..] == data[first.len()..received]);
}

#[tokio::test]
async fn a_download_holds_its_transfer_slot_until_the_client_goes_away() {
    let app = TestApp::spawn_with(|c| c.backups.max_transfers = 1).await;
    let s = app.register("ana@example.com").await;
    let data = sample(93, 24 * MIB);
    upload_raw(&app, &s.access, data.clone(), &sha256(&data)).await;
    let latest = "/api/v1/sync/backup/latest";

    let mut first = download_raw(&app, &s.access, latest).await;
    assert_eq!(first.status(), StatusCode::OK);
    first.chunk().await.unwrap().unwrap();
    // Mid-download: the one slot is taken.
    let busy = download_raw(&app, &s.access, latest).await;
    assert_error(busy, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;

    // The client drops the download: the server notices at its next write and frees it.
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let next = download_raw(&app, &s.access, latest).await;
        if next.status() == StatusCode::OK {
            assert!(next.bytes().await.unwrap() == data);
            break;
        }
        assert_eq!(next.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(
            std::time::Instant::now() < deadline,
            "the slot was not released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_download_follows_a_key_rotation_that_happens_midway() {
    let app = TestApp::spawn().await;
    let s = app.register("ana@example.com").await;
    let data = sample(94, 24 * MIB);
    upload_raw(&app, &s.access, data.clone(), &sha256(&data)).await;

    let mut raw = download_raw(&app, &s.access, "/api/v1/sync/backup/latest").await;
    assert_eq!(raw.status(), StatusCode::OK);
    let first = raw.chunk().await.unwrap().unwrap();
    let path = app.state.config.secrets_path();
    let mut secrets = (*app.state.secrets()).clone();
    secrets.backup_keys.push(persona::secrets::BackupKey {
        version: 2,
        created_at: time::OffsetDateTime::now_utc(),
        key: persona::secrets::Key256::generate().unwrap(),
    });
    secrets.replace(&path).unwrap();
    let resealed = persona::features::backups::reseal_all(&app.state, &secrets, |_| {})
        .await
        .unwrap();
    assert_eq!(resealed, 1);

    // The chunks still to come are read under the new key and prefix: all bytes arrive.
    let (rest, failed) = read_to_end(raw).await;
    assert!(!failed);
    assert_eq!(first.len() + rest.len(), data.len());
    assert!(first[..] == data[..first.len()] && rest[..] == data[first.len()..]);
}
