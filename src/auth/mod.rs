//! Authentication plumbing every feature uses: who users are (`users`), their sessions and
//! refresh tokens (`sessions`), access tokens (`jwt`), password hashing (`password`), opaque
//! tokens (refresh, reset, verification), login throttling, and the `AuthUser` / `AdminUser`
//! extractors.
//!
//! The per-request check is a JWT verification (an HMAC) plus a session lookup through a
//! small in-memory cache: logout and revocation in this process evict the entry, so a
//! logged-out token fails at once; changes made by another process (the admin CLI) are
//! seen within `SESSION_CACHE_TTL`.

mod extract;
pub mod jwt;
pub mod password;
pub mod sessions;
mod throttle;
pub mod users;

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

pub use extract::{AdminUser, AuthUser, MaybeAuthUser};
pub use throttle::LoginThrottle;

pub use sessions::SessionState;
pub use users::UserRow;

use crate::{
    cache::TtlCache,
    config::Config,
    db::Db,
    domain::Timestamp,
    error::{ApiError, AppResult},
    secrets::Secrets,
};

/// How long a looked-up session state is trusted without asking the database again.
pub const SESSION_CACHE_TTL: Duration = Duration::from_secs(2);

/// Entries each of the session and user caches holds at most.
pub const MAX_CACHED: u64 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    /// The role stored in `users.role` (a CHECK allows only these two).
    pub fn parse(text: &str) -> Role {
        if text == "admin" {
            Role::Admin
        } else {
            Role::User
        }
    }
}

pub struct Auth {
    /// Swapped when `secrets.toml` changes (a key rotation by the CLI).
    jwt: std::sync::RwLock<std::sync::Arc<jwt::Jwt>>,
    pub passwords: password::Passwords,
    pub throttle: LoginThrottle,
    sessions: TtlCache<String, Option<std::sync::Arc<SessionState>>>,
    /// User rows for "who am I" reads (`/auth/me`), under the same rules as `sessions`: writes
    /// in this process evict the row, other processes' changes show within the TTL.
    users: TtlCache<String, std::sync::Arc<UserRow>>,
}

impl Auth {
    pub fn new(config: &Config, secrets: &Secrets) -> anyhow::Result<Self> {
        Ok(Auth {
            jwt: std::sync::RwLock::new(std::sync::Arc::new(jwt::Jwt::new(secrets, &config.auth))),
            passwords: password::Passwords::new(&config.auth)?,
            throttle: LoginThrottle::new(),
            sessions: TtlCache::new(MAX_CACHED, SESSION_CACHE_TTL),
            users: TtlCache::new(MAX_CACHED, SESSION_CACHE_TTL),
        })
    }

    /// The current JWT key ring.
    pub fn jwt(&self) -> std::sync::Arc<jwt::Jwt> {
        self.jwt.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Takes up a new key ring (after `persona admin secrets rotate jwt`).
    pub fn reload_keys(&self, config: &Config, secrets: &Secrets) {
        let jwt = std::sync::Arc::new(jwt::Jwt::new(secrets, &config.auth));
        *self.jwt.write().unwrap_or_else(|p| p.into_inner()) = jwt;
    }

    /// The state of session `sid`, from the cache or the database.
    pub async fn session(
        &self,
        db: &Db,
        sid: &str,
    ) -> AppResult<Option<std::sync::Arc<SessionState>>> {
        if let Some(state) = self.sessions.get(sid) {
            return Ok(state);
        }
        let owned = sid.to_owned();
        let now = Timestamp::now();
        let state = db
            .read(move |conn| sessions::session_state(conn, &owned, now))
            .await?
            .map(std::sync::Arc::new);
        self.sessions.insert(sid.to_owned(), state.clone());
        Ok(state)
    }

    /// Forgets cached session states after sessions were ended or a user changed, so the
    /// next request sees the database.
    pub fn forget_session(&self, sid: &str) {
        self.sessions.remove(sid);
    }

    /// Forgets the cached sessions and row of user `user_id` (after a change that touches
    /// all of their sessions: logout-all, a password change, refresh-token reuse). Other
    /// users' entries stay.
    pub fn forget_user_sessions(&self, user_id: &str) {
        self.sessions
            .retain(|_, state| state.as_ref().is_none_or(|s| *s.user_id != *user_id));
        self.users.remove(user_id);
    }

    /// Forgets every cached session and user (after changes made behind the server's back,
    /// e.g. by a test arranging the database).
    pub fn forget_all_sessions(&self) {
        self.sessions.clear();
        self.users.clear();
    }

    /// Drops the cached sessions, users and verified tokens that went stale, and the login
    /// failures old enough to be forgotten (the periodic upkeep calls it before it trims the
    /// heap).
    pub fn forget_stale(&self) {
        self.throttle.forget_stale();
        self.sessions.forget_stale();
        self.users.forget_stale();
        self.jwt().forget_stale();
    }

    /// The user row `id`, from the cache or the database.
    pub async fn user(&self, db: &Db, id: &str) -> AppResult<Option<std::sync::Arc<UserRow>>> {
        if let Some(row) = self.users.get(id) {
            return Ok(Some(row));
        }
        let owned = id.to_owned();
        let row = db.read(move |conn| users::user_by_id(conn, &owned)).await?;
        Ok(row.map(|row| {
            let row = std::sync::Arc::new(row);
            self.users.insert(id.to_owned(), row.clone());
            row
        }))
    }

    /// Forgets the cached row of user `id` (call after writing to it).
    pub fn forget_user(&self, id: &str) {
        self.users.remove(id);
    }
}

/// A new opaque token (256 random bits, base64url) and the SHA-256 hex stored in its place.
pub fn new_opaque_token() -> AppResult<(String, String)> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| ApiError::internal(anyhow::anyhow!("no randomness: {e}")))?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_opaque_token(&token);
    Ok((token, hash))
}

/// The stored form of an opaque token. Tokens carry 256 bits of entropy, so a fast hash is
/// enough: nothing about them can be guessed from the hash.
pub fn hash_opaque_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
