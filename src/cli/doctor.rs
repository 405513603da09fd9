//! `persona doctor`: checks what a hobbyist gets wrong on a new VPS, without changing
//! anything: the configuration, the data directory, the secrets file's permissions, the
//! database, the Litestream mode and the AI upstream. Exits non-zero when a check fails.

use std::{fs, os::unix::fs::PermissionsExt, process::ExitCode, time::Duration};

use super::Cli;
use crate::{
    config::Config,
    db,
    features::ai::{ProbeError, Upstream},
    secrets::Secrets,
};

#[derive(Debug, Default, clap::Args)]
pub struct Opts {}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    Warn,
    Fail,
}

struct Report {
    failed: bool,
}

impl Report {
    fn line(&mut self, verdict: Verdict, what: &str, detail: impl AsRef<str>) {
        let mark = match verdict {
            Verdict::Ok => "ok  ",
            Verdict::Warn => "warn",
            Verdict::Fail => {
                self.failed = true;
                "FAIL"
            }
        };
        println!("[{mark}] {what:<10} {}", detail.as_ref());
    }
}

pub async fn run(cli: &Cli, _opts: &Opts) -> anyhow::Result<ExitCode> {
    let mut report = Report { failed: false };
    let config = match cli.load_config() {
        Ok(config) => {
            let source = match &cli.config {
                Some(path) => path.display().to_string(),
                None if std::path::Path::new(crate::config::DEFAULT_FILE).is_file() => {
                    crate::config::DEFAULT_FILE.to_owned()
                }
                None => "built-in defaults".to_owned(),
            };
            report.line(
                Verdict::Ok,
                "config",
                format!("loaded from {source} and the environment"),
            );
            config
        }
        Err(err) => {
            report.line(Verdict::Fail, "config", format!("{err:#}"));
            return Ok(ExitCode::FAILURE);
        }
    };

    check_data_dir(&mut report, &config);
    check_secrets(&mut report, &config);
    check_database(&mut report, &config);
    check_litestream(&mut report, &config);
    check_ai(&mut report, &config).await;

    Ok(if report.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn check_data_dir(report: &mut Report, config: &Config) {
    let dir = &config.storage.data_dir;
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            let mode = meta.permissions().mode() & 0o777;
            let verdict = if mode & 0o077 == 0 {
                Verdict::Ok
            } else {
                Verdict::Warn
            };
            report.line(
                verdict,
                "data dir",
                format!("{} (mode {mode:o})", dir.display()),
            );
        }
        Ok(_) => report.line(
            Verdict::Fail,
            "data dir",
            format!("{} is not a directory", dir.display()),
        ),
        Err(_) => report.line(
            Verdict::Warn,
            "data dir",
            format!(
                "{} does not exist yet; `persona serve` creates it",
                dir.display()
            ),
        ),
    }
}

fn check_secrets(report: &mut Report, config: &Config) {
    let path = config.secrets_path();
    let Ok(meta) = fs::metadata(&path) else {
        report.line(
            Verdict::Warn,
            "secrets",
            format!(
                "{} does not exist yet; `persona serve` creates it",
                path.display()
            ),
        );
        return;
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        report.line(
            Verdict::Fail,
            "secrets",
            format!(
                "{} has mode {mode:o}; run `chmod 600 {}`",
                path.display(),
                path.display()
            ),
        );
        return;
    }
    match Secrets::read(&path) {
        Ok(secrets) => report.line(
            Verdict::Ok,
            "secrets",
            format!(
                "{} (mode 600): {} JWT key(s), {} backup key(s)",
                path.display(),
                secrets.jwt_keys.len(),
                secrets.backup_keys.len()
            ),
        ),
        Err(err) => report.line(Verdict::Fail, "secrets", format!("{err:#}")),
    }
}

fn check_database(report: &mut Report, config: &Config) {
    let path = config.database_path();
    if !path.exists() {
        report.line(
            Verdict::Warn,
            "database",
            format!(
                "{} does not exist yet; `persona serve` or `persona migrate` creates it",
                path.display()
            ),
        );
        return;
    }
    match db::inspect(&path, config.storage.busy_timeout) {
        Ok(found) => {
            if found.quick_check != "ok" {
                report.line(
                    Verdict::Fail,
                    "database",
                    format!("integrity check failed: {}", found.quick_check),
                );
            } else if !found.pending_migrations.is_empty() {
                report.line(
                    Verdict::Warn,
                    "database",
                    format!(
                        "{} migration(s) pending; run `persona migrate`",
                        found.pending_migrations.len()
                    ),
                );
            } else {
                report.line(
                    Verdict::Ok,
                    "database",
                    format!(
                        "{} (journal {}, integrity ok, migrations applied)",
                        path.display(),
                        found.journal_mode
                    ),
                );
            }
        }
        Err(err) => report.line(Verdict::Fail, "database", format!("{err:#}")),
    }
}

/// `storage.litestream` against what is on disk: Litestream keeps its state in
/// `.persona.db-litestream` next to the database, so that directory with the mode off means
/// persona's own checkpoints (TRUNCATE at shutdown, when the WAL grew large) run under
/// Litestream's feet; the mode on without it means nothing copies the WAL back, and it grows.
fn check_litestream(report: &mut Report, config: &Config) {
    let db_path = config.database_path();
    let sidecar = db_path.with_file_name(".persona.db-litestream");
    let replicating = sidecar.is_dir();
    let wal = std::path::PathBuf::from(format!("{}-wal", db_path.display()));
    let wal_size = fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    let wal_size = bytesize::ByteSize::b(wal_size);
    match (config.storage.litestream, replicating) {
        (true, true) => report.line(
            Verdict::Ok,
            "litestream",
            format!(
                "storage.litestream = true: checkpoints left to Litestream ({} found; WAL {wal_size})",
                sidecar.display()
            ),
        ),
        (true, false) if db_path.exists() => report.line(
            Verdict::Warn,
            "litestream",
            format!(
                "storage.litestream = true but no {} yet: is `litestream replicate` running? \
                 Without it nothing checkpoints and the WAL grows (now {wal_size})",
                sidecar.display()
            ),
        ),
        (true, false) => report.line(
            Verdict::Ok,
            "litestream",
            "storage.litestream = true: checkpoints left to Litestream",
        ),
        (false, true) => report.line(
            Verdict::Warn,
            "litestream",
            format!(
                "{} exists but storage.litestream is off: persona's own checkpoints can \
                 break Litestream's replication; set storage.litestream = true \
                 (PERSONA_STORAGE__LITESTREAM=true) while Litestream replicates",
                sidecar.display()
            ),
        ),
        (false, false) => report.line(
            Verdict::Ok,
            "litestream",
            "off (storage.litestream = false): persona checkpoints the WAL itself",
        ),
    }
}

async fn check_ai(report: &mut Report, config: &Config) {
    if config.ai.api_key.is_none() {
        report.line(
            Verdict::Warn,
            "ai",
            "no ai.api_key: AI endpoints answer 503 ai_not_configured",
        );
        return;
    }
    let client = crate::http::client::outbound(config.ai.connect_timeout);
    let upstream = match client.and_then(|client| Upstream::new(&config.ai, client)) {
        Ok(upstream) => upstream,
        Err(err) => {
            report.line(
                Verdict::Fail,
                "ai",
                format!("cannot build an HTTP client: {err}"),
            );
            return;
        }
    };
    match upstream.probe(Duration::from_secs(10)).await {
        Ok(latency) => report.line(
            Verdict::Ok,
            "ai",
            format!(
                "{} answered in {} ms",
                config.ai.base_url,
                latency.as_millis()
            ),
        ),
        Err(ProbeError::Status(status)) => report.line(
            Verdict::Fail,
            "ai",
            format!("{} answered {status}", config.ai.base_url),
        ),
        Err(ProbeError::Unreachable(problem)) => report.line(
            Verdict::Fail,
            "ai",
            format!("{} is unreachable: {problem}", config.ai.base_url),
        ),
    }
}
