//! WAL checkpoints on a thread and connection of their own, so no write, however large,
//! pays for copying the WAL into the database file.

use std::time::Duration;

use rusqlite::Connection;

use super::Inner;

/// How often the background checkpointer copies committed WAL frames into the database.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

/// Copies the WAL into the database file every [`CHECKPOINT_INTERVAL`] on its own thread and
/// connection. `PASSIVE` never blocks readers or the writer: a checkpoint that meets a busy
/// reader copies what it can and finishes next time. Ends when the `Db` is dropped or
/// closed. `false` when the thread could not be started.
pub(super) fn checkpoint_in_background(db: std::sync::Weak<Inner>, conn: Connection) -> bool {
    std::thread::Builder::new()
        .name("persona-checkpoint".into())
        .spawn(move || {
            loop {
                std::thread::sleep(CHECKPOINT_INTERVAL);
                let Some(inner) = db.upgrade() else { return };
                if inner.write_permit.is_closed() {
                    return;
                }
                drop(inner);
                if let Err(err) = checkpoint(&conn) {
                    tracing::warn!(error = %err, "background checkpoint failed");
                }
            }
        })
        .is_ok()
}

/// One background checkpoint: copy what is committed. It never waits for the writer (a
/// `TRUNCATE` checkpoint did, and held off the next write while it copied and synced: with a
/// large WAL on a busy disk, past the busy timeout — "database is locked"). The disk gets a
/// large WAL's space back without it: the writer truncates the WAL to `journal_size_limit`
/// when it starts over from the beginning of a fully copied log.
fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}
