//! `/conversations` handlers: extract, validate, call `service`, respond. Public reads take
//! `MaybeAuthUser`: no token is anonymous, a bad one is 401.

use axum::{extract::State, http::StatusCode};

use super::{
    service::{self, Conversations, Scope},
    types::*,
};
use crate::{
    app::AppState,
    auth::{AdminUser, AuthUser, MaybeAuthUser},
    domain::{Cursor, parse_uuid},
    error::{ApiError, AppResult, ErrorBody},
    http::{
        extract::{AppJson, AppPath, AppQuery, PageQuery},
        rate_limit::ClientAddr,
    },
};

fn conversation_id(id: &str) -> AppResult<String> {
    parse_uuid(id).ok_or(ApiError::NotFound)
}

fn page(limit: Option<u32>, cursor: Option<String>) -> PageQuery {
    PageQuery { limit, cursor }
}

fn category(state: &Conversations, slug: Option<String>) -> AppResult<Option<String>> {
    match slug {
        Some(slug) if !state.categories.contains(&slug) => Err(ApiError::invalid_field(
            "category",
            "is not a known category (see /conversations/categories)",
        )),
        other => Ok(other),
    }
}

/// Summaries (no messages), newest first: `scope=mine` (the default when signed in) or
/// `public`, optionally one `category` or `tag`.
#[utoipa::path(get, path = "/conversations", tag = "conversations", params(ListQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, body = SummaryList),
        (status = 401, description = "`scope=mine` without a token", body = ErrorBody),
        (status = 422, description = "an unknown `scope` or `category`, or a malformed `tag`", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    MaybeAuthUser(caller): MaybeAuthUser,
    AppQuery(query): AppQuery<ListQuery>,
) -> AppResult<AppJson<SummaryList>> {
    let conversations = state.part::<Conversations>()?;
    let default = if caller.is_some() {
        Scope::Mine
    } else {
        Scope::Public
    };
    let scope = service::scope(query.scope.as_deref(), caller.as_ref(), default)?;
    let category = category(conversations, query.category)?;
    let tag = query
        .tag
        .map(|t| parse_tags(vec![t]).map_err(|m| ApiError::invalid_field("tag", m)))
        .transpose()?
        .and_then(|mut t| t.pop());
    let paging = page(query.limit, query.cursor);
    let (items, next) = service::list(
        &state,
        caller.as_ref(),
        service::ListRequest {
            scope,
            category,
            tag,
            featured: false,
            after: paging.after()?,
            limit: paging.limit()?,
        },
    )
    .await?;
    Ok(AppJson(SummaryList {
        items,
        next_cursor: next.map(|k| Cursor::encode(&k)),
    }))
}

/// Featured public conversations, newest first.
#[utoipa::path(get, path = "/conversations/featured", tag = "conversations", params(PageQuery),
    security((), ("bearer" = [])), responses((status = 200, body = SummaryList)))]
pub async fn featured(
    State(state): State<AppState>,
    MaybeAuthUser(caller): MaybeAuthUser,
    AppQuery(query): AppQuery<PageQuery>,
) -> AppResult<AppJson<SummaryList>> {
    let (items, next) = service::list(
        &state,
        caller.as_ref(),
        service::ListRequest {
            scope: Scope::Public,
            category: None,
            tag: None,
            featured: true,
            after: query.after()?,
            limit: query.limit()?,
        },
    )
    .await?;
    Ok(AppJson(SummaryList {
        items,
        next_cursor: next.map(|k| Cursor::encode(&k)),
    }))
}

/// The categories, with how many public conversations each holds.
#[utoipa::path(get, path = "/conversations/categories", tag = "conversations",
    security((), ("bearer" = [])), responses((status = 200, body = Vec<Category>)))]
pub async fn categories(
    State(state): State<AppState>,
    MaybeAuthUser(_caller): MaybeAuthUser,
) -> AppResult<AppJson<Vec<Category>>> {
    let conversations = state.part::<Conversations>()?;
    Ok(AppJson(service::categories(&state, conversations).await?))
}

/// Full-text search over titles and messages, best first, each hit with an HTML snippet.
/// `q` is words, never query syntax; the last word also matches as a prefix.
#[utoipa::path(get, path = "/conversations/search", tag = "conversations", params(SearchQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, body = HitList),
        (status = 401, description = "`scope=mine` without a token", body = ErrorBody),
        (status = 422, description = "an empty `q`, an unknown `scope` or `category`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: `rate_limit.search_per_minute`", body = ErrorBody),
    ))]
pub async fn search(
    State(state): State<AppState>,
    MaybeAuthUser(caller): MaybeAuthUser,
    address: ClientAddr,
    AppQuery(query): AppQuery<SearchQuery>,
) -> AppResult<AppJson<HitList>> {
    let conversations = state.part::<Conversations>()?;
    let key = match &caller {
        Some(user) => format!("u:{}", user.user_id),
        None => format!("ip:{}", address.network()),
    };
    conversations.admit_search(key)?;
    let words = query
        .q
        .as_deref()
        .filter(|q| q.len() <= 1000)
        .and_then(fts_query)
        .ok_or_else(|| {
            ApiError::invalid_field("q", "must hold at least one word (1000 characters at most)")
        })?;
    let scope = service::scope(query.scope.as_deref(), caller.as_ref(), Scope::All)?;
    let category = category(conversations, query.category)?;
    let paging = page(query.limit, query.cursor);
    let limit = paging.limit()?;
    let after = paging.after::<service::SearchKey>()?;
    let parts = service::search_parts(&words, scope, caller.as_ref(), category.as_deref());
    let (items, next) = service::search(&state, parts, after, limit).await?;
    Ok(AppJson(HitList {
        items,
        next_cursor: next.map(|k| Cursor::encode(&k)),
    }))
}

/// Counts: the caller's own (null without a token) and the public totals.
#[utoipa::path(get, path = "/conversations/stats", tag = "conversations",
    security((), ("bearer" = [])), responses((status = 200, body = Stats)))]
pub async fn stats(
    State(state): State<AppState>,
    MaybeAuthUser(caller): MaybeAuthUser,
) -> AppResult<AppJson<Stats>> {
    Ok(AppJson(service::stats(&state, caller.as_ref()).await?))
}

/// One conversation: its owner's, or anyone's when public; otherwise 404.
#[utoipa::path(get, path = "/conversations/{id}", tag = "conversations",
    params(("id" = String, Path, format = Uuid)), security((), ("bearer" = [])),
    responses((status = 200, body = Conversation)))]
pub async fn get(
    State(state): State<AppState>,
    MaybeAuthUser(caller): MaybeAuthUser,
    AppPath(id): AppPath<String>,
) -> AppResult<AppJson<Conversation>> {
    let id = conversation_id(&id)?;
    Ok(AppJson(service::get(&state, caller.as_ref(), id).await?))
}

/// Save a conversation (private unless `visibility: "public"`).
#[utoipa::path(post, path = "/conversations", tag = "conversations", security(("bearer" = [])),
    request_body = ConversationInput,
    responses(
        (status = 201, body = Conversation),
    ))]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(input): AppJson<ConversationInput>,
) -> AppResult<(StatusCode, AppJson<Conversation>)> {
    let conversations = state.part::<Conversations>()?;
    let fields = input.parse(true, |slug| conversations.categories.contains(slug))?;
    let created = service::create(&state, &user, fields).await?;
    Ok((StatusCode::CREATED, AppJson(created)))
}

/// Change a conversation (owner): the fields given replace the stored ones.
#[utoipa::path(put, path = "/conversations/{id}", tag = "conversations", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)), request_body = ConversationInput,
    responses((status = 200, body = Conversation)))]
pub async fn update(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<String>,
    AppJson(input): AppJson<ConversationInput>,
) -> AppResult<AppJson<Conversation>> {
    let id = conversation_id(&id)?;
    let conversations = state.part::<Conversations>()?;
    let fields = input.parse(false, |slug| conversations.categories.contains(slug))?;
    Ok(AppJson(service::update(&state, &user, id, fields).await?))
}

/// Delete a conversation (its owner, or an admin).
#[utoipa::path(delete, path = "/conversations/{id}", tag = "conversations", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 204)))]
pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<String>,
) -> AppResult<StatusCode> {
    let id = conversation_id(&id)?;
    service::delete(&state, &user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Feature or unfeature a public conversation (admin).
#[utoipa::path(patch, path = "/conversations/{id}/featured", tag = "conversations",
    security(("bearer" = ["admin"])), params(("id" = String, Path, format = Uuid)),
    request_body = FeatureRequest,
    responses(
        (status = 200, body = Summary),
        (status = 422, description = "the conversation is private", body = ErrorBody),
    ))]
pub async fn set_featured(
    State(state): State<AppState>,
    _admin: AdminUser,
    AppPath(id): AppPath<String>,
    AppJson(req): AppJson<FeatureRequest>,
) -> AppResult<AppJson<Summary>> {
    let id = conversation_id(&id)?;
    Ok(AppJson(
        service::set_featured(&state, id, req.featured).await?,
    ))
}
