//! Request and response shapes of `/sync`, and the rules for their fields.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::store::DeviceRow;
use crate::domain::Timestamp;

/// `dataHash`: 1..128 characters of hex or base64 (standard or URL-safe, padding allowed).
pub fn parse_data_hash(input: &str) -> Result<String, String> {
    let ok = (1..=128).contains(&input.len())
        && input
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'='));
    if ok {
        Ok(input.to_owned())
    } else {
        Err("must be 1 to 128 characters of hex or base64".into())
    }
}

/// `syncVersion`: a whole number from 0 to 2^53 - 1 (what every JSON client can represent).
pub fn parse_sync_version(input: i64) -> Result<i64, String> {
    const MAX: i64 = (1 << 53) - 1;
    if (0..=MAX).contains(&input) {
        Ok(input)
    } else {
        Err("must be a whole number from 0 to 9007199254740991".into())
    }
}

/// Optional free text (device name, platform): trimmed, control characters dropped, at most
/// `max` characters; empty means absent.
pub fn parse_label(input: Option<&str>, max: usize) -> Result<Option<String>, String> {
    let Some(text) = input.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    Ok(Some(text.chars().filter(|c| !c.is_control()).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub device_id: String,
    #[schema(minimum = 0, maximum = 9007199254740991_i64)]
    pub sync_version: i64,
    pub data_hash: String,
    pub device_name: Option<String>,
    /// Free text such as `android`, `ios`, `web`.
    pub platform: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidateRequest {
    pub device_id: String,
    pub sync_version: i64,
    pub data_hash: String,
}

/// One device's sync state.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub device_id: String,
    pub device_name: Option<String>,
    pub platform: Option<String>,
    pub sync_version: i64,
    pub data_hash: String,
    pub last_sync_at: Timestamp,
    pub created_at: Timestamp,
    pub is_active: bool,
}

impl From<DeviceRow> for Device {
    fn from(row: DeviceRow) -> Self {
        Device {
            device_id: row.device_id,
            device_name: row.device_name,
            platform: row.platform,
            sync_version: row.sync_version,
            data_hash: row.data_hash,
            last_sync_at: row.last_sync_at,
            created_at: row.created_at,
            is_active: row.is_active,
        }
    }
}

/// A device's row, with the server epoch.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceResponse {
    #[serde(flatten)]
    pub device: Device,
    pub server_epoch: String,
}

/// Where the user's active devices stand together.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncSummary {
    /// Active devices.
    pub device_count: usize,
    /// The highest `syncVersion` among active devices (`null` when there are none).
    pub latest_version: Option<i64>,
    /// Every active device reports the same version and hash.
    pub all_in_sync: bool,
    pub last_sync_at: Option<Timestamp>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusList {
    /// Every device of the user, active or not, most recently synced first.
    pub devices: Vec<Device>,
    pub summary: SyncSummary,
    pub server_epoch: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// Same version and hash as the latest active device.
    InSync,
    /// Older than the latest: download.
    Behind,
    /// Newer than every active device (or none exists): upload.
    Ahead,
    /// Same version as the latest, different data: a fork the app must resolve.
    Diverged,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidateResponse {
    pub status: Standing,
    /// The active device with the highest version (most recent on ties), if any.
    pub latest: Option<Device>,
    pub server_epoch: String,
}

/// Where a device with `(version, hash)` stands against the latest active device.
pub fn standing(version: i64, hash: &str, latest: Option<&DeviceRow>) -> Standing {
    match latest {
        None => Standing::Ahead,
        Some(l) if version > l.sync_version => Standing::Ahead,
        Some(l) if version < l.sync_version => Standing::Behind,
        Some(l) if l.data_hash == hash => Standing::InSync,
        Some(_) => Standing::Diverged,
    }
}

/// The summary of a user's devices.
pub fn summarize(devices: &[DeviceRow]) -> SyncSummary {
    let active: Vec<&DeviceRow> = devices.iter().filter(|d| d.is_active).collect();
    let first = active.first();
    SyncSummary {
        device_count: active.len(),
        latest_version: active.iter().map(|d| d.sync_version).max(),
        all_in_sync: first.is_some_and(|f| {
            active
                .iter()
                .all(|d| d.sync_version == f.sync_version && d.data_hash == f.data_hash)
        }),
        last_sync_at: devices.iter().map(|d| d.last_sync_at).max(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(version: i64, hash: &str, active: bool) -> DeviceRow {
        DeviceRow {
            device_id: format!("d{version}{hash}"),
            device_name: None,
            platform: None,
            sync_version: version,
            data_hash: hash.into(),
            is_active: active,
            created_at: Timestamp::from_unix(0),
            last_sync_at: Timestamp::from_unix(version),
        }
    }

    #[test]
    fn data_hashes_and_versions() {
        assert!(parse_data_hash("deadBEEF09").is_ok());
        assert!(parse_data_hash("q83vEjRWeJA=").is_ok());
        assert!(parse_data_hash("a-_b").is_ok());
        for bad in ["", "has space", "ü", &"a".repeat(129)] {
            assert!(parse_data_hash(bad).is_err(), "{bad}");
        }
        assert!(parse_sync_version(-1).is_err());
        assert!(parse_sync_version(1 << 53).is_err());
        assert_eq!(parse_sync_version(0), Ok(0));
    }

    #[test]
    fn standing_against_the_latest_device() {
        let latest = row(5, "aa", true);
        assert_eq!(standing(5, "aa", Some(&latest)), Standing::InSync);
        assert_eq!(standing(4, "aa", Some(&latest)), Standing::Behind);
        assert_eq!(standing(6, "bb", Some(&latest)), Standing::Ahead);
        assert_eq!(standing(5, "bb", Some(&latest)), Standing::Diverged);
        assert_eq!(standing(0, "aa", None), Standing::Ahead);
    }

    #[test]
    fn summary_counts_only_active_devices() {
        let devices = [row(3, "aa", true), row(3, "aa", true), row(9, "zz", false)];
        let summary = summarize(&devices);
        assert_eq!(summary.device_count, 2);
        assert_eq!(summary.latest_version, Some(3));
        assert!(summary.all_in_sync);
        let devices = [row(3, "aa", true), row(4, "bb", true)];
        assert!(!summarize(&devices).all_in_sync);
        let none = summarize(&[]);
        assert_eq!((none.device_count, none.latest_version), (0, None));
        assert!(!none.all_in_sync);
    }
}
