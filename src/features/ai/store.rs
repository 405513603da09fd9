//! SQL of AI usage: one row per call, and the sums the budget and the reports need.

use rusqlite::{Connection, params};

use crate::error::AppResult;

/// One proxied call. Never holds prompt or reply text.
#[derive(Debug, Clone)]
pub struct UsageRow {
    pub user_id: String,
    pub endpoint: &'static str,
    pub model: String,
    /// `ok`, `error`, `incomplete` (a stream without `[DONE]`), `cancelled`.
    pub status: &'static str,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    pub latency_ms: i64,
    pub at: i64,
}

pub fn record(conn: &Connection, row: &UsageRow) -> AppResult<()> {
    conn.prepare_cached(
        "INSERT INTO ai_usage (user_id, endpoint, model, status, prompt_tokens,
                               completion_tokens, total_tokens, latency_ms, day, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, date(?9, 'unixepoch'), ?9)",
    )?
    .execute(params![
        row.user_id,
        row.endpoint,
        row.model,
        row.status,
        row.prompt_tokens,
        row.completion_tokens,
        row.total_tokens,
        row.latency_ms,
        row.at
    ])?;
    Ok(())
}

/// Tokens the user spent on the UTC day of `now`.
pub fn tokens_on_day(conn: &Connection, user_id: &str, now: i64) -> AppResult<i64> {
    Ok(conn
        .prepare_cached(
            "SELECT coalesce(sum(total_tokens), 0) FROM ai_usage
             WHERE user_id = ?1 AND day = date(?2, 'unixepoch')",
        )?
        .query_row(params![user_id, now], |r| r.get(0))?)
}

/// Usage summed per day and model.
#[derive(Debug, Clone)]
pub struct UsageSum {
    /// `YYYY-MM-DD` (UTC), or the user's email in the admin report.
    pub key: String,
    pub model: String,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
}

fn sum_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UsageSum> {
    Ok(UsageSum {
        key: row.get(0)?,
        model: row.get(1)?,
        requests: row.get(2)?,
        prompt_tokens: row.get(3)?,
        completion_tokens: row.get(4)?,
        total_tokens: row.get(5)?,
    })
}

/// The user's usage per day and model since `since` (Unix seconds), newest day first.
pub fn user_usage(conn: &Connection, user_id: &str, since: i64) -> AppResult<Vec<UsageSum>> {
    let mut stmt = conn.prepare_cached(
        "SELECT day, model, count(*), sum(prompt_tokens), sum(completion_tokens),
                sum(total_tokens)
         FROM ai_usage WHERE user_id = ?1 AND created_at >= ?2
         GROUP BY day, model ORDER BY day DESC, model",
    )?;
    let rows = stmt.query_map(params![user_id, since], sum_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every user's usage per model since `since`, by email (the admin report).
pub fn usage_by_user(conn: &Connection, since: i64) -> AppResult<Vec<UsageSum>> {
    let mut stmt = conn.prepare(
        "SELECT coalesce(u.email, a.user_id), a.model, count(*), sum(a.prompt_tokens),
                sum(a.completion_tokens), sum(a.total_tokens)
         FROM ai_usage a LEFT JOIN users u ON u.id = a.user_id
         WHERE a.created_at >= ?1
         GROUP BY 1, 2 ORDER BY 1, 2",
    )?;
    let rows = stmt.query_map([since], sum_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}
