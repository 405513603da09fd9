//! Shapes of the backup routes.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::store::BackupRow;
use crate::domain::Timestamp;

/// The most metadata a backup may carry (serialized JSON).
pub const MAX_METADATA: usize = 16 * 1024;

/// A JSON upload as parsed: `data` borrows from the body when it has no escapes, so a large
/// backup is not copied once more before decoding.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UploadJson<'a> {
    #[serde(borrow)]
    pub data: Cow<'a, str>,
    pub checksum: String,
    pub device_id: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

/// A JSON upload (documentation of [`UploadJson`]). The same bytes can be sent raw as
/// `application/octet-stream` with `X-Checksum-SHA256` and optional `X-Device-Id`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct BackupUpload {
    /// The backup, base64 (standard alphabet, padded).
    #[schema(format = Byte)]
    pub data: String,
    /// SHA-256 of the decoded bytes, hex.
    pub checksum: String,
    #[schema(rename = "deviceId")]
    pub device_id: Option<String>,
    /// Any JSON object the app wants kept beside the backup (at most 16 KiB).
    pub metadata: Option<serde_json::Value>,
}

/// A backup without its data.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupInfo {
    pub id: String,
    /// Bytes of the backup as uploaded.
    pub size: i64,
    /// SHA-256 hex of the backup as uploaded.
    pub checksum: String,
    pub created_at: Timestamp,
    pub device_id: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

impl From<&BackupRow> for BackupInfo {
    fn from(row: &BackupRow) -> Self {
        BackupInfo {
            id: row.id.clone(),
            size: row.size,
            checksum: row.checksum.clone(),
            created_at: row.created_at,
            device_id: row.device_id.clone(),
            metadata: row
                .metadata
                .as_deref()
                .and_then(|m| serde_json::from_str(m).ok()),
        }
    }
}

/// A backup with its data (the JSON form of a download).
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)]
pub struct BackupDownload {
    #[serde(flatten)]
    pub info: BackupInfo,
    /// The backup, base64.
    #[schema(format = Byte)]
    pub data: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupList {
    /// Newest first.
    pub items: Vec<BackupInfo>,
    pub next_cursor: Option<String>,
}

/// A SHA-256 checksum as 64 hex digits (either case); returned lower-cased.
pub fn parse_checksum(input: &str) -> Result<String, String> {
    let input = input.trim();
    if input.len() == 64 && input.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(input.to_ascii_lowercase())
    } else {
        Err("must be the SHA-256 of the data as 64 hex digits".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums() {
        let hex = "AB".repeat(32);
        assert_eq!(parse_checksum(&hex).unwrap(), "ab".repeat(32));
        assert!(parse_checksum("abc").is_err());
        assert!(parse_checksum(&"g".repeat(64)).is_err());
    }

    #[test]
    fn json_uploads_borrow_their_data() {
        let body = br#"{"data":"aGVsbG8=","checksum":"x"}"#;
        let upload: UploadJson<'_> = serde_json::from_slice(body).unwrap();
        assert!(matches!(upload.data, Cow::Borrowed("aGVsbG8=")));
        let escaped = br#"{"data":"a\/b=","checksum":"x"}"#;
        let upload: UploadJson<'_> = serde_json::from_slice(escaped).unwrap();
        assert_eq!(upload.data, "a/b=");
    }
}
