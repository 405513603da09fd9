//! Sessions and their rotating refresh tokens. A login opens a session; every refresh
//! rotates its token; a rotated token presented again ends the session (OAuth 2.0 Security
//! BCP). The per-request auth check reads [`session_state`] (through `Auth`'s cache).

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    Role,
    users::{UserRow, user_by_id},
};
use crate::{domain::Timestamp, error::AppResult};

pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub device_name: Option<&'a str>,
    pub refresh_hash: &'a str,
    pub now: Timestamp,
    pub expires_at: Timestamp,
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
    /// An already-used token came back: the whole session was revoked. Carries its user.
    Reused {
        user_id: String,
    },
}

/// Rotates the refresh token `hash` to `new_hash`. A used token presented again within
/// `grace_secs` of its rotation (an app refreshing twice at once) is rotated as well;
/// later, it is reuse and ends the session.
pub fn rotate_refresh_token(
    conn: &Connection,
    hash: &str,
    new_hash: &str,
    now: Timestamp,
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
                r.get::<_, Option<Timestamp>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<Timestamp>>(3)?,
                r.get::<_, Timestamp>(4)?,
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
        && now.unix() - replaced_at.unix() >= grace_secs
    {
        revoke_session(conn, &session_id, "reuse", now)?;
        return Ok(Refresh::Reused { user_id });
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
        params![session_id, now, now.plus_secs(ttl_secs)],
    )?;
    Ok(Refresh::Rotated { user, session_id })
}

/// Ends one session; `false` when it had already ended.
pub fn revoke_session(
    conn: &Connection,
    session_id: &str,
    reason: &str,
    now: Timestamp,
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
    now: Timestamp,
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
    pub created_at: Timestamp,
    pub last_used_at: Timestamp,
    pub expires_at: Timestamp,
}

/// The user's live sessions, newest first.
pub fn live_sessions(
    conn: &Connection,
    user_id: &str,
    now: Timestamp,
) -> AppResult<Vec<SessionRow>> {
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
    now: Timestamp,
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
                role: Role::parse(&role),
                live: r.get(2)?,
                disabled: r.get(3)?,
            })
        })
        .optional()?)
}

/// Removes sessions past expiry or revoked a day ago (their refresh tokens go with them).
pub fn prune(conn: &Connection, now: Timestamp) -> AppResult<usize> {
    Ok(conn.execute(
        "DELETE FROM sessions WHERE expires_at < ?1 OR revoked_at < ?1 - 86400",
        [now],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::TempDb;

    fn session(db: &TempDb, id: &str, hash: &str, expires: i64) {
        create_session(
            db,
            &NewSession {
                id,
                user_id: "u1",
                device_name: Some("phone"),
                refresh_hash: hash,
                now: Timestamp::from_unix(0),
                expires_at: Timestamp::from_unix(expires),
            },
        )
        .unwrap();
    }

    #[test]
    fn prune_removes_expired_sessions_with_their_tokens() {
        let db = TempDb::new();
        db.user("u1");
        session(&db, "s1", "t1", 100);
        session(&db, "s2", "t2", 10_000);
        let now = Timestamp::from_unix(1000);
        assert_eq!(prune(&db, now).unwrap(), 1);
        let left: i64 = db
            .query_row("SELECT count(*) FROM refresh_tokens", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 1);
        assert!(session_state(&db, "s2", now).unwrap().unwrap().live);
        assert!(session_state(&db, "s1", now).unwrap().is_none());
    }

    #[test]
    fn a_rotated_token_presented_again_ends_the_session() {
        let db = TempDb::new();
        db.user("u1");
        session(&db, "s1", "t1", 10_000);
        let at = Timestamp::from_unix;
        let first = rotate_refresh_token(&db, "t1", "t2", at(10), 3600, 0).unwrap();
        assert!(matches!(first, Refresh::Rotated { ref session_id, .. } if session_id == "s1"));
        let again = rotate_refresh_token(&db, "t1", "t3", at(11), 3600, 0).unwrap();
        assert!(matches!(again, Refresh::Reused { ref user_id } if user_id == "u1"));
        assert!(!session_state(&db, "s1", at(12)).unwrap().unwrap().live);
        let after = rotate_refresh_token(&db, "t2", "t4", at(12), 3600, 0).unwrap();
        assert!(matches!(after, Refresh::Invalid));
    }

    #[test]
    fn a_retry_within_the_grace_window_is_rotated() {
        let db = TempDb::new();
        db.user("u1");
        session(&db, "s1", "t1", 10_000);
        let at = Timestamp::from_unix;
        rotate_refresh_token(&db, "t1", "t2", at(10), 3600, 5).unwrap();
        let retry = rotate_refresh_token(&db, "t1", "t3", at(12), 3600, 5).unwrap();
        assert!(matches!(retry, Refresh::Rotated { .. }));
        assert!(matches!(
            rotate_refresh_token(&db, "t9", "t10", at(12), 3600, 5).unwrap(),
            Refresh::Invalid
        ));
    }

    #[test]
    fn revoking_all_keeps_the_callers_session() {
        let db = TempDb::new();
        db.user("u1");
        session(&db, "s1", "t1", 10_000);
        session(&db, "s2", "t2", 10_000);
        let now = Timestamp::from_unix(5);
        assert_eq!(
            revoke_user_sessions(&db, "u1", Some("s2"), "password", now).unwrap(),
            1
        );
        let live = live_sessions(&db, "u1", now).unwrap();
        assert_eq!(
            live.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            ["s2"]
        );
        assert!(!revoke_session(&db, "s1", "logout", now).unwrap());
    }
}
