//! A download, one chunk at a time: the row and its first chunk are read in one snapshot (so
//! a missing backup is a 404 and a damaged one a 500 before a byte is sent), then every
//! further chunk in a short read of its own, opened, and handed on. Memory per download is
//! about one chunk (1 MiB) instead of the whole backup twice.
//!
//! Between two chunks the backup may change: deleted (by its owner or the retention), which
//! ends the download with an error, so the client sees a transfer cut short and never bytes
//! of another backup; or re-sealed by a key rotation, which the next chunk simply follows
//! (it is read with the row's current key version and nonce prefix; the plaintext and its
//! chunking do not change). Format-1 backups (before V10) are opened whole, as before.

use super::{
    crypto::{self, ChunkCipher},
    service::{backup_key, open, open_chunk, plaintext_size},
    store::{self, BackupRow, Format},
};
use crate::{
    app::AppState,
    error::{ApiError, AppResult},
    secrets::BackupKey,
};

/// Which backup to fetch.
pub enum Which {
    Latest,
    Id(String),
}

/// The plaintext of a backup being downloaded.
pub enum Download {
    /// A format-1 backup, opened whole.
    Whole(Vec<u8>),
    /// A format-2 backup: its first chunk, opened, and a reader of the others.
    Chunked { first: Vec<u8>, rest: Chunks },
}

/// The user's backup and the start of its plaintext; 404 when the user has no such backup.
pub async fn start(
    app: &AppState,
    user_id: &str,
    which: Which,
) -> AppResult<(BackupRow, Download)> {
    let (db, app, owner) = (app.db.clone(), app.clone(), user_id.to_owned());
    db.read(move |conn| {
        // One snapshot for the row and its first chunk (or all of a format-1 backup).
        let tx = conn.unchecked_transaction()?;
        let row = match which {
            Which::Latest => store::latest(&tx, &owner)?,
            Which::Id(id) => store::by_id(&tx, &owner, &id)?,
        }
        .ok_or(ApiError::NotFound)?;
        // On the blocking pool: a key version not seen yet re-reads secrets.toml.
        let key = backup_key(&app, row.key_version)?;
        let download = match row.format {
            Format::Whole => Download::Whole(open(&tx, &key, &row)?),
            Format::Chunked => {
                let size = plaintext_size(&row)?;
                let cipher = ChunkCipher::existing(&key.key, &row.user_id, &row.id, &row.nonce)?;
                let stored = store::chunk(&tx, row.seq, 0)?.ok_or_else(|| {
                    ApiError::internal(anyhow::anyhow!("backup {} has no chunks", row.id))
                })?;
                Download::Chunked {
                    first: open_chunk(&cipher, size, 0, stored)?,
                    rest: Chunks {
                        app: app.clone(),
                        seq: row.seq,
                        id: row.id.clone(),
                        user_id: row.user_id.clone(),
                        size,
                        next: 1,
                        key,
                    },
                }
            }
        };
        Ok((row, download))
    })
    .await
}

/// The chunks of a format-2 backup after the first, read one per call.
pub struct Chunks {
    app: AppState,
    seq: i64,
    id: String,
    user_id: String,
    size: u64,
    next: u64,
    /// The key of the last chunk read (a rotation may bring another).
    key: BackupKey,
}

impl Chunks {
    /// The next chunk's plaintext; `None` after the last. An error (the backup was deleted
    /// meanwhile, or a chunk does not open) ends the download.
    pub async fn next(&mut self) -> AppResult<Option<Vec<u8>>> {
        let index = self.next;
        if index >= crypto::chunk_count(self.size) {
            return Ok(None);
        }
        let (app, seq, size, key) = (self.app.clone(), self.seq, self.size, self.key.clone());
        let (id, user_id) = (self.id.clone(), self.user_id.clone());
        let (plaintext, key) = self
            .app
            .db
            .read(move |conn| {
                let chunk =
                    store::current_chunk(conn, seq, &id, &user_id, index)?.ok_or_else(|| {
                        ApiError::internal(anyhow::anyhow!(
                            "backup {id} was deleted during its download"
                        ))
                    })?;
                let key = if chunk.key_version == key.version {
                    key
                } else {
                    backup_key(&app, chunk.key_version)?
                };
                let cipher = ChunkCipher::existing(&key.key, &user_id, &id, &chunk.nonce)?;
                Ok((open_chunk(&cipher, size, index, chunk.data)?, key))
            })
            .await?;
        self.key = key;
        self.next += 1;
        Ok(Some(plaintext))
    }
}
