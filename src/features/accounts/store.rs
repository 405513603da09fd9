//! SQL of the accounts feature's own table: single-use tokens for password reset and email
//! verification (users and sessions belong to `auth`). Plain functions over a connection.

use rusqlite::{Connection, OptionalExtension, params};

use crate::{domain::Timestamp, error::AppResult};

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
    now: Timestamp,
    expires_at: Timestamp,
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

/// Withdraws the user's unused tokens of `purpose` (after the password or email they were
/// issued against changed).
pub fn drop_user_tokens(conn: &Connection, user_id: &str, purpose: Purpose) -> AppResult<usize> {
    Ok(conn.execute(
        "DELETE FROM user_tokens WHERE user_id = ?1 AND purpose = ?2 AND used_at IS NULL",
        params![user_id, purpose.as_str()],
    )?)
}

/// The `server_meta` key set once stored emails are in their normal form (NFC).
const EMAILS_NORMALIZED: &str = "emails_nfc";

/// Whether this database's stored emails were already brought to their normal form.
pub fn emails_normalized(conn: &Connection) -> AppResult<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM server_meta WHERE key = ?1",
            [EMAILS_NORMALIZED],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

pub fn mark_emails_normalized(conn: &Connection) -> AppResult<()> {
    conn.execute(
        "INSERT OR REPLACE INTO server_meta (key, value) VALUES (?1, '1')",
        [EMAILS_NORMALIZED],
    )?;
    Ok(())
}

/// Uses up a token; returns its user when it was valid, unused and unexpired.
pub fn consume_user_token(
    conn: &Connection,
    purpose: Purpose,
    hash: &str,
    now: Timestamp,
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

/// Removes spent and expired single-use tokens.
pub fn prune(conn: &Connection, now: Timestamp) -> AppResult<usize> {
    Ok(conn.execute(
        "DELETE FROM user_tokens WHERE expires_at < ?1 OR used_at IS NOT NULL",
        [now],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::TempDb;

    #[test]
    fn single_use_tokens_work_once() {
        let db = TempDb::new();
        db.user("u1");
        let at = Timestamp::from_unix;
        create_user_token(&db, "u1", Purpose::ResetPassword, "h1", at(0), at(100)).unwrap();
        assert_eq!(
            consume_user_token(&db, Purpose::VerifyEmail, "h1", at(1)).unwrap(),
            None
        );
        assert_eq!(
            consume_user_token(&db, Purpose::ResetPassword, "h1", at(1))
                .unwrap()
                .as_deref(),
            Some("u1")
        );
        assert_eq!(
            consume_user_token(&db, Purpose::ResetPassword, "h1", at(2)).unwrap(),
            None
        );
        create_user_token(&db, "u1", Purpose::ResetPassword, "h2", at(0), at(100)).unwrap();
        assert_eq!(
            consume_user_token(&db, Purpose::ResetPassword, "h2", at(101)).unwrap(),
            None,
            "expired"
        );
    }

    #[test]
    fn a_new_token_replaces_the_unused_one_and_prune_clears_spent_ones() {
        let db = TempDb::new();
        db.user("u1");
        let at = Timestamp::from_unix;
        create_user_token(&db, "u1", Purpose::VerifyEmail, "old", at(0), at(100)).unwrap();
        create_user_token(&db, "u1", Purpose::VerifyEmail, "new", at(1), at(100)).unwrap();
        assert_eq!(
            consume_user_token(&db, Purpose::VerifyEmail, "old", at(2)).unwrap(),
            None
        );
        assert!(
            consume_user_token(&db, Purpose::VerifyEmail, "new", at(2))
                .unwrap()
                .is_some()
        );
        assert_eq!(prune(&db, at(3)).unwrap(), 1);
    }

    #[test]
    fn dropped_tokens_stop_working_and_other_purposes_stay() {
        let db = TempDb::new();
        db.user("u1");
        let at = Timestamp::from_unix;
        create_user_token(&db, "u1", Purpose::ResetPassword, "r", at(0), at(100)).unwrap();
        create_user_token(&db, "u1", Purpose::VerifyEmail, "v", at(0), at(100)).unwrap();
        assert_eq!(
            drop_user_tokens(&db, "u1", Purpose::ResetPassword).unwrap(),
            1
        );
        assert_eq!(
            consume_user_token(&db, Purpose::ResetPassword, "r", at(1)).unwrap(),
            None
        );
        assert!(
            consume_user_token(&db, Purpose::VerifyEmail, "v", at(1))
                .unwrap()
                .is_some()
        );
    }
}
