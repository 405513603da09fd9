//! Metering: every proxied call leaves one usage row (tokens, latency, how it ended), and
//! the limits that read them — the per-user request rate and the daily token budget.

use std::{num::NonZeroU32, time::Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};
use serde_json::Value;

use super::store::{self, UsageRow};
use crate::{
    app::AppState,
    auth,
    config::AiConfig,
    error::{ApiError, AppResult},
};

/// `(prompt, completion, total)` from an OpenAI `usage` object.
pub fn tokens(usage: &Value) -> Option<(i64, i64, i64)> {
    let object = usage.as_object()?;
    let get = |key: &str| object.get(key).and_then(Value::as_i64).unwrap_or(0);
    let (prompt, completion) = (get("prompt_tokens"), get("completion_tokens"));
    let total = object
        .get("total_tokens")
        .and_then(Value::as_i64)
        .unwrap_or(prompt + completion);
    Some((prompt, completion, total))
}

/// Records one call when dropped (or when [`Meter::record`] is called), so a stream the
/// client abandoned is recorded too (as `cancelled`).
pub struct Meter {
    app: AppState,
    row: UsageRow,
    start: Instant,
    saw_done: bool,
    recorded: bool,
}

impl Meter {
    pub fn new(app: AppState, user_id: &str, endpoint: &'static str, model: &str) -> Meter {
        Meter {
            app,
            row: UsageRow {
                user_id: user_id.to_owned(),
                endpoint,
                model: model.to_owned(),
                status: "cancelled",
                prompt_tokens: 0,
                completion_tokens: 0,
                total_tokens: 0,
                latency_ms: 0,
                at: auth::now(),
            },
            start: Instant::now(),
            saw_done: false,
            recorded: false,
        }
    }

    pub fn set_model(&mut self, model: &str) {
        model.clone_into(&mut self.row.model);
    }

    pub fn set_tokens(&mut self, (prompt, completion, total): (i64, i64, i64)) {
        self.row.prompt_tokens = prompt;
        self.row.completion_tokens = completion;
        self.row.total_tokens = total;
    }

    pub fn set_status(&mut self, status: &'static str) {
        self.row.status = status;
    }

    /// The stream sent `[DONE]`: a success, unless an error came before it.
    pub fn done(&mut self) {
        self.saw_done = true;
        if self.row.status == "cancelled" {
            self.row.status = "ok";
        }
    }

    pub fn saw_done(&self) -> bool {
        self.saw_done
    }

    /// Records now (a non-streaming call that finished).
    pub fn record(mut self, status: &'static str) {
        self.row.status = status;
        self.write();
    }

    fn write(&mut self) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        self.row.latency_ms = self.start.elapsed().as_millis() as i64;
        let (app, row) = (self.app.clone(), self.row.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(err) = app.db.write(move |tx| store::record(tx, &row)).await {
                    tracing::warn!(error = %err, "cannot record AI usage");
                }
            });
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.write();
    }
}

/// The per-user request rate (`ai.requests_per_minute`).
pub struct Limits {
    per_user: DefaultKeyedRateLimiter<String>,
    budget: u64,
}

impl Limits {
    pub fn new(config: &AiConfig) -> Limits {
        let per_minute = NonZeroU32::new(config.requests_per_minute).unwrap_or(NonZeroU32::MIN);
        Limits {
            per_user: RateLimiter::keyed(Quota::per_minute(per_minute)),
            budget: config.daily_token_budget,
        }
    }

    /// 429 `rate_limited` (with `Retry-After`) when the user is over the request rate.
    pub fn check_rate(&self, user_id: &str) -> AppResult<()> {
        match self.per_user.check_key(&user_id.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
                Err(ApiError::TooManyRequests {
                    code: "rate_limited",
                    message: "Too many AI requests; slow down.".into(),
                    retry_after: wait.max(std::time::Duration::from_secs(1)),
                })
            }
        }
    }

    /// 429 `quota_exceeded` (with `Retry-After` until midnight UTC) when the user has spent
    /// the day's token budget.
    pub async fn check_budget(&self, app: &AppState, user_id: &str) -> AppResult<()> {
        let budget = self.budget;
        let (owner, now) = (user_id.to_owned(), auth::now());
        let spent = app
            .db
            .read(move |conn| store::tokens_on_day(conn, &owner, now))
            .await?;
        if (spent as u64) < budget {
            return Ok(());
        }
        let until_midnight = 86_400 - now.rem_euclid(86_400);
        Err(ApiError::TooManyRequests {
            code: "quota_exceeded",
            message: "Today's AI token budget is spent; it renews at midnight UTC.".into(),
            retry_after: std::time::Duration::from_secs(until_midnight as u64),
        })
    }
}
