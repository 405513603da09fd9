//! `/ai/scripts` handlers.

use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

use super::{service, types::*, version::Version};
use crate::{
    app::AppState,
    auth::{AdminUser, AuthUser},
    error::{ApiError, AppResult, ErrorBody},
    http::extract::{AppJson, AppPath, AppQuery},
};

/// The active scripts, one version per name. Answers 304 to a matching `If-None-Match`.
#[utoipa::path(get, path = "/ai/scripts", tag = "scripts", security(("bearer" = [])),
    responses(
        (status = 200, body = ScriptList, headers(("ETag" = String))),
        (status = 304, description = "unchanged since the ETag sent in If-None-Match"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    _user: AuthUser,
    headers: HeaderMap,
) -> AppResult<Response> {
    let rows = service::active(&state).await?;
    let body = serde_json::to_vec(&ScriptList {
        items: rows.into_iter().map(Script::from).collect(),
        next_cursor: None,
    })
    .map_err(ApiError::internal)?;
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&body))[..32]);
    let etag_value = HeaderValue::from_str(&etag).map_err(ApiError::internal)?;
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*");
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response()
    };
    response.headers_mut().insert(header::ETAG, etag_value);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// The active version of a script, or `?version=`.
#[utoipa::path(get, path = "/ai/scripts/{name}", tag = "scripts", security(("bearer" = [])),
    params(("name" = String, Path), VersionQuery),
    responses((status = 200, body = Script)))]
pub async fn get(
    State(state): State<AppState>,
    _user: AuthUser,
    AppPath(name): AppPath<String>,
    AppQuery(query): AppQuery<VersionQuery>,
) -> AppResult<AppJson<Script>> {
    let name = parse_name(&name).map_err(|_| ApiError::NotFound)?;
    let version = match query.version.as_deref() {
        Some(text) => Some(Version::parse(text).map_err(|_| ApiError::NotFound)?),
        None => None,
    };
    let row = service::get(&state, name, version).await?;
    Ok(AppJson(row.into()))
}

/// Create a script version (admin).
#[utoipa::path(post, path = "/ai/scripts", tag = "scripts", security(("bearer" = ["admin"])),
    request_body = NewScript,
    responses(
        (status = 201, body = Script),
        (status = 409, description = "`already_exists`", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    _admin: AdminUser,
    AppJson(script): AppJson<NewScript>,
) -> AppResult<(StatusCode, AppJson<Script>)> {
    let row = service::create_version(&state, script).await?;
    Ok((StatusCode::CREATED, AppJson(row.into())))
}

/// Make a version the active one (admin).
#[utoipa::path(put, path = "/ai/scripts/{name}/active", tag = "scripts", security(("bearer" = ["admin"])),
    params(("name" = String, Path)), request_body = ActivateRequest,
    responses((status = 200, body = Script)))]
pub async fn activate(
    State(state): State<AppState>,
    _admin: AdminUser,
    AppPath(name): AppPath<String>,
    AppJson(req): AppJson<ActivateRequest>,
) -> AppResult<AppJson<Script>> {
    let name = parse_name(&name).map_err(|_| ApiError::NotFound)?;
    let row = service::activate(&state, name, req.version).await?;
    Ok(AppJson(row.into()))
}

/// Deactivate a script: no version of it is active any more (admin).
#[utoipa::path(delete, path = "/ai/scripts/{name}", tag = "scripts", security(("bearer" = ["admin"])),
    params(("name" = String, Path)),
    responses((status = 204)))]
pub async fn deactivate(
    State(state): State<AppState>,
    _admin: AdminUser,
    AppPath(name): AppPath<String>,
) -> AppResult<StatusCode> {
    let name = parse_name(&name).map_err(|_| ApiError::NotFound)?;
    service::deactivate(&state, name).await?;
    Ok(StatusCode::NO_CONTENT)
}
