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

/// WAL frames (of 4 KiB) above which a fully copied WAL is truncated rather than reused.
const WAL_TRUNCATE_FRAMES: i64 = 16 * 1024;

/// One background checkpoint: copy what is committed; if everything was copied and the WAL
/// grew large (a burst of big uploads), truncate it so the disk gets the space back.
fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    let (log, copied): (i64, i64) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get(1)?, r.get(2)?))
    })?;
    if log >= WAL_TRUNCATE_FRAMES && copied == log {
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    Ok(())
}
