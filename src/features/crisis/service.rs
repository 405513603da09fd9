//! Crisis rules behind the handlers and the AI proxy: screening a message (detector, event,
//! automatic notification), SOS alerts with their cooldown, contacts, events. Text is read,
//! never stored or logged; an event is who, how serious, where from and when.

use uuid::Uuid;

use super::{
    Crisis, outbox,
    store::{self, ContactFields, ContactRow, EventRow, NewNotification, NotificationRow},
    types::*,
};
use crate::{
    app::App,
    domain::{CrisisLevel, Timestamp},
    error::{ApiError, AppResult},
};

/// Runs the detector over `text` for `user_id`. At or above `crisis.resource_level` it
/// records an event (never the text) and returns the flag with resources; a detected `high`
/// also notifies opted-in contacts and the webhook when `crisis.auto_notify` is on.
pub async fn screen(
    app: &App,
    user_id: &str,
    text: &str,
    source: Source,
    locales: &[String],
) -> AppResult<Option<CrisisFlag>> {
    let level = assess(app, text)?;
    screen_with(app, user_id, level, source, locales).await
}

async fn record_event(
    app: &App,
    user_id: &str,
    level: CrisisLevel,
    source: Source,
) -> AppResult<String> {
    let id = Uuid::new_v4().to_string();
    let (event_id, owner) = (id.clone(), user_id.to_owned());
    app.db
        .write(move |tx| {
            store::insert_event(
                tx,
                &event_id,
                &owner,
                level,
                source.as_str(),
                Timestamp::now(),
            )
        })
        .await?;
    tracing::info!(
        level = level.as_str(),
        source = source.as_str(),
        "crisis event recorded"
    );
    Ok(id)
}

/// `POST /crisis/check`: the detector alone (for journal and mood entries).
pub async fn check(
    app: &App,
    user_id: &str,
    text: &str,
    locales: &[String],
) -> AppResult<CheckResponse> {
    let crisis = app.part::<Crisis>()?;
    let assessment = crisis.detector.assess(text);
    let flag = screen_with(app, user_id, assessment.level, Source::Check, locales).await?;
    Ok(CheckResponse {
        level: assessment.level,
        categories: assessment
            .categories
            .iter()
            .map(|c| (*c).to_owned())
            .collect(),
        resources: flag.map(|f| f.resources),
    })
}

/// [`screen`] for a level already known.
async fn screen_with(
    app: &App,
    user_id: &str,
    level: CrisisLevel,
    source: Source,
    locales: &[String],
) -> AppResult<Option<CrisisFlag>> {
    if level < app.config.crisis.resource_level || level == CrisisLevel::None {
        return Ok(None);
    }
    record_event(app, user_id, level, source).await?;
    if level == CrisisLevel::High && app.config.crisis.auto_notify {
        notify_all(app, user_id, Source::Auto, None).await?;
    }
    let crisis = app.part::<Crisis>()?;
    let (_, resources) = crisis
        .resources
        .for_locales(locales.iter().map(String::as_str));
    Ok(Some(CrisisFlag { level, resources }))
}

/// The higher of the detector's and a model's level, screened like a detection (the model
/// never lowers what the detector found). For `kind: "crisis"` analyses.
pub async fn screen_analysis(
    app: &App,
    user_id: &str,
    detected: CrisisLevel,
    model: Option<CrisisLevel>,
    locales: &[String],
) -> AppResult<(CrisisLevel, Option<CrisisFlag>)> {
    let level = detected.max(model.unwrap_or(CrisisLevel::None));
    let flag = screen_with(app, user_id, level, Source::Analyze, locales).await?;
    Ok((level, flag))
}

/// The detector's level for `text` (no event).
pub fn assess(app: &App, text: &str) -> AppResult<CrisisLevel> {
    Ok(app.part::<Crisis>()?.detector.assess(text).level)
}

/// The user's SOS: an event (`high`, `alert`), notifications for every opted-in contact
/// with an email and the webhook, unless the cooldown holds them back.
pub async fn alert(
    app: &App,
    user_id: &str,
    message: Option<String>,
    locales: &[String],
) -> AppResult<AlertResponse> {
    let message = message.filter(|_| app.config.crisis.webhook_include_message);
    let (event_id, notified) = notify_all(app, user_id, Source::Alert, message).await?;
    let crisis = app.part::<Crisis>()?;
    let (_, resources) = crisis
        .resources
        .for_locales(locales.iter().map(String::as_str));
    Ok(AlertResponse {
        event_id,
        notified,
        resources,
    })
}

/// Records a `high` event of `source` with a notification per opted-in contact (email) and
/// for the webhook, in one transaction with the cooldown check; wakes the outbox worker.
async fn notify_all(
    app: &App,
    user_id: &str,
    source: Source,
    message: Option<String>,
) -> AppResult<(String, Vec<Notified>)> {
    let id = Uuid::new_v4().to_string();
    let cooldown = app.config.crisis.alert_cooldown.as_secs() as i64;
    let mail = app.notify.can_mail();
    let webhook = app.config.crisis.webhook_url.is_some();
    let (event_id, owner) = (id.clone(), user_id.to_owned());
    let notified = app
        .db
        .write(move |tx| {
            let now = Timestamp::now();
            let cooling = store::last_notified_at(tx, &owner)?
                .is_some_and(|last| now.unix() - last.unix() < cooldown);
            store::insert_event(
                tx,
                &event_id,
                &owner,
                CrisisLevel::High,
                source.as_str(),
                now,
            )?;
            let mut notified = Vec::new();
            let queued = if cooling { "cooldown" } else { "pending" };
            for contact in store::contacts(tx, &owner)? {
                let Some(email) = contact
                    .email
                    .as_deref()
                    .filter(|_| contact.notify_on_crisis)
                else {
                    continue;
                };
                let status = if mail { queued } else { "skipped" };
                store::insert_notification(
                    tx,
                    &event_id,
                    &NewNotification {
                        channel: "email",
                        contact_id: Some(&contact.id),
                        recipient: Some(email),
                        status,
                        message: message.as_deref(),
                    },
                    now,
                )?;
                notified.push(Notified {
                    channel: "email".into(),
                    contact_id: Some(contact.id.clone()),
                    status: status.into(),
                });
            }
            if webhook {
                store::insert_notification(
                    tx,
                    &event_id,
                    &NewNotification {
                        channel: "webhook",
                        contact_id: None,
                        recipient: None,
                        status: queued,
                        message: message.as_deref(),
                    },
                    now,
                )?;
                notified.push(Notified {
                    channel: "webhook".into(),
                    contact_id: None,
                    status: queued.into(),
                });
            }
            Ok(notified)
        })
        .await?;
    tracing::info!(
        source = source.as_str(),
        notifications = notified.len(),
        "crisis alert recorded"
    );
    outbox::wake(app);
    Ok((id, notified))
}

fn contact_view(row: ContactRow) -> Contact {
    Contact {
        id: row.id,
        name: row.name,
        relationship: row.relationship,
        phone: row.phone,
        email: row.email,
        notify_on_crisis: row.notify_on_crisis,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

pub async fn contacts(app: &App, user_id: &str) -> AppResult<Vec<Contact>> {
    let owner = user_id.to_owned();
    let rows = app
        .db
        .read(move |conn| store::contacts(conn, &owner))
        .await?;
    Ok(rows.into_iter().map(contact_view).collect())
}

/// Adds a contact; 422 for the eleventh.
pub async fn add_contact(app: &App, user_id: &str, contact: NewContact) -> AppResult<Contact> {
    let owner = user_id.to_owned();
    let id = Uuid::new_v4().to_string();
    let row = app
        .db
        .write(move |tx| {
            if store::count_contacts(tx, &owner)? >= MAX_CONTACTS {
                return Err(ApiError::invalid_field(
                    "body",
                    format!("at most {MAX_CONTACTS} emergency contacts"),
                ));
            }
            store::insert_contact(tx, &owner, &id, &fields(&contact), Timestamp::now())?;
            store::contact(tx, &owner, &id)?.ok_or(ApiError::NotFound)
        })
        .await?;
    Ok(contact_view(row))
}

fn fields(contact: &NewContact) -> ContactFields<'_> {
    ContactFields {
        name: &contact.name,
        relationship: contact.relationship.as_deref(),
        phone: contact.phone.as_deref(),
        email: contact.email.as_ref().map(|e| e.as_str()),
        notify_on_crisis: contact.notify_on_crisis,
    }
}

/// Replaces a contact; 404 when the user has none of that id.
pub async fn update_contact(
    app: &App,
    user_id: &str,
    id: String,
    contact: NewContact,
) -> AppResult<Contact> {
    let owner = user_id.to_owned();
    let row = app
        .db
        .write(move |tx| {
            if !store::update_contact(tx, &owner, &id, &fields(&contact), Timestamp::now())? {
                return Err(ApiError::NotFound);
            }
            store::contact(tx, &owner, &id)?.ok_or(ApiError::NotFound)
        })
        .await?;
    Ok(contact_view(row))
}

pub async fn delete_contact(app: &App, user_id: &str, id: String) -> AppResult<()> {
    let owner = user_id.to_owned();
    let deleted = app
        .db
        .write(move |tx| store::delete_contact(tx, &owner, &id))
        .await?;
    if deleted {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

fn event_view(row: EventRow, notifications: Vec<NotificationRow>) -> Event {
    Event {
        id: row.id,
        level: row.level,
        source: Source::parse(&row.source),
        created_at: row.created_at,
        notifications: notifications
            .into_iter()
            .map(|n| Notification {
                channel: n.channel,
                contact_id: n.contact_id,
                status: n.status,
                attempts: n.attempts,
                last_attempt_at: n.last_attempt_at,
            })
            .collect(),
    }
}

/// One of the user's events with its notifications; 404 otherwise.
pub async fn event(app: &App, user_id: &str, id: String) -> AppResult<Event> {
    let owner = user_id.to_owned();
    app.db
        .read(move |conn| {
            let row = store::event(conn, &owner, &id)?.ok_or(ApiError::NotFound)?;
            let notifications = store::notifications(conn, &row.id)?;
            Ok(event_view(row, notifications))
        })
        .await
}

/// A page of the user's events, newest first.
pub async fn events(
    app: &App,
    user_id: &str,
    after: Option<(i64, String)>,
    limit: u32,
) -> AppResult<(Vec<Event>, Option<(i64, String)>)> {
    let owner = user_id.to_owned();
    app.db
        .read(move |conn| {
            let mut rows = store::events_page(conn, &owner, after, limit + 1)?;
            let next = if rows.len() > limit as usize {
                rows.truncate(limit as usize);
                rows.last().map(|r| (r.created_at.unix(), r.id.clone()))
            } else {
                None
            };
            let mut items = Vec::with_capacity(rows.len());
            for row in rows {
                let notifications = store::notifications(conn, &row.id)?;
                items.push(event_view(row, notifications));
            }
            Ok((items, next))
        })
        .await
}
