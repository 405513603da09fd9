//! Whole-file operations on the database for the admin CLI: a consistent online snapshot,
//! a checked restore, and the lock that tells whether a server is using the data dir.

use std::{
    fs::{self, File, OpenOptions},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, bail, ensure};
use rusqlite::{Connection, OpenFlags};

use super::{configure, server_epoch};

/// Held by `persona serve` for as long as it runs: an advisory lock on `persona.lock` in the
/// data dir. A second server on the same dir, or a restore, sees it and stops.
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    pub fn acquire(data_dir: &Path) -> anyhow::Result<DataDirLock> {
        let path = data_dir.join("persona.lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(DataDirLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => bail!(
                "a persona server is running on the data directory {}",
                data_dir.display()
            ),
            Err(fs::TryLockError::Error(err)) => {
                Err(err).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }
}

/// Writes a consistent copy of the live database to `out` with `VACUUM INTO` (a read
/// transaction: the server keeps serving, and writes during the copy are simply not in it).
/// Refuses to overwrite. Returns the snapshot's size in bytes.
pub fn snapshot(db_path: &Path, out: &Path, busy: Duration) -> anyhow::Result<u64> {
    ensure!(
        !out.exists(),
        "{} already exists; choose a new file",
        out.display()
    );
    ensure!(db_path.exists(), "no database at {}", db_path.display());
    let conn = Connection::open_with_flags(
        db_path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {}", db_path.display()))?;
    configure(&conn, busy)?;
    let target = out
        .to_str()
        .with_context(|| format!("{} is not a UTF-8 path", out.display()))?;
    conn.execute("VACUUM INTO ?1", [target])
        .with_context(|| format!("cannot write {}", out.display()))?;
    drop(conn);
    fs::set_permissions(out, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    check_file(out)?;
    Ok(fs::metadata(out)?.len())
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    /// Where the database it replaced was kept (`None` when there was none).
    pub kept: Option<PathBuf>,
    pub old_epoch: Option<String>,
    pub new_epoch: String,
}

/// Checks that `path` is an intact persona database this binary can run; returns its
/// schema version.
pub fn check_file(path: &Path) -> anyhow::Result<i64> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {}", path.display()))?;
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .with_context(|| format!("{} is not an SQLite database", path.display()))?;
    ensure!(
        check == "ok",
        "{} failed the integrity check: {check}",
        path.display()
    );
    server_epoch(&conn)
        .map_err(|_| anyhow::anyhow!("{} is not a persona database", path.display()))?;
    let version: i64 = conn
        .query_row(
            "SELECT coalesce(max(version), 0) FROM refinery_schema_history",
            [],
            |r| r.get(0),
        )
        .map_err(|_| anyhow::anyhow!("{} is not a persona database", path.display()))?;
    let known = super::migrations::latest_version();
    ensure!(
        version <= known,
        "{} has schema version {version}, newer than this persona knows ({known}); \
         restore it with a newer persona",
        path.display()
    );
    Ok(version)
}

/// Replaces the database at `db_path` with a checked copy of `from`, keeping the replaced
/// file beside it, and gives the result a new server epoch. The server must be stopped (the
/// caller holds the [`DataDirLock`]). With `litestream` (`storage.litestream`), the replaced
/// database is not checkpointed: its WAL moves beside it as it is.
pub fn restore(
    db_path: &Path,
    from: &Path,
    busy: Duration,
    litestream: bool,
) -> anyhow::Result<Restored> {
    check_file(from)?;
    let dir = db_path
        .parent()
        .context("the database path has no directory")?;
    let staged = db_path.with_extension("db.restoring");
    let _ = fs::remove_file(&staged);
    fs::copy(from, &staged)
        .with_context(|| format!("cannot copy {} into the data dir", from.display()))?;
    fs::set_permissions(&staged, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let new_epoch = {
        let conn = Connection::open(&staged)?;
        configure(&conn, busy)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        ensure!(
            mode.eq_ignore_ascii_case("wal"),
            "the restored file refused WAL mode"
        );
        conn.execute(
            "UPDATE server_meta SET value = lower(hex(randomblob(16))),
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE key = 'server_epoch'",
            [],
        )?;
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        server_epoch(&conn)?
    };
    File::open(&staged)?.sync_all()?;

    let (kept, old_epoch) = if db_path.exists() {
        // Fold the old WAL into its file first, so the kept copy is one complete file
        // (unless checkpoints are Litestream's: then the WAL moves with it).
        let old_epoch = {
            let conn = Connection::open(db_path)?;
            configure(&conn, busy)?;
            if litestream {
                super::no_checkpoint_on_close(&conn)?;
            } else {
                conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
            }
            server_epoch(&conn).ok()
        };
        let stamp = time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .unwrap_or_else(|_| "old".into());
        let kept = db_path.with_extension(format!("db.replaced-{stamp}"));
        fs::rename(db_path, &kept)
            .with_context(|| format!("cannot move the current database to {}", kept.display()))?;
        for suffix in ["-wal", "-shm"] {
            let side = PathBuf::from(format!("{}{suffix}", db_path.display()));
            if side.exists() {
                let _ = fs::rename(&side, format!("{}{suffix}", kept.display()));
            }
        }
        (Some(kept), old_epoch)
    } else {
        (None, None)
    };
    fs::rename(&staged, db_path).context("cannot move the restored database into place")?;
    let _ = File::open(dir).and_then(|d| d.sync_all());
    Ok(Restored {
        kept,
        old_epoch,
        new_epoch,
    })
}
