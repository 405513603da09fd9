//! The one way to reach SQLite.
//!
//! Reads run on a pool of read-only connections (`PRAGMA query_only`): they wait for a
//! connection on an async semaphore with a timeout, then run the closure on tokio's blocking
//! pool inside the caller's tracing span. Writes run on one writer connection, owned by a
//! thread of its own, so concurrent writes queue here instead of failing with "database is
//! locked" (PocketBase does the same); writes that queue together commit together, each in
//! a savepoint of the group's `IMMEDIATE` transaction ([`writer`]). No SQLite call ever
//! blocks an async worker.
//!
//! Store code takes `&rusqlite::Connection` and knows nothing of pools or runtimes.

mod checkpoint;
mod constraint;
pub mod fts;
mod inspect;
pub mod maintenance;
mod migrations;
pub mod snapshots;
#[cfg(test)]
pub mod testing;
mod writer;

use std::{
    fs,
    os::unix::fs::DirBuilderExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use tokio::sync::Semaphore;

use crate::{
    config::Config,
    error::{ApiError, AppResult},
};

pub use constraint::{Violation, on_unique, violation};
pub use inspect::{Inspection, inspect};
pub use migrations::{MigrationReport, pending_migrations};

/// How long a read connection beyond the first may sit unused before it is closed.
const READER_IDLE: Duration = Duration::from_secs(20);

#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    readers: r2d2::Pool<SqliteConnectionManager>,
    read_permits: Arc<Semaphore>,
    writer: Arc<Mutex<Connection>>,
    /// The group-commit queue in front of `writer` (see [`writer`]).
    queue: writer::Writer,
    /// Taken by work on `writer` outside the queue (closing).
    write_permit: Arc<Semaphore>,
    wait_timeout: Duration,
    server_epoch: String,
    /// `storage.litestream`: checkpoints are Litestream's, never ours.
    litestream: bool,
}

impl Db {
    /// Opens (creating if needed) `persona.db` in the data dir and applies pending
    /// migrations. Blocking: call it before the server starts serving.
    pub fn open(config: &Config) -> anyhow::Result<(Db, MigrationReport)> {
        create_data_dir(&config.storage.data_dir)?;
        let path = config.database_path();
        let busy = config.storage.busy_timeout;
        let litestream = config.storage.litestream;

        // WAL is switched on once, on the writer, before any reader exists: doing it in the
        // pool's per-connection init makes new connections race for the lock.
        let mut writer = Connection::open(&path)
            .with_context(|| format!("cannot open the database at {}", path.display()))?;
        configure(&writer, busy)?;
        let mode: String = writer.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        anyhow::ensure!(
            mode.eq_ignore_ascii_case("wal"),
            "the database refused WAL mode (got {mode})"
        );
        let report = migrations::run(&mut writer)?;
        let epoch = server_epoch(&writer).context("cannot read the server epoch")?;
        // Checkpoints happen on a connection of their own (see `checkpoint_in_background`),
        // so no write, however large, pays for copying the WAL into the database file; with
        // Litestream they are Litestream's alone.
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        writer.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        if litestream {
            no_checkpoint_on_close(&writer)?;
        }

        let readers = config.storage.read_connections;
        let readers = if readers == 0 {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
            (cores * 2).max(4)
        } else {
            readers
        };
        let manager = SqliteConnectionManager::file(&path)
            .with_flags(OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_init(move |conn| {
                configure(conn, busy)?;
                // Readers never commit, so never checkpoint; said anyway, for Litestream's sake.
                conn.pragma_update(None, "wal_autocheckpoint", 0)?;
                if litestream {
                    no_checkpoint_on_close(conn)?;
                }
                conn.pragma_update(None, "query_only", true)
            });
        let pool = r2d2::Pool::builder()
            .max_size(readers)
            .min_idle(Some(1))
            // A reader idle this long is closed (r2d2 looks every 30 s), and its page cache
            // (up to 2 MB) with it: after a burst the server returns near its idle size.
            .idle_timeout(Some(READER_IDLE))
            .connection_timeout(busy)
            .build(manager)
            .context("cannot open the database read pool")?;

        let writer = Arc::new(Mutex::new(writer));
        let db = Db {
            inner: Arc::new(Inner {
                path,
                readers: pool,
                read_permits: Arc::new(Semaphore::new(readers as usize)),
                queue: writer::Writer::start(writer.clone(), busy)
                    .context("cannot start the database writer thread")?,
                writer,
                write_permit: Arc::new(Semaphore::new(1)),
                wait_timeout: busy,
                server_epoch: epoch,
                litestream,
            }),
        };
        if litestream {
            tracing::info!("storage.litestream is on: WAL checkpoints are left to Litestream");
            return Ok((db, report));
        }
        let checkpointer = Connection::open(&db.inner.path)?;
        configure(&checkpointer, busy)?;
        if !checkpoint::checkpoint_in_background(Arc::downgrade(&db.inner), checkpointer) {
            // No thread: let SQLite checkpoint on commit, as it does by default.
            let writer = db.inner.writer.lock().unwrap_or_else(|p| p.into_inner());
            writer.pragma_update(None, "wal_autocheckpoint", 1000)?;
        }
        Ok((db, report))
    }

    /// Hands back the page caches of every connection, the writer's and the readers': SQLite
    /// frees the pages no statement or transaction holds (`sqlite3_release_memory`; the bundled
    /// SQLite is built with `SQLITE_ENABLE_MEMORY_MANAGEMENT`, so its connections share one
    /// list of unused pages and any thread may trim it), and they come back from the OS's file
    /// cache on the next query. A cache otherwise stays at its high-water mark (about 2 MB after
    /// a burst of AI calls, each one a usage row). Never waits for the writer.
    pub fn release_memory(&self) {
        // SAFETY: takes no pointers; SQLite locks its page-cache mutex while it frees.
        #[allow(unsafe_code)]
        let freed = unsafe { rusqlite::ffi::sqlite3_release_memory(i32::MAX) };
        tracing::trace!(freed, "released SQLite's unused pages");
    }

    /// Readiness: a query answers within two seconds; else 503 `unavailable` (a failing
    /// query is logged).
    pub async fn ready(&self) -> AppResult<()> {
        match tokio::time::timeout(Duration::from_secs(2), self.read(check)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "readiness check failed");
                Err(ApiError::unavailable("The database is not usable."))
            }
            Err(_) => Err(ApiError::unavailable(
                "The database did not answer in time.",
            )),
        }
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// This database's `serverEpoch` (SPEC section 4), read at open. Only `persona admin db
    /// restore` changes it, with the server stopped.
    pub fn server_epoch(&self) -> &str {
        &self.inner.server_epoch
    }

    /// Runs `f` on a read-only connection from the pool, off the async runtime.
    pub async fn read<T, F>(&self, f: F) -> AppResult<T>
    where
        F: FnOnce(&Connection) -> AppResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let permit = self.acquire(&self.inner.read_permits).await?;
        let inner = self.inner.clone();
        run_blocking(move || {
            let _permit = permit;
            let conn = inner
                .readers
                .get()
                .map_err(|e| ApiError::internal(anyhow::Error::new(e).context("read pool")))?;
            f(&conn)
        })
        .await
    }

    /// Runs `f` on the single writer connection, off the async runtime, in an `IMMEDIATE`
    /// transaction that other writes queued at the same moment may share (each in its own
    /// savepoint). Returns once the transaction has committed, with `f`'s value; when `f`
    /// returns an error, its writes are rolled back and the others' are not. Writes queue in
    /// order; one that waits longer than `storage.busy_timeout` is 503 and never runs.
    pub async fn write<T, F>(&self, f: F) -> AppResult<T>
    where
        F: FnOnce(&Transaction<'_>) -> AppResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.inner.queue.write(f).await
    }

    /// [`Db::write`], queued before this returns: the write takes its turn whether or not
    /// the returned future is awaited, so a caller that may be dropped (a request whose
    /// client left) needs no task of its own. Like any write it can still expire past the
    /// busy timeout or fail with its group (logged when nobody awaits it). Gives `f` back
    /// when the queue is full or the database is closing; [`Db::write`] then waits for a
    /// slot.
    pub fn write_now<T, F>(&self, f: F) -> Result<impl Future<Output = AppResult<T>> + use<T, F>, F>
    where
        F: FnOnce(&Transaction<'_>) -> AppResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.inner.queue.write_now(f)
    }

    /// [`Db::write`] for start-up work that runs before the server serves (seeding): blocks
    /// the calling thread, so never call it from a request.
    pub fn blocking_write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> AppResult<T>,
    ) -> AppResult<T> {
        let mut conn = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    async fn acquire(
        &self,
        semaphore: &Arc<Semaphore>,
    ) -> AppResult<tokio::sync::OwnedSemaphorePermit> {
        match tokio::time::timeout(self.inner.wait_timeout, semaphore.clone().acquire_owned()).await
        {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(ApiError::unavailable("The database is shutting down.")),
            Err(_elapsed) => Err(ApiError::unavailable("The database is busy; try again.")),
        }
    }

    /// Flushes the WAL into the main file (unless Litestream owns checkpoints) and lets
    /// SQLite refresh its statistics. Called at shutdown; harmless to skip (the next start
    /// replays the WAL).
    pub async fn close(&self) {
        let litestream = self.inner.litestream;
        let result = self
            .write_unlocked(move |conn| {
                conn.execute_batch("PRAGMA optimize;")?;
                if !litestream {
                    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
                }
                Ok(())
            })
            .await;
        if let Err(err) = result {
            tracing::warn!(error = %err, "database checkpoint at shutdown failed");
        }
        self.inner.read_permits.close();
        self.inner.write_permit.close();
    }

    /// Runs `f` on the writer connection outside a transaction (for pragmas that refuse to
    /// run inside one).
    async fn write_unlocked<T, F>(&self, f: F) -> AppResult<T>
    where
        F: FnOnce(&Connection) -> AppResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let permit = self.acquire(&self.inner.write_permit).await?;
        let writer = self.inner.writer.clone();
        run_blocking(move || {
            let _permit = permit;
            let conn = writer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&conn)
        })
        .await
    }
}

/// Runs blocking work on tokio's blocking pool, inside the current tracing span.
pub async fn run_blocking<T, F>(f: F) -> AppResult<T>
where
    F: FnOnce() -> AppResult<T> + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|join| match join.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(join) => ApiError::internal(join),
        })?
}

/// Per-connection settings, in the order that avoids lock races on a new database:
/// busy timeout first, then foreign keys, then synchronous.
fn configure(conn: &Connection, busy: Duration) -> rusqlite::Result<()> {
    conn.busy_timeout(busy)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // NORMAL in WAL mode: a committed transaction survives a crash of the process (kill -9);
    // only a power loss can lose the last commits, and the database stays consistent.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Deleted rows are overwritten with zeros, not left in free pages: a deleted
    // conversation's words (or a deleted backup's bytes) cannot be read back from the file.
    conn.pragma_update(None, "secure_delete", true)?;
    functions(conn)
}

/// The SQL functions the queries use beyond SQLite's own, on every connection.
fn functions(conn: &Connection) -> rusqlite::Result<()> {
    fts::register(conn)?;
    // SQLite's own `lower()` changes only ASCII letters: `unicode_lower('Élodie')` is
    // `élodie`, so a search typed in lower case finds every name.
    conn.create_scalar_function(
        "unicode_lower",
        1,
        rusqlite::functions::FunctionFlags::SQLITE_UTF8
            | rusqlite::functions::FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            Ok(ctx
                .get::<Option<String>>(0)?
                .map(|text| text.to_lowercase()))
        },
    )?;
    Ok(())
}

/// The last connection to close would otherwise checkpoint and delete the WAL: with
/// Litestream, that is Litestream's call (it usually holds the file open anyway).
fn no_checkpoint_on_close(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )?;
    Ok(())
}

/// Creates the data dir (mode 0700) if it does not exist.
pub fn create_data_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    }
    Ok(())
}

/// A query that proves the database answers (readiness, see [`Db::ready`]).
fn check(conn: &Connection) -> AppResult<()> {
    conn.query_row("SELECT count(*) FROM server_meta", [], |r| {
        r.get::<_, i64>(0)
    })?;
    Ok(())
}

/// Reads the server epoch (SPEC section 4).
pub fn server_epoch(conn: &Connection) -> AppResult<String> {
    Ok(conn.query_row(
        "SELECT value FROM server_meta WHERE key = 'server_epoch'",
        [],
        |row| row.get(0),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::{fill_queue, temp_db};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_queue_instead_of_failing() {
        let (_dir, db) = temp_db();
        db.write(|tx| {
            tx.execute_batch(
                "CREATE TABLE counter (n INTEGER NOT NULL); INSERT INTO counter VALUES (0);",
            )?;
            Ok(())
        })
        .await
        .unwrap();
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move {
                    db.write(|tx| {
                        tx.execute("UPDATE counter SET n = n + 1", [])?;
                        Ok(())
                    })
                    .await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let n: i64 = db
            .read(|conn| Ok(conn.query_row("SELECT n FROM counter", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(n, 200);
    }

    #[tokio::test]
    async fn a_write_queued_now_commits_though_nobody_waits_for_it() {
        let (_dir, db) = temp_db();
        db.write(|tx| {
            tx.execute_batch("CREATE TABLE seen (n INTEGER NOT NULL)")?;
            Ok(())
        })
        .await
        .unwrap();
        // Dropped at once, never polled: it was queued when `write_now` returned.
        let dropped = db
            .write_now(|tx| {
                tx.execute("INSERT INTO seen VALUES (1)", [])?;
                Ok(())
            })
            .unwrap_or_else(|_| panic!("the queue is empty"));
        drop(dropped);
        let awaited = db
            .write_now(|tx| {
                tx.execute("INSERT INTO seen VALUES (2)", [])?;
                Ok(tx.query_row("SELECT count(*) FROM seen", [], |r| r.get::<_, i64>(0))?)
            })
            .unwrap_or_else(|_| panic!("the queue is empty"));
        assert_eq!(
            awaited.await.unwrap(),
            2,
            "the dropped write ran first, in order"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_gives_the_write_back_to_wait_its_turn() {
        let (_dir, db) = temp_db();
        let full = fill_queue(&db);
        let Err(given_back) = db.write_now(|_| Ok(7)) else {
            panic!("a full queue takes no more");
        };
        let waiting = tokio::spawn({
            let db = db.clone();
            async move { db.write(given_back).await }
        });
        for write in full.release().await {
            write.unwrap();
        }
        assert_eq!(waiting.await.unwrap().unwrap(), 7);
    }

    #[tokio::test]
    async fn readers_cannot_write() {
        let (_dir, db) = temp_db();
        let result = db
            .read(|conn| Ok(conn.execute("DELETE FROM server_meta", [])?))
            .await;
        assert!(result.is_err());
        let epoch = db.read(server_epoch).await.unwrap();
        assert_eq!(epoch.len(), 32);
    }

    #[tokio::test]
    async fn a_failed_write_rolls_back() {
        let (_dir, db) = temp_db();
        let result: AppResult<()> = db
            .write(|tx| {
                tx.execute("DELETE FROM server_meta", [])?;
                Err(ApiError::NotFound)
            })
            .await;
        assert!(matches!(result, Err(ApiError::NotFound)));
        assert!(db.read(server_epoch).await.is_ok());
    }

    #[tokio::test]
    async fn pragmas_are_set() {
        let (_dir, db) = temp_db();
        let (mode, fk, sync): (String, i64, i64) = db
            .read(|conn| {
                Ok(conn.query_row(
                    "SELECT * FROM pragma_journal_mode, pragma_foreign_keys, pragma_synchronous",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?)
            })
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(fk, 1);
        assert_eq!(sync, 1, "synchronous = NORMAL");
    }

    /// The bytes of page cache `conn` holds (`SQLITE_DBSTATUS_CACHE_USED`).
    fn cache_used(conn: &Connection) -> i32 {
        let (mut current, mut highwater) = (0, 0);
        // SAFETY: the handle is live for the borrow; the outputs are valid i32s.
        #[allow(unsafe_code)]
        unsafe {
            rusqlite::ffi::sqlite3_db_status(
                conn.handle(),
                rusqlite::ffi::SQLITE_DBSTATUS_CACHE_USED,
                &mut current,
                &mut highwater,
                0,
            );
        }
        current
    }

    #[tokio::test]
    async fn releasing_memory_empties_the_readers_page_caches_too() {
        let (_dir, db) = temp_db();
        db.write(|tx| {
            tx.execute_batch(
                "CREATE TABLE filler (b BLOB NOT NULL);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
                 INSERT INTO filler SELECT randomblob(1000) FROM n;",
            )?;
            Ok(())
        })
        .await
        .unwrap();
        // One reader at a time: the pool hands back its most recently used connection.
        let filled = db
            .read(|conn| {
                let total: i64 =
                    conn.query_row("SELECT sum(length(b)) FROM filler", [], |r| r.get(0))?;
                assert_eq!(total, 1_000_000);
                Ok(cache_used(conn))
            })
            .await
            .unwrap();
        assert!(
            filled > 500_000,
            "the scan filled the cache: {filled} bytes"
        );
        db.release_memory();
        let left = db.read(|conn| Ok(cache_used(conn))).await.unwrap();
        assert!(
            left < filled / 10,
            "{filled} bytes of cache before, {left} after"
        );
    }
}
