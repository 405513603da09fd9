//! `persona admin backups export`, `secrets rotate backup-key`, `db backup` and `db restore`,
//! run as an admin would: a separate process beside a running server on the same data dir.

use std::path::Path;

use base64::{Engine, engine::general_purpose::STANDARD};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{ServerProcess, http_client, run_persona, stderr, stdout};

async fn register(server: &ServerProcess, email: &str) -> String {
    let body: Value = http_client()
        .post(server.url("/api/v1/auth/register"))
        .json(&json!({"email": email, "password": "password123"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["accessToken"].as_str().unwrap().to_owned()
}

async fn upload(server: &ServerProcess, token: &str, data: &[u8]) -> String {
    let response = http_client()
        .post(server.url("/api/v1/sync/backup"))
        .bearer_auth(token)
        .json(
            &json!({"data": STANDARD.encode(data), "checksum": hex::encode(Sha256::digest(data))}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

async fn download(server: &ServerProcess, token: &str, id: &str) -> (StatusCode, Vec<u8>) {
    let response = http_client()
        .get(server.url(&format!("/api/v1/sync/backup/{id}")))
        .bearer_auth(token)
        .header("accept", "application/octet-stream")
        .send()
        .await
        .unwrap();
    (response.status(), response.bytes().await.unwrap().to_vec())
}

fn backup_key_versions(dir: &Path) -> Vec<u32> {
    persona::secrets::Secrets::read(&dir.join("data/secrets.toml"))
        .unwrap()
        .backup_keys
        .iter()
        .map(|k| k.version)
        .collect()
}

#[tokio::test]
async fn export_writes_verified_files_and_a_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let ana = register(&server, "ana@example.com").await;
    let bob = register(&server, "bob@example.com").await;
    let ana_data = b"ana's encrypted little brain".repeat(1000);
    let bob_data = b"bob's".repeat(10);
    let ana_id = upload(&server, &ana, &ana_data).await;
    let bob_id = upload(&server, &bob, &bob_data).await;

    let out = dir.path().join("export");
    let output = run_persona(
        dir.path(),
        &["admin", "backups", "export", "--out", out.to_str().unwrap()],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("exported 2 backup(s)"),
        "{}",
        stdout(&output)
    );
    // Not a terminal: plain progress lines.
    assert!(
        stderr(&output).contains("2/2 backups exported"),
        "{}",
        stderr(&output)
    );

    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["count"], 2);
    let entries = manifest["backups"].as_array().unwrap();
    let ana_entry = entries.iter().find(|e| e["id"] == ana_id.as_str()).unwrap();
    assert_eq!(ana_entry["owner"], "ana@example.com");
    assert_eq!(ana_entry["size"], ana_data.len());
    assert_eq!(
        ana_entry["checksum"],
        hex::encode(Sha256::digest(&ana_data))
    );
    let file = out.join(ana_entry["file"].as_str().unwrap());
    assert_eq!(std::fs::read(&file).unwrap(), ana_data);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read(out.join(format!("{bob_id}.bin"))).unwrap(),
        bob_data
    );

    // Once per directory.
    let again = run_persona(
        dir.path(),
        &["admin", "backups", "export", "--out", out.to_str().unwrap()],
    );
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already holds an export"),
        "{}",
        stderr(&again)
    );

    // One user's backups only.
    let bobs = dir.path().join("bob");
    let output = run_persona(
        dir.path(),
        &[
            "admin",
            "backups",
            "export",
            "--out",
            bobs.to_str().unwrap(),
            "--user",
            "BOB@example.com",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(bobs.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["count"], 1);
    assert_eq!(manifest["backups"][0]["id"], bob_id.as_str());

    let ghost = run_persona(
        dir.path(),
        &[
            "admin",
            "backups",
            "export",
            "--out",
            "x",
            "--user",
            "ghost@example.com",
        ],
    );
    assert!(!ghost.status.success());
    assert!(
        stderr(&ghost).contains("no account with the email ghost@example.com"),
        "{}",
        stderr(&ghost)
    );
}

#[tokio::test]
async fn backup_key_rotation_reencrypts_everything_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let ana = register(&server, "ana@example.com").await;
    let mut ids = Vec::new();
    for i in 0..3u8 {
        ids.push(upload(&server, &ana, &[i; 5000]).await);
    }
    assert_eq!(backup_key_versions(dir.path()), [1]);

    let output = run_persona(dir.path(), &["admin", "secrets", "rotate", "backup-key"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("new backup key version 2"),
        "{}",
        stdout(&output)
    );
    assert!(
        stdout(&output)
            .contains("3 backup(s) re-encrypted under key version 2; 1 old key version(s) dropped"),
        "{}",
        stdout(&output)
    );
    assert_eq!(backup_key_versions(dir.path()), [2]);

    // The running server reads them with the new key, and seals new uploads with it.
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            download(&server, &ana, id).await,
            (StatusCode::OK, vec![i as u8; 5000])
        );
    }
    let newer = upload(&server, &ana, b"after the rotation").await;
    assert_eq!(
        download(&server, &ana, &newer).await.1,
        b"after the rotation"
    );
    let versions = run_persona(dir.path(), &["admin", "backups", "export", "--out", "e"]);
    assert!(versions.status.success(), "{}", stderr(&versions));
}

#[tokio::test]
async fn an_interrupted_backup_key_rotation_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let ana = register(&server, "ana@example.com").await;
    let id = upload(&server, &ana, b"keep me readable").await;
    drop(server);

    // A rotation that died right after writing the new key: version 2 exists, the backup is
    // still sealed under version 1.
    let path = dir.path().join("data/secrets.toml");
    let mut secrets = persona::secrets::Secrets::read(&path).unwrap();
    secrets.backup_keys.push(persona::secrets::BackupKey {
        version: 2,
        created_at: time::OffsetDateTime::now_utc() - time::Duration::minutes(5),
        key: persona::secrets::Key256::generate().unwrap(),
    });
    secrets.replace(&path).unwrap();

    let output = run_persona(dir.path(), &["admin", "secrets", "rotate", "backup-key"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("resuming the rotation to backup key version 2"),
        "{}",
        stdout(&output)
    );
    assert!(
        stdout(&output).contains("1 backup(s) re-encrypted"),
        "{}",
        stdout(&output)
    );
    assert_eq!(backup_key_versions(dir.path()), [2]);

    let server = ServerProcess::start(dir.path());
    let token = {
        let body: Value = http_client()
            .post(server.url("/api/v1/auth/login"))
            .json(&json!({"email": "ana@example.com", "password": "password123"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["accessToken"].as_str().unwrap().to_owned()
    };
    assert_eq!(
        download(&server, &token, &id).await,
        (StatusCode::OK, b"keep me readable".to_vec())
    );
}

#[tokio::test]
async fn db_backup_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let ana = register(&server, "ana@example.com").await;
    let id = upload(&server, &ana, b"before the snapshot").await;
    let epoch_before = http_client()
        .get(server.url("/api/v1/sync/status"))
        .bearer_auth(&ana)
        .send()
        .await
        .unwrap()
        .headers()["x-server-epoch"]
        .to_str()
        .unwrap()
        .to_owned();

    // An online snapshot while the server runs.
    let snapshot = dir.path().join("snap.db");
    let output = run_persona(
        dir.path(),
        &["admin", "db", "backup", "--out", snapshot.to_str().unwrap()],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("integrity check ok"),
        "{}",
        stdout(&output)
    );
    let again = run_persona(
        dir.path(),
        &["admin", "db", "backup", "--out", snapshot.to_str().unwrap()],
    );
    assert!(!again.status.success(), "never overwrites");

    register(&server, "later@example.com").await;

    // Restore refuses while the server runs, and a second server is refused too.
    let refused = run_persona(
        dir.path(),
        &[
            "admin",
            "db",
            "restore",
            "--from",
            snapshot.to_str().unwrap(),
        ],
    );
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("stop it before restoring"),
        "{}",
        stderr(&refused)
    );
    let second = run_persona(dir.path(), &["serve", "--bind", "127.0.0.1:0"]);
    assert!(!second.status.success());
    assert!(
        stderr(&second).contains("a persona server is running"),
        "{}",
        stderr(&second)
    );
    drop(server);

    // A file that is not a persona database is refused and changes nothing.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database at all").unwrap();
    let bad = run_persona(
        dir.path(),
        &["admin", "db", "restore", "--from", junk.to_str().unwrap()],
    );
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("junk.db"), "{}", stderr(&bad));

    let output = run_persona(
        dir.path(),
        &[
            "admin",
            "db",
            "restore",
            "--from",
            snapshot.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("kept as"), "{}", stdout(&output));
    let kept = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("persona.db.replaced-")
        });
    assert!(kept, "the replaced database is kept");

    let server = ServerProcess::start(dir.path());
    let login = |email: &'static str| {
        let url = server.url("/api/v1/auth/login");
        async move {
            http_client()
                .post(url)
                .json(&json!({"email": email, "password": "password123"}))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        login("later@example.com").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let body: Value = login("ana@example.com").await.json().await.unwrap();
    let token = body["accessToken"].as_str().unwrap();
    let status = http_client()
        .get(server.url("/api/v1/sync/status"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let epoch_after = status.headers()["x-server-epoch"].to_str().unwrap();
    assert_ne!(
        epoch_after, epoch_before,
        "a restore makes a new server epoch"
    );
    assert_eq!(
        download(&server, token, &id).await,
        (StatusCode::OK, b"before the snapshot".to_vec())
    );
}

#[tokio::test]
async fn scheduled_snapshots_are_checked_pruned_listed_and_restorable() {
    use std::time::{Duration, Instant, SystemTime};

    let mut app = crate::helpers::TestApp::spawn_with(|c| {
        c.backups.snapshot_interval = Some(Duration::from_millis(100));
        c.backups.snapshot_retain = 2;
    })
    .await;
    app.register("ana@example.com").await;
    let registered = SystemTime::now();
    let dir = app.dir.path().join("data/snapshots");

    // Until retention has deleted the first snapshot seen and the newest has ana in it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut first = None;
    let kept = loop {
        let kept = persona::db::snapshots::list(&dir).unwrap();
        if first.is_none() {
            first = kept.first().map(|s| s.path.clone());
        }
        let pruned = first
            .as_ref()
            .is_some_and(|f| !kept.iter().any(|s| &s.path == f));
        if pruned && kept.len() == 2 && kept[1].taken > registered {
            break kept;
        }
        assert!(Instant::now() < deadline, "snapshots: {kept:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let newest = kept[1].path.clone();

    let listed = run_persona(app.dir.path(), &["admin", "db", "snapshots"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let names = |p: &std::path::PathBuf| p.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        stdout(&listed).contains(&names(&newest)),
        "{}",
        stdout(&listed)
    );

    app.stop().await;
    let home = std::mem::replace(&mut app.dir, tempfile::tempdir().unwrap());
    drop(app);
    let restored = run_persona(
        home.path(),
        &["admin", "db", "restore", "--from", newest.to_str().unwrap()],
    );
    assert!(restored.status.success(), "{}", stderr(&restored));
    let app = crate::helpers::TestApp::spawn_in(home, |_| {}).await;
    app.login("ana@example.com").await;
}
