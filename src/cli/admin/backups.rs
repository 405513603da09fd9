//! `persona admin backups export --out DIR [--user EMAIL]`: every backup (or one user's),
//! decrypted from the server's layer, one file each plus `manifest.json`. Each file's SHA-256
//! is checked against the checksum recorded at upload while it is written.

use std::{
    collections::HashMap,
    fs,
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{
    auth::users,
    cli::{Cli, progress::Progress},
    domain::{Email, Timestamp},
    features::backups,
};

#[derive(Debug, clap::Args)]
pub struct Opts {
    #[command(subcommand)]
    pub command: BackupsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum BackupsCommand {
    /// Write every backup (decrypted server layer) and a manifest.json into DIR
    Export {
        /// Directory to write into (created if needed; must not hold an export already)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Only this user's backups
        #[arg(long, value_name = "EMAIL")]
        user: Option<String>,
    },
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    #[serde(with = "time::serde::rfc3339")]
    exported_at: time::OffsetDateTime,
    count: usize,
    backups: Vec<Entry>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    id: String,
    user_id: String,
    owner: String,
    device_id: Option<String>,
    size: i64,
    checksum: String,
    created_at: Timestamp,
    file: String,
}

pub async fn run(cli: &Cli, opts: &Opts) -> anyhow::Result<ExitCode> {
    let BackupsCommand::Export { out, user } = &opts.command;
    let app = cli.open_app()?;
    let owner_id = match user {
        Some(email) => {
            // Normalised as accounts are stored (NFC, lower case).
            let email = Email::parse(email)
                .map_err(|m| anyhow::anyhow!("--user {m}"))?
                .to_string();
            let found = app
                .db
                .read(move |conn| users::user_by_email(conn, &email))
                .await?;
            match found {
                Some(row) => Some(row.id),
                None => bail!(
                    "no account with the email {}",
                    user.as_deref().unwrap_or("")
                ),
            }
        }
        None => None,
    };
    let manifest_path = out.join("manifest.json");
    if manifest_path.exists() {
        bail!("{} already holds an export", out.display());
    }
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;

    let rows = backups::all(&app, owner_id).await?;
    let mut emails: HashMap<String, String> = HashMap::new();
    let mut entries = Vec::with_capacity(rows.len());
    let mut progress = Progress::new(rows.len() as u64, "backups exported");
    for row in rows {
        if !emails.contains_key(&row.user_id) {
            let id = row.user_id.clone();
            let email = app
                .db
                .read(move |conn| users::user_by_id(conn, &id))
                .await?
                .map_or_else(String::new, |u| u.email);
            emails.insert(row.user_id.clone(), email);
        }
        let (data, row) = backups::open_row(&app, row)
            .await
            .with_context(|| "cannot decrypt a backup".to_owned())?;
        let file = format!("{}.bin", row.id);
        write_verified(&out.join(&file), &data, &row.checksum)
            .with_context(|| format!("backup {}", row.id))?;
        progress.step(&row.id);
        entries.push(Entry {
            owner: emails[&row.user_id].clone(),
            id: row.id,
            user_id: row.user_id,
            device_id: row.device_id,
            size: row.size,
            checksum: row.checksum,
            created_at: row.created_at,
            file,
        });
    }
    progress.finish();
    let manifest = Manifest {
        exported_at: time::OffsetDateTime::now_utc(),
        count: entries.len(),
        backups: entries,
    };
    write_private(
        &manifest_path,
        serde_json::to_string_pretty(&manifest)?.as_bytes(),
    )?;
    println!(
        "exported {} backup(s) to {}, every checksum verified",
        manifest.count,
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes `data` to `path` (0600, through a temporary file), checking its SHA-256 first.
fn write_verified(path: &Path, data: &[u8], checksum: &str) -> anyhow::Result<()> {
    let actual = hex::encode(Sha256::digest(data));
    if actual != checksum {
        bail!("checksum mismatch: recorded {checksum}, data has {actual}");
    }
    write_private(path, data)
}

fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("partial");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    file.write_all(data)?;
    file.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
