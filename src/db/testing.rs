//! The temporary database every store test starts from: a real SQLite file in a temporary
//! directory, with the real migrations applied (the same schema the server runs on).

use rusqlite::Connection;

use super::Db;
use crate::config::Config;

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
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = Config::default();
    config.storage.data_dir = dir.path().join("data");
    let (db, _) = Db::open(&config).expect("open the database");
    (dir, db)
}
