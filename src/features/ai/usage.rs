//! Metering: every proxied call leaves one usage row (tokens, latency, how it ended) —
//! written before the answer's end reaches the client, so an acknowledged call is never
//! lost to a crash — and tokens are estimated from the text when the provider reports none.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use rusqlite::Transaction;
use serde_json::Value;

use super::{
    Ai,
    limits::{Limits, Reservation},
    store::{self, UsageRow},
};
use crate::{
    app::{App, Tasks},
    db::Db,
    domain::Timestamp,
    error::{ApiError, AppResult},
};

/// `(prompt, completion, total)` from an OpenAI `usage` object.
pub fn tokens(usage: &Value) -> Option<(i64, i64, i64)> {
    let object = usage.as_object()?;
    let get = |key: &str| object.get(key).and_then(Value::as_i64);
    Some(token_counts(
        get("prompt_tokens"),
        get("completion_tokens"),
        get("total_tokens"),
    ))
}

/// `(prompt, completion, total)` from a `usage` object's three fields, where present: a
/// missing count is 0, a missing total the sum of the other two.
pub fn token_counts(
    prompt: Option<i64>,
    completion: Option<i64>,
    total: Option<i64>,
) -> (i64, i64, i64) {
    let (prompt, completion) = (prompt.unwrap_or(0), completion.unwrap_or(0));
    let total = total.unwrap_or_else(|| prompt.saturating_add(completion));
    (prompt, completion, total)
}

/// Characters of answer text in a message or a stream delta: its content and its tool-call
/// arguments (for an estimate when no usage comes).
pub fn text_chars(message: &Value) -> usize {
    let content = message["content"].as_str().map_or(0, |t| t.chars().count());
    let tools: usize = message["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["function"]["arguments"].as_str())
        .map(|a| a.chars().count())
        .sum();
    content + tools
}

/// Tokens from characters when the provider reports none (llama.cpp, some vLLM builds):
/// about four characters a token for English, a little fewer for Indonesian — close enough
/// for a budget, and never zero for text that was sent or received.
pub fn estimate_tokens(chars: usize) -> i64 {
    (chars as i64 + 3) / 4
}

/// How long a call waits for its usage row to be committed before answering anyway (the
/// write goes on without it).
const DURABLE_WAIT: Duration = Duration::from_secs(2);

/// Records one call: durably at the end ([`Meter::commit`]), or when dropped (a stream the
/// client abandoned is recorded too, as `cancelled`). Rows go to the database's single
/// writer, which commits the writes queued together in one transaction (`db::writer`).
pub struct Meter {
    limits: Arc<Limits>,
    /// Released once the call's tokens are counted.
    reservation: Option<Reservation>,
    db: Db,
    /// Where a row written after the answer runs, so that shutdown waits for it.
    tasks: Tasks,
    row: UsageRow,
    start: Instant,
    saw_done: bool,
    recorded: bool,
    usage_seen: bool,
    prompt_chars: usize,
    completion_chars: usize,
}

impl Meter {
    /// `prompt_chars`: the characters of the request's messages, for an estimate;
    /// `reservation`: what the call holds of the budget until its tokens are counted.
    pub fn new(
        ai: &Ai,
        app: &App,
        user_id: &str,
        reservation: Reservation,
        endpoint: &'static str,
        model: &str,
        prompt_chars: usize,
    ) -> Meter {
        Meter {
            limits: ai.limits.clone(),
            reservation: Some(reservation),
            db: app.db.clone(),
            tasks: app.tasks.clone(),
            row: UsageRow {
                user_id: user_id.to_owned(),
                endpoint,
                model: model.to_owned(),
                status: "cancelled",
                prompt_tokens: 0,
                completion_tokens: 0,
                total_tokens: 0,
                estimated: false,
                latency_ms: 0,
                at: Timestamp::now().unix(),
            },
            start: Instant::now(),
            saw_done: false,
            recorded: false,
            usage_seen: false,
            prompt_chars,
            completion_chars: 0,
        }
    }

    pub fn set_model(&mut self, model: &str) {
        model.clone_into(&mut self.row.model);
    }

    pub fn set_tokens(&mut self, (prompt, completion, total): (i64, i64, i64)) {
        self.usage_seen = true;
        self.row.prompt_tokens = prompt;
        self.row.completion_tokens = completion;
        self.row.total_tokens = total;
    }

    /// Characters of the answer (for an estimate when no usage comes).
    pub fn add_completion_chars(&mut self, chars: usize) {
        self.completion_chars += chars;
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

    /// The tokens counted for this call (after [`Meter::commit`]).
    pub fn total_tokens(&self) -> i64 {
        self.row.total_tokens
    }

    /// Records with `status` now, without waiting (a failed call).
    pub fn record(mut self, status: &'static str) {
        self.row.status = status;
        self.write_later();
    }

    /// Records with `status` and waits until the row is committed (a JSON answer, the end of
    /// a stream): when the client has the answer, the usage survives a crash.
    pub async fn commit(&mut self, status: &'static str) {
        self.row.status = status;
        let Some(row) = self.count() else {
            return;
        };
        // Queued before the first await: the row is written even if this call is dropped
        // (the client left) or stops waiting. A full queue falls back to a task of its own.
        match self.db.write_now(record(row)) {
            Ok(written) => {
                // Past the wait the row is still queued, and written: only the answer waits.
                if let Ok(Err(err)) = tokio::time::timeout(DURABLE_WAIT, written).await {
                    warn_unrecorded(&err);
                }
            }
            Err(job) => {
                let written = self.tasks.spawn(write(self.db.clone(), job));
                let _ = tokio::time::timeout(DURABLE_WAIT, written).await;
            }
        }
    }

    /// Counts the call, once: tokens (estimated when the provider said nothing), the day's
    /// tally, and the row to write.
    fn count(&mut self) -> Option<UsageRow> {
        if self.recorded {
            return None;
        }
        self.recorded = true;
        if !self.usage_seen && (self.prompt_chars > 0 || self.completion_chars > 0) {
            let prompt = estimate_tokens(self.prompt_chars);
            let completion = estimate_tokens(self.completion_chars);
            self.row.prompt_tokens = prompt;
            self.row.completion_tokens = completion;
            self.row.total_tokens = prompt + completion;
            self.row.estimated = true;
        }
        self.row.latency_ms = self.start.elapsed().as_millis() as i64;
        self.limits
            .add_spent(&self.row.user_id, self.row.at, self.row.total_tokens);
        // Counted: the estimate held for the call gives way to what it spent.
        self.reservation.take();
        Some(self.row.clone())
    }

    /// Counts the call and writes its row in the background (a failed or dropped call).
    fn write_later(&mut self) {
        // Outside a runtime (a meter dropped as the runtime ends) there is nowhere to write.
        if let Some(row) = self.count()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            self.tasks.spawn(write(self.db.clone(), record(row)));
        }
    }
}

/// The write of one usage row.
fn record(row: UsageRow) -> impl FnOnce(&Transaction<'_>) -> AppResult<()> + Send + 'static {
    move |tx| store::record(tx, &row)
}

/// Waits its turn to write one usage row; a failure is logged, never the caller's answer.
async fn write(db: Db, job: impl FnOnce(&Transaction<'_>) -> AppResult<()> + Send + 'static) {
    if let Err(err) = db.write(job).await {
        warn_unrecorded(&err);
    }
}

fn warn_unrecorded(err: &ApiError) {
    tracing::warn!(error = %err, "cannot record AI usage");
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.write_later();
    }
}
