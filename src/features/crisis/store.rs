//! SQL of crisis support: contacts, events and the notification outbox. Plain functions
//! over a connection; no message text except an outbox row's optional `message`.

use rusqlite::{Connection, OptionalExtension, params};

use super::types::FailedDelivery;
use crate::{
    domain::{CrisisLevel, Timestamp},
    error::AppResult,
};

#[derive(Debug, Clone)]
pub struct ContactRow {
    pub id: String,
    pub name: String,
    pub relationship: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub notify_on_crisis: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

const CONTACT_COLUMNS: &str =
    "id, name, relationship, phone, email, notify_on_crisis, created_at, updated_at";

fn contact_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ContactRow> {
    Ok(ContactRow {
        id: row.get(0)?,
        name: row.get(1)?,
        relationship: row.get(2)?,
        phone: row.get(3)?,
        email: row.get(4)?,
        notify_on_crisis: row.get(5)?,
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
    })
}

/// The user's contacts, oldest first.
pub fn contacts(conn: &Connection, user_id: &str) -> AppResult<Vec<ContactRow>> {
    let sql = format!(
        "SELECT {CONTACT_COLUMNS} FROM crisis_contacts WHERE user_id = ?1
         ORDER BY created_at, id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([user_id], contact_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn contact(conn: &Connection, user_id: &str, id: &str) -> AppResult<Option<ContactRow>> {
    let sql =
        format!("SELECT {CONTACT_COLUMNS} FROM crisis_contacts WHERE user_id = ?1 AND id = ?2");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([user_id, id], contact_from_row)
        .optional()?)
}

pub fn count_contacts(conn: &Connection, user_id: &str) -> AppResult<usize> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM crisis_contacts WHERE user_id = ?1",
        [user_id],
        |r| r.get(0),
    )?;
    Ok(n as usize)
}

/// The fields of a contact as stored.
pub struct ContactFields<'a> {
    pub name: &'a str,
    pub relationship: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub email: Option<&'a str>,
    pub notify_on_crisis: bool,
}

pub fn insert_contact(
    conn: &Connection,
    user_id: &str,
    id: &str,
    c: &ContactFields<'_>,
    now: Timestamp,
) -> AppResult<()> {
    conn.execute(
        "INSERT INTO crisis_contacts (id, user_id, name, relationship, phone, email,
                                      notify_on_crisis, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
        params![
            id,
            user_id,
            c.name,
            c.relationship,
            c.phone,
            c.email,
            c.notify_on_crisis,
            now
        ],
    )?;
    Ok(())
}

/// Replaces a contact's fields; `false` when the user has no such contact.
pub fn update_contact(
    conn: &Connection,
    user_id: &str,
    id: &str,
    c: &ContactFields<'_>,
    now: Timestamp,
) -> AppResult<bool> {
    let changed = conn.execute(
        "UPDATE crisis_contacts SET name = ?3, relationship = ?4, phone = ?5, email = ?6,
                notify_on_crisis = ?7, updated_at = ?8
         WHERE user_id = ?1 AND id = ?2",
        params![
            user_id,
            id,
            c.name,
            c.relationship,
            c.phone,
            c.email,
            c.notify_on_crisis,
            now
        ],
    )?;
    Ok(changed > 0)
}

pub fn delete_contact(conn: &Connection, user_id: &str, id: &str) -> AppResult<bool> {
    let changed = conn.execute(
        "DELETE FROM crisis_contacts WHERE user_id = ?1 AND id = ?2",
        [user_id, id],
    )?;
    Ok(changed > 0)
}

pub fn insert_event(
    conn: &Connection,
    id: &str,
    user_id: &str,
    level: CrisisLevel,
    source: &str,
    now: Timestamp,
) -> AppResult<()> {
    conn.prepare_cached(
        "INSERT INTO crisis_events (id, user_id, level, source, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![id, user_id, level.as_str(), source, now])?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct EventRow {
    pub id: String,
    pub user_id: String,
    pub level: CrisisLevel,
    pub source: String,
    pub created_at: Timestamp,
}

fn event_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    let level: String = row.get(2)?;
    Ok(EventRow {
        id: row.get(0)?,
        user_id: row.get(1)?,
        level: CrisisLevel::parse(&level).unwrap_or(CrisisLevel::High),
        source: row.get(3)?,
        created_at: row.get(4)?,
    })
}

pub fn event(conn: &Connection, user_id: &str, id: &str) -> AppResult<Option<EventRow>> {
    Ok(conn
        .prepare_cached(
            "SELECT id, user_id, level, source, created_at FROM crisis_events
             WHERE user_id = ?1 AND id = ?2",
        )?
        .query_row([user_id, id], event_from_row)
        .optional()?)
}

/// The user's events, newest first, after the `(created_at, id)` position `after`.
pub fn events_page(
    conn: &Connection,
    user_id: &str,
    after: Option<(i64, String)>,
    limit: u32,
) -> AppResult<Vec<EventRow>> {
    let (at, id) = after.unwrap_or((i64::MAX, String::new()));
    let mut stmt = conn.prepare_cached(
        "SELECT id, user_id, level, source, created_at FROM crisis_events
         WHERE user_id = ?1 AND (created_at < ?2 OR (created_at = ?2 AND id < ?3))
         ORDER BY created_at DESC, id DESC LIMIT ?4",
    )?;
    let rows = stmt.query_map(params![user_id, at, id, limit], event_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A notification to queue with its event.
pub struct NewNotification<'a> {
    pub channel: &'a str,
    pub contact_id: Option<&'a str>,
    pub recipient: Option<&'a str>,
    /// `pending` (to deliver), `cooldown` or `skipped` (recorded, never sent).
    pub status: &'a str,
    pub message: Option<&'a str>,
}

pub fn insert_notification(
    conn: &Connection,
    event_id: &str,
    n: &NewNotification<'_>,
    now: Timestamp,
) -> AppResult<()> {
    let next = (n.status == "pending").then_some(now);
    let message = (n.status == "pending").then_some(n.message).flatten();
    conn.prepare_cached(
        "INSERT INTO crisis_notifications (event_id, channel, contact_id, recipient, status,
                                           next_attempt_at, message)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        event_id,
        n.channel,
        n.contact_id,
        n.recipient,
        n.status,
        next,
        message
    ])?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct NotificationRow {
    pub channel: String,
    pub contact_id: Option<String>,
    pub status: String,
    pub attempts: i64,
    pub last_attempt_at: Option<Timestamp>,
}

/// The notifications of an event, in the order they were queued.
pub fn notifications(conn: &Connection, event_id: &str) -> AppResult<Vec<NotificationRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT channel, contact_id, status, attempts, last_attempt_at
         FROM crisis_notifications WHERE event_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([event_id], |r| {
        Ok(NotificationRow {
            channel: r.get(0)?,
            contact_id: r.get(1)?,
            status: r.get(2)?,
            attempts: r.get(3)?,
            last_attempt_at: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// When the user's contacts were last notified (an `alert` or `auto` event with a
/// notification that was not held back), for the cooldown.
pub fn last_notified_at(conn: &Connection, user_id: &str) -> AppResult<Option<Timestamp>> {
    Ok(conn
        .prepare_cached(
            "SELECT max(e.created_at) FROM crisis_events e
             WHERE e.user_id = ?1 AND e.source IN ('alert', 'auto')
               AND EXISTS (SELECT 1 FROM crisis_notifications n
                           WHERE n.event_id = e.id AND n.status IN ('pending', 'sent', 'failed'))",
        )?
        .query_row([user_id], |r| r.get(0))?)
}

/// A pending notification with what delivering it needs.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: i64,
    pub channel: String,
    pub recipient: Option<String>,
    pub attempts: i64,
    pub message: Option<String>,
    pub event: EventRow,
    /// The user's display name or email, for the mail to a contact.
    pub user_name: String,
}

/// Pending notifications whose time has come, oldest first.
pub fn due(conn: &Connection, now: Timestamp, limit: u32) -> AppResult<Vec<Due>> {
    let mut stmt = conn.prepare_cached(
        "SELECT n.id, n.channel, n.recipient, n.attempts, n.message,
                e.id, e.user_id, e.level, e.source, e.created_at,
                coalesce(u.display_name, u.email)
         FROM crisis_notifications n
         JOIN crisis_events e ON e.id = n.event_id
         JOIN users u ON u.id = e.user_id
         WHERE n.status = 'pending' AND n.next_attempt_at <= ?1
         ORDER BY n.next_attempt_at, n.id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now, limit], |r| {
        let level: String = r.get(7)?;
        Ok(Due {
            id: r.get(0)?,
            channel: r.get(1)?,
            recipient: r.get(2)?,
            attempts: r.get(3)?,
            message: r.get(4)?,
            event: EventRow {
                id: r.get(5)?,
                user_id: r.get(6)?,
                level: CrisisLevel::parse(&level).unwrap_or(CrisisLevel::High),
                source: r.get(8)?,
                created_at: r.get(9)?,
            },
            user_name: r.get(10)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The earliest time a pending notification is due, if any (the worker sleeps until then).
pub fn next_due(conn: &Connection) -> AppResult<Option<Timestamp>> {
    Ok(conn.query_row(
        "SELECT min(next_attempt_at) FROM crisis_notifications WHERE status = 'pending'",
        [],
        |r| r.get(0),
    )?)
}

/// Records one delivery attempt: `sent`, retried at `retry_at`, or `failed` for good.
/// Once it is no longer pending, its message (if any) is cleared.
pub fn record_attempt(
    conn: &Connection,
    id: i64,
    now: Timestamp,
    outcome: Attempt<'_>,
) -> AppResult<()> {
    let (status, next, error) = match outcome {
        Attempt::Sent => ("sent", None, None),
        Attempt::Retry { at, error } => ("pending", Some(at), Some(error)),
        Attempt::Failed { error } => ("failed", None, Some(error)),
    };
    conn.prepare_cached(
        "UPDATE crisis_notifications SET status = ?2, attempts = attempts + 1,
                last_attempt_at = ?3, next_attempt_at = ?4, last_error = ?5,
                message = CASE WHEN ?2 = 'pending' THEN message END
         WHERE id = ?1 AND status = 'pending'",
    )?
    .execute(params![id, status, now, next, error])?;
    Ok(())
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, Copy)]
pub enum Attempt<'a> {
    Sent,
    Retry { at: Timestamp, error: &'a str },
    Failed { error: &'a str },
}

/// Events since `since`, counted by level and source (the admin's view; no text exists).
pub fn counts(conn: &Connection, since: Timestamp) -> AppResult<Vec<(String, String, i64)>> {
    let mut stmt = conn.prepare(
        "SELECT level, source, count(*) FROM crisis_events WHERE created_at >= ?1
         GROUP BY level, source ORDER BY level, source",
    )?;
    let rows = stmt.query_map([since], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Events since `since` per UTC day, level and source, oldest day first (the console).
pub fn counts_by_day(
    conn: &Connection,
    since: Timestamp,
) -> AppResult<Vec<(String, String, String, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT date(created_at, 'unixepoch'), level, source, count(*) FROM crisis_events
         WHERE created_at >= ?1 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )?;
    let rows = stmt.query_map([since], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The latest `limit` deliveries that failed (or are retrying after a failure), newest
/// attempt first. Never the message: only what happened to it.
pub fn failed_deliveries(conn: &Connection, limit: u32) -> AppResult<Vec<FailedDelivery>> {
    let mut stmt = conn.prepare_cached(
        "SELECT n.id, n.event_id, e.level, n.channel, n.status, n.attempts, n.last_attempt_at,
                n.next_attempt_at, n.last_error
         FROM crisis_notifications n JOIN crisis_events e ON e.id = n.event_id
         WHERE n.status = 'failed' OR (n.status = 'pending' AND n.attempts > 0)
         ORDER BY n.last_attempt_at DESC, n.id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit], |r| {
        Ok(FailedDelivery {
            id: r.get(0)?,
            event_id: r.get(1)?,
            level: r.get(2)?,
            channel: r.get(3)?,
            status: r.get(4)?,
            attempts: r.get(5)?,
            last_attempt_at: r.get(6)?,
            next_attempt_at: r.get(7)?,
            last_error: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
