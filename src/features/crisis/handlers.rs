//! `/crisis` handlers: extract, validate, call `service`, respond.

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode, header},
};

use super::{Crisis, resources::accept_language, service, types::*};
use crate::{
    app::AppState,
    auth::AuthUser,
    domain::{Cursor, parse_uuid},
    error::{ApiError, AppResult, ErrorBody, field},
    http::extract::{AppJson, AppPath, AppQuery, PageQuery},
};

/// The locales to try: `locale` first, then `Accept-Language`.
pub fn locales(locale: Option<&str>, headers: &HeaderMap) -> Vec<String> {
    let mut tags: Vec<String> = locale
        .filter(|l| !l.trim().is_empty() && l.len() <= 35)
        .map(|l| vec![l.to_owned()])
        .unwrap_or_default();
    if let Some(value) = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
    {
        tags.extend(accept_language(value));
    }
    tags
}

/// Run the detector on a text (never stored): `{level, categories, resources?}`.
#[utoipa::path(post, path = "/crisis/check", tag = "crisis", security(("bearer" = [])),
    request_body = CheckRequest,
    responses(
        (status = 200, body = CheckResponse),
        (status = 422, description = "empty text, or over 16 KiB", body = ErrorBody),
    ))]
pub async fn check(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    AppJson(req): AppJson<CheckRequest>,
) -> AppResult<AppJson<CheckResponse>> {
    let text = field("text", parse_check_text(&req.text))?;
    let locales = locales(req.locale.as_deref(), &headers);
    Ok(AppJson(
        service::check(&state, &user.user_id, text, &locales).await?,
    ))
}

/// Hotlines for a locale (`?locale=`, else `Accept-Language`, else international). No
/// sign-in needed.
#[utoipa::path(get, path = "/crisis/resources", tag = "crisis", params(LocaleQuery),
    responses((status = 200, body = Vec<super::Resource>)))]
pub async fn resources(
    State(state): State<AppState>,
    headers: HeaderMap,
    AppQuery(query): AppQuery<LocaleQuery>,
) -> AppResult<AppJson<Vec<super::Resource>>> {
    let crisis = state.part::<Crisis>()?;
    let tags = locales(query.locale.as_deref(), &headers);
    let (_, found) = crisis
        .resources
        .for_locales(tags.iter().map(String::as_str));
    Ok(AppJson(found))
}

/// The user's emergency contacts.
#[utoipa::path(get, path = "/crisis/contacts", tag = "crisis", security(("bearer" = [])),
    responses((status = 200, body = ContactList)))]
pub async fn contacts(
    State(state): State<AppState>,
    user: AuthUser,
) -> AppResult<AppJson<ContactList>> {
    Ok(AppJson(ContactList {
        items: service::contacts(&state, &user.user_id).await?,
        next_cursor: None,
    }))
}

/// Add an emergency contact (at most 10; a phone in E.164 and/or an email).
#[utoipa::path(post, path = "/crisis/contacts", tag = "crisis", security(("bearer" = [])),
    request_body = ContactRequest,
    responses(
        (status = 201, body = Contact),
        (status = 422, description = "invalid fields, or an eleventh contact", body = ErrorBody),
    ))]
pub async fn add_contact(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(req): AppJson<ContactRequest>,
) -> AppResult<(StatusCode, AppJson<Contact>)> {
    let contact = req.parse()?;
    let created = service::add_contact(&state, &user.user_id, contact).await?;
    Ok((StatusCode::CREATED, AppJson(created)))
}

fn contact_id(id: &str) -> AppResult<String> {
    parse_uuid(id).ok_or(ApiError::NotFound)
}

/// Replace an emergency contact.
#[utoipa::path(put, path = "/crisis/contacts/{id}", tag = "crisis", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)), request_body = ContactRequest,
    responses((status = 200, body = Contact)))]
pub async fn update_contact(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<String>,
    AppJson(req): AppJson<ContactRequest>,
) -> AppResult<AppJson<Contact>> {
    let id = contact_id(&id)?;
    let contact = req.parse()?;
    Ok(AppJson(
        service::update_contact(&state, &user.user_id, id, contact).await?,
    ))
}

/// Remove an emergency contact.
#[utoipa::path(delete, path = "/crisis/contacts/{id}", tag = "crisis", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 204)))]
pub async fn delete_contact(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<String>,
) -> AppResult<StatusCode> {
    let id = contact_id(&id)?;
    service::delete_contact(&state, &user.user_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The user's SOS: records an event and notifies opted-in contacts (mail) and the admin
/// webhook, unless they were notified within `crisis.alert_cooldown` (`cooldown`).
#[utoipa::path(post, path = "/crisis/alert", tag = "crisis", security(("bearer" = [])),
    request_body = AlertRequest,
    responses((status = 200, body = AlertResponse)))]
pub async fn alert(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    AppJson(req): AppJson<AlertRequest>,
) -> AppResult<AppJson<AlertResponse>> {
    let message = field(
        "message",
        req.message
            .as_deref()
            .filter(|m| !m.trim().is_empty())
            .map(|m| parse_text(m, MAX_ALERT_MESSAGE))
            .transpose(),
    )?;
    let locales = locales(None, &headers);
    Ok(AppJson(
        service::alert(&state, &user.user_id, message, &locales).await?,
    ))
}

/// The user's crisis events, newest first, with each notification's delivery status.
#[utoipa::path(get, path = "/crisis/events", tag = "crisis", security(("bearer" = [])),
    params(PageQuery),
    responses((status = 200, body = EventList)))]
pub async fn events(
    State(state): State<AppState>,
    user: AuthUser,
    AppQuery(query): AppQuery<PageQuery>,
) -> AppResult<AppJson<EventList>> {
    let limit = query.limit()?;
    let after = query.after::<(i64, String)>()?;
    let (items, next) = service::events(&state, &user.user_id, after, limit).await?;
    Ok(AppJson(EventList {
        items,
        next_cursor: next.map(|key| Cursor::encode(&key)),
    }))
}

/// One of the user's crisis events.
#[utoipa::path(get, path = "/crisis/events/{id}", tag = "crisis", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = Event)))]
pub async fn event(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<String>,
) -> AppResult<AppJson<Event>> {
    let id = parse_uuid(&id).ok_or(ApiError::NotFound)?;
    Ok(AppJson(service::event(&state, &user.user_id, id).await?))
}
