//! Per-account login backoff: after `FREE_FAILURES` wrong passwords for one email, each
//! further attempt must wait twice as long as the last (1 s, 2 s, 4 s … capped at
//! `MAX_WAIT`), answered 429 `rate_limited` with `Retry-After`.
//!
//! An attempt is counted as a failure *before* its password is hashed and released when it
//! succeeds: twenty guesses sent at once cannot all slip past the check while the first
//! ones are still hashing. Kept in memory, keyed by a hash of the normalised email (fixed
//! size, whatever was typed, and no address kept in memory), so unknown emails are
//! throttled exactly like real ones; the map holds at most `MAX_TRACKED` accounts.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::{
    cache::{EntryAction, EntryResult},
    error::{ApiError, Code},
};

const FREE_FAILURES: u32 = 5;
const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// An account not tried for this long (refused attempts count) starts again from no failures.
const FORGET_AFTER: Duration = Duration::from_secs(2 * 15 * 60);
/// Accounts with failures on record, at most (~100 bytes each: a few MiB in all). Past it the
/// least useful entries go (quick_cache's S3-FIFO keeps the keys guessed again and again).
pub const MAX_TRACKED: u64 = 100_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    /// The last attempt counted: the backoff runs from it.
    last: Instant,
    /// The last attempt of any kind, refused ones included: the account is forgotten
    /// `FORGET_AFTER` after it.
    seen: Instant,
}

impl Failures {
    /// Not tried for `FORGET_AFTER` at `now`: the account starts again from no failures.
    fn forgotten(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.seen) >= FORGET_AFTER
    }
}

/// The map key: the first 128 bits of SHA-256 of the normalised email.
type Key = [u8; 16];

fn key(email: &str) -> Key {
    let digest = Sha256::digest(email.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

pub struct LoginThrottle {
    failures: crate::cache::Cache<Key, Failures>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new()
    }
}

/// An admitted login attempt, already counted as a failure. [`LoginThrottle::succeeded`]
/// takes it back; dropped otherwise, the failure stands.
#[must_use = "a successful attempt must be released with `succeeded`"]
pub struct Attempt {
    key: Key,
}

impl LoginThrottle {
    pub fn new() -> Self {
        Self::with_capacity(MAX_TRACKED)
    }

    fn with_capacity(capacity: u64) -> Self {
        LoginThrottle {
            failures: crate::cache::bounded(capacity),
        }
    }

    /// Admits one attempt for `email` (already normalised) and counts it as a failure, or
    /// `Err(429)` while the account must wait. Check and count are one atomic step.
    pub fn attempt(&self, email: &str) -> Result<Attempt, ApiError> {
        let key = key(email);
        let now = Instant::now();
        let fresh = Failures {
            count: 1,
            last: now,
            seen: now,
        };
        let counted = self.failures.entry(&key, None, |_, f: &mut Failures| {
            if f.forgotten(now) {
                *f = fresh;
                return EntryAction::Retain(None);
            }
            f.seen = now;
            let elapsed = now.saturating_duration_since(f.last);
            if f.count >= FREE_FAILURES && elapsed < backoff(f.count) {
                return EntryAction::Retain(Some(backoff(f.count) - elapsed));
            }
            f.count = f.count.saturating_add(1);
            f.last = now;
            EntryAction::Retain(None)
        });
        // The first failure: `entry` holds the key's place (a concurrent attempt waits for
        // it) until the guard inserts it.
        let refused = match counted {
            EntryResult::Retained(refused) => refused,
            EntryResult::Vacant(place) => {
                let _ = place.insert(fresh);
                None
            }
            // `entry` returns these only for actions this closure never takes, or after a
            // timeout it was not given.
            EntryResult::Removed(..) | EntryResult::Replaced(..) | EntryResult::Timeout => None,
        };
        match refused {
            None => Ok(Attempt { key }),
            Some(retry_after) => Err(ApiError::TooManyRequests {
                code: Code::RateLimited,
                message: "Too many failed logins for this account; try again later.".into(),
                retry_after,
            }),
        }
    }

    /// The attempt had the right password: the account's failures are forgotten.
    pub fn succeeded(&self, attempt: Attempt) {
        self.failures.remove(&attempt.key);
    }

    /// Drops the accounts not tried for long enough to be forgotten.
    pub fn forget_stale(&self) {
        let now = Instant::now();
        self.failures.retain(|_, f| !f.forgotten(now));
    }

    /// How many accounts have failures on record (what the map holds).
    pub fn tracked(&self) -> u64 {
        self.failures.len() as u64
    }
}

fn backoff(count: u32) -> Duration {
    let exponent = count.saturating_sub(FREE_FAILURES).min(20);
    Duration::from_secs(1u64 << exponent).min(MAX_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_after_free_failures_and_doubles() {
        let throttle = LoginThrottle::new();
        for _ in 0..FREE_FAILURES {
            drop(throttle.attempt("a@b.c").unwrap());
        }
        assert!(matches!(
            throttle.attempt("a@b.c"),
            Err(ApiError::TooManyRequests { .. })
        ));
        let other = throttle.attempt("other@b.c").unwrap();
        throttle.succeeded(other);
        assert_eq!(backoff(6), Duration::from_secs(2));
        assert_eq!(backoff(60), MAX_WAIT);
    }

    #[test]
    fn attempts_in_flight_count_and_a_success_releases_them() {
        let throttle = LoginThrottle::new();
        // Five attempts admitted at once, none finished: the sixth already waits.
        let in_flight: Vec<_> = (0..FREE_FAILURES)
            .map(|_| throttle.attempt("a@b.c").unwrap())
            .collect();
        assert!(throttle.attempt("a@b.c").is_err());
        let mut in_flight = in_flight.into_iter();
        if let Some(right) = in_flight.next() {
            throttle.succeeded(right);
        }
        assert!(throttle.attempt("a@b.c").is_ok());
    }

    #[test]
    fn the_map_is_bounded_and_keyed_by_a_hash() {
        let throttle = LoginThrottle::with_capacity(100);
        for i in 0..1_000 {
            drop(throttle.attempt(&format!("user{i}@example.com")).unwrap());
        }
        assert!(throttle.tracked() <= 100, "{}", throttle.tracked());
        let tracked = throttle.tracked();
        throttle.forget_stale();
        assert_eq!(throttle.tracked(), tracked, "recent failures are kept");
        assert_eq!(key("a@b.c"), key("a@b.c"));
        assert_ne!(key("a@b.c"), key("a@b.d"));
    }
}
