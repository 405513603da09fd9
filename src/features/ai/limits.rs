//! The limits that read the usage: the per-user request rate and the daily token budget.

use std::{collections::HashMap, num::NonZeroU32, sync::Mutex};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};

use super::store;
use crate::{
    config::AiConfig,
    db::Db,
    domain::Timestamp,
    error::{ApiError, AppResult, Code},
};

/// The per-user request rate (`ai.requests_per_minute`) and daily token budget.
pub struct Limits {
    per_user: DefaultKeyedRateLimiter<String>,
    budget: u64,
    /// Tokens each user spent today (UTC), loaded from `ai_usage` once a day per user and
    /// then kept up to date by every [`Meter`]: the budget check costs no query.
    spent: Mutex<Spent>,
}

#[derive(Default)]
struct Spent {
    day: i64,
    by_user: HashMap<String, i64>,
}

fn day_of(unix: i64) -> i64 {
    unix.div_euclid(86_400)
}

impl Limits {
    pub fn new(config: &AiConfig) -> Limits {
        let per_minute = NonZeroU32::new(config.requests_per_minute).unwrap_or(NonZeroU32::MIN);
        Limits {
            per_user: RateLimiter::keyed(Quota::per_minute(per_minute)),
            budget: config.daily_token_budget,
            spent: Mutex::new(Spent::default()),
        }
    }

    /// Today's spending of `user_id` if it is known without a query.
    fn cached_spent(&self, user_id: &str, now: i64) -> Option<i64> {
        let spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        (spent.day == day_of(now))
            .then(|| spent.by_user.get(user_id).copied())
            .flatten()
    }

    fn remember_spent(&self, user_id: &str, now: i64, tokens: i64) {
        let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        if spent.day != day_of(now) {
            *spent = Spent {
                day: day_of(now),
                by_user: HashMap::new(),
            };
        }
        spent.by_user.entry(user_id.to_owned()).or_insert(tokens);
    }

    /// Counts `tokens` spent at `at` (called by every meter).
    pub fn add_spent(&self, user_id: &str, at: i64, tokens: i64) {
        let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        if spent.day == day_of(at)
            && let Some(total) = spent.by_user.get_mut(user_id)
        {
            *total += tokens;
        }
    }

    /// What is left of the user's budget today, when known without a query.
    pub fn remaining(&self, user_id: &str) -> Option<i64> {
        let now = Timestamp::now().unix();
        self.cached_spent(user_id, now)
            .map(|spent| (self.budget as i64 - spent).max(0))
    }

    /// 429 `rate_limited` (with `Retry-After`) when the user is over the request rate.
    pub fn check_rate(&self, user_id: &str) -> AppResult<()> {
        match self.per_user.check_key(&user_id.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
                Err(ApiError::rate_limited(
                    "Too many AI requests; slow down.",
                    wait.max(std::time::Duration::from_secs(1)),
                ))
            }
        }
    }

    /// 429 `quota_exceeded` (with `Retry-After` until midnight UTC) when the user has spent
    /// the day's token budget.
    pub async fn check_budget(&self, db: &Db, user_id: &str) -> AppResult<()> {
        let budget = self.budget;
        let now = Timestamp::now().unix();
        let spent = match self.cached_spent(user_id, now) {
            Some(spent) => spent,
            None => {
                let owner = user_id.to_owned();
                let spent = db
                    .read(move |conn| store::tokens_on_day(conn, &owner, now))
                    .await?;
                self.remember_spent(user_id, now, spent);
                self.cached_spent(user_id, now).unwrap_or(spent)
            }
        };
        if (spent as u64) < budget {
            return Ok(());
        }
        let until_midnight = 86_400 - now.rem_euclid(86_400);
        Err(ApiError::TooManyRequests {
            code: Code::QuotaExceeded,
            message: "Today's AI token budget is spent; it renews at midnight UTC.".into(),
            retry_after: std::time::Duration::from_secs(until_midnight as u64),
        })
    }
}
