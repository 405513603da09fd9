//! `/sync` status handlers: extract, validate, run one transaction, respond.

use axum::{extract::State, http::StatusCode};

use super::{
    store::{self, Report},
    types::*,
};
use crate::{
    app::AppState,
    auth::{self, AuthUser},
    error::{ApiError, AppResult, ErrorBody, Invalid},
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
        (status = 422, description = "`validation_failed`", body = ErrorBody),
    ))]
pub async fn report_status(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(req): AppJson<StatusReport>,
) -> AppResult<AppJson<DeviceResponse>> {
    let mut invalid = Invalid::default();
    let device_id = invalid.check("deviceId", parse_device_id(&req.device_id));
    let version = invalid.check("syncVersion", parse_sync_version(req.sync_version));
    let hash = invalid.check("dataHash", parse_data_hash(&req.data_hash));
    let name = invalid.check("deviceName", parse_label(req.device_name.as_deref(), 100));
    let platform = invalid.check("platform", parse_label(req.platform.as_deref(), 32));
    invalid.finish()?;
    let (Some(device_id), Some(version), Some(hash), Some(name), Some(platform)) =
        (device_id, version, hash, name, platform)
    else {
        unreachable!("finish() returned Ok, so every field parsed")
    };
    let user_id = user.user_id.clone();
    let row = state
        .db
        .write(move |tx| {
            if let Some(stored) = store::device(tx, &user_id, &device_id)?
                && (version < stored.sync_version
                    || (version == stored.sync_version && hash != stored.data_hash))
            {
                return Err(ApiError::Conflict {
                    code: "sync_conflict",
                    message: "The server holds a newer or different state for this device.".into(),
                    details: serde_json::to_value(Device::from(stored)).ok(),
                });
            }
            let now = auth::now();
            store::upsert(
                tx,
                &Report {
                    user_id: &user_id,
                    device_id: &device_id,
                    device_name: name.as_deref(),
                    platform: platform.as_deref(),
                    sync_version: version,
                    data_hash: &hash,
                    now,
                },
            )?;
            store::refresh_user_summary(tx, &user_id, Some(now))?;
            store::device(tx, &user_id, &device_id)?.ok_or(ApiError::NotFound)
        })
        .await?;
    // lastSyncAt and deviceCount changed.
    state.auth.forget_user(&user.user_id);
    Ok(AppJson(DeviceResponse {
        device: row.into(),
        server_epoch: state.db.server_epoch().to_owned(),
    }))
}

/// Every device of the signed-in user, with a summary.
#[utoipa::path(get, path = "/sync/status", tag = "sync", security(("bearer" = [])),
    responses((status = 200, body = StatusList), (status = 401, body = ErrorBody)))]
pub async fn list_status(
    State(state): State<AppState>,
    user: AuthUser,
) -> AppResult<AppJson<StatusList>> {
    let rows = state
        .db
        .read(move |conn| store::devices(conn, &user.user_id))
        .await?;
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
    responses((status = 200, body = DeviceResponse), (status = 404, body = ErrorBody)))]
pub async fn device_status(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(device_id): AppPath<String>,
) -> AppResult<AppJson<DeviceResponse>> {
    let device_id = parse_device_id(&device_id).map_err(|_| ApiError::NotFound)?;
    let row = state
        .db
        .read(move |conn| store::device(conn, &user.user_id, &device_id))
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(AppJson(DeviceResponse {
        device: row.into(),
        server_epoch: state.db.server_epoch().to_owned(),
    }))
}

/// Compare a device's state with the latest active device: `in_sync`, `behind` (download),
/// `ahead` (upload) or `diverged` (same version, other data).
#[utoipa::path(post, path = "/sync/validate", tag = "sync", security(("bearer" = [])),
    request_body = ValidateRequest,
    responses((status = 200, body = ValidateResponse), (status = 422, body = ErrorBody)))]
pub async fn validate(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(req): AppJson<ValidateRequest>,
) -> AppResult<AppJson<ValidateResponse>> {
    let mut invalid = Invalid::default();
    invalid.check("deviceId", parse_device_id(&req.device_id));
    let version = invalid.check("syncVersion", parse_sync_version(req.sync_version));
    let hash = invalid.check("dataHash", parse_data_hash(&req.data_hash));
    invalid.finish()?;
    let (Some(version), Some(hash)) = (version, hash) else {
        unreachable!("finish() returned Ok, so every field parsed")
    };
    let latest = state
        .db
        .read(move |conn| store::latest_active(conn, &user.user_id))
        .await?;
    Ok(AppJson(ValidateResponse {
        status: standing(version, &hash, latest.as_ref()),
        latest: latest.map(Device::from),
        server_epoch: state.db.server_epoch().to_owned(),
    }))
}

/// Deactivate a device: it no longer counts in `deviceCount` or the summary until it
/// reports again.
#[utoipa::path(delete, path = "/sync/devices/{deviceId}", tag = "sync", security(("bearer" = [])),
    params(("deviceId" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn deactivate_device(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(device_id): AppPath<String>,
) -> AppResult<StatusCode> {
    let device_id = parse_device_id(&device_id).map_err(|_| ApiError::NotFound)?;
    let user_id = user.user_id.clone();
    state
        .db
        .write(move |tx| {
            if !store::deactivate(tx, &user_id, &device_id)? {
                return Err(ApiError::NotFound);
            }
            store::refresh_user_summary(tx, &user_id, None)
        })
        .await?;
    state.auth.forget_user(&user.user_id);
    Ok(StatusCode::NO_CONTENT)
}
