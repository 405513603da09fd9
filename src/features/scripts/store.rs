//! SQL of AI scripts.

use rusqlite::{Connection, OptionalExtension, params};

use super::version::Version;
use crate::{
    db,
    domain::Timestamp,
    error::{ApiError, AppResult, Code},
};

#[derive(Debug, Clone)]
pub struct ScriptRow {
    pub name: String,
    pub version: Version,
    pub description: String,
    /// JSON text.
    pub content: String,
    pub is_active: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

const COLUMNS: &str = "name, version, description, content, is_active, created_at, updated_at";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ScriptRow> {
    Ok(ScriptRow {
        name: row.get(0)?,
        version: row.get(1)?,
        description: row.get(2)?,
        content: row.get(3)?,
        is_active: row.get(4)?,
        created_at: row.get(5)?,
        updated_at: row.get(6)?,
    })
}

/// Every active script, by name.
pub fn active(conn: &Connection) -> AppResult<Vec<ScriptRow>> {
    let sql = format!("SELECT {COLUMNS} FROM ai_scripts WHERE is_active = 1 ORDER BY name");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every version of every script, by name then version.
pub fn all(conn: &Connection) -> AppResult<Vec<ScriptRow>> {
    let sql = format!("SELECT {COLUMNS} FROM ai_scripts ORDER BY name, created_at, rowid");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The active version of `name`, or the given `version` (active or not).
pub fn get(
    conn: &Connection,
    name: &str,
    version: Option<&Version>,
) -> AppResult<Option<ScriptRow>> {
    let row = match version {
        Some(v) => {
            let sql = format!("SELECT {COLUMNS} FROM ai_scripts WHERE name = ?1 AND version = ?2");
            conn.prepare_cached(&sql)?
                .query_row(params![name, v], from_row)
                .optional()?
        }
        None => {
            let sql = format!("SELECT {COLUMNS} FROM ai_scripts WHERE name = ?1 AND is_active = 1");
            conn.prepare_cached(&sql)?
                .query_row([name], from_row)
                .optional()?
        }
    };
    Ok(row)
}

/// Every version of `name`, in the order they were created.
pub fn versions(conn: &Connection, name: &str) -> AppResult<Vec<Version>> {
    let mut stmt = conn.prepare_cached(
        "SELECT version FROM ai_scripts WHERE name = ?1 ORDER BY created_at, rowid",
    )?;
    let rows = stmt.query_map([name], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub struct NewRow<'a> {
    pub name: &'a str,
    pub version: &'a Version,
    pub description: &'a str,
    pub content: &'a str,
    pub now: Timestamp,
}

/// Inserts a version; 409 `already_exists` when that name+version exists.
pub fn insert(conn: &Connection, row: &NewRow<'_>) -> AppResult<()> {
    let result = conn.execute(
        "INSERT INTO ai_scripts (name, version, description, content, is_active, created_at,
                                 updated_at)
         VALUES (?1, ?2, ?3, ?4, 0, ?5, ?5)",
        params![row.name, row.version, row.description, row.content, row.now],
    );
    db::on_unique(result, "ai_scripts.name, ai_scripts.version", || {
        ApiError::conflict(
            Code::AlreadyExists,
            format!("{} version {} already exists.", row.name, row.version),
        )
    })
    .map(|_| ())
}

/// Makes `version` the active version of `name`. `false` when it does not exist.
pub fn activate(
    conn: &Connection,
    name: &str,
    version: &Version,
    now: Timestamp,
) -> AppResult<bool> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM ai_scripts WHERE name = ?1 AND version = ?2)",
        params![name, version],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(false);
    }
    conn.execute(
        "UPDATE ai_scripts SET is_active = 0, updated_at = ?2 WHERE name = ?1 AND is_active = 1",
        params![name, now],
    )?;
    conn.execute(
        "UPDATE ai_scripts SET is_active = 1, updated_at = ?3 WHERE name = ?1 AND version = ?2",
        params![name, version, now],
    )?;
    Ok(true)
}

/// Deactivates every version of `name`. `false` when no such script exists.
pub fn deactivate(conn: &Connection, name: &str, now: Timestamp) -> AppResult<bool> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM ai_scripts WHERE name = ?1)",
        [name],
        |r| r.get(0),
    )?;
    conn.execute(
        "UPDATE ai_scripts SET is_active = 0, updated_at = ?2 WHERE name = ?1 AND is_active = 1",
        params![name, now],
    )?;
    Ok(exists)
}

pub fn has_active(conn: &Connection, name: &str) -> AppResult<bool> {
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM ai_scripts WHERE name = ?1 AND is_active = 1)",
        [name],
        |r| r.get(0),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::TempDb;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    fn insert_version(db: &TempDb, name: &str, version: &str, at: i64) -> AppResult<()> {
        insert(
            db,
            &NewRow {
                name,
                version: &v(version),
                description: "",
                content: r#"{"system":"s"}"#,
                now: Timestamp::from_unix(at),
            },
        )
    }

    #[test]
    fn one_active_version_per_name_and_duplicates_conflict() {
        let db = TempDb::new();
        insert_version(&db, "chat", "1.0.0", 1).unwrap();
        insert_version(&db, "chat", "1.0.1", 2).unwrap();
        assert!(matches!(
            insert_version(&db, "chat", "1.0.1", 3),
            Err(ApiError::Conflict {
                code: Code::AlreadyExists,
                ..
            })
        ));
        assert!(activate(&db, "chat", &v("1.0.0"), Timestamp::from_unix(5)).unwrap());
        assert!(activate(&db, "chat", &v("1.0.1"), Timestamp::from_unix(6)).unwrap());
        assert!(!activate(&db, "chat", &v("9"), Timestamp::from_unix(6)).unwrap());
        let active = active(&db).unwrap();
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].version, v("1.0.1"));
        assert_eq!(versions(&db, "chat").unwrap(), [v("1.0.0"), v("1.0.1")]);
        assert_eq!(
            get(&db, "chat", Some(&v("1.0.0")))
                .unwrap()
                .unwrap()
                .version,
            v("1.0.0")
        );
        assert!(deactivate(&db, "chat", Timestamp::from_unix(7)).unwrap());
        assert!(!has_active(&db, "chat").unwrap());
        assert!(!deactivate(&db, "other", Timestamp::from_unix(7)).unwrap());
        assert_eq!(all(&db).unwrap().len(), 2);
    }
}
