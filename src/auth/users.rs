//! The `users` table: who someone is (email, password hash, role, whether disabled). Every
//! feature that needs a user reads it through here; the accounts feature writes it.

use rusqlite::{Connection, OptionalExtension, params};
use unicode_normalization::UnicodeNormalization;

use super::Role;
use crate::{
    db,
    domain::Timestamp,
    error::{ApiError, AppResult, Code},
};

#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub display_name: Option<String>,
    pub role: Role,
    pub email_verified: bool,
    pub disabled: bool,
    pub created_at: Timestamp,
    pub last_sync_at: Option<Timestamp>,
    pub device_count: i64,
}

const USER_COLUMNS: &str = "id, email, password_hash, display_name, role, email_verified, \
     disabled, created_at, last_sync_at, device_count";

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    let role: String = row.get(4)?;
    Ok(UserRow {
        id: row.get(0)?,
        email: row.get(1)?,
        password_hash: row.get(2)?,
        display_name: row.get(3)?,
        role: Role::parse(&role),
        email_verified: row.get(5)?,
        disabled: row.get(6)?,
        created_at: row.get(7)?,
        last_sync_at: row.get(8)?,
        device_count: row.get(9)?,
    })
}

pub struct NewUser<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub display_name: Option<&'a str>,
    pub role: Role,
    pub now: Timestamp,
}

fn email_taken() -> ApiError {
    ApiError::conflict(
        Code::EmailTaken,
        "An account with this email already exists.",
    )
}

pub fn insert_user(conn: &Connection, user: &NewUser<'_>) -> AppResult<()> {
    let result = conn.execute(
        "INSERT INTO users (id, email, password_hash, display_name, role, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![
            user.id,
            user.email,
            user.password_hash,
            user.display_name,
            user.role.as_str(),
            user.now
        ],
    );
    db::on_unique(result, "users.email", email_taken).map(|_| ())
}

pub fn user_by_email(conn: &Connection, email: &str) -> AppResult<Option<UserRow>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([email], user_from_row)
        .optional()?)
}

pub fn user_by_id(conn: &Connection, id: &str) -> AppResult<Option<UserRow>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id], user_from_row)
        .optional()?)
}

pub fn list_users(conn: &Connection) -> AppResult<Vec<UserRow>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY created_at, email");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], user_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Accounts whose email or display name contains `query` (any case, Unicode included, in
/// NFC; all when empty), by email, the page after `after` (an email), at most `limit`.
/// Needs the connection's `unicode_lower` function (`db::configure`).
pub fn search_users(
    conn: &Connection,
    query: &str,
    after: Option<&str>,
    limit: u32,
) -> AppResult<Vec<UserRow>> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users
         WHERE (?1 = '' OR instr(email, ?1) > 0
                OR instr(unicode_lower(coalesce(display_name, '')), ?1) > 0)
           AND email > ?2
         ORDER BY email LIMIT ?3"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![
            query.nfc().collect::<String>().to_lowercase(),
            after.unwrap_or(""),
            limit
        ],
        user_from_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// How many accounts there are: `(all, administrators, disabled)`.
pub fn user_counts(conn: &Connection) -> AppResult<(i64, i64, i64)> {
    Ok(conn.query_row(
        "SELECT count(*), coalesce(sum(role = 'admin'), 0), coalesce(sum(disabled), 0) FROM users",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?)
}

pub fn set_password(conn: &Connection, user_id: &str, hash: &str, now: Timestamp) -> AppResult<()> {
    conn.execute(
        "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
        params![user_id, hash, now],
    )?;
    Ok(())
}

pub fn set_display_name(
    conn: &Connection,
    user_id: &str,
    name: Option<&str>,
    now: Timestamp,
) -> AppResult<()> {
    conn.execute(
        "UPDATE users SET display_name = ?2, updated_at = ?3 WHERE id = ?1",
        params![user_id, name, now],
    )?;
    Ok(())
}

/// A new email is unverified until confirmed again.
pub fn set_email(conn: &Connection, user_id: &str, email: &str, now: Timestamp) -> AppResult<()> {
    let result = conn.execute(
        "UPDATE users SET email = ?2, email_verified = 0, updated_at = ?3 WHERE id = ?1",
        params![user_id, email, now],
    );
    db::on_unique(result, "users.email", email_taken).map(|_| ())
}

/// Accounts whose email holds a non-ASCII character: the only ones Unicode normalisation
/// can change.
pub fn non_ascii_emails(conn: &Connection) -> AppResult<Vec<(String, String)>> {
    let mut stmt = conn.prepare("SELECT id, email FROM users WHERE email GLOB '*[^ -~]*'")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Rewrites a stored email in its normal form: the same address, so it stays verified. 409
/// `email_taken` when another account already holds that form (a look-alike pair).
pub fn normalize_email(conn: &Connection, user_id: &str, email: &str) -> AppResult<()> {
    let result = conn.execute(
        "UPDATE users SET email = ?2 WHERE id = ?1",
        params![user_id, email],
    );
    db::on_unique(result, "users.email", email_taken).map(|_| ())
}

pub fn set_email_verified(conn: &Connection, user_id: &str, now: Timestamp) -> AppResult<()> {
    conn.execute(
        "UPDATE users SET email_verified = 1, updated_at = ?2 WHERE id = ?1",
        params![user_id, now],
    )?;
    Ok(())
}

pub fn set_role(conn: &Connection, user_id: &str, role: Role, now: Timestamp) -> AppResult<()> {
    conn.execute(
        "UPDATE users SET role = ?2, updated_at = ?3 WHERE id = ?1",
        params![user_id, role.as_str(), now],
    )?;
    Ok(())
}

/// Disables or enables an account; disabling ends its sessions.
pub fn set_disabled(
    conn: &Connection,
    user_id: &str,
    disabled: bool,
    now: Timestamp,
) -> AppResult<()> {
    conn.execute(
        "UPDATE users SET disabled = ?2, updated_at = ?3 WHERE id = ?1",
        params![user_id, disabled, now],
    )?;
    if disabled {
        super::sessions::revoke_user_sessions(conn, user_id, None, "disabled", now)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::TempDb;

    fn new_user<'a>(id: &'a str, email: &'a str) -> NewUser<'a> {
        NewUser {
            id,
            email,
            password_hash: "h",
            display_name: None,
            role: Role::User,
            now: Timestamp::from_unix(5),
        }
    }

    #[test]
    fn search_finds_by_email_or_name_and_pages_by_email() {
        let db = TempDb::new();
        let conn = &db.conn;
        for (id, email) in [("1", "b@x.org"), ("2", "a@x.org"), ("3", "c@other.org")] {
            insert_user(conn, &new_user(id, email)).unwrap();
        }
        set_display_name(conn, "3", Some("Xavier"), Timestamp::from_unix(6)).unwrap();
        set_display_name(conn, "1", Some("Élodie Ärger"), Timestamp::from_unix(6)).unwrap();
        let emails = |rows: Vec<UserRow>| rows.into_iter().map(|u| u.email).collect::<Vec<_>>();
        assert_eq!(
            emails(search_users(conn, "X.ORG", None, 10).unwrap()),
            ["a@x.org", "b@x.org"]
        );
        assert_eq!(
            emails(search_users(conn, "xav", None, 10).unwrap()),
            ["c@other.org"]
        );
        assert_eq!(
            emails(search_users(conn, "", None, 2).unwrap()),
            ["a@x.org", "b@x.org"]
        );
        assert_eq!(
            emails(search_users(conn, "", Some("b@x.org"), 2).unwrap()),
            ["c@other.org"]
        );
        // Capitals beyond ASCII, and a query typed with a combining accent (NFD).
        assert_eq!(
            emails(search_users(conn, "élodie", None, 10).unwrap()),
            ["b@x.org"]
        );
        assert_eq!(
            emails(search_users(conn, "E\u{301}LODIE ä", None, 10).unwrap()),
            ["b@x.org"]
        );
        // LIKE wildcards are plain characters here.
        assert!(search_users(conn, "%", None, 10).unwrap().is_empty());
        set_disabled(conn, "1", true, Timestamp::from_unix(7)).unwrap();
        set_role(conn, "2", Role::Admin, Timestamp::from_unix(7)).unwrap();
        assert_eq!(user_counts(conn).unwrap(), (3, 1, 1));
    }

    #[test]
    fn a_duplicate_email_is_a_conflict() {
        let db = TempDb::new();
        insert_user(&db, &new_user("u1", "a@b.co")).unwrap();
        let dup = insert_user(&db, &new_user("u2", "a@b.co"));
        assert!(matches!(
            dup,
            Err(ApiError::Conflict {
                code: Code::EmailTaken,
                ..
            })
        ));
        insert_user(&db, &new_user("u3", "c@d.co")).unwrap();
        let moved = set_email(&db, "u3", "a@b.co", Timestamp::from_unix(6));
        assert!(matches!(moved, Err(ApiError::Conflict { .. })));
    }

    #[test]
    fn only_non_ascii_emails_are_listed_for_normalization() {
        let db = TempDb::new();
        insert_user(&db, &new_user("u1", "ana@b.co")).unwrap();
        insert_user(&db, &new_user("u2", "jose\u{301}@b.co")).unwrap();
        insert_user(&db, &new_user("u3", "jos\u{e9}@b.co")).unwrap();
        let listed = non_ascii_emails(&db).unwrap();
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert!(matches!(
            normalize_email(&db, "u2", "jos\u{e9}@b.co"),
            Err(ApiError::Conflict { .. })
        ));
    }

    #[test]
    fn a_duplicate_id_is_a_bug_not_a_conflict() {
        let db = TempDb::new();
        insert_user(&db, &new_user("u1", "a@b.co")).unwrap();
        let dup = insert_user(&db, &new_user("u1", "x@b.co"));
        assert!(matches!(dup, Err(ApiError::Internal(_))));
    }

    #[test]
    fn rows_read_back_with_their_fields() {
        let db = TempDb::new();
        insert_user(&db, &new_user("u1", "a@b.co")).unwrap();
        set_role(&db, "u1", Role::Admin, Timestamp::from_unix(7)).unwrap();
        set_display_name(&db, "u1", Some("Ana"), Timestamp::from_unix(7)).unwrap();
        set_email_verified(&db, "u1", Timestamp::from_unix(7)).unwrap();
        let row = user_by_email(&db, "a@b.co").unwrap().unwrap();
        assert_eq!(row.role, Role::Admin);
        assert_eq!(row.display_name.as_deref(), Some("Ana"));
        assert!(row.email_verified && !row.disabled);
        assert_eq!(row.created_at, Timestamp::from_unix(5));
        assert_eq!(list_users(&db).unwrap().len(), 1);
        assert!(user_by_id(&db, "nobody").unwrap().is_none());
    }
}
