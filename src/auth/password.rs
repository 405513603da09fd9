//! Password hashing with argon2id, off the async runtime on a bounded pool.
//!
//! At most one hash per core runs at a time: a login flood queues on the semaphore instead of
//! starving the blocking pool, the CPU or memory (each hash holds `argon2_memory_kib`).
//! Unknown accounts are checked against a dummy hash so they cost what a wrong password
//! costs.

use std::sync::Arc;

use anyhow::anyhow;
use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHasher as _, PasswordVerifier as _, phc::PasswordHash},
};
use tokio::sync::{OnceCell, Semaphore};

use crate::{
    config::AuthConfig,
    db::run_blocking,
    error::{ApiError, AppResult},
};

#[derive(Clone)]
pub struct Passwords {
    params: Params,
    permits: Arc<Semaphore>,
    dummy: Arc<OnceCell<String>>,
}

/// The result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    No,
    Yes,
    /// Correct, and the stored hash used other parameters than the configured ones.
    YesButRehash,
}

impl Passwords {
    pub fn new(config: &AuthConfig) -> anyhow::Result<Self> {
        let params = Params::new(
            config.argon2_memory_kib,
            config.argon2_iterations,
            config.argon2_parallelism,
            None,
        )
        .map_err(|e| anyhow!("invalid argon2 parameters: {e}"))?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Passwords {
            params,
            permits: Arc::new(Semaphore::new(cores)),
            dummy: Arc::new(OnceCell::new()),
        })
    }

    fn argon2(params: Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    /// Hashes `password` into a PHC string with a fresh salt.
    pub async fn hash(&self, password: String) -> AppResult<String> {
        let params = self.params.clone();
        self.bounded(move || {
            Self::argon2(params)
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| ApiError::internal(anyhow!("argon2 hash failed: {e}")))
        })
        .await
    }

    /// Checks `password` against `stored`, or against a dummy hash when there is no account,
    /// so both paths take the same time.
    pub async fn verify(&self, password: String, stored: Option<String>) -> AppResult<Verified> {
        let (stored, real) = match stored {
            Some(stored) => (stored, true),
            None => (self.dummy_hash().await?, false),
        };
        let params = self.params.clone();
        self.bounded(move || {
            let parsed = PasswordHash::new(&stored)
                .map_err(|e| ApiError::internal(anyhow!("stored hash unreadable: {e}")))?;
            let ok = Self::argon2(params.clone())
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            Ok(match (ok && real, Params::try_from(&parsed)) {
                (false, _) => Verified::No,
                (true, Ok(old))
                    if parsed.algorithm.as_str() == "argon2id"
                        && old.m_cost() == params.m_cost()
                        && old.t_cost() == params.t_cost()
                        && old.p_cost() == params.p_cost() =>
                {
                    Verified::Yes
                }
                (true, _) => Verified::YesButRehash,
            })
        })
        .await
    }

    async fn dummy_hash(&self) -> AppResult<String> {
        self.dummy
            .get_or_try_init(|| self.hash("persona-dummy-password".to_owned()))
            .await
            .cloned()
    }

    async fn bounded<T, F>(&self, f: F) -> AppResult<T>
    where
        F: FnOnce() -> AppResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::unavailable("The server is shutting down."))?;
        run_blocking(move || {
            let _permit = permit;
            f()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(memory: u32) -> Passwords {
        let config = AuthConfig {
            argon2_memory_kib: memory,
            argon2_iterations: 1,
            ..AuthConfig::default()
        };
        Passwords::new(&config).unwrap()
    }

    #[tokio::test]
    async fn hashes_verify_and_upgrade_when_parameters_change() {
        let old = small(1024);
        let hash = old.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert_eq!(
            old.verify("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap(),
            Verified::Yes
        );
        assert_eq!(
            old.verify("wrong".into(), Some(hash.clone()))
                .await
                .unwrap(),
            Verified::No
        );
        let new = small(2048);
        assert_eq!(
            new.verify("correct horse".into(), Some(hash))
                .await
                .unwrap(),
            Verified::YesButRehash
        );
    }

    #[tokio::test]
    async fn unknown_accounts_never_verify() {
        let p = small(1024);
        assert_eq!(
            p.verify("persona-dummy-password".into(), None)
                .await
                .unwrap(),
            Verified::No
        );
    }
}
