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

/// `PRAGMA name` on `conn`, as an integer.
fn pragma(conn: &rusqlite::Connection, name: &str) -> i64 {
    conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn litestream_mode_leaves_every_checkpoint_to_litestream() {
    let mut app = TestApp::spawn_with(|c| c.storage.litestream = true).await;
    let db = app.state.db.clone();
    // Every read connection the pool hands out, several at once, and the writer.
    let reads: Vec<_> = (0..8)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                db.read(|conn| {
                    std::thread::sleep(Duration::from_millis(20));
                    Ok((
                        pragma(conn, "wal_autocheckpoint"),
                        pragma(conn, "busy_timeout"),
                    ))
                })
                .await
                .unwrap()
            })
        })
        .collect();
    for read in reads {
        let (autocheckpoint, busy) = read.await.unwrap();
        assert_eq!(autocheckpoint, 0, "a reader checkpoints");
        assert!(busy >= 5000, "a reader's busy timeout is {busy} ms");
    }
    let (autocheckpoint, busy) = db
        .write(|tx| Ok((pragma(tx, "wal_autocheckpoint"), pragma(tx, "busy_timeout"))))
        .await
        .unwrap();
    assert_eq!(autocheckpoint, 0, "the writer checkpoints");
    assert!(busy >= 5000, "the writer's busy timeout is {busy} ms");

    // Nothing copies the WAL into the database file: not a background checkpointer, not the
    // shutdown, not the last connection closing.
    let data = app.dir.path().join("data");
    let main_before = std::fs::read(data.join("persona.db")).unwrap();
    // (Eight: under the per-IP limit of registrations.)
    for i in 0..8 {
        app.register(&format!("ls{i}@example.com")).await;
    }
    app.stop().await;
    let dir = std::mem::replace(&mut app.dir, tempfile::tempdir().unwrap());
    drop(db);
    drop(app);
    let data = dir.path().join("data");
    assert!(
        std::fs::read(data.join("persona.db")).unwrap() == main_before,
        "the database file changed: something checkpointed"
    );
    let wal = std::fs::metadata(data.join("persona.db-wal"))
        .unwrap()
        .len();
    assert!(wal > 0, "the WAL was truncated");

    // And the next start finds every write (from the WAL).
    let app = TestApp::spawn_in(dir, |c| c.storage.litestream = true).await;
    app.login("ls7@example.com").await;
}

#[tokio::test]
async fn without_litestream_shutdown_folds_the_wal_into_the_database() {
    let mut app = TestApp::spawn().await;
    app.register("plain@example.com").await;
    app.stop().await;
    let wal = app.dir.path().join("data/persona.db-wal");
    let size = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert_eq!(size, 0, "the shutdown checkpoint truncates the WAL");
}

/// `persona serve` runs with the allocator tunables it sets itself (by running itself again in
/// the same process: the PID the caller started is the server, under its own name), and leaves
/// an operator's own `GLIBC_TUNABLES`, even an empty one, as they are.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn the_server_runs_with_its_allocator_tunables_unless_the_operator_set_them() {
    use std::io::{BufRead, BufReader};

    for (given, expected) in [
        (None, persona::GLIBC_TUNABLES),
        (Some("glibc.malloc.arena_max=1"), "glibc.malloc.arena_max=1"),
        (Some(""), ""),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut command = crate::helpers::persona_command(dir.path());
        command
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env_remove("GLIBC_TUNABLES")
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null());
        if let Some(value) = given {
            command.env("GLIBC_TUNABLES", value);
        }
        let mut child = command.spawn().unwrap();
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let (served, logged) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let found = lines
                .map_while(Result::ok)
                .any(|line| line.contains("\"address\""));
            let _ = served.send(found);
        });
        let served = logged.recv_timeout(Duration::from_secs(60));
        let environ = std::fs::read(format!("/proc/{}/environ", child.id())).unwrap();
        let name = std::fs::read_to_string(format!("/proc/{}/comm", child.id())).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(
            served,
            Ok(true),
            "the server did not log its address ({given:?})"
        );
        // Run by its path: `ps` and `pkill -x persona` still know it.
        assert_eq!(name.trim(), "persona", "given {given:?}");
        let tunables: Vec<_> = environ
            .split(|b| *b == 0)
            .filter_map(|entry| entry.strip_prefix(b"GLIBC_TUNABLES="))
            .map(|value| String::from_utf8_lossy(value).into_owned())
            .collect();
        assert_eq!(tunables, [expected], "given {given:?}");
    }
}

/// The scripts that run persona under valgrind (which does not follow an exec) give it the
/// tunables it would set itself.
#[test]
fn the_valgrind_scripts_set_the_servers_tunables() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for script in ["bench/instructions", "scripts/text-order"] {
        let text = std::fs::read_to_string(root.join(script)).unwrap();
        let line = format!("export GLIBC_TUNABLES={}", persona::GLIBC_TUNABLES);
        assert!(text.contains(&line), "{script} lacks `{line}`");
    }
}
