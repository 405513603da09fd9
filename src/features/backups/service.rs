//! Backups as plain operations: seal and store, open, re-seal under a new key. The handlers
//! and the admin CLI share them.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{
    crypto,
    store::{self, BackupRow, NewBackup},
};
use crate::{
    app::App,
    auth,
    db::run_blocking,
    error::{ApiError, AppResult},
    secrets::BackupKey,
};

/// An upload whose bytes were received in full.
pub struct Upload {
    pub data: Vec<u8>,
    /// The SHA-256 the client claimed (lower-case hex).
    pub checksum: String,
    /// The SHA-256 of `data`, when it was computed while receiving.
    pub computed: Option<[u8; 32]>,
    pub device_id: Option<String>,
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
    let id = Uuid::new_v4().to_string();
    let (owner, backup_id) = (user_id.to_owned(), id.clone());
    // Hashing and sealing 64 MiB take tens of milliseconds: off the async workers.
    let (size, nonce, sealed) = run_blocking(move || {
        let digest = computed.unwrap_or_else(|| Sha256::digest(&data).into());
        if hex::encode(digest) != checksum {
            return Err(ApiError::Unprocessable {
                code: "checksum_mismatch",
                message: "The SHA-256 of the data does not match `checksum`.".into(),
            });
        }
        let size = data.len() as i64;
        let nonce = crypto::seal(&key.key, &owner, &backup_id, &mut data)?;
        Ok((size, nonce, (data, checksum, key.version)))
    })
    .await?;
    let (sealed, checksum, key_version) = sealed;
    let retain = app.config.backups.retain;
    let (owner, backup_id) = (user_id.to_owned(), id);
    app.db
        .write(move |tx| {
            store::insert(
                tx,
                &NewBackup {
                    id: &backup_id,
                    user_id: &owner,
                    device_id: device_id.as_deref(),
                    size,
                    checksum: &checksum,
                    metadata: metadata.as_deref(),
                    key_version,
                    nonce: &nonce,
                    sealed: &sealed,
                    now: auth::now(),
                },
            )?;
            store::apply_retention(tx, &owner, retain)?;
            store::by_id(tx, &owner, &backup_id)?.ok_or(ApiError::NotFound)
        })
        .await
}

/// Reads and decrypts the backup `row` (a blocking call: run it on the blocking pool).
pub fn open(conn: &rusqlite::Connection, key: &BackupKey, row: &BackupRow) -> AppResult<Vec<u8>> {
    let mut bytes = store::sealed(conn, row.seq)?;
    crypto::open(&key.key, &row.user_id, &row.id, &row.nonce, &mut bytes)?;
    Ok(bytes)
}

/// Which backup to fetch.
#[derive(Clone)]
pub enum Which {
    Latest,
    Id(String),
}

/// The user's backup with its plaintext; 404 when the user has no such backup.
pub async fn fetch(app: &App, user_id: &str, which: Which) -> AppResult<(BackupRow, Vec<u8>)> {
    // A row sealed under a key this process has not seen yet means the CLI just rotated:
    // read secrets.toml again and try once more.
    for attempt in 0..2 {
        if attempt > 0 {
            app.reload_secrets().map_err(ApiError::internal)?;
        }
        let (secrets, owner, which) = (app.secrets(), user_id.to_owned(), which.clone());
        let found = app
            .db
            .read(move |conn| {
                // One snapshot for the row and its bytes, whatever writers do meanwhile.
                let tx = conn.unchecked_transaction()?;
                let row = match which {
                    Which::Latest => store::latest(&tx, &owner)?,
                    Which::Id(id) => store::by_id(&tx, &owner, &id)?,
                }
                .ok_or(ApiError::NotFound)?;
                match secrets.backup_key(row.key_version) {
                    Some(key) => Ok(Some((open(&tx, key, &row)?, row))),
                    None => Ok(None),
                }
            })
            .await?;
        if let Some((data, row)) = found {
            return Ok((row, data));
        }
    }
    Err(ApiError::internal(anyhow::anyhow!(
        "a backup is sealed under a key version that secrets.toml does not hold"
    )))
}
