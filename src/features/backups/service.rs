//! Backups as plain operations: seal and store, open, re-seal under a new key. The handlers
//! and the admin CLI share them (a download, chunk by chunk, is in `download.rs`).

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{
    crypto::{self, ChunkCipher, SealedChunks},
    store::{self, BackupRow, Format, NewBackup},
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

/// Verifies the checksum, seals the bytes chunk by chunk (format 2) under the newest backup
/// key and stores them with the retention applied, all or nothing.
pub async fn store(app: &App, user_id: &str, upload: Upload) -> AppResult<BackupRow> {
    let Upload {
        data,
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
    // Hashing and sealing 64 MiB take tens of milliseconds: off the async workers. The
    // sealing is in place, in the upload's own buffer.
    let sealed = run_blocking(move || {
        let digest = computed.unwrap_or_else(|| Sha256::digest(&data).into());
        if hex::encode(digest) != claimed {
            return Err(ApiError::Unprocessable {
                code: Code::ChecksumMismatch,
                message: "The SHA-256 of the data does not match `checksum`.".into(),
            });
        }
        let cipher = ChunkCipher::new(&key.key, &owner, &backup_id)?;
        Ok(SealedChunks::seal(&cipher, data)?)
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
                    nonce: &sealed.prefix,
                    format: Format::Chunked,
                    now: Timestamp::now(),
                },
                sealed.stored(),
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

/// Reads and decrypts the whole backup `row`, of either format (a blocking call: run it on
/// the blocking pool). Memory: the backup, plus one chunk for format 2.
pub fn open(conn: &rusqlite::Connection, key: &BackupKey, row: &BackupRow) -> AppResult<Vec<u8>> {
    match row.format {
        Format::Whole => {
            let mut bytes = store::sealed(conn, row.seq, row.size)?;
            crypto::open_whole(&key.key, &row.user_id, &row.id, &row.nonce, &mut bytes)?;
            Ok(bytes)
        }
        Format::Chunked => {
            let cipher = ChunkCipher::existing(&key.key, &row.user_id, &row.id, &row.nonce)?;
            let size = plaintext_size(row)?;
            let mut bytes = Vec::with_capacity(size as usize);
            for index in 0..crypto::chunk_count(size) {
                let stored = stored_chunk(conn, row, index)?;
                bytes.extend_from_slice(&open_chunk(&cipher, size, index, stored)?);
            }
            Ok(bytes)
        }
    }
}

pub(super) fn plaintext_size(row: &BackupRow) -> AppResult<u64> {
    u64::try_from(row.size)
        .map_err(|_| ApiError::internal(anyhow::anyhow!("backup {} has a negative size", row.id)))
}

/// Stored chunk `index` of `row`; a missing one is a damaged backup.
fn stored_chunk(conn: &rusqlite::Connection, row: &BackupRow, index: u64) -> AppResult<Vec<u8>> {
    store::chunk(conn, row.seq, index)?.ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "chunk {index} of backup {} is missing",
            row.id
        ))
    })
}

/// Opens stored chunk `index` of a format-2 backup of `size` bytes and checks its length, so
/// a row whose `size` was changed cannot make a reader send more or fewer bytes than it
/// announced.
pub(super) fn open_chunk(
    cipher: &ChunkCipher,
    size: u64,
    index: u64,
    mut stored: Vec<u8>,
) -> AppResult<Vec<u8>> {
    let last = index + 1 == crypto::chunk_count(size);
    cipher.open(index, last, &mut stored)?;
    if Some(stored.len()) != crypto::chunk_len(size, index) {
        return Err(ApiError::internal(anyhow::anyhow!(
            "chunk {index} of a backup has {} bytes, not what its size says",
            stored.len()
        )));
    }
    Ok(stored)
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
                    if reseal(tx, row, key, &new_key)? {
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

/// Re-seals `row` (sealed under `old`) under `new` in format 2, if nobody changed it since it
/// was read. A format-2 backup is re-sealed chunk by chunk in place (memory: one chunk); a
/// format-1 backup is opened whole, as it has to be, and written anew in format 2.
fn reseal(
    tx: &rusqlite::Connection,
    row: &BackupRow,
    old: &BackupKey,
    new: &BackupKey,
) -> AppResult<bool> {
    let size = plaintext_size(row)?;
    let sealer = ChunkCipher::new(&new.key, &row.user_id, &row.id)?;
    // The row is claimed first: one deleted or re-sealed since it was read has no old bytes
    // to open, and is left alone. Its chunks are still the old ones until rewritten below.
    if !store::set_sealing(
        tx,
        row.seq,
        &row.nonce,
        new.version,
        sealer.prefix(),
        Format::Chunked,
    )? {
        return Ok(false);
    }
    match row.format {
        Format::Whole => {
            let sealed = SealedChunks::seal(&sealer, open(tx, old, row)?)?;
            store::replace_chunks(tx, row.seq, sealed.stored())?;
        }
        Format::Chunked => {
            let opener = ChunkCipher::existing(&old.key, &row.user_id, &row.id, &row.nonce)?;
            let count = crypto::chunk_count(size);
            for index in 0..count {
                let mut chunk = open_chunk(&opener, size, index, stored_chunk(tx, row, index)?)?;
                sealer.seal(index, index + 1 == count, &mut chunk)?;
                store::update_chunk(tx, row.seq, index, &chunk)?;
            }
        }
    }
    Ok(true)
}
