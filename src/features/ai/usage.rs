//! Metering: every proxied call leaves one usage row (tokens, latency, how it ended), and
//! the limits that read them — the per-user request rate and the daily token budget.

use std::{
    collections::HashMap,
    future::Future,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Instant,
};

use tokio::sync::{mpsc, oneshot};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};
use serde_json::Value;

use super::{
    Ai,
    store::{self, UsageRow},
};
use crate::{
    config::AiConfig,
    db::Db,
    domain::Timestamp,
    error::{ApiError, AppResult, Code},
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
    limits: Arc<Limits>,
    sender: mpsc::Sender<Message>,
    db: Db,
    row: UsageRow,
    start: Instant,
    saw_done: bool,
    recorded: bool,
}

impl Meter {
    pub fn new(ai: &Ai, db: &Db, user_id: &str, endpoint: &'static str, model: &str) -> Meter {
        Meter {
            limits: ai.limits.clone(),
            sender: ai.usage_writer.sender.clone(),
            db: db.clone(),
            row: UsageRow {
                user_id: user_id.to_owned(),
                endpoint,
                model: model.to_owned(),
                status: "cancelled",
                prompt_tokens: 0,
                completion_tokens: 0,
                total_tokens: 0,
                latency_ms: 0,
                at: Timestamp::now().unix(),
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
        self.limits
            .add_spent(&self.row.user_id, self.row.at, self.row.total_tokens);
        let row = self.row.clone();
        // Through the batching writer when it runs (the server); directly otherwise.
        if let Err(
            mpsc::error::TrySendError::Full(Message::Row(row))
            | mpsc::error::TrySendError::Closed(Message::Row(row)),
        ) = self.sender.try_send(Message::Row(row))
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let db = self.db.clone();
            runtime.spawn(async move {
                if let Err(err) = db.write(move |tx| store::record(tx, &row)).await {
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

pub enum Message {
    Row(UsageRow),
    /// Write everything queued so far, then answer.
    Flush(oneshot::Sender<()>),
}

/// Usage rows go through a channel to one task that writes them in batches: one
/// transaction for many calls instead of one per call.
#[derive(Clone)]
pub struct UsageWriter {
    sender: mpsc::Sender<Message>,
    receiver: Arc<Mutex<Option<mpsc::Receiver<Message>>>>,
}

impl UsageWriter {
    pub fn new() -> UsageWriter {
        let (sender, receiver) = mpsc::channel(8192);
        UsageWriter {
            sender,
            receiver: Arc::new(Mutex::new(Some(receiver))),
        }
    }

    /// The writer (started once, by the server): writes rows as they come, until `stop`
    /// completes; then writes whatever is still queued and returns.
    pub async fn run(&self, db: Db, stop: impl Future<Output = ()>) {
        let receiver = self
            .receiver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(mut receiver) = receiver else {
            return;
        };
        tokio::pin!(stop);
        let mut stopping = false;
        loop {
            let first = if stopping {
                match receiver.try_recv() {
                    Ok(message) => message,
                    Err(_) => return,
                }
            } else {
                tokio::select! {
                    message = receiver.recv() => match message {
                        Some(message) => message,
                        None => return,
                    },
                    () = &mut stop => {
                        stopping = true;
                        continue;
                    }
                }
            };
            let mut rows = Vec::new();
            let mut acks = Vec::new();
            let mut next = Some(first);
            while let Some(message) = next {
                match message {
                    Message::Row(row) => rows.push(row),
                    Message::Flush(ack) => acks.push(ack),
                }
                next = if rows.len() < 512 {
                    receiver.try_recv().ok()
                } else {
                    None
                };
            }
            if !rows.is_empty() {
                let result = db
                    .write(move |tx| rows.iter().try_for_each(|row| store::record(tx, row)))
                    .await;
                if let Err(err) = result {
                    tracing::warn!(error = %err, "cannot record AI usage");
                }
            }
            acks.into_iter().for_each(|ack| {
                let _ = ack.send(());
            });
        }
    }

    /// Waits (at most `limit`) until every row queued before this call is written.
    pub async fn flush(&self, limit: std::time::Duration) {
        let (ack, done) = oneshot::channel();
        if self.sender.try_send(Message::Flush(ack)).is_ok() {
            let _ = tokio::time::timeout(limit, done).await;
        }
    }
}

impl Default for UsageWriter {
    fn default() -> Self {
        UsageWriter::new()
    }
}

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
    fn add_spent(&self, user_id: &str, at: i64, tokens: i64) {
        let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        if spent.day == day_of(at)
            && let Some(total) = spent.by_user.get_mut(user_id)
        {
            *total += tokens;
        }
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
