//! The temporary database every store test starts from: a real SQLite file in a temporary
//! directory, with the real migrations applied (the same schema the server runs on).

use futures_util::{FutureExt, future::BoxFuture};
use rusqlite::Connection;

use super::{Db, writer::QUEUE};
use crate::{config::Config, error::AppResult};

/// A migrated database file that lives as long as this value.
pub struct TempDb {
    pub conn: Connection,
    _dir: tempfile::TempDir,
}

impl Default for TempDb {
    fn default() -> Self {
        TempDb::new()
    }
}

impl TempDb {
    pub fn new() -> TempDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut conn = Connection::open(dir.path().join("persona.db")).expect("open database");
        conn.pragma_update(None, "foreign_keys", true)
            .expect("foreign keys");
        super::functions(&conn).expect("SQL functions");
        super::migrations::run(&mut conn).expect("migrations apply");
        TempDb { conn, _dir: dir }
    }

    /// Inserts a user row directly (stores of other tables need an owner).
    pub fn user(&self, id: &str) -> &Self {
        self.conn
            .execute(
                "INSERT INTO users (id, email, password_hash, role, created_at, updated_at)
                 VALUES (?1, ?1 || '@example.com', 'x', 'user', 0, 0)",
                [id],
            )
            .expect("insert user");
        self
    }
}

impl std::ops::Deref for TempDb {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

/// The server's pooled [`Db`] over a fresh data dir (for tests of code that takes a `Db`);
/// the directory lives as long as the returned guard.
pub fn temp_db() -> (tempfile::TempDir, Db) {
    temp_db_with(|_| {})
}

/// [`temp_db`] with the default configuration changed by `configure` first.
pub fn temp_db_with(configure: impl FnOnce(&mut Config)) -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = Config::default();
    config.storage.data_dir = dir.path().join("data");
    configure(&mut config);
    let (db, _) = Db::open(&config).expect("open the database");
    (dir, db)
}

/// The writer thread busy with one write that waits for [`FullQueue::release`], and every
/// slot of its queue taken by no-op writes behind it.
pub struct FullQueue {
    release: std::sync::mpsc::Sender<()>,
    /// The held write first, then the queued ones.
    writes: Vec<BoxFuture<'static, AppResult<()>>>,
}

/// Fills `db`'s write queue (see [`FullQueue`]); returns once the held write is running.
pub fn fill_queue(db: &Db) -> FullQueue {
    let (release, hold) = std::sync::mpsc::channel::<()>();
    let (started, running) = std::sync::mpsc::channel::<()>();
    let held = db
        .write_now(move |_| {
            let _ = started.send(());
            let _ = hold.recv();
            Ok(())
        })
        .unwrap_or_else(|_| panic!("the queue is empty"));
    running.recv().expect("the held write runs");
    let mut writes = vec![held.boxed()];
    writes.extend((0..QUEUE).map(|_| {
        db.write_now(|_| Ok(()))
            .unwrap_or_else(|_| panic!("a free slot"))
            .boxed()
    }));
    FullQueue { release, writes }
}

impl FullQueue {
    /// Lets the held write finish; answers every write's outcome, the held one first.
    pub async fn release(self) -> Vec<AppResult<()>> {
        let _ = self.release.send(());
        futures_util::future::join_all(self.writes).await
    }
}
