//! `/admin` API handlers (the console's data and actions): admin token required, each a
//! thin call to the same service functions the CLI uses.

use axum::extract::State;

use super::{service, types::*};
use crate::{
    app::AppState,
    auth::AdminUser,
    domain::{Cursor, parse_uuid},
    error::{ApiError, AppResult},
    features::accounts::{self, AdminChange},
    http::extract::{AppJson, AppPath, AppQuery, PageQuery},
};

/// The server at a glance: version, uptime, database and AI upstream health, accounts,
/// requests in the last minute, AI use and crisis events today.
#[utoipa::path(get, path = "/admin/overview", tag = "admin", security(("bearer" = ["admin"])),
    responses((status = 200, body = Overview)))]
pub async fn overview(
    State(state): State<AppState>,
    _admin: AdminUser,
) -> AppResult<AppJson<Overview>> {
    Ok(AppJson(service::overview(&state).await?))
}

/// Accounts by email, optionally those whose email or name contains `q`.
#[utoipa::path(get, path = "/admin/users", tag = "admin", security(("bearer" = ["admin"])),
    params(AccountQuery),
    responses((status = 200, body = AccountList)))]
pub async fn users(
    State(state): State<AppState>,
    _admin: AdminUser,
    AppQuery(query): AppQuery<AccountQuery>,
) -> AppResult<AppJson<AccountList>> {
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    };
    let limit = page.limit()?;
    let after = page.after::<String>()?;
    let q = query.q.unwrap_or_default();
    if q.chars().count() > 200 {
        return Err(ApiError::invalid_field(
            "q",
            "must be at most 200 characters",
        ));
    }
    let (items, next) = service::accounts(&state, q, after, limit).await?;
    Ok(AppJson(AccountList {
        items,
        next_cursor: next.map(|email| Cursor::encode(&email)),
    }))
}

/// `user_id` as a stored account id; a malformed one names no account (404).
fn account_id(user_id: &str) -> AppResult<String> {
    parse_uuid(user_id).ok_or(ApiError::NotFound)
}

async fn change(
    state: &AppState,
    admin: &AdminUser,
    user_id: &str,
    change: AdminChange,
) -> AppResult<AppJson<Account>> {
    let id = account_id(user_id)?;
    if change == AdminChange::Disable && *id == *admin.0.user_id {
        return Err(ApiError::invalid_field(
            "id",
            "you cannot disable your own account (another administrator can)",
        ));
    }
    let account = accounts::change_account(state, &id, change).await?;
    // Who did what to whom, for the admin's own record (ids only).
    tracing::info!(actor = %admin.0.user_id, target = %id, action = ?change, "admin changed an account");
    Ok(AppJson(account.into()))
}

/// Disable an account: it cannot sign in, and its sessions end at once.
#[utoipa::path(post, path = "/admin/users/{id}/disable", tag = "admin",
    security(("bearer" = ["admin"])), params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 200, body = Account),
        (status = 422, description = "your own account", body = crate::error::ErrorBody),
    ))]
pub async fn disable(
    State(state): State<AppState>,
    admin: AdminUser,
    AppPath(id): AppPath<String>,
) -> AppResult<AppJson<Account>> {
    change(&state, &admin, &id, AdminChange::Disable).await
}

/// Enable a disabled account.
#[utoipa::path(post, path = "/admin/users/{id}/enable", tag = "admin",
    security(("bearer" = ["admin"])), params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = Account)))]
pub async fn enable(
    State(state): State<AppState>,
    admin: AdminUser,
    AppPath(id): AppPath<String>,
) -> AppResult<AppJson<Account>> {
    change(&state, &admin, &id, AdminChange::Enable).await
}

/// Make an account an administrator.
#[utoipa::path(post, path = "/admin/users/{id}/promote", tag = "admin",
    security(("bearer" = ["admin"])), params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = Account)))]
pub async fn promote(
    State(state): State<AppState>,
    admin: AdminUser,
    AppPath(id): AppPath<String>,
) -> AppResult<AppJson<Account>> {
    change(&state, &admin, &id, AdminChange::Promote).await
}

/// Issue a single-use password reset token (30 minutes) to hand to the account's owner.
#[utoipa::path(post, path = "/admin/users/{id}/reset-token", tag = "admin",
    security(("bearer" = ["admin"])), params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = ResetToken)))]
pub async fn reset_token(
    State(state): State<AppState>,
    admin: AdminUser,
    AppPath(id): AppPath<String>,
) -> AppResult<AppJson<ResetToken>> {
    let id = account_id(&id)?;
    let reset = accounts::issue_reset(&state, &id).await?;
    tracing::info!(actor = %admin.0.user_id, target = %id, "admin issued a password reset token");
    Ok(AppJson(ResetToken {
        token: reset.token,
        expires_at: reset.expires_at,
        link: reset.link,
    }))
}

/// AI calls and tokens per day and model, and per user and model, over the last `days`.
#[utoipa::path(get, path = "/admin/usage", tag = "admin", security(("bearer" = ["admin"])),
    params(DaysQuery),
    responses((status = 200, body = UsageReport)))]
pub async fn usage(
    State(state): State<AppState>,
    _admin: AdminUser,
    AppQuery(query): AppQuery<DaysQuery>,
) -> AppResult<AppJson<UsageReport>> {
    let since = query.since()?;
    Ok(AppJson(service::usage(&state, since).await?))
}

/// Every script with all its versions (create one with `POST /ai/scripts`, switch with
/// `PUT /ai/scripts/{name}/active`).
#[utoipa::path(get, path = "/admin/scripts", tag = "admin", security(("bearer" = ["admin"])),
    responses((status = 200, body = ScriptCatalog)))]
pub async fn scripts(
    State(state): State<AppState>,
    _admin: AdminUser,
) -> AppResult<AppJson<ScriptCatalog>> {
    Ok(AppJson(service::script_catalog(&state).await?))
}

/// Crisis events per day, level and source over the last `days`, and the latest failed
/// deliveries: counts and delivery states, never text.
#[utoipa::path(get, path = "/admin/crisis", tag = "admin", security(("bearer" = ["admin"])),
    params(DaysQuery),
    responses((status = 200, body = CrisisReport)))]
pub async fn crisis(
    State(state): State<AppState>,
    _admin: AdminUser,
    AppQuery(query): AppQuery<DaysQuery>,
) -> AppResult<AppJson<CrisisReport>> {
    let since = query.since()?;
    Ok(AppJson(service::crisis_report(&state, since).await?))
}
