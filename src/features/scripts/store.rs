//! SQL of AI scripts.

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{ApiError, AppResult};

#[derive(Debug, Clone)]
pub struct ScriptRow {
    pub name: String,
    pub version: i64,
    pub description: String,
    /// JSON text.
    pub content: String,
    pub is_active: bool,
    pub created_at: i64,
    pub updated_at: i64,
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
    let sql = format!("SELECT {COLUMNS} FROM ai_scripts ORDER BY name, version");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The active version of `name`, or the given `version` (active or not).
pub fn get(conn: &Connection, name: &str, version: Option<i64>) -> AppResult<Option<ScriptRow>> {
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

pub fn latest_version(conn: &Connection, name: &str) -> AppResult<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT max(version) FROM ai_scripts WHERE name = ?1")?
        .query_row([name], |r| r.get(0))?)
}

pub struct NewRow<'a> {
    pub name: &'a str,
    pub version: i64,
    pub description: &'a str,
    pub content: &'a str,
    pub now: i64,
}

/// Inserts a version; 409 `already_exists` when that name+version exists.
pub fn insert(conn: &Connection, row: &NewRow<'_>) -> AppResult<()> {
    let result = conn.execute(
        "INSERT INTO ai_scripts (name, version, description, content, is_active, created_at,
                                 updated_at)
         VALUES (?1, ?2, ?3, ?4, 0, ?5, ?5)",
        params![row.name, row.version, row.description, row.content, row.now],
    );
    match result {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(ApiError::Conflict {
                code: "already_exists",
                message: format!("{} version {} already exists.", row.name, row.version).into(),
                details: None,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Makes `version` the active version of `name`. `false` when it does not exist.
pub fn activate(conn: &Connection, name: &str, version: i64, now: i64) -> AppResult<bool> {
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
pub fn deactivate(conn: &Connection, name: &str, now: i64) -> AppResult<bool> {
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
