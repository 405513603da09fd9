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
    /// The provider reported no usage: the tokens are estimated from the text.
    pub estimated: bool,
    pub latency_ms: i64,
    pub at: i64,
}

pub fn record(conn: &Connection, row: &UsageRow) -> AppResult<()> {
    conn.prepare_cached(
        "INSERT INTO ai_usage (user_id, endpoint, model, status, prompt_tokens,
                               completion_tokens, total_tokens, latency_ms, day, created_at,
                               estimated_tokens)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, date(?9, 'unixepoch'), ?9, ?10)",
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
        row.at,
        if row.estimated { row.total_tokens } else { 0 }
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

/// Usage summed per day (or per user) and model; also a row of the admin console's report.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageSum {
    /// `YYYY-MM-DD` (UTC) per day, or the user's email per user.
    pub key: String,
    pub model: String,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    /// Of `total_tokens`, those estimated from text.
    pub estimated_tokens: i64,
}

fn sum_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UsageSum> {
    Ok(UsageSum {
        key: row.get(0)?,
        model: row.get(1)?,
        requests: row.get(2)?,
        prompt_tokens: row.get(3)?,
        completion_tokens: row.get(4)?,
        total_tokens: row.get(5)?,
        estimated_tokens: row.get(6)?,
    })
}

/// The user's usage per day and model since `since` (Unix seconds), newest day first.
pub fn user_usage(conn: &Connection, user_id: &str, since: i64) -> AppResult<Vec<UsageSum>> {
    let mut stmt = conn.prepare_cached(
        "SELECT day, model, count(*), sum(prompt_tokens), sum(completion_tokens),
                sum(total_tokens), sum(estimated_tokens)
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
                sum(a.completion_tokens), sum(a.total_tokens), sum(a.estimated_tokens)
         FROM ai_usage a LEFT JOIN users u ON u.id = a.user_id
         WHERE a.created_at >= ?1
         GROUP BY 1, 2 ORDER BY 1, 2",
    )?;
    let rows = stmt.query_map([since], sum_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every user's usage per day and model since `since`, oldest day first (the console's
/// chart): `key` is the day.
pub fn usage_by_day(conn: &Connection, since: i64) -> AppResult<Vec<UsageSum>> {
    let mut stmt = conn.prepare_cached(
        "SELECT day, model, count(*), sum(prompt_tokens), sum(completion_tokens),
                sum(total_tokens), sum(estimated_tokens)
         FROM ai_usage WHERE created_at >= ?1
         GROUP BY day, model ORDER BY day, model",
    )?;
    let rows = stmt.query_map([since], sum_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::TempDb;

    /// 2024-01-01T00:00:00Z.
    const DAY1: i64 = 1_704_067_200;
    const DAY: i64 = 86_400;

    fn call(user: &str, model: &str, prompt: i64, completion: i64, at: i64) -> UsageRow {
        UsageRow {
            user_id: user.to_owned(),
            endpoint: "chat",
            model: model.to_owned(),
            status: "ok",
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            estimated: false,
            latency_ms: 120,
            at,
        }
    }

    #[test]
    fn estimated_rows_are_summed_apart() {
        let db = TempDb::new();
        db.user("u1");
        rec(&db, call("u1", "m", 10, 5, DAY1));
        rec(
            &db,
            UsageRow {
                estimated: true,
                ..call("u1", "m", 4, 4, DAY1 + 1)
            },
        );
        let sums = user_usage(&db, "u1", DAY1).unwrap();
        assert_eq!((sums[0].total_tokens, sums[0].estimated_tokens), (23, 8));
    }

    fn rec(db: &TempDb, row: UsageRow) {
        record(db, &row).unwrap();
    }

    /// (key, model, requests, prompt, completion, total) of each sum, for comparing.
    fn flat(sums: &[UsageSum]) -> Vec<(&str, &str, i64, i64, i64, i64)> {
        sums.iter()
            .map(|s| {
                (
                    s.key.as_str(),
                    s.model.as_str(),
                    s.requests,
                    s.prompt_tokens,
                    s.completion_tokens,
                    s.total_tokens,
                )
            })
            .collect()
    }

    #[test]
    fn record_stores_the_call_with_its_utc_day() {
        let db = TempDb::new();
        db.user("u1");
        let mut row = call("u1", "gpt-x", 10, 5, DAY1 + 3_600);
        row.endpoint = "analyze";
        row.status = "incomplete";
        row.latency_ms = 987;
        rec(&db, row);
        let stored: (
            String,
            String,
            String,
            String,
            i64,
            i64,
            i64,
            i64,
            String,
            i64,
        ) = db
            .query_row(
                "SELECT user_id, endpoint, model, status, prompt_tokens, completion_tokens,
                        total_tokens, latency_ms, day, created_at FROM ai_usage",
                [],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                    ))
                },
            )
            .unwrap();
        assert_eq!(
            stored,
            (
                "u1".to_owned(),
                "analyze".to_owned(),
                "gpt-x".to_owned(),
                "incomplete".to_owned(),
                10,
                5,
                15,
                987,
                "2024-01-01".to_owned(),
                DAY1 + 3_600
            )
        );
    }

    #[test]
    fn tokens_on_day_counts_only_that_user_on_that_utc_day() {
        let db = TempDb::new();
        db.user("u1").user("u2");
        assert_eq!(tokens_on_day(&db, "u1", DAY1).unwrap(), 0);

        rec(&db, call("u1", "m", 1, 0, DAY1 - 1)); // the last second of the day before
        rec(&db, call("u1", "m", 10, 0, DAY1)); // the first second of the day
        rec(&db, call("u1", "m", 20, 5, DAY1 + DAY - 1)); // its last second
        rec(&db, call("u1", "m", 300, 0, DAY1 + DAY)); // the next day
        rec(&db, call("u2", "m", 4_000, 0, DAY1 + 60)); // another user, same day

        for now in [DAY1, DAY1 + 12 * 3_600, DAY1 + DAY - 1] {
            assert_eq!(tokens_on_day(&db, "u1", now).unwrap(), 35);
        }
        assert_eq!(tokens_on_day(&db, "u1", DAY1 - 1).unwrap(), 1);
        assert_eq!(tokens_on_day(&db, "u1", DAY1 + DAY).unwrap(), 300);
        assert_eq!(tokens_on_day(&db, "u2", DAY1).unwrap(), 4_000);
        assert_eq!(tokens_on_day(&db, "u2", DAY1 + DAY).unwrap(), 0);
        assert_eq!(tokens_on_day(&db, "nobody", DAY1).unwrap(), 0);
    }

    #[test]
    fn user_usage_sums_per_day_and_model_newest_day_first_since_inclusive() {
        let db = TempDb::new();
        db.user("u1").user("u2");
        rec(&db, call("u1", "old", 1, 1, DAY1 - 1)); // before `since`
        rec(&db, call("u1", "b-model", 10, 1, DAY1)); // exactly at `since`
        rec(&db, call("u1", "b-model", 20, 2, DAY1 + 100));
        rec(&db, call("u1", "a-model", 5, 5, DAY1 + 200));
        rec(&db, call("u1", "b-model", 7, 3, DAY1 + DAY + 1));
        rec(&db, call("u2", "b-model", 1_000, 1_000, DAY1 + 300)); // another user

        assert_eq!(
            flat(&user_usage(&db, "u1", DAY1).unwrap()),
            [
                ("2024-01-02", "b-model", 1, 7, 3, 10),
                ("2024-01-01", "a-model", 1, 5, 5, 10),
                ("2024-01-01", "b-model", 2, 30, 3, 33),
            ]
        );
        assert_eq!(
            flat(&user_usage(&db, "u1", DAY1 + DAY).unwrap()),
            [("2024-01-02", "b-model", 1, 7, 3, 10)]
        );
        assert!(user_usage(&db, "u1", DAY1 + 2 * DAY).unwrap().is_empty());
        assert!(user_usage(&db, "nobody", 0).unwrap().is_empty());
    }

    #[test]
    fn usage_by_user_sums_per_email_and_model_since_inclusive() {
        let db = TempDb::new();
        db.user("u1").user("u2").user("u3");
        rec(&db, call("u1", "m2", 1, 1, DAY1));
        rec(&db, call("u1", "m2", 2, 2, DAY1 + DAY)); // another day: same group
        rec(&db, call("u1", "m1", 3, 0, DAY1 + 5));
        rec(&db, call("u2", "m1", 4, 4, DAY1 + 6));
        rec(&db, call("u3", "m1", 100, 100, DAY1 - 1)); // before `since`

        assert_eq!(
            flat(&usage_by_user(&db, DAY1).unwrap()),
            [
                ("u1@example.com", "m1", 1, 3, 0, 3),
                ("u1@example.com", "m2", 2, 3, 3, 6),
                ("u2@example.com", "m1", 1, 4, 4, 8),
            ]
        );
        assert_eq!(
            flat(&usage_by_user(&db, DAY1 - 1).unwrap()).len(),
            4,
            "a call exactly at `since` is counted"
        );
        assert!(usage_by_user(&db, DAY1 + 2 * DAY).unwrap().is_empty());
    }

    #[test]
    fn usage_by_day_sums_every_user_per_day_and_model() {
        let db = TempDb::new();
        db.user("u1").user("u2");
        rec(&db, call("u1", "m1", 1, 1, DAY1));
        rec(&db, call("u2", "m1", 2, 2, DAY1 + 60));
        rec(&db, call("u2", "m2", 3, 0, DAY1 + DAY));
        rec(&db, call("u1", "m1", 9, 9, DAY1 - 1)); // before `since`
        assert_eq!(
            flat(&usage_by_day(&db, DAY1).unwrap()),
            [
                ("2024-01-01", "m1", 2, 3, 3, 6),
                ("2024-01-02", "m2", 1, 3, 0, 3),
            ]
        );
    }
}
