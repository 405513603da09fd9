//! Password hashing with argon2id, off the async runtime on a bounded pool.
//!
//! At most one hash per core runs at a time: a login flood queues on the semaphore instead of
//! starving the blocking pool, the CPU or memory (each hash holds `argon2_memory_kib`).
//! Unknown accounts are checked against a dummy hash so they cost what a wrong password
//! costs.
//!
//! Each hash needs `argon2_memory_kib` of working memory (19 MiB by default). Allocating it
//! afresh maps and faults in 19 MiB per login, about a tenth of a hash's time; so while logins
//! queue, a finished hash hands its memory to the next one ([`Memory`]). When the queue runs
//! dry the memory goes back to the system, so an idle server holds none of it.

use std::sync::{Arc, Mutex};

use anyhow::anyhow;
use argon2::{
    Algorithm, Argon2, Block, Params, Version,
    password_hash::phc::{Output, ParamsString, PasswordHash, Salt},
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
    memory: Arc<Memory>,
    dummy: Arc<OnceCell<String>>,
}

/// argon2 working memory kept between hashes while others wait: at most one buffer per
/// permit, all released when a hash ends with a permit free (no one waiting).
#[derive(Default)]
struct Memory(Mutex<Vec<Vec<Block>>>);

impl Memory {
    fn take(&self) -> Vec<Block> {
        self.0
            .lock()
            .map(|mut free| free.pop())
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Keeps `blocks` for the next hash when `busy`, else releases them and every kept one.
    fn give_back(&self, blocks: Vec<Block>, busy: bool) {
        let Ok(mut free) = self.0.lock() else { return };
        if busy {
            free.push(blocks);
        } else {
            free.clear();
            free.shrink_to_fit();
        }
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        self.0.lock().map_or(0, |free| free.len())
    }
}

/// Computes the argon2 output of `password` and `salt` into `out` with `argon2`'s parameters,
/// in `blocks` (resized to what the parameters need).
fn hash_into(
    argon2: &Argon2<'_>,
    blocks: &mut Vec<Block>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    let needed = argon2.params().block_count();
    if blocks.len() != needed {
        // Drop the old buffer first: two would be mapped at once otherwise.
        *blocks = Vec::new();
        *blocks = vec![Block::new(); needed];
    }
    argon2.hash_password_into_with_memory(password, salt, out, blocks.as_mut_slice())
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
            memory: Arc::default(),
            dummy: Arc::new(OnceCell::new()),
        })
    }

    fn argon2(params: Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    /// Hashes `password` into a PHC string with a fresh salt.
    pub async fn hash(&self, password: String) -> AppResult<String> {
        let params = self.params.clone();
        self.bounded(move |blocks| {
            let failed =
                |e: &dyn std::fmt::Display| ApiError::internal(anyhow!("argon2 hash failed: {e}"));
            let mut salt = [0u8; 16];
            getrandom::fill(&mut salt).map_err(|e| failed(&e))?;
            let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
            let argon2 = Self::argon2(params.clone());
            hash_into(&argon2, blocks, password.as_bytes(), &salt, &mut out)
                .map_err(|e| failed(&e))?;
            let phc = PasswordHash {
                algorithm: Algorithm::Argon2id.ident(),
                version: Some(Version::V0x13.into()),
                params: ParamsString::try_from(&params).map_err(|e| failed(&e))?,
                salt: Some(Salt::new(&salt).map_err(|e| failed(&e))?),
                hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
            };
            Ok(phc.to_string())
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
        self.bounded(move |blocks| {
            let parsed = PasswordHash::new(&stored)
                .map_err(|e| ApiError::internal(anyhow!("stored hash unreadable: {e}")))?;
            let ok = Self::matches(&parsed, password.as_bytes(), blocks);
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

    /// Whether `password` hashes to `parsed` with `parsed`'s own algorithm, version,
    /// parameters and salt (compared in constant time).
    fn matches(parsed: &PasswordHash, password: &[u8], blocks: &mut Vec<Block>) -> bool {
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
            return false;
        };
        let Ok(version) = parsed.version.map_or(Ok(Version::V0x13), Version::try_from) else {
            return false;
        };
        let Ok(params) = Params::try_from(parsed) else {
            return false;
        };
        let mut out = vec![0u8; expected.len()];
        let argon2 = Argon2::new(algorithm, version, params);
        hash_into(&argon2, blocks, password, salt.as_ref(), &mut out).is_ok()
            && Output::new(&out).is_ok_and(|actual| actual == *expected)
    }

    async fn dummy_hash(&self) -> AppResult<String> {
        self.dummy
            .get_or_try_init(|| self.hash("persona-dummy-password".to_owned()))
            .await
            .cloned()
    }

    /// Runs `f` with a permit and argon2 working memory on the blocking pool.
    async fn bounded<T, F>(&self, f: F) -> AppResult<T>
    where
        F: FnOnce(&mut Vec<Block>) -> AppResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::unavailable("The server is shutting down."))?;
        let (permits, memory) = (self.permits.clone(), self.memory.clone());
        run_blocking(move || {
            let mut blocks = memory.take();
            let result = f(&mut blocks);
            // Every permit taken: another hash runs, and others may be waiting for ours.
            memory.give_back(blocks, permits.available_permits() == 0);
            drop(permit);
            result
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
    async fn hashes_read_and_written_by_the_argon2_crate_agree() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let p = small(1024);
        let ours = p.hash("correct horse".into()).await.unwrap();
        let argon2 = Passwords::argon2(p.params.clone());
        assert!(
            argon2
                .verify_password(b"correct horse", &PasswordHash::new(&ours).unwrap())
                .is_ok()
        );
        let theirs = argon2.hash_password(b"battery staple").unwrap().to_string();
        assert_eq!(
            p.verify("battery staple".into(), Some(theirs.clone()))
                .await
                .unwrap(),
            Verified::Yes
        );
        assert_eq!(
            p.verify("battery stapler".into(), Some(theirs))
                .await
                .unwrap(),
            Verified::No
        );
    }

    #[tokio::test]
    async fn working_memory_is_kept_only_while_hashes_queue() {
        let p = small(1024);
        // One at a time: nothing is waiting when a hash ends, so nothing is kept.
        p.hash("a".into()).await.unwrap();
        assert_eq!(p.memory.kept(), 0);
        // Many at once: buffers pass from hash to hash, and all are gone at the end.
        let all: Vec<_> = (0..16)
            .map(|i| {
                let p = p.clone();
                tokio::spawn(async move { p.hash(format!("pw{i}")).await })
            })
            .collect();
        for h in all {
            h.await.unwrap().unwrap();
        }
        assert_eq!(p.memory.kept(), 0);
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
