//! The limits that read the usage: the per-user request rate and the daily token budget.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
};

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
    /// then kept up to date by every [`Meter`](super::usage::Meter), and the tokens held by
    /// their calls in flight: the budget check costs no query.
    spent: Mutex<Spent>,
}

#[derive(Default)]
struct Spent {
    day: i64,
    by_user: HashMap<String, Tally>,
}

#[derive(Clone, Copy)]
struct Tally {
    spent: i64,
    /// Held by calls in flight: their estimate until the real usage is known.
    reserved: i64,
    /// When it last changed (unix seconds).
    touched: i64,
}

/// A tally untouched this long, with nothing in flight, is forgotten: by then the usage rows
/// behind it are committed, and the next call reads it again from `ai_usage`.
const IDLE_SECS: i64 = 60;

fn day_of(unix: i64) -> i64 {
    unix.div_euclid(86_400)
}

/// What a call may spend, held against the user's budget from before the upstream call
/// until its usage is counted (then released: see [`Meter`](super::usage::Meter)), so calls
/// in flight together cannot all pass a budget that fits only some of them.
pub struct Reservation {
    limits: Arc<Limits>,
    user_id: String,
    day: i64,
    tokens: i64,
    /// The output tokens each choice may have (`None` for a call without output).
    pub max_output: Option<u64>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut spent = self.limits.lock();
        if spent.day == self.day
            && let Some(tally) = spent.by_user.get_mut(&self.user_id)
        {
            tally.reserved -= self.tokens;
        }
    }
}

/// What a call asks to spend: its prompt (estimated) and, for each of `choices`,
/// `max_output` tokens of answer.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    pub prompt: i64,
    pub choices: u64,
    pub max_output: Option<u64>,
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Spent> {
        self.spent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Today's tally of `user_id` if it is known without a query.
    fn cached(&self, user_id: &str, now: i64) -> Option<Tally> {
        let spent = self.lock();
        (spent.day == day_of(now))
            .then(|| spent.by_user.get(user_id).copied())
            .flatten()
    }

    fn remember_spent(&self, user_id: &str, now: i64, tokens: i64) {
        let mut spent = self.lock();
        if spent.day != day_of(now) {
            *spent = Spent {
                day: day_of(now),
                by_user: HashMap::new(),
            };
        }
        spent.by_user.entry(user_id.to_owned()).or_insert(Tally {
            spent: tokens,
            reserved: 0,
            touched: now,
        });
    }

    /// Counts `tokens` spent at `at` (called by every meter).
    pub fn add_spent(&self, user_id: &str, at: i64, tokens: i64) {
        let mut spent = self.lock();
        if spent.day == day_of(at)
            && let Some(tally) = spent.by_user.get_mut(user_id)
        {
            tally.spent += tokens;
            tally.touched = Timestamp::now().unix();
        }
    }

    /// What is left of the user's budget today, when known without a query.
    pub fn remaining(&self, user_id: &str) -> Option<i64> {
        let now = Timestamp::now().unix();
        self.cached(user_id, now)
            .map(|tally| (self.budget as i64 - tally.spent).max(0))
    }

    /// Forgets what idle users left behind: rate-limiter keys whose quota is whole again,
    /// and the tallies of users with no call in flight that nothing touched for a minute (a
    /// tally is loaded again from `ai_usage` by the next call), so memory follows the users
    /// active now, not every user seen today.
    pub fn forget_idle(&self) {
        self.forget_idle_at(Timestamp::now().unix());
    }

    fn forget_idle_at(&self, now: i64) {
        self.per_user.retain_recent();
        self.per_user.shrink_to_fit();
        let mut spent = self.lock();
        spent
            .by_user
            .retain(|_, t| t.reserved != 0 || now - t.touched < IDLE_SECS);
        spent.by_user.shrink_to_fit();
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

    /// Reserves what a call asks for against the user's daily budget, less what was spent and
    /// what calls in flight hold. When only part of the output fits, the output of each
    /// choice is lowered to what is left ([`Reservation::max_output`]); when not even the
    /// prompt and one token per choice fit, 429 `quota_exceeded` (with `Retry-After` until
    /// midnight UTC).
    pub async fn reserve(
        self: &Arc<Self>,
        db: &Db,
        user_id: &str,
        ask: Ask,
    ) -> AppResult<Reservation> {
        let now = Timestamp::now().unix();
        if self.cached(user_id, now).is_none() {
            let owner = user_id.to_owned();
            let spent = db
                .read(move |conn| store::tokens_on_day(conn, &owner, now))
                .await?;
            self.remember_spent(user_id, now, spent);
        }
        let choices = ask.choices.max(1) as i64;
        let mut spent = self.lock();
        let day = day_of(now);
        if spent.day != day {
            // Midnight passed since the tally was loaded: a new day, nothing spent yet.
            *spent = Spent {
                day,
                by_user: HashMap::new(),
            };
        }
        let tally = spent.by_user.entry(user_id.to_owned()).or_insert(Tally {
            spent: 0,
            reserved: 0,
            touched: now,
        });
        tally.touched = now;
        let left = self.budget as i64 - tally.spent - tally.reserved;
        let room = left - ask.prompt.max(0);
        let (max_output, tokens) = match ask.max_output {
            Some(_) if room < choices => return Err(quota_exceeded(now)),
            Some(wanted) => {
                let fits = (room / choices) as u64;
                let granted = wanted.min(fits).max(1);
                (Some(granted), ask.prompt + granted as i64 * choices)
            }
            None if left <= 0 || room < 0 => return Err(quota_exceeded(now)),
            None => (None, ask.prompt),
        };
        tally.reserved += tokens;
        Ok(Reservation {
            limits: self.clone(),
            user_id: user_id.to_owned(),
            day,
            tokens,
            max_output,
        })
    }
}

fn quota_exceeded(now: i64) -> ApiError {
    let until_midnight = 86_400 - now.rem_euclid(86_400);
    ApiError::TooManyRequests {
        code: Code::QuotaExceeded,
        message: "Today's AI token budget is spent; it renews at midnight UTC.".into(),
        retry_after: std::time::Duration::from_secs(until_midnight as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::temp_db;

    fn limits() -> Arc<Limits> {
        Arc::new(Limits::new(&AiConfig {
            daily_token_budget: 1_000,
            ..AiConfig::default()
        }))
    }

    fn ask() -> Ask {
        Ask {
            prompt: 10,
            choices: 1,
            max_output: Some(100),
        }
    }

    #[tokio::test]
    async fn idle_users_are_forgotten_and_their_tally_read_again() {
        let (_dir, db) = temp_db();
        let limits = limits();
        for n in 0..50 {
            let user = format!("user-{n}");
            limits.check_rate(&user).unwrap();
            let held = limits.reserve(&db, &user, ask()).await.unwrap();
            limits.add_spent(&user, Timestamp::now().unix(), 30);
            drop(held);
        }
        let busy = limits.reserve(&db, "busy", ask()).await.unwrap();
        assert_eq!(limits.lock().by_user.len(), 51);

        // A minute on: only the user with a call in flight keeps a tally.
        limits.forget_idle_at(Timestamp::now().unix() + IDLE_SECS);
        assert_eq!(limits.lock().by_user.len(), 1);
        assert!(limits.lock().by_user.contains_key("busy"));
        drop(busy);
        // A forgotten user's budget is whole again only as far as `ai_usage` says (here
        // nothing was recorded, so all of it).
        assert_eq!(limits.remaining("user-0"), None);
        limits.reserve(&db, "user-0", ask()).await.unwrap();
        assert_eq!(limits.remaining("user-0"), Some(1_000));
    }
}
