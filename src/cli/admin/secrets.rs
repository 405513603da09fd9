//! `persona admin secrets rotate jwt | backup-key`.
//!
//! - `jwt`: a new signing key. The running server picks it up within seconds (it watches
//!   `secrets.toml`); older keys keep verifying until no token they signed can still be
//!   valid, and only then does a later rotation drop them.
//! - `backup-key`: a new backup key version, then every backup re-encrypted under it in
//!   batches, then the versions nothing uses any more dropped. Interrupted, it resumes: a run
//!   that finds backups under older versions finishes that rotation instead of starting
//!   another.

use std::process::ExitCode;

use clap::Subcommand;
use time::OffsetDateTime;

use crate::{
    app::{App, SECRETS_RELOAD_INTERVAL},
    cli::{Cli, progress::Progress},
    config::Config,
    features::backups,
    secrets::{BackupKey, JwtKey, Key256, Secrets, new_kid},
};

#[derive(Debug, clap::Args)]
pub struct Opts {
    #[command(subcommand)]
    pub command: SecretsCommand,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Rotate a key ring
    Rotate {
        #[command(subcommand)]
        ring: Ring,
    },
}

#[derive(Debug, Subcommand)]
pub enum Ring {
    /// A new JWT signing key; retired keys are dropped once their tokens have expired
    Jwt,
    /// A new backup key; every backup is re-encrypted under it (resumable)
    BackupKey,
}

pub async fn run(cli: &Cli, opts: &Opts) -> anyhow::Result<ExitCode> {
    let config = cli.load_config()?;
    let path = config.secrets_path();
    match &opts.command {
        SecretsCommand::Rotate {
            ring: Ring::BackupKey,
        } => rotate_backup_key(config).await?,
        SecretsCommand::Rotate { ring: Ring::Jwt } => {
            let mut secrets = Secrets::load_or_create(&path)?;
            let now = OffsetDateTime::now_utc();
            // A key stops signing when its successor appears (plus the server's reload
            // delay); its tokens live `access_ttl` (plus leeway) after that.
            let keep_for = config.auth.access_ttl
                + crate::app::SECRETS_RELOAD_INTERVAL
                + std::time::Duration::from_secs(120);
            let successors: Vec<OffsetDateTime> = secrets
                .jwt_keys
                .iter()
                .skip(1)
                .map(|k| k.created_at)
                .collect();
            let before = secrets.jwt_keys.len();
            let mut index = 0;
            secrets.jwt_keys.retain(|_| {
                let retired_at = successors.get(index).copied();
                index += 1;
                retired_at.is_none_or(|t| now - t < keep_for)
            });
            let dropped = before - secrets.jwt_keys.len();
            let kid = new_kid()?;
            secrets.jwt_keys.push(JwtKey {
                kid: kid.clone(),
                created_at: now,
                key: Key256::generate()?,
            });
            secrets.replace(&path)?;
            println!(
                "new JWT signing key {kid}; {} key(s) still verify; {dropped} expired key(s) dropped",
                secrets.jwt_keys.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn rotate_backup_key(config: Config) -> anyhow::Result<()> {
    let path = config.secrets_path();
    let app = App::init(config, crate::features::all())?;
    let mut secrets = Secrets::read(&path)?;
    let in_use = backups::key_versions_in_use(&app).await?;
    let current = secrets.current_backup_key().version;
    if in_use.iter().any(|v| *v != current) {
        println!("resuming the rotation to backup key version {current}");
    } else {
        let version = secrets
            .backup_keys
            .iter()
            .map(|k| k.version)
            .max()
            .unwrap_or(0)
            + 1;
        secrets.backup_keys.push(BackupKey {
            version,
            created_at: OffsetDateTime::now_utc(),
            key: Key256::generate()?,
        });
        secrets.replace(&path)?;
        println!("new backup key version {version}");
    }
    let secrets = app.reload_secrets()?;
    let current = secrets.current_backup_key().clone();

    let count_old = |app: &App| {
        let version = current.version;
        let db = app.db.clone();
        async move {
            db.read(move |conn| {
                Ok(conn.query_row(
                    "SELECT count(*) FROM backups WHERE key_version != ?1",
                    [version],
                    |r| r.get::<_, i64>(0),
                )?)
            })
            .await
            .map(|n| n as u64)
        }
    };
    let mut total = 0;
    // A running server seals new uploads with the old key until it reloads secrets.toml:
    // go round again until the new key is old enough that every server has taken it up.
    let settled_at = current.created_at + SECRETS_RELOAD_INTERVAL * 2;
    loop {
        let pending = count_old(&app).await?;
        if pending > 0 {
            let mut progress = Progress::new(pending, "backups re-encrypted");
            total += backups::reseal_all(&app, &secrets, |id| progress.step(id)).await?;
            progress.finish();
        }
        let wait = settled_at - OffsetDateTime::now_utc();
        if wait.is_positive() {
            tokio::time::sleep(wait.unsigned_abs()).await;
            continue;
        }
        if count_old(&app).await? == 0 {
            break;
        }
    }

    // Drop the versions no backup uses any more (re-reading the file: it is the truth).
    let in_use = backups::key_versions_in_use(&app).await?;
    let mut ring = Secrets::read(&path)?;
    let before = ring.backup_keys.len();
    let newest = ring.current_backup_key().version;
    ring.backup_keys
        .retain(|k| k.version == newest || in_use.contains(&k.version));
    let dropped = before - ring.backup_keys.len();
    if dropped > 0 {
        ring.replace(&path)?;
    }
    println!(
        "{total} backup(s) re-encrypted under key version {newest}; {dropped} old key version(s) dropped"
    );
    Ok(())
}
