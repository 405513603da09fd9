//! SQL of backups: plain functions over a connection. The sealed bytes are stored in 1 MiB
//! chunks (`backup_chunks`): SQLite copies a bound value and then its record, so one 50 MB
//! value would cost 100 MB of transient memory, while chunks cost 2 MiB.

use rusqlite::{Connection, OptionalExtension, params};

use crate::{domain::Timestamp, error::AppResult};

/// A backup without its bytes.
#[derive(Debug, Clone)]
pub struct BackupRow {
    pub seq: i64,
    pub id: String,
    pub user_id: String,
    pub device_id: Option<String>,
    pub size: i64,
    pub checksum: String,
    pub metadata: Option<String>,
    pub key_version: u32,
    pub nonce: Vec<u8>,
    pub created_at: Timestamp,
}

const COLUMNS: &str =
    "seq, id, user_id, device_id, size, checksum, metadata, key_version, nonce, created_at";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<BackupRow> {
    Ok(BackupRow {
        seq: row.get(0)?,
        id: row.get(1)?,
        user_id: row.get(2)?,
        device_id: row.get(3)?,
        size: row.get(4)?,
        checksum: row.get(5)?,
        metadata: row.get(6)?,
        key_version: row.get(7)?,
        nonce: row.get(8)?,
        created_at: row.get(9)?,
    })
}

pub struct NewBackup<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub device_id: Option<&'a str>,
    pub size: i64,
    pub checksum: &'a str,
    pub metadata: Option<&'a str>,
    pub key_version: u32,
    pub nonce: &'a [u8],
    pub sealed: &'a [u8],
    pub now: Timestamp,
}

/// Bytes of sealed data per `backup_chunks` row.
const CHUNK: usize = 1024 * 1024;

/// Inserts a backup with its sealed bytes (inside the caller's transaction).
pub fn insert(conn: &Connection, b: &NewBackup<'_>) -> AppResult<()> {
    conn.prepare_cached(
        "INSERT INTO backups (id, user_id, device_id, size, checksum, metadata, key_version,
                              nonce, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        b.id,
        b.user_id,
        b.device_id,
        b.size,
        b.checksum,
        b.metadata,
        b.key_version,
        b.nonce,
        b.now
    ])?;
    write_chunks(conn, conn.last_insert_rowid(), b.sealed)
}

fn write_chunks(conn: &Connection, seq: i64, sealed: &[u8]) -> AppResult<()> {
    let mut stmt = conn
        .prepare_cached("INSERT INTO backup_chunks (backup_seq, idx, data) VALUES (?1, ?2, ?3)")?;
    for (idx, chunk) in sealed.chunks(CHUNK).enumerate() {
        stmt.execute(params![seq, idx as i64, chunk])?;
    }
    Ok(())
}

/// Keeps the newest `retain` backups of the user; returns how many were deleted.
pub fn apply_retention(conn: &Connection, user_id: &str, retain: u32) -> AppResult<usize> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM backups WHERE user_id = ?1 AND seq NOT IN
                 (SELECT seq FROM backups WHERE user_id = ?1 ORDER BY seq DESC LIMIT ?2)",
        )?
        .execute(params![user_id, retain])?)
}

/// The user's backup `id`; `None` when it does not exist or belongs to someone else.
pub fn by_id(conn: &Connection, user_id: &str, id: &str) -> AppResult<Option<BackupRow>> {
    let sql = format!("SELECT {COLUMNS} FROM backups WHERE id = ?1 AND user_id = ?2");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id, user_id], from_row)
        .optional()?)
}

pub fn latest(conn: &Connection, user_id: &str) -> AppResult<Option<BackupRow>> {
    let sql = format!("SELECT {COLUMNS} FROM backups WHERE user_id = ?1 ORDER BY seq DESC LIMIT 1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([user_id], from_row)
        .optional()?)
}

/// A page of the user's backups, newest first, older than `before` (a `seq`).
pub fn page(
    conn: &Connection,
    user_id: &str,
    before: Option<i64>,
    limit: u32,
) -> AppResult<Vec<BackupRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM backups WHERE user_id = ?1 AND seq < ?2
         ORDER BY seq DESC LIMIT ?3"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![user_id, before.unwrap_or(i64::MAX), limit],
        from_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every backup (of one user, or of all), oldest first: for the admin export.
pub fn all(conn: &Connection, user_id: Option<&str>) -> AppResult<Vec<BackupRow>> {
    let sql =
        format!("SELECT {COLUMNS} FROM backups WHERE ?1 IS NULL OR user_id = ?1 ORDER BY seq");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([user_id], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The sealed bytes of backup `seq` (`size` is the plaintext size: the buffer is allocated
/// once, with room to spare for the tag).
pub fn sealed(conn: &Connection, seq: i64, size: i64) -> AppResult<Vec<u8>> {
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0) + 16);
    let mut stmt =
        conn.prepare_cached("SELECT data FROM backup_chunks WHERE backup_seq = ?1 ORDER BY idx")?;
    let mut rows = stmt.query([seq])?;
    while let Some(row) = rows.next()? {
        let chunk = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
        bytes.extend_from_slice(chunk);
    }
    Ok(bytes)
}

pub fn delete(conn: &Connection, user_id: &str, id: &str) -> AppResult<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM backups WHERE id = ?1 AND user_id = ?2")?
        .execute([id, user_id])?
        > 0)
}

/// Up to `limit` rows sealed under another key version than `current`.
pub fn sealed_with_other_key(
    conn: &Connection,
    current: u32,
    limit: u32,
) -> AppResult<Vec<BackupRow>> {
    let sql =
        format!("SELECT {COLUMNS} FROM backups WHERE key_version != ?1 ORDER BY seq LIMIT ?2");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![current, limit], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Replaces a row's sealing (after re-encryption under `key_version`), only if the row is
/// still sealed the way it was read (`old_nonce`): a concurrent change wins.
pub fn reseal(
    conn: &Connection,
    seq: i64,
    old_nonce: &[u8],
    key_version: u32,
    nonce: &[u8],
    sealed: &[u8],
) -> AppResult<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE backups SET key_version = ?3, nonce = ?4 WHERE seq = ?1 AND nonce = ?2",
        )?
        .execute(params![seq, old_nonce, key_version, nonce])?;
    if changed == 0 {
        return Ok(false);
    }
    conn.prepare_cached("DELETE FROM backup_chunks WHERE backup_seq = ?1")?
        .execute([seq])?;
    write_chunks(conn, seq, sealed)?;
    Ok(true)
}

/// The key versions backups are sealed with.
pub fn key_versions_in_use(conn: &Connection) -> AppResult<Vec<u32>> {
    let mut stmt = conn.prepare("SELECT DISTINCT key_version FROM backups")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}
