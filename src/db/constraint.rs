//! SQLite's constraint errors, told apart once for every store.
//!
//! A unique violation is usually the caller's conflict (an email already taken, a script
//! version that exists): the store names the column and the 409 it means. A foreign-key,
//! CHECK or NOT NULL violation means our own validation let something through: a bug, so a
//! 500 whose cause (the constraint) is logged.

use rusqlite::ffi;

use crate::error::{ApiError, AppResult};

/// What kind of constraint a statement broke, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation<'e> {
    /// `UNIQUE` or `PRIMARY KEY`, with SQLite's `table.column[, table.column]` text.
    Unique(&'e str),
    ForeignKey,
    Check,
    NotNull,
}

/// The constraint `err` reports, or `None` for any other error.
pub fn violation(err: &rusqlite::Error) -> Option<Violation<'_>> {
    let rusqlite::Error::SqliteFailure(e, message) = err else {
        return None;
    };
    let columns = message
        .as_deref()
        .and_then(|m| m.strip_prefix("UNIQUE constraint failed: "))
        .unwrap_or("");
    match e.extended_code {
        ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
            Some(Violation::Unique(columns))
        }
        ffi::SQLITE_CONSTRAINT_FOREIGNKEY => Some(Violation::ForeignKey),
        ffi::SQLITE_CONSTRAINT_CHECK => Some(Violation::Check),
        ffi::SQLITE_CONSTRAINT_NOTNULL => Some(Violation::NotNull),
        _ => None,
    }
}

/// `result`, with a unique violation on exactly `columns` (as SQLite names them, e.g.
/// `users.email` or `ai_scripts.name, ai_scripts.version`) turned into `conflict()`. Every
/// other error, other constraints included, is a 500 naming what failed in the log.
pub fn on_unique<T>(
    result: rusqlite::Result<T>,
    columns: &str,
    conflict: impl FnOnce() -> ApiError,
) -> AppResult<T> {
    result.map_err(|err| match violation(&err) {
        Some(Violation::Unique(found)) if found == columns => conflict(),
        _ => err.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    fn conn() -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE p (id INTEGER PRIMARY KEY);
             CREATE TABLE t (
               a TEXT NOT NULL UNIQUE,
               n INTEGER CHECK (n > 0),
               p INTEGER REFERENCES p (id)
             );
             INSERT INTO t (a, n) VALUES ('x', 1);",
        )
        .unwrap();
        conn
    }

    #[test]
    fn each_kind_is_told_apart() {
        let conn = conn();
        let kind = |sql: &str| {
            let err = conn.execute(sql, []).unwrap_err();
            format!("{:?}", violation(&err))
        };
        assert_eq!(
            kind("INSERT INTO t (a) VALUES ('x')"),
            "Some(Unique(\"t.a\"))"
        );
        assert_eq!(kind("INSERT INTO t (a, n) VALUES ('y', 0)"), "Some(Check)");
        assert_eq!(
            kind("INSERT INTO t (a, p) VALUES ('z', 9)"),
            "Some(ForeignKey)"
        );
        assert_eq!(kind("INSERT INTO t (a) VALUES (NULL)"), "Some(NotNull)");
    }

    #[test]
    fn only_the_named_unique_column_is_a_conflict() {
        let conn = conn();
        let taken = || ApiError::conflict(Code::AlreadyExists, "taken");
        let dup = on_unique(
            conn.execute("INSERT INTO t (a) VALUES ('x')", []),
            "t.a",
            taken,
        );
        assert!(matches!(
            dup,
            Err(ApiError::Conflict {
                code: Code::AlreadyExists,
                ..
            })
        ));
        let check = on_unique(
            conn.execute("INSERT INTO t (a, n) VALUES ('q', 0)", []),
            "t.a",
            taken,
        );
        assert!(matches!(check, Err(ApiError::Internal(_))));
    }
}
