//! Looking at a database file without opening it for serving (`persona doctor`).

use std::{path::Path, time::Duration};

use anyhow::Context;
use rusqlite::{Connection, OpenFlags};

use super::{configure, pending_migrations, server_epoch};

/// What `persona doctor` reports about an existing database file.
#[derive(Debug)]
pub struct Inspection {
    /// `ok`, or SQLite's first complaint.
    pub quick_check: String,
    pub journal_mode: String,
    pub pending_migrations: Vec<String>,
    pub server_epoch: Option<String>,
}

/// Looks at the database at `path` without creating or migrating anything.
pub fn inspect(path: &Path, busy: Duration) -> anyhow::Result<Inspection> {
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {}", path.display()))?;
    configure(&conn, busy)?;
    // Looking changes nothing: closing the last connection must not checkpoint the WAL.
    super::no_checkpoint_on_close(&conn)?;
    let quick_check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    let journal_mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    let pending_migrations = pending_migrations(&mut conn)?;
    let server_epoch = server_epoch(&conn).ok();
    Ok(Inspection {
        quick_check,
        journal_mode,
        pending_migrations,
        server_epoch,
    })
}
