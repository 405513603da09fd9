//! SQL of accounts and sessions: plain functions over a connection. Writers receive the
//! transaction `Db::write` opened, so a multi-statement change is atomic.

use rusqlite::{Connection, OptionalExtension, params};

use crate::{
    auth::Role,
    error::{ApiError, AppResult},
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
    pub created_at: i64,
    pub last_sync_at: Option<i64>,
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
        role: if role == "admin" {
            Role::Admin
        } else {
            Role::User
        },
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
    pub now: i64,
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
    result.map(|_| ()).map_err(email_conflict)
}

/// A unique-constraint failure on `users.email` is the caller's conflict, not our bug.
fn email_conflict(err: rusqlite::Error) -> ApiError {
    match &err {
        rusqlite::Error::SqliteFailure(e, Some(message))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                && message.contains("users.email") =>
        {
            ApiError::Conflict {
                code: "email_taken",
                message: "An account with this email already exists.".into(),
                details: None,
            }
        }
        _ => err.into(),
    }
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

pub fn set_password(conn: &Connection, user_id: &str, hash: &str, now: i64) -> AppResult<()> {
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
    now: i64,
) -> AppResult<()> {
    conn.execute(
        "UPDATE users SET display_name = ?2, updated_at = ?3 WHERE id = ?1",
        params![user_id, name, now],
    )?;
    Ok(())
}

/// A new email is unverified until confirmed again.
pub fn set_email(conn: &Connection, user_id: &str, email: &str, now: i64) -> AppResult<()> {
    conn.execute(
        "UPDATE users SET email = ?2, email_verified = 0, updated_at = ?3 WHERE id = ?1",
        params![user_id, email, now],
    )
    .map_err(email_conflict)?;
    Ok(())
}

pub fn set_email_verified(conn: &Connection, user_id: &str, now: i64) -> AppResult<()> {
    conn.execute(
        "UPDATE users SET email_verified = 1, updated_at = ?2 WHERE id = ?1",
        params![user_id, now],
    )?;
    Ok(())
}

pub fn set_role(conn: &Connection, user_id: &str, role: Role, now: i64) -> AppResult<()> {
    conn.execute(
        "UPDATE users SET role = ?2, updated_at = ?3 WHERE id = ?1",
        params![user_id, role.as_str(), now],
    )?;
    Ok(())
}

pub fn set_disabled(conn: &Connection, user_id: &str, disabled: bool, now: i64) -> AppResult<()> {
    conn.execute(
        "UPDATE users SET disabled = ?2, updated_at = ?3 WHERE id = ?1",
        params![user_id, disabled, now],
    )?;
    if disabled {
        revoke_user_sessions(conn, user_id, None, "disabled", now)?;
    }
    Ok(())
}

// ---- sessions and refresh tokens ----

pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub device_name: Option<&'a str>,
    pub refresh_hash: &'a str,
    pub now: i64,
    pub expires_at: i64,
}

pub fn create_session(conn: &Connection, s: &NewSession<'_>) -> AppResult<()> {
    conn.execute(
        "INSERT INTO sessions (id, user_id, device_name, created_at, last_used_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
        params![s.id, s.user_id, s.device_name, s.now, s.expires_at],
    )?;
    conn.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES (?1, ?2, ?3)",
        params![s.refresh_hash, s.id, s.now],
    )?;
    Ok(())
}

/// What presenting a refresh token led to.
#[derive(Debug)]
pub enum Refresh {
    /// Rotated: the presented token is used up and `new_hash` replaces it.
    Rotated {
        user: UserRow,
        session_id: String,
    },
    /// Unknown token, or its session has ended.
    Invalid,
    Expired,
    Disabled,
    /// An already-used token came back: the whole session was revoked.
    Reused,
}

/// Rotates the refresh token `hash` to `new_hash`. A used token presented again within
/// `grace_secs` of its rotation (an app refreshing twice at once) is rotated as well;
/// later, it is reuse and ends the session (OAuth 2.0 Security BCP).
pub fn rotate_refresh_token(
    conn: &Connection,
    hash: &str,
    new_hash: &str,
    now: i64,
    ttl_secs: i64,
    grace_secs: i64,
) -> AppResult<Refresh> {
    let found = conn
        .prepare_cached(
            "SELECT t.session_id, t.replaced_at, s.user_id, s.revoked_at, s.expires_at
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
             WHERE t.token_hash = ?1",
        )?
        .query_row([hash], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })
        .optional()?;
    let Some((session_id, replaced_at, user_id, revoked_at, expires_at)) = found else {
        return Ok(Refresh::Invalid);
    };
    if revoked_at.is_some() {
        return Ok(Refresh::Invalid);
    }
    if expires_at <= now {
        return Ok(Refresh::Expired);
    }
    if let Some(replaced_at) = replaced_at
        && now - replaced_at >= grace_secs
    {
        revoke_session(conn, &session_id, "reuse", now)?;
        return Ok(Refresh::Reused);
    }
    let Some(user) = user_by_id(conn, &user_id)? else {
        return Ok(Refresh::Invalid);
    };
    if user.disabled {
        return Ok(Refresh::Disabled);
    }
    if replaced_at.is_none() {
        conn.execute(
            "UPDATE refresh_tokens SET replaced_at = ?2 WHERE token_hash = ?1",
            params![hash, now],
        )?;
    }
    conn.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES (?1, ?2, ?3)",
        params![new_hash, session_id, now],
    )?;
    conn.execute(
        "UPDATE sessions SET last_used_at = ?2, expires_at = ?3 WHERE id = ?1",
        params![session_id, now, now + ttl_secs],
    )?;
    Ok(Refresh::Rotated { user, session_id })
}

pub fn revoke_session(
    conn: &Connection,
    session_id: &str,
    reason: &str,
    now: i64,
) -> AppResult<bool> {
    let changed = conn.execute(
        "UPDATE sessions SET revoked_at = ?2, revoke_reason = ?3
         WHERE id = ?1 AND revoked_at IS NULL",
        params![session_id, now, reason],
    )?;
    Ok(changed > 0)
}

/// Ends every live session of a user, except `keep` (the caller's own, for a password change).
pub fn revoke_user_sessions(
    conn: &Connection,
    user_id: &str,
    keep: Option<&str>,
    reason: &str,
    now: i64,
) -> AppResult<usize> {
    Ok(conn.execute(
        "UPDATE sessions SET revoked_at = ?3, revoke_reason = ?4
         WHERE user_id = ?1 AND revoked_at IS NULL AND id IS NOT ?2",
        params![user_id, keep, now, reason],
    )?)
}

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: String,
    pub device_name: Option<String>,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
}

/// The user's live sessions, newest first.
pub fn live_sessions(conn: &Connection, user_id: &str, now: i64) -> AppResult<Vec<SessionRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, device_name, created_at, last_used_at, expires_at FROM sessions
         WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2
         ORDER BY created_at DESC",
    )?;
    let rows = stmt.query_map(params![user_id, now], |r| {
        Ok(SessionRow {
            id: r.get(0)?,
            device_name: r.get(1)?,
            created_at: r.get(2)?,
            last_used_at: r.get(3)?,
            expires_at: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What the per-request auth check needs to know about a session.
#[derive(Debug, Clone)]
pub struct SessionState {
    pub user_id: String,
    pub role: Role,
    pub live: bool,
    pub disabled: bool,
}

pub fn session_state(
    conn: &Connection,
    session_id: &str,
    now: i64,
) -> AppResult<Option<SessionState>> {
    Ok(conn
        .prepare_cached(
            "SELECT s.user_id, u.role, s.revoked_at IS NULL AND s.expires_at > ?2, u.disabled
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?1",
        )?
        .query_row(params![session_id, now], |r| {
            let role: String = r.get(1)?;
            Ok(SessionState {
                user_id: r.get(0)?,
                role: if role == "admin" {
                    Role::Admin
                } else {
                    Role::User
                },
                live: r.get(2)?,
                disabled: r.get(3)?,
            })
        })
        .optional()?)
}

/// Removes what can no longer be used: sessions past expiry or revoked a day ago, and spent
/// one-time tokens.
pub fn prune(conn: &Connection, now: i64) -> AppResult<usize> {
    let sessions = conn.execute(
        "DELETE FROM sessions WHERE expires_at < ?1 OR revoked_at < ?1 - 86400",
        [now],
    )?;
    let tokens = conn.execute(
        "DELETE FROM user_tokens WHERE expires_at < ?1 OR used_at IS NOT NULL",
        [now],
    )?;
    Ok(sessions + tokens)
}

// ---- single-use tokens (password reset, email verification) ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    ResetPassword,
    VerifyEmail,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::ResetPassword => "reset_password",
            Purpose::VerifyEmail => "verify_email",
        }
    }
}

/// Stores a new single-use token; earlier unused tokens of the same purpose stop working.
pub fn create_user_token(
    conn: &Connection,
    user_id: &str,
    purpose: Purpose,
    hash: &str,
    now: i64,
    expires_at: i64,
) -> AppResult<()> {
    conn.execute(
        "DELETE FROM user_tokens WHERE user_id = ?1 AND purpose = ?2",
        params![user_id, purpose.as_str()],
    )?;
    conn.execute(
        "INSERT INTO user_tokens (token_hash, user_id, purpose, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![hash, user_id, purpose.as_str(), now, expires_at],
    )?;
    Ok(())
}

/// Uses up a token; returns its user when it was valid, unused and unexpired.
pub fn consume_user_token(
    conn: &Connection,
    purpose: Purpose,
    hash: &str,
    now: i64,
) -> AppResult<Option<String>> {
    Ok(conn
        .prepare_cached(
            "UPDATE user_tokens SET used_at = ?3
             WHERE token_hash = ?1 AND purpose = ?2 AND used_at IS NULL AND expires_at > ?3
             RETURNING user_id",
        )?
        .query_row(params![hash, purpose.as_str(), now], |r| r.get(0))
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(include_str!("../../../migrations/V2__accounts.sql"))
            .unwrap();
        conn
    }

    fn user(conn: &Connection, id: &str, email: &str) {
        insert_user(
            conn,
            &NewUser {
                id,
                email,
                password_hash: "h",
                display_name: None,
                role: Role::User,
                now: 0,
            },
        )
        .unwrap();
    }

    #[test]
    fn a_duplicate_email_is_a_conflict() {
        let conn = conn();
        user(&conn, "u1", "a@b.co");
        let dup = insert_user(
            &conn,
            &NewUser {
                id: "u2",
                email: "a@b.co",
                password_hash: "h",
                display_name: None,
                role: Role::User,
                now: 0,
            },
        );
        assert!(matches!(
            dup,
            Err(ApiError::Conflict {
                code: "email_taken",
                ..
            })
        ));
    }

    #[test]
    fn prune_removes_expired_sessions_with_their_tokens() {
        let conn = conn();
        user(&conn, "u1", "a@b.co");
        for (id, hash, expires) in [("s1", "t1", 100), ("s2", "t2", 10_000)] {
            create_session(
                &conn,
                &NewSession {
                    id,
                    user_id: "u1",
                    device_name: None,
                    refresh_hash: hash,
                    now: 0,
                    expires_at: expires,
                },
            )
            .unwrap();
        }
        assert_eq!(prune(&conn, 1000).unwrap(), 1);
        let left: i64 = conn
            .query_row("SELECT count(*) FROM refresh_tokens", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 1);
        assert!(session_state(&conn, "s2", 1000).unwrap().unwrap().live);
        assert!(session_state(&conn, "s1", 1000).unwrap().is_none());
    }

    #[test]
    fn single_use_tokens_work_once() {
        let conn = conn();
        user(&conn, "u1", "a@b.co");
        create_user_token(&conn, "u1", Purpose::ResetPassword, "h1", 0, 100).unwrap();
        assert_eq!(
            consume_user_token(&conn, Purpose::VerifyEmail, "h1", 1).unwrap(),
            None
        );
        assert_eq!(
            consume_user_token(&conn, Purpose::ResetPassword, "h1", 1)
                .unwrap()
                .as_deref(),
            Some("u1")
        );
        assert_eq!(
            consume_user_token(&conn, Purpose::ResetPassword, "h1", 2).unwrap(),
            None
        );
        create_user_token(&conn, "u1", Purpose::ResetPassword, "h2", 0, 100).unwrap();
        assert_eq!(
            consume_user_token(&conn, Purpose::ResetPassword, "h2", 101).unwrap(),
            None,
            "expired"
        );
    }
}
