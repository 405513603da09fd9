//! Start, restart and stop: the data dir, the secrets, migrations, graceful shutdown.

use std::{os::unix::fs::PermissionsExt, sync::Arc, time::Duration};

use axum::{Router, routing::get};
use persona::app::AppState;
use reqwest::StatusCode;
use tokio::sync::Notify;

use crate::helpers::TestApp;

#[tokio::test]
async fn first_start_creates_a_private_data_dir_and_secrets_file() {
    let app = TestApp::spawn().await;
    let data = app.dir.path().join("data");
    let dir_mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
    let secrets = data.join("secrets.toml");
    let file_mode = std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777;
    assert_eq!(file_mode, 0o600);
    let text = std::fs::read_to_string(&secrets).unwrap();
    assert!(
        text.contains("[[jwt_keys]]") && text.contains("[[backup_keys]]"),
        "{text}"
    );
    assert!(data.join("persona.db").exists());
}

#[tokio::test]
async fn a_restart_keeps_the_secrets_and_the_server_epoch() {
    let app = TestApp::spawn().await;
    let kid = app.state.secrets().signing_jwt_key().kid.clone();
    let backup_key = app.state.secrets().current_backup_key().key.clone();
    let epoch = app.state.db.read(persona::db::server_epoch).await.unwrap();

    let app = app.restart().await;
    assert_eq!(app.state.secrets().signing_jwt_key().kid, kid);
    assert!(app.state.secrets().current_backup_key().key == backup_key);
    let again = app.state.db.read(persona::db::server_epoch).await.unwrap();
    assert_eq!(again, epoch);
    assert_eq!(app.get("/health/ready").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn graceful_shutdown_lets_an_in_flight_request_finish() {
    let started = Arc::new(Notify::new());
    let signal = started.clone();
    let routes: Router<AppState> = Router::new().route(
        "/test/slow",
        get(move || {
            let signal = signal.clone();
            async move {
                signal.notify_one();
                tokio::time::sleep(Duration::from_millis(400)).await;
                "finished"
            }
        }),
    );
    let mut app = TestApp::spawn_with_routes(|_| {}, routes).await;
    let client = app.client.clone();
    let url = app.url("/test/slow");
    let in_flight = tokio::spawn(async move { client.get(url).send().await });
    started.notified().await;

    app.stop().await;

    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completed");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "finished");
    // After shutdown nothing listens any more.
    let fresh = reqwest::Client::builder().no_proxy().build().unwrap();
    assert!(fresh.get(app.url("/health")).send().await.is_err());
}

#[tokio::test]
async fn shutdown_does_not_wait_forever_for_a_stuck_request() {
    let started = Arc::new(Notify::new());
    let signal = started.clone();
    let routes: Router<AppState> = Router::new().route(
        "/test/stuck",
        get(move || {
            let signal = signal.clone();
            async move {
                signal.notify_one();
                tokio::time::sleep(Duration::from_secs(60)).await;
                "never"
            }
        }),
    );
    let mut app = TestApp::spawn_with_routes(
        |c| {
            c.server.shutdown_timeout = Duration::from_millis(200);
            c.server.request_timeout = Duration::from_secs(120);
        },
        routes,
    )
    .await;
    let client = app.client.clone();
    let url = app.url("/test/stuck");
    let _in_flight = tokio::spawn(async move { client.get(url).send().await });
    started.notified().await;
    let started = std::time::Instant::now();
    app.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5));
}
