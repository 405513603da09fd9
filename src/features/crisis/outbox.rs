//! The outbox worker: delivers pending crisis notifications (mail to contacts, the signed
//! admin webhook), retrying with backoff, recording every attempt. Rows are written in the
//! same transaction as their event, so a restart or a `kill -9` loses nothing; a row whose
//! attempt was cut off by a crash is simply tried again (receivers get the `eventId` to
//! drop duplicates).

use std::{
    sync::{Arc, Weak},
    time::Duration,
};

use serde_json::{Value, json};

use super::{
    Crisis,
    store::{self, Attempt, Due},
};
use crate::{app::App, domain::Timestamp, notify::templates};

/// Attempts per notification before it is marked `failed`.
pub const MAX_ATTEMPTS: i64 = 12;
/// The longest wait between two attempts.
const MAX_BACKOFF_SECS: i64 = 15 * 60;
/// How often the worker looks for due rows when nothing wakes it.
const IDLE_POLL: Duration = Duration::from_secs(30);

/// Seconds before attempt `attempts + 1`: 1, 2, 4 … up to 15 minutes.
pub fn backoff_secs(attempts: i64) -> i64 {
    (1_i64 << attempts.clamp(0, 20)).min(MAX_BACKOFF_SECS)
}

/// Tells the worker that new rows are waiting.
pub fn wake(app: &App) {
    if let Ok(crisis) = app.part::<Crisis>() {
        crisis.wake.notify_one();
    }
}

/// Delivers until shutdown: everything due now, then sleeps until the next row is due, a
/// wake-up, or [`IDLE_POLL`].
pub async fn run(app: Weak<App>, wake: Arc<tokio::sync::Notify>) {
    loop {
        let Some(strong) = app.upgrade() else { return };
        if strong.tasks.is_cancelled() {
            return;
        }
        let tasks = strong.tasks.clone();
        let next = deliver_due(&strong).await;
        drop(strong);
        let wait = next
            .map(|at| Duration::from_secs((at.unix() - Timestamp::now().unix()).max(0) as u64))
            .unwrap_or(IDLE_POLL)
            .min(IDLE_POLL);
        tokio::select! {
            () = tasks.cancelled() => return,
            () = wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Delivers every due row; answers when the next pending row is due.
async fn deliver_due(app: &App) -> Option<Timestamp> {
    loop {
        let now = Timestamp::now();
        let due = match app.db.read(move |conn| store::due(conn, now, 16)).await {
            Ok(due) => due,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the crisis outbox");
                return None;
            }
        };
        if due.is_empty() {
            break;
        }
        for row in due {
            let result = deliver(app, &row).await;
            let (id, attempts) = (row.id, row.attempts);
            let recorded = app
                .db
                .write(move |tx| {
                    let now = Timestamp::now();
                    let outcome = match &result {
                        Ok(()) => Attempt::Sent,
                        Err(error) if attempts + 1 >= MAX_ATTEMPTS => Attempt::Failed { error },
                        Err(error) => Attempt::Retry {
                            at: now.plus_secs(backoff_secs(attempts)),
                            error,
                        },
                    };
                    store::record_attempt(tx, id, now, outcome)
                })
                .await;
            if let Err(err) = recorded {
                tracing::warn!(error = %err, "cannot record a crisis notification attempt");
                return None;
            }
        }
    }
    app.db.read(store::next_due).await.ok().flatten()
}

/// One attempt; `Err` says why it failed (no personal data: it is stored).
async fn deliver(app: &App, row: &Due) -> Result<(), String> {
    match row.channel.as_str() {
        "email" => {
            let to = row.recipient.as_deref().ok_or("no recipient")?;
            let mail = templates::crisis_alert(
                to,
                &row.user_name,
                row.event.source == "alert",
                row.message.as_deref(),
            );
            match app.notify.mail(mail).await {
                Ok(true) => Ok(()),
                Ok(false) => Err("mail is not configured".to_owned()),
                Err(err) => {
                    tracing::warn!(error = format!("{err:#}"), "crisis mail not delivered");
                    Err("the mail server did not take the message".to_owned())
                }
            }
        }
        "webhook" => {
            let url = app
                .config
                .crisis
                .webhook_url
                .as_ref()
                .ok_or("crisis.webhook_url is not set")?;
            let secret = webhook_secret(app).ok_or("no webhook secret")?;
            let body = webhook_body(row);
            app.notify
                .webhook(url.expose(), secret.as_bytes(), &body)
                .await
                .map_err(|err| {
                    tracing::warn!(error = %err, "crisis webhook not delivered");
                    err.to_string()
                })
        }
        other => Err(format!("unknown channel {other}")),
    }
}

/// `crisis.webhook_secret`, else the one generated into `secrets.toml`.
pub fn webhook_secret(app: &App) -> Option<String> {
    match &app.config.crisis.webhook_secret {
        Some(secret) => Some(secret.expose().to_owned()),
        None => app.secrets().webhook_key(),
    }
}

/// `{eventId, userId, level, source, createdAt}`, plus `message` when one was kept.
pub fn webhook_body(row: &Due) -> Value {
    let mut body = json!({
        "eventId": row.event.id,
        "userId": row.event.user_id,
        "level": row.event.level,
        "source": row.event.source,
        "createdAt": row.event.created_at,
    });
    if let Some(message) = &row.message {
        body["message"] = Value::String(message.clone());
    }
    body
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_up_to_fifteen_minutes() {
        assert_eq!(super::backoff_secs(0), 1);
        assert_eq!(super::backoff_secs(3), 8);
        assert_eq!(super::backoff_secs(11), 900);
        assert_eq!(super::backoff_secs(60), 900);
    }
}
