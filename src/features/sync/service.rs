//! The sync rules behind the handlers: a report may not move a device backwards or fork it
//! at the same version (409 `sync_conflict` with the stored state); every change keeps the
//! user's `lastSyncAt` and `deviceCount` in the same transaction. A user has at most
//! `sync.max_devices` active devices (422 for one more); the count is a column kept in step
//! by each write, checked only when a device appears or comes back.

use super::{
    store::{self, DeviceRow, Report},
    types::{Device, Standing, standing},
};
use crate::{
    app::App,
    domain::{DeviceId, Timestamp},
    error::{ApiError, AppResult, Code},
};

/// A device's report, already validated.
pub struct StatusReport {
    pub device_id: DeviceId,
    pub sync_version: i64,
    pub data_hash: String,
    pub device_name: Option<String>,
    pub platform: Option<String>,
}

/// The conflict rule: a lower version, or the same version with another hash, is refused.
fn conflicts(stored: &DeviceRow, version: i64, hash: &str) -> bool {
    version < stored.sync_version || (version == stored.sync_version && hash != stored.data_hash)
}

/// Records where a device stands; 409 `sync_conflict` (with the stored state) when the
/// report would move it backwards or fork it.
pub async fn report(app: &App, user_id: &str, report: StatusReport) -> AppResult<DeviceRow> {
    let owner = user_id.to_owned();
    let max_devices = app.config.sync.max_devices;
    let row = app
        .db
        .write(move |tx| {
            let device_id = report.device_id.as_str();
            let stored = store::device(tx, &owner, device_id)?;
            if let Some(stored) = &stored
                && conflicts(stored, report.sync_version, &report.data_hash)
            {
                return Err(ApiError::Conflict {
                    code: Code::SyncConflict,
                    message: "The server holds a newer or different state for this device.".into(),
                    details: serde_json::to_value(Device::from(stored.clone())).ok(),
                });
            }
            // A device that appears (or comes back) takes a place among the active ones.
            let joins = stored.as_ref().is_none_or(|s| !s.is_active);
            if joins {
                if store::active_count(tx, &owner)? >= i64::from(max_devices) {
                    return Err(ApiError::invalid_field(
                        "deviceId",
                        format!(
                            "this account already has {max_devices} active devices; \
                             deactivate one first (DELETE /sync/devices/{{id}})"
                        ),
                    ));
                }
                if stored.is_none() {
                    store::make_room(tx, &owner, max_devices)?;
                }
            }
            let now = Timestamp::now();
            store::upsert(
                tx,
                &Report {
                    user_id: &owner,
                    device_id,
                    device_name: report.device_name.as_deref(),
                    platform: report.platform.as_deref(),
                    sync_version: report.sync_version,
                    data_hash: &report.data_hash,
                    now,
                },
            )?;
            store::update_user_summary(tx, &owner, i64::from(joins), Some(now))?;
            store::device(tx, &owner, device_id)?.ok_or(ApiError::NotFound)
        })
        .await?;
    // lastSyncAt and deviceCount changed.
    app.auth.forget_user(user_id);
    Ok(row)
}

/// Every device of the user, most recently synced first.
pub async fn devices(app: &App, user_id: &str) -> AppResult<Vec<DeviceRow>> {
    let owner = user_id.to_owned();
    app.db.read(move |conn| store::devices(conn, &owner)).await
}

/// One device of the user; 404 when there is none.
pub async fn device(app: &App, user_id: &str, device_id: DeviceId) -> AppResult<DeviceRow> {
    let owner = user_id.to_owned();
    app.db
        .read(move |conn| store::device(conn, &owner, device_id.as_str()))
        .await?
        .ok_or(ApiError::NotFound)
}

/// Where `(version, hash)` stands against the user's latest active device.
pub async fn validate(
    app: &App,
    user_id: &str,
    version: i64,
    hash: String,
) -> AppResult<(Standing, Option<DeviceRow>)> {
    let owner = user_id.to_owned();
    let latest = app
        .db
        .read(move |conn| store::latest_active(conn, &owner))
        .await?;
    Ok((standing(version, &hash, latest.as_ref()), latest))
}

/// Deactivates a device (404 when the user has none of that id).
pub async fn deactivate(app: &App, user_id: &str, device_id: DeviceId) -> AppResult<()> {
    let owner = user_id.to_owned();
    app.db
        .write(move |tx| {
            let was_active = store::device(tx, &owner, device_id.as_str())?
                .ok_or(ApiError::NotFound)?
                .is_active;
            store::deactivate(tx, &owner, device_id.as_str())?;
            store::update_user_summary(tx, &owner, -i64::from(was_active), None)
        })
        .await?;
    app.auth.forget_user(user_id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_backwards_or_forked_reports_conflict() {
        let stored = DeviceRow {
            device_id: "d".into(),
            device_name: None,
            platform: None,
            sync_version: 5,
            data_hash: "aa".into(),
            is_active: true,
            created_at: Timestamp::from_unix(0),
            last_sync_at: Timestamp::from_unix(0),
        };
        assert!(conflicts(&stored, 4, "aa"));
        assert!(conflicts(&stored, 5, "bb"));
        assert!(!conflicts(&stored, 5, "aa"));
        assert!(!conflicts(&stored, 6, "zz"));
    }
}
