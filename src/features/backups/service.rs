//! Backups as plain operations: seal and store, open, re-seal under a new key. The handlers
//! and the admin CLI share them.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{
    crypto,
    store::{self, BackupRow, NewBackup},
};
use crate::{
    app::{App, AppState},
    db::run_blocking,
    domain::{DeviceId, Timestamp},
    error::{ApiError, AppResult, Code},
    secrets::BackupKey,
};

/// An upload whose bytes were received in full.
pub struct Upload {
    pub data: Vec<u8>,
    /// The SHA-256 the client claimed (lower-case hex).
    pub checksum: String,
    /// The SHA-256 of `data`, when it was computed while receiving.
    pub computed: Option<[u8; 32]>,
    pub device_id: Option<DeviceId>,
    /// Serialized JSON.
    pub metadata: Option<String>,
}

/// Verifies the checksum, seals the bytes under the newest backup key and stores them with
/// the retention applied, all or nothing.
pub async fn store(app: &App, user_id: &str, upload: Upload) -> AppResult<BackupRow> {
    let Upload {
        mut data,
        checksum,
        computed,
        device_id,
        metadata,
    } = upload;
    let key = app.secrets().current_backup_key().clone();
    let key_version = key.version;
    let id = Uuid::new_v4().to_string();
    let size = data.len() as i64;
    let (owner, backup_id, claimed) = (user_id.to_owned(), id.clone(), checksum.clone());
    // Hashing and sealing 64 MiB take tens of milliseconds: off the async workers.
    let (sealed, nonce) = run_blocking(move || {
        let digest = computed.unwrap_or_else(|| Sha256::digest(&data).into());
        if hex::encode(digest) != claimed {
            return Err(ApiError::Unprocessable {
                code: Code::ChecksumMismatch,
                message: "The SHA-256 of the data does not match `checksum`.".into(),
            });
        }
        let nonce = crypto::seal(&key.key, &owner, &backup_id, &mut data)?;
        Ok((data, nonce))
    })
    .await?;
    let retain = app.config.backups.retain;
    let (owner, backup_id) = (user_id.to_owned(), id);
    app.db
        .write(move |tx| {
            store::insert(
                tx,
                &NewBackup {
                    id: &backup_id,
                    user_id: &owner,
                    device_id: device_id.as_ref().map(DeviceId::as_str),
                    size,
                    checksum: &checksum,
                    metadata: metadata.as_deref(),
                    key_version,
                    nonce: &nonce,
                    sealed: &sealed,
                    now: Timestamp::now(),
                },
            )?;
            store::apply_retention(tx, &owner, retain)?;
            store::by_id(tx, &owner, &backup_id)?.ok_or(ApiError::NotFound)
        })
        .await
}

/// The backup key of `version`; reads `secrets.toml` again when this process has not seen
/// that version yet (the CLI just rotated).
pub fn backup_key(app: &App, version: u32) -> AppResult<BackupKey> {
    if let Some(key) = app.secrets().backup_key(version) {
        return Ok(key.clone());
    }
    let secrets = app.reload_secrets().map_err(ApiError::internal)?;
    secrets.backup_key(version).cloned().ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "backup key version {version} is not in secrets.toml"
        ))
    })
}

/// Reads and decrypts the backup `row` (a blocking call: run it on the blocking pool).
pub fn open(conn: &rusqlite::Connection, key: &BackupKey, row: &BackupRow) -> AppResult<Vec<u8>> {
    let mut bytes = store::sealed(conn, row.seq, row.size)?;
    crypto::open(&key.key, &row.user_id, &row.id, &row.nonce, &mut bytes)?;
    Ok(bytes)
}

/// A page of the user's backups, newest first: those before `before` (a `seq`), at most
/// `limit`.
pub async fn page(
    app: &App,
    user_id: &str,
    before: Option<i64>,
    limit: u32,
) -> AppResult<Vec<BackupRow>> {
    let owner = user_id.to_owned();
    app.db
        .read(move |conn| store::page(conn, &owner, before, limit))
        .await
}

/// Deletes one of the user's backups; 404 when the user has none of that id.
pub async fn delete(app: &App, user_id: &str, id: String) -> AppResult<()> {
    let owner = user_id.to_owned();
    let deleted = app
        .db
        .write(move |tx| store::delete(tx, &owner, &id))
        .await?;
    if deleted {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

/// Every backup (of one user, or of all), without data, for the admin's export.
pub async fn all(app: &App, user_id: Option<String>) -> AppResult<Vec<BackupRow>> {
    app.db
        .read(move |conn| store::all(conn, user_id.as_deref()))
        .await
}

/// The plaintext of `row` (for the admin's export).
pub async fn open_row(app: &AppState, row: BackupRow) -> AppResult<(Vec<u8>, BackupRow)> {
    let key = backup_key(app, row.key_version)?;
    app.db
        .read(move |conn| Ok((open(conn, &key, &row)?, row)))
        .await
}

/// The backup key versions some backup still uses.
pub async fn key_versions_in_use(app: &App) -> AppResult<Vec<u32>> {
    app.db.read(store::key_versions_in_use).await
}

/// Which backup to fetch.
pub enum Which {
    Latest,
    Id(String),
}

/// The user's backup with its plaintext; 404 when the user has no such backup.
pub async fn fetch(app: &AppState, user_id: &str, which: Which) -> AppResult<(BackupRow, Vec<u8>)> {
    let (db, app, owner) = (app.db.clone(), app.clone(), user_id.to_owned());
    db.read(move |conn| {
        // One snapshot for the row and its bytes, whatever writers do meanwhile.
        let tx = conn.unchecked_transaction()?;
        let row = match which {
            Which::Latest => store::latest(&tx, &owner)?,
            Which::Id(id) => store::by_id(&tx, &owner, &id)?,
        }
        .ok_or(ApiError::NotFound)?;
        // On the blocking pool: a key version not seen yet re-reads secrets.toml.
        let key = backup_key(&app, row.key_version)?;
        let data = open(&tx, &key, &row)?;
        Ok((row, data))
    })
    .await
}

/// Re-encrypts, in batches, every backup sealed under another key than the newest of
/// `secrets`, calling `on_each` per backup. Each batch is one transaction, and a row changed
/// meanwhile (deleted, re-sealed) is left alone, so this is safe to interrupt and to run
/// while the server serves. Returns how many backups were re-sealed.
pub async fn reseal_all(
    app: &App,
    secrets: &crate::secrets::Secrets,
    mut on_each: impl FnMut(&str),
) -> AppResult<usize> {
    const BATCH: u32 = 16;
    let current = secrets.current_backup_key().clone();
    let mut resealed = 0;
    loop {
        let version = current.version;
        let rows = app
            .db
            .read(move |conn| store::sealed_with_other_key(conn, version, BATCH))
            .await?;
        if rows.is_empty() {
            return Ok(resealed);
        }
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            let key = secrets.backup_key(row.key_version).cloned().ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!(
                    "backup {} is sealed with key version {}, which secrets.toml no longer holds",
                    row.id,
                    row.key_version
                ))
            })?;
            keys.push(key);
        }
        let new_key = current.clone();
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let changed = app
            .db
            .write(move |tx| {
                let mut changed = 0;
                for (row, key) in rows.iter().zip(&keys) {
                    let mut data = open(tx, key, row)?;
                    data.reserve_exact(crypto::TAG_LEN);
                    let nonce = crypto::seal(&new_key.key, &row.user_id, &row.id, &mut data)?;
                    if store::reseal(tx, row.seq, &row.nonce, new_key.version, &nonce, &data)? {
                        changed += 1;
                    }
                }
                Ok(changed)
            })
            .await?;
        resealed += changed;
        ids.iter().for_each(|id| on_each(id));
    }
}
