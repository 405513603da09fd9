//! Schema migrations: the SQL files in `migrations/`, embedded in the binary by refinery and
//! applied at start and by `persona migrate`. Each runs in its own transaction; running them
//! again is a no-op.

use anyhow::Context;
use rusqlite::Connection;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// What a migration run did.
#[derive(Debug, Clone)]
pub struct MigrationReport {
    /// `V<version>__<name>` of each migration applied by this run, in order.
    pub applied: Vec<String>,
    /// The schema version after the run.
    pub version: u32,
}

pub(super) fn run(conn: &mut Connection) -> anyhow::Result<MigrationReport> {
    let runner = embedded::migrations::runner();
    let report = runner
        .run(conn)
        .context("cannot apply database migrations")?;
    let applied = report
        .applied_migrations()
        .iter()
        .map(|m| format!("V{}__{}", m.version(), m.name()))
        .collect();
    let version = runner
        .get_last_applied_migration(conn)
        .context("cannot read the schema version")?
        .map_or(0, |m| m.version() as u32);
    Ok(MigrationReport { applied, version })
}

/// Migrations embedded in this binary that `conn`'s database has not applied yet.
pub fn pending_migrations(conn: &mut Connection) -> anyhow::Result<Vec<String>> {
    let runner = embedded::migrations::runner();
    let has_table: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'refinery_schema_history')",
        [],
        |r| r.get(0),
    )?;
    let applied: Vec<i64> = if has_table {
        runner
            .get_applied_migrations(conn)?
            .iter()
            .map(|m| m.version() as i64)
            .collect()
    } else {
        Vec::new()
    };
    Ok(runner
        .get_migrations()
        .iter()
        .filter(|m| !applied.contains(&(m.version() as i64)))
        .map(|m| format!("V{}__{}", m.version(), m.name()))
        .collect())
}

/// The newest schema version embedded in this binary.
pub fn latest_version() -> i64 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| m.version() as i64)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_script_versions_become_their_decimal_strings() {
        let mut conn = Connection::open_in_memory().unwrap();
        embedded::migrations::runner()
            .set_target(refinery::Target::Version(7))
            .run(&mut conn)
            .unwrap();
        conn.execute(
            "INSERT INTO ai_scripts (name, version, content, is_active, created_at, updated_at)
             VALUES ('chat', 12, '{}', 1, 0, 0)",
            [],
        )
        .unwrap();
        run(&mut conn).unwrap();
        let (version, kind): (String, String) = conn
            .query_row("SELECT version, typeof(version) FROM ai_scripts", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((version.as_str(), kind.as_str()), ("12", "text"));
        let active: i64 = conn
            .query_row(
                "SELECT count(*) FROM ai_scripts WHERE is_active = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(active, 1);
    }
}
