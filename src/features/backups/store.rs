//! SQL of backups: plain functions over a connection. The sealed bytes are stored in chunks
//! of about 1 MiB (`backup_chunks`): SQLite copies a bound value and then its record, so one
//! 50 MB value would cost 100 MB of transient memory, while chunks cost 2 MiB. What a chunk
//! holds depends on the row's [`Format`] (V10; see `crypto.rs`).

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
    /// Format 1: the nonce; format 2: the nonce prefix.
    pub nonce: Vec<u8>,
    pub format: Format,
    pub created_at: Timestamp,
}

/// How a backup's chunks are sealed (the `format` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One AEAD message cut into 1 MiB rows (rows written before V10).
    Whole = 1,
    /// Every row its own AEAD message of 1 MiB of plaintext, STREAM-style.
    Chunked = 2,
}

impl rusqlite::types::FromSql for Format {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        match value.as_i64()? {
            1 => Ok(Format::Whole),
            2 => Ok(Format::Chunked),
            other => Err(rusqlite::types::FromSqlError::OutOfRange(other)),
        }
    }
}

impl rusqlite::types::ToSql for Format {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok((*self as i64).into())
    }
}

const COLUMNS: &str = "seq, id, user_id, device_id, size, checksum, metadata, key_version, nonce, \
                       format, created_at";

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
        format: row.get(9)?,
        created_at: row.get(10)?,
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
    pub format: Format,
    pub now: Timestamp,
}

/// Inserts a backup with its sealed chunks, in order (inside the caller's transaction).
pub fn insert<C: AsRef<[u8]>>(
    conn: &Connection,
    b: &NewBackup<'_>,
    chunks: impl IntoIterator<Item = C>,
) -> AppResult<()> {
    conn.prepare_cached(
        "INSERT INTO backups (id, user_id, device_id, size, checksum, metadata, key_version,
                              nonce, format, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
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
        b.format,
        b.now
    ])?;
    write_chunks(conn, conn.last_insert_rowid(), chunks)
}

fn write_chunks<C: AsRef<[u8]>>(
    conn: &Connection,
    seq: i64,
    chunks: impl IntoIterator<Item = C>,
) -> AppResult<()> {
    let mut stmt = conn
        .prepare_cached("INSERT INTO backup_chunks (backup_seq, idx, data) VALUES (?1, ?2, ?3)")?;
    for (idx, chunk) in chunks.into_iter().enumerate() {
        stmt.execute(params![seq, idx as i64, chunk.as_ref()])?;
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

/// The sealed bytes of format-1 backup `seq`, all chunks back to back (`size` is the
/// plaintext size: the buffer is allocated once, with room to spare for the tag).
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

/// Stored chunk `idx` of backup `seq`.
pub fn chunk(conn: &Connection, seq: i64, idx: u64) -> AppResult<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached("SELECT data FROM backup_chunks WHERE backup_seq = ?1 AND idx = ?2")?
        .query_row(params![seq, idx as i64], |r| r.get(0))
        .optional()?)
}

/// A chunk as a download reads it: with the sealing it belongs to, read together.
pub struct SealedChunk {
    pub key_version: u32,
    pub nonce: Vec<u8>,
    pub data: Vec<u8>,
}

/// Stored chunk `idx` of backup `seq`, if that row still is backup `id` of `user_id` in
/// format 2, with the row's current key version and nonce prefix (a key rotation may have
/// re-sealed it since the last chunk); `None` once the backup is gone.
pub fn current_chunk(
    conn: &Connection,
    seq: i64,
    id: &str,
    user_id: &str,
    idx: u64,
) -> AppResult<Option<SealedChunk>> {
    Ok(conn
        .prepare_cached(
            "SELECT b.key_version, b.nonce, c.data
             FROM backups b JOIN backup_chunks c ON c.backup_seq = b.seq
             WHERE b.seq = ?1 AND b.id = ?2 AND b.user_id = ?3 AND b.format = 2 AND c.idx = ?4",
        )?
        .query_row(params![seq, id, user_id, idx as i64], |r| {
            Ok(SealedChunk {
                key_version: r.get(0)?,
                nonce: r.get(1)?,
                data: r.get(2)?,
            })
        })
        .optional()?)
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

/// Records a row's new sealing (under `key_version`, `nonce`, `format`), only if the row is
/// still sealed the way it was read (`old_nonce`): a concurrent change wins. The caller then
/// writes the chunks of the new sealing, in the same transaction.
pub fn set_sealing(
    conn: &Connection,
    seq: i64,
    old_nonce: &[u8],
    key_version: u32,
    nonce: &[u8],
    format: Format,
) -> AppResult<bool> {
    Ok(conn
        .prepare_cached(
            "UPDATE backups SET key_version = ?3, nonce = ?4, format = ?5
             WHERE seq = ?1 AND nonce = ?2",
        )?
        .execute(params![seq, old_nonce, key_version, nonce, format])?
        > 0)
}

/// Replaces every chunk of backup `seq` with `chunks`, in order.
pub fn replace_chunks<C: AsRef<[u8]>>(
    conn: &Connection,
    seq: i64,
    chunks: impl IntoIterator<Item = C>,
) -> AppResult<()> {
    conn.prepare_cached("DELETE FROM backup_chunks WHERE backup_seq = ?1")?
        .execute([seq])?;
    write_chunks(conn, seq, chunks)
}

/// Replaces chunk `idx` of backup `seq`.
pub fn update_chunk(conn: &Connection, seq: i64, idx: u64, data: &[u8]) -> AppResult<()> {
    conn.prepare_cached("UPDATE backup_chunks SET data = ?3 WHERE backup_seq = ?1 AND idx = ?2")?
        .execute(params![seq, idx as i64, data])?;
    Ok(())
}

/// The key versions backups are sealed with.
pub fn key_versions_in_use(conn: &Connection) -> AppResult<Vec<u32>> {
    let mut stmt = conn.prepare("SELECT DISTINCT key_version FROM backups")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::TempDb;

    /// Bytes per stored chunk in these tests (as format 1 cuts its sealing).
    const CHUNK: usize = 1024 * 1024;

    /// Inserts backup `id` of `user` with a small sealing and `key_version` 1.
    fn add(db: &TempDb, user: &str, id: &str, at: i64) {
        add_sealed(db, user, id, at, 1, &[at as u8; 24], b"sealed");
    }

    fn add_sealed(
        db: &TempDb,
        user: &str,
        id: &str,
        at: i64,
        key_version: u32,
        nonce: &[u8],
        sealed: &[u8],
    ) {
        insert(
            db,
            &NewBackup {
                id,
                user_id: user,
                device_id: None,
                size: sealed.len() as i64,
                checksum: "c",
                metadata: None,
                key_version,
                nonce,
                format: Format::Whole,
                now: Timestamp::from_unix(at),
            },
            sealed.chunks(CHUNK),
        )
        .unwrap();
    }

    fn chunk_count(db: &TempDb) -> i64 {
        db.query_row("SELECT count(*) FROM backup_chunks", [], |r| r.get(0))
            .unwrap()
    }

    fn ids(rows: &[BackupRow]) -> Vec<&str> {
        rows.iter().map(|r| r.id.as_str()).collect()
    }

    #[test]
    fn insert_then_by_id_and_latest_read_the_fields_back() {
        let db = TempDb::new();
        db.user("u1");
        let nonce = [7u8; 24];
        insert(
            &db,
            &NewBackup {
                id: "b1",
                user_id: "u1",
                device_id: Some("phone"),
                size: 42,
                checksum: "abc123",
                metadata: Some(r#"{"k":1}"#),
                key_version: 3,
                nonce: &nonce,
                format: Format::Chunked,
                now: Timestamp::from_unix(1_700_000_000),
            },
            [b"cipher".as_slice(), b"text"],
        )
        .unwrap();

        let row = by_id(&db, "u1", "b1").unwrap().unwrap();
        assert_eq!(row.id, "b1");
        assert_eq!(row.user_id, "u1");
        assert_eq!(row.device_id.as_deref(), Some("phone"));
        assert_eq!(row.size, 42);
        assert_eq!(row.checksum, "abc123");
        assert_eq!(row.metadata.as_deref(), Some(r#"{"k":1}"#));
        assert_eq!(row.key_version, 3);
        assert_eq!(row.nonce, nonce.to_vec());
        assert_eq!(row.format, Format::Chunked);
        assert_eq!(row.created_at, Timestamp::from_unix(1_700_000_000));
        assert_eq!(sealed(&db, row.seq, row.size).unwrap(), b"ciphertext");
        assert_eq!(chunk(&db, row.seq, 1).unwrap().unwrap(), b"text");
        assert!(chunk(&db, row.seq, 2).unwrap().is_none());

        let newest = latest(&db, "u1").unwrap().unwrap();
        assert_eq!(newest.seq, row.seq);
        assert_eq!(newest.id, "b1");
        assert!(by_id(&db, "u1", "missing").unwrap().is_none());
    }

    #[test]
    fn latest_is_the_newest_of_that_user_and_none_without_backups() {
        let db = TempDb::new();
        db.user("u1").user("u2");
        assert!(latest(&db, "u1").unwrap().is_none());
        add(&db, "u1", "a", 1);
        add(&db, "u1", "b", 2);
        add(&db, "u2", "c", 3);
        assert_eq!(latest(&db, "u1").unwrap().unwrap().id, "b");
        assert_eq!(latest(&db, "u2").unwrap().unwrap().id, "c");
    }

    #[test]
    fn retention_keeps_the_newest_per_user_and_removes_the_chunks_of_the_others() {
        let db = TempDb::new();
        db.user("u1").user("u2");
        for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
            add(&db, "u1", id, i as i64);
        }
        add(&db, "u2", "other", 10);
        assert_eq!(chunk_count(&db), 5);

        assert_eq!(apply_retention(&db, "u1", 2).unwrap(), 2);
        assert_eq!(ids(&all(&db, Some("u1")).unwrap()), ["c", "d"]);
        assert_eq!(ids(&all(&db, Some("u2")).unwrap()), ["other"]);
        // One chunk each for c, d and other; those of a and b are gone.
        assert_eq!(chunk_count(&db), 3);

        // Already within the limit: nothing more to delete.
        assert_eq!(apply_retention(&db, "u1", 2).unwrap(), 0);
        assert_eq!(apply_retention(&db, "u1", 5).unwrap(), 0);
        assert_eq!(all(&db, None).unwrap().len(), 3);
    }

    #[test]
    fn page_is_newest_first_and_before_excludes_that_seq() {
        let db = TempDb::new();
        db.user("u1").user("u2");
        for (i, id) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            add(&db, "u1", id, i as i64);
        }
        add(&db, "u2", "other", 10);

        let first = page(&db, "u1", None, 2).unwrap();
        assert_eq!(ids(&first), ["e", "d"]);
        let second = page(&db, "u1", Some(first[1].seq), 2).unwrap();
        assert_eq!(ids(&second), ["c", "b"]);
        let third = page(&db, "u1", Some(second[1].seq), 2).unwrap();
        assert_eq!(ids(&third), ["a"]);
        assert!(page(&db, "u1", Some(third[0].seq), 2).unwrap().is_empty());
        assert_eq!(ids(&page(&db, "u2", None, 10).unwrap()), ["other"]);
    }

    #[test]
    fn all_is_oldest_first_for_one_user_or_everyone() {
        let db = TempDb::new();
        db.user("u1").user("u2");
        add(&db, "u1", "a", 1);
        add(&db, "u2", "b", 2);
        add(&db, "u1", "c", 3);
        assert_eq!(ids(&all(&db, None).unwrap()), ["a", "b", "c"]);
        assert_eq!(ids(&all(&db, Some("u1")).unwrap()), ["a", "c"]);
        assert!(all(&db, Some("nobody")).unwrap().is_empty());
    }

    #[test]
    fn another_users_backup_is_neither_found_nor_deleted() {
        let db = TempDb::new();
        db.user("u1").user("u2");
        add(&db, "u1", "mine", 1);

        assert!(by_id(&db, "u2", "mine").unwrap().is_none());
        assert!(!delete(&db, "u2", "mine").unwrap());
        assert!(by_id(&db, "u1", "mine").unwrap().is_some());
        assert_eq!(chunk_count(&db), 1);
    }

    #[test]
    fn delete_removes_the_backup_and_its_chunks() {
        let db = TempDb::new();
        db.user("u1");
        let big = vec![9u8; CHUNK * 2 + 5];
        add_sealed(&db, "u1", "big", 1, 1, &[1; 24], &big);
        add(&db, "u1", "small", 2);
        assert_eq!(chunk_count(&db), 4);

        assert!(delete(&db, "u1", "big").unwrap());
        assert!(by_id(&db, "u1", "big").unwrap().is_none());
        assert_eq!(chunk_count(&db), 1);
        assert!(!delete(&db, "u1", "big").unwrap());
        assert!(by_id(&db, "u1", "small").unwrap().is_some());
    }

    #[test]
    fn sealed_returns_exactly_the_bytes_inserted_across_chunks() {
        let db = TempDb::new();
        db.user("u1");
        // Not a multiple of the chunk size, and no two chunks alike.
        let bytes: Vec<u8> = (0..CHUNK * 2 + 12_345)
            .map(|i| (i % 251) as u8 ^ (i / CHUNK) as u8)
            .collect();
        add_sealed(&db, "u1", "big", 1, 1, &[1; 24], &bytes);
        let row = by_id(&db, "u1", "big").unwrap().unwrap();
        assert_eq!(chunk_count(&db), 3);
        let read = sealed(&db, row.seq, row.size).unwrap();
        assert_eq!(read.len(), bytes.len());
        assert!(read == bytes, "sealed bytes differ from those inserted");

        // Exactly one chunk's worth stays one chunk.
        let exact = vec![3u8; CHUNK];
        add_sealed(&db, "u1", "exact", 2, 1, &[2; 24], &exact);
        let row = by_id(&db, "u1", "exact").unwrap().unwrap();
        assert_eq!(chunk_count(&db), 4);
        assert!(sealed(&db, row.seq, row.size).unwrap() == exact);
    }

    #[test]
    fn sealed_with_other_key_lists_only_other_versions_oldest_first_up_to_limit() {
        let db = TempDb::new();
        db.user("u1");
        add_sealed(&db, "u1", "a", 1, 1, &[1; 24], b"x");
        add_sealed(&db, "u1", "b", 2, 2, &[2; 24], b"x");
        add_sealed(&db, "u1", "c", 3, 1, &[3; 24], b"x");
        add_sealed(&db, "u1", "d", 4, 3, &[4; 24], b"x");

        assert_eq!(
            ids(&sealed_with_other_key(&db, 2, 10).unwrap()),
            ["a", "c", "d"]
        );
        assert_eq!(ids(&sealed_with_other_key(&db, 2, 2).unwrap()), ["a", "c"]);
        assert_eq!(ids(&sealed_with_other_key(&db, 1, 10).unwrap()), ["b", "d"]);
    }

    #[test]
    fn set_sealing_changes_the_row_only_while_the_nonce_is_unchanged() {
        let db = TempDb::new();
        db.user("u1");
        let old = vec![0xAAu8; CHUNK + 10];
        add_sealed(&db, "u1", "b", 1, 1, &[1; 24], &old);
        let row = by_id(&db, "u1", "b").unwrap().unwrap();
        assert_eq!(row.format, Format::Whole);
        assert_eq!(chunk_count(&db), 2);

        assert!(set_sealing(&db, row.seq, &[1; 24], 2, &[2; 19], Format::Chunked).unwrap());
        replace_chunks(&db, row.seq, [vec![0xBBu8; 100]]).unwrap();
        let after = by_id(&db, "u1", "b").unwrap().unwrap();
        assert_eq!(after.key_version, 2);
        assert_eq!(after.nonce, vec![2u8; 19]);
        assert_eq!(after.format, Format::Chunked);
        assert_eq!(sealed(&db, after.seq, after.size).unwrap(), vec![0xBB; 100]);
        // The old chunks are gone, not left behind the new one.
        assert_eq!(chunk_count(&db), 1);

        // A second change from the stale nonce loses: nothing changes.
        assert!(!set_sealing(&db, row.seq, &[1; 24], 3, &[3; 19], Format::Chunked).unwrap());
        let unchanged = by_id(&db, "u1", "b").unwrap().unwrap();
        assert_eq!(unchanged.key_version, 2);
        assert_eq!(unchanged.nonce, vec![2u8; 19]);

        // An unknown row is not changed either.
        assert!(!set_sealing(&db, row.seq + 100, &[2; 19], 3, &[3; 19], Format::Chunked).unwrap());

        update_chunk(&db, row.seq, 0, b"new").unwrap();
        assert_eq!(chunk(&db, row.seq, 0).unwrap().unwrap(), b"new");
    }

    #[test]
    fn current_chunk_reads_only_a_chunked_backup_of_that_id_and_owner() {
        let db = TempDb::new();
        db.user("u1").user("u2");
        add(&db, "u1", "old", 1);
        let old = by_id(&db, "u1", "old").unwrap().unwrap();
        // Format 1 rows are opened whole, never chunk by chunk.
        assert!(
            current_chunk(&db, old.seq, "old", "u1", 0)
                .unwrap()
                .is_none()
        );

        let add_chunked = |id: &str| {
            insert(
                &db,
                &NewBackup {
                    id,
                    user_id: "u1",
                    device_id: None,
                    size: 10,
                    checksum: "c",
                    metadata: None,
                    key_version: 4,
                    nonce: &[4; 19],
                    format: Format::Chunked,
                    now: Timestamp::from_unix(2),
                },
                [b"zero".as_slice(), b"one"],
            )
            .unwrap();
        };
        add_chunked("new");
        let row = by_id(&db, "u1", "new").unwrap().unwrap();
        let first = current_chunk(&db, row.seq, "new", "u1", 0)
            .unwrap()
            .unwrap();
        assert_eq!(
            (first.key_version, first.nonce, first.data),
            (4, vec![4; 19], b"zero".to_vec())
        );
        assert!(
            current_chunk(&db, row.seq, "new", "u1", 2)
                .unwrap()
                .is_none()
        );
        assert!(
            current_chunk(&db, row.seq, "new", "u2", 0)
                .unwrap()
                .is_none()
        );
        assert!(
            current_chunk(&db, row.seq, "other", "u1", 0)
                .unwrap()
                .is_none()
        );

        // Re-sealed meanwhile: the chunk comes with its new sealing.
        assert!(set_sealing(&db, row.seq, &[4; 19], 5, &[5; 19], Format::Chunked).unwrap());
        let second = current_chunk(&db, row.seq, "new", "u1", 1)
            .unwrap()
            .unwrap();
        assert_eq!((second.key_version, second.nonce), (5, vec![5; 19]));

        // Deleted (and its seq reused by a newer backup): gone, not someone else's bytes.
        assert!(delete(&db, "u1", "new").unwrap());
        add_chunked("newer");
        assert_eq!(by_id(&db, "u1", "newer").unwrap().unwrap().seq, row.seq);
        assert!(
            current_chunk(&db, row.seq, "new", "u1", 1)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn key_versions_in_use_lists_each_version_once() {
        let db = TempDb::new();
        db.user("u1").user("u2");
        assert!(key_versions_in_use(&db).unwrap().is_empty());
        add_sealed(&db, "u1", "a", 1, 1, &[1; 24], b"x");
        add_sealed(&db, "u1", "b", 2, 3, &[2; 24], b"x");
        add_sealed(&db, "u2", "c", 3, 1, &[3; 24], b"x");
        add_sealed(&db, "u2", "d", 4, 3, &[4; 24], b"x");
        let mut versions = key_versions_in_use(&db).unwrap();
        versions.sort_unstable();
        assert_eq!(versions, [1, 3]);

        assert!(delete(&db, "u1", "b").unwrap());
        assert!(delete(&db, "u2", "d").unwrap());
        assert_eq!(key_versions_in_use(&db).unwrap(), [1]);
    }
}
