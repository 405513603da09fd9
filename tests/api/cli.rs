//! The binary itself: configuration errors, `migrate`, `doctor`, `admin config`, and
//! `serve` stopping on SIGTERM.

use std::{os::unix::fs::PermissionsExt, time::Duration};

use crate::helpers::{persona_command, start_server, stderr, stdout};

#[test]
fn a_bad_environment_value_stops_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let output = persona_command(dir.path())
        .arg("migrate")
        .env("PERSONA_SERVER__BIND", "not-an-address")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("server.bind"),
        "{}",
        stderr(&output)
    );
    assert!(!dir.path().join("data").exists(), "nothing was created");
}

#[test]
fn a_bad_file_value_names_the_key_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("custom.toml");
    std::fs::write(&file, "[auth]\naccess_ttl = \"soon\"\n").unwrap();
    let output = persona_command(dir.path())
        .args(["migrate", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("auth.access_ttl"), "{err}");

    std::fs::write(&file, "[server]\nmax_body = \"huge\"\n").unwrap();
    let output = persona_command(dir.path())
        .arg("--config")
        .arg(&file)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        stderr(&output).contains("server.max_body"),
        "{}",
        stderr(&output)
    );

    std::fs::write(&file, "[server]\ncors_origins = [\"app.example.com/\"]\n").unwrap();
    let output = persona_command(dir.path())
        .arg("--config")
        .arg(&file)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        stderr(&output).contains("server.cors_origins"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn an_unknown_key_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("persona.toml"),
        "[server]\nbnid = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let output = persona_command(dir.path()).arg("migrate").output().unwrap();
    assert!(!output.status.success());
    assert!(stderr(&output).contains("bnid"), "{}", stderr(&output));
}

#[test]
fn a_missing_config_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = persona_command(dir.path())
        .args(["migrate", "--config", "nope.toml"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(stderr(&output).contains("nope.toml"), "{}", stderr(&output));
}

#[test]
fn config_comes_from_flag_env_file_and_environment_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("site.toml");
    std::fs::write(
        &file,
        "[storage]\ndata_dir = \"/srv/persona\"\n[backups]\nretain = 9\n",
    )
    .unwrap();

    // --config before the subcommand, after it, and PERSONA_CONFIG.
    let runs = [
        persona_command(dir.path())
            .arg("--config")
            .arg(&file)
            .args(["admin", "config", "show"])
            .output(),
        persona_command(dir.path())
            .args(["admin", "config", "show", "--config"])
            .arg(&file)
            .output(),
        persona_command(dir.path())
            .env("PERSONA_CONFIG", &file)
            .args(["admin", "config", "show"])
            .output(),
    ];
    for output in runs {
        let output = output.unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        let shown: toml::Value = toml::from_str(&stdout(&output)).unwrap();
        assert_eq!(shown["storage"]["data_dir"].as_str(), Some("/srv/persona"));
        assert_eq!(shown["backups"]["retain"].as_integer(), Some(9));
    }

    // The environment wins over the file; secrets are never printed.
    let output = persona_command(dir.path())
        .env("PERSONA_CONFIG", &file)
        .env("PERSONA_BACKUPS__RETAIN", "3")
        .env("PERSONA_AI__API_KEY", "sk-very-secret")
        .args(["admin", "config", "show"])
        .output()
        .unwrap();
    let shown = stdout(&output);
    assert!(shown.contains("retain = 3"), "{shown}");
    assert!(!shown.contains("sk-very-secret"), "{shown}");
}

#[test]
fn the_example_config_is_printable_and_loads() {
    let dir = tempfile::tempdir().unwrap();
    let output = persona_command(dir.path())
        .args(["admin", "config", "example"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let example = stdout(&output);
    assert!(example.contains("[server]") && example.contains("bind = \"127.0.0.1:3000\""));
    std::fs::write(dir.path().join("persona.toml"), &example).unwrap();
    let output = persona_command(dir.path())
        .args(["admin", "config", "show"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn migrate_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let first = persona_command(dir.path()).arg("migrate").output().unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stdout(&first).contains("applied V1__server_meta"),
        "{}",
        stdout(&first)
    );
    let db = dir.path().join("data/persona.db");
    let epoch = persona::db::inspect(&db, Duration::from_secs(1))
        .unwrap()
        .server_epoch;

    let second = persona_command(dir.path()).arg("migrate").output().unwrap();
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stdout(&second).contains("up to date"),
        "{}",
        stdout(&second)
    );
    let after = persona::db::inspect(&db, Duration::from_secs(1)).unwrap();
    assert_eq!(after.server_epoch, epoch);
    assert!(after.pending_migrations.is_empty());
    assert_eq!(after.quick_check, "ok");
}

#[test]
fn serve_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, address) = start_server(dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = runtime.block_on(async {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        client
            .get(format!("http://{address}/health"))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, reqwest::StatusCode::OK);

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit status {exit:?}");
}

#[test]
fn doctor_checks_secrets_permissions_and_the_database() {
    let dir = tempfile::tempdir().unwrap();
    // Before the first start: nothing is wrong, things just do not exist yet.
    let fresh = persona_command(dir.path()).arg("doctor").output().unwrap();
    assert!(fresh.status.success(), "{}", stdout(&fresh));

    let (mut child, _) = start_server(dir.path());
    let healthy = persona_command(dir.path()).arg("doctor").output().unwrap();
    let report = stdout(&healthy);
    assert!(healthy.status.success(), "{report}");
    assert!(report.contains("[ok  ] secrets"), "{report}");
    assert!(report.contains("[ok  ] database"), "{report}");
    assert!(report.contains("ai_not_configured"), "{report}");

    let secrets = dir.path().join("data/secrets.toml");
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o644)).unwrap();
    let loose = persona_command(dir.path()).arg("doctor").output().unwrap();
    assert!(!loose.status.success());
    assert!(
        stdout(&loose).contains("[FAIL] secrets"),
        "{}",
        stdout(&loose)
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn doctor_reports_the_litestream_mode_and_a_replica_left_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let migrated = persona_command(dir.path()).arg("migrate").output().unwrap();
    assert!(migrated.status.success(), "{}", stderr(&migrated));

    let off = stdout(&persona_command(dir.path()).arg("doctor").output().unwrap());
    assert!(off.contains("[ok  ] litestream off"), "{off}");

    // Litestream keeps its state in `.persona.db-litestream`: replicated, but the mode is off.
    std::fs::create_dir(dir.path().join("data/.persona.db-litestream")).unwrap();
    let forgotten = persona_command(dir.path()).arg("doctor").output().unwrap();
    let report = stdout(&forgotten);
    assert!(
        forgotten.status.success(),
        "a warning is not a failure: {report}"
    );
    assert!(
        report.contains("[warn] litestream") && report.contains("storage.litestream is off"),
        "{report}"
    );

    let on = persona_command(dir.path())
        .arg("doctor")
        .env("PERSONA_STORAGE__LITESTREAM", "true")
        .output()
        .unwrap();
    let report = stdout(&on);
    assert!(
        report.contains("[ok  ] litestream storage.litestream = true"),
        "{report}"
    );
}

/// The JSON log lines `persona serve` writes until it listens (then it is stopped).
fn start_up_log(dir: &std::path::Path, level: Option<&str>) -> Vec<serde_json::Value> {
    use std::io::BufRead;
    let mut command = persona_command(dir);
    command
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    if let Some(level) = level {
        command.env("PERSONA_LOG__LEVEL", level);
    }
    let mut child = command.spawn().unwrap();
    let mut events = Vec::new();
    for line in std::io::BufReader::new(child.stderr.take().unwrap()).lines() {
        let event: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        let listening = event["address"].is_string();
        events.push(event);
        if listening {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    events
}

#[test]
fn start_up_logs_one_line_per_migration_and_no_refinery_chatter() {
    let dir = tempfile::tempdir().unwrap();
    let events = start_up_log(dir.path(), None);
    let from_refinery = |e: &&serde_json::Value| {
        e["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("refinery"))
    };
    assert!(!events.iter().any(|e| from_refinery(&e)), "{events:#?}");
    let applied: Vec<_> = events
        .iter()
        .filter(|e| e["message"] == "applied migration")
        .map(|e| e["migration"].as_str().unwrap())
        .collect();
    assert_eq!(applied.first(), Some(&"V1__server_meta"), "{events:#?}");

    // A level that names refinery gets its lines back.
    let again = tempfile::tempdir().unwrap();
    let events = start_up_log(again.path(), Some("info,refinery_core=info"));
    assert!(events.iter().any(|e| from_refinery(&e)), "{events:#?}");
}
