//! Per-account login backoff: after `FREE_FAILURES` wrong passwords for one email, each
//! further attempt must wait twice as long as the last (1 s, 2 s, 4 s … capped at
//! `MAX_WAIT`), answered 429 `rate_limited` with `Retry-After`. Kept in memory and keyed by
//! the email as typed (lower-cased), so unknown emails are throttled exactly like real ones.

use std::time::{Duration, Instant};

use crate::error::{ApiError, Code};

const FREE_FAILURES: u32 = 5;
const MAX_WAIT: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

pub struct LoginThrottle {
    failures: moka::sync::Cache<String, Failures>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new()
    }
}

impl LoginThrottle {
    pub fn new() -> Self {
        LoginThrottle {
            failures: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(MAX_WAIT * 2)
                .build(),
        }
    }

    /// `Err(429)` while `email` must wait.
    pub fn check(&self, email: &str) -> Result<(), ApiError> {
        let Some(f) = self.failures.get(email) else {
            return Ok(());
        };
        if f.count < FREE_FAILURES {
            return Ok(());
        }
        let wait = backoff(f.count);
        let elapsed = f.last.elapsed();
        if elapsed >= wait {
            return Ok(());
        }
        Err(ApiError::TooManyRequests {
            code: Code::RateLimited,
            message: "Too many failed logins for this account; try again later.".into(),
            retry_after: wait - elapsed,
        })
    }

    pub fn record_failure(&self, email: &str) {
        let count = self.failures.get(email).map_or(0, |f| f.count) + 1;
        self.failures.insert(
            email.to_owned(),
            Failures {
                count,
                last: Instant::now(),
            },
        );
    }

    pub fn record_success(&self, email: &str) {
        self.failures.invalidate(email);
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
        for _ in 0..FREE_FAILURES - 1 {
            throttle.record_failure("a@b.c");
            assert!(throttle.check("a@b.c").is_ok());
        }
        throttle.record_failure("a@b.c");
        assert!(matches!(
            throttle.check("a@b.c"),
            Err(ApiError::TooManyRequests { .. })
        ));
        assert!(throttle.check("other@b.c").is_ok());
        throttle.record_success("a@b.c");
        assert!(throttle.check("a@b.c").is_ok());
        assert_eq!(backoff(6), Duration::from_secs(2));
        assert_eq!(backoff(60), MAX_WAIT);
    }
}
