//! `/sync` status handlers: extract, validate, call `service`, respond.

use axum::{extract::State, http::StatusCode};

use super::{
    service::{self, StatusReport as Report},
    types::*,
};
use crate::{
    app::AppState,
    auth::AuthUser,
    domain::DeviceId,
    error::{ApiError, AppResult, ErrorBody, validate as fields},
    http::extract::{AppJson, AppPath},
};

/// Report where this device's data stands.
///
/// A `syncVersion` lower than the stored one, or equal with another `dataHash`, is refused
/// with 409 `sync_conflict` and the stored state in `details`. Reporting again from a
/// deactivated device makes it active again.
#[utoipa::path(post, path = "/sync/status", tag = "sync", security(("bearer" = [])),
    request_body = StatusReport,
    responses(
        (status = 200, body = DeviceResponse),
        (status = 409, description = "`sync_conflict`; `details` is the stored device state", body = ErrorBody),
    ))]
pub async fn report_status(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(req): AppJson<StatusReport>,
) -> AppResult<AppJson<DeviceResponse>> {
    let (device_id, sync_version, data_hash, device_name, platform) = fields((
        ("deviceId", DeviceId::parse(&req.device_id)),
        ("syncVersion", parse_sync_version(req.sync_version)),
        ("dataHash", parse_data_hash(&req.data_hash)),
        ("deviceName", parse_label(req.device_name.as_deref(), 100)),
        ("platform", parse_label(req.platform.as_deref(), 32)),
    ))?;
    let report = Report {
        device_id,
        sync_version,
        data_hash,
        device_name,
        platform,
    };
    let row = service::report(&state, &user.user_id, report).await?;
    Ok(AppJson(DeviceResponse {
        device: row.into(),
        server_epoch: state.db.server_epoch().to_owned(),
    }))
}

/// Every device of the signed-in user, with a summary.
#[utoipa::path(get, path = "/sync/status", tag = "sync", security(("bearer" = [])),
    responses((status = 200, body = StatusList)))]
pub async fn list_status(
    State(state): State<AppState>,
    user: AuthUser,
) -> AppResult<AppJson<StatusList>> {
    let rows = service::devices(&state, &user.user_id).await?;
    let summary = summarize(&rows);
    Ok(AppJson(StatusList {
        devices: rows.into_iter().map(Device::from).collect(),
        summary,
        server_epoch: state.db.server_epoch().to_owned(),
    }))
}

/// One device's state; 404 when the user has no such device.
#[utoipa::path(get, path = "/sync/status/{deviceId}", tag = "sync", security(("bearer" = [])),
    params(("deviceId" = String, Path)),
    responses((status = 200, body = DeviceResponse)))]
pub async fn device_status(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(device_id): AppPath<String>,
) -> AppResult<AppJson<DeviceResponse>> {
    let device_id = DeviceId::parse(&device_id).map_err(|_| ApiError::NotFound)?;
    let row = service::device(&state, &user.user_id, device_id).await?;
    Ok(AppJson(DeviceResponse {
        device: row.into(),
        server_epoch: state.db.server_epoch().to_owned(),
    }))
}

/// Compare a device's state with the latest active device: `in_sync`, `behind` (download),
/// `ahead` (upload) or `diverged` (same version, other data).
#[utoipa::path(post, path = "/sync/validate", tag = "sync", security(("bearer" = [])),
    request_body = ValidateRequest,
    responses((status = 200, body = ValidateResponse)))]
pub async fn validate(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(req): AppJson<ValidateRequest>,
) -> AppResult<AppJson<ValidateResponse>> {
    let (_, version, hash) = fields((
        ("deviceId", DeviceId::parse(&req.device_id)),
        ("syncVersion", parse_sync_version(req.sync_version)),
        ("dataHash", parse_data_hash(&req.data_hash)),
    ))?;
    let (status, latest) = service::validate(&state, &user.user_id, version, hash).await?;
    Ok(AppJson(ValidateResponse {
        status,
        latest: latest.map(Device::from),
        server_epoch: state.db.server_epoch().to_owned(),
    }))
}

/// Deactivate a device: it no longer counts in `deviceCount` or the summary until it
/// reports again.
#[utoipa::path(delete, path = "/sync/devices/{deviceId}", tag = "sync", security(("bearer" = [])),
    params(("deviceId" = String, Path)),
    responses((status = 204)))]
pub async fn deactivate_device(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(device_id): AppPath<String>,
) -> AppResult<StatusCode> {
    let device_id = DeviceId::parse(&device_id).map_err(|_| ApiError::NotFound)?;
    service::deactivate(&state, &user.user_id, device_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
