//! `/sync/backup*` handlers: bodies in two forms (JSON with base64, or raw bytes), downloads
//! in either form by content negotiation.

use axum::{
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{
    Engine, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use sha2::{Digest, Sha256};

use super::{
    body,
    download::{self, Which},
    service::{self, Upload},
    transfers::Transfers,
    types::*,
};
use crate::{
    app::AppState,
    auth::AuthUser,
    db::run_blocking,
    domain::{Cursor, DeviceId, parse_uuid},
    error::{ApiError, AppResult, ErrorBody, validate},
    http::{
        NoCompression,
        extract::{
            AppJson, AppPath, AppQuery, PageQuery, is_json, is_octet_stream, parse_json,
            read_limited,
        },
    },
};

const CHECKSUM_HEADER: &str = "x-checksum-sha256";
const DEVICE_HEADER: &str = "x-device-id";

/// Standard base64, with or without padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Upload a backup: JSON `{data (base64), checksum, deviceId?, metadata?}`, or the raw bytes
/// as `application/octet-stream` with `X-Checksum-SHA256` (and optional `X-Device-Id`).
///
/// The checksum is verified (422 `checksum_mismatch`), the bytes are encrypted at rest, and
/// only the newest `backups.retain` backups of the user are kept. A body over
/// `backups.max_size` is refused with 413 as soon as that is known.
#[utoipa::path(post, path = "/sync/backup", tag = "backups", security(("bearer" = [])),
    request_body(content(
        (BackupUpload = "application/json"),
        (Vec<u8> = "application/octet-stream"),
    )),
    params(
        ("X-Checksum-SHA256" = Option<String>, Header, description = "SHA-256 hex of a raw body"),
        ("X-Device-Id" = Option<String>, Header, description = "the uploading device, for a raw body"),
    ),
    responses(
        (status = 201, body = BackupInfo),
        (status = 413, description = "`payload_too_large`: over `backups.max_size`", body = ErrorBody),
        (status = 415, description = "neither JSON nor application/octet-stream", body = ErrorBody),
        (status = 422, description = "`checksum_mismatch`, or a raw body without `X-Checksum-SHA256`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: `backups.max_transfers` uploads and downloads of this user are running", body = ErrorBody),
    ))]
pub async fn upload(
    State(state): State<AppState>,
    user: AuthUser,
    request: Request,
) -> AppResult<(StatusCode, AppJson<BackupInfo>)> {
    // Taken before a byte of the body is read.
    let _transfer = state.part::<Transfers>()?.begin(&user.user_id)?;
    let (parts, body) = request.into_parts();
    let max = state.config.backups.max_size.as_u64() as usize;
    let content_type = parts.headers.get(header::CONTENT_TYPE);
    let upload = if is_json(content_type) {
        // Base64 grows the data by a third; the other fields are small.
        let limit = max.div_ceil(3) * 4 + MAX_METADATA + 4096;
        let bytes = read_limited(&parts.headers, body, limit, |_| {}).await?;
        run_blocking(move || parse_json_upload(&bytes, max)).await?
    } else if is_octet_stream(content_type) {
        // Check the headers before reading a byte of the body.
        let (checksum, device_id) = validate((
            (
                "X-Checksum-SHA256",
                header_text(&parts.headers, CHECKSUM_HEADER)
                    .ok_or_else(|| "is required for a raw upload".to_owned())
                    .and_then(parse_checksum),
            ),
            (
                "X-Device-Id",
                header_text(&parts.headers, DEVICE_HEADER)
                    .map(DeviceId::parse)
                    .transpose(),
            ),
        ))?;
        let mut hasher = Sha256::new();
        let data = read_limited(&parts.headers, body, max, |chunk| hasher.update(chunk)).await?;
        Upload {
            data,
            checksum,
            computed: Some(hasher.finalize().into()),
            device_id,
            metadata: None,
        }
    } else {
        return Err(ApiError::UnsupportedMediaType(
            "Send a backup as application/json or application/octet-stream.".into(),
        ));
    };
    let row = service::store(&state, &user.user_id, upload).await?;
    Ok((StatusCode::CREATED, AppJson(BackupInfo::from(&row))))
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"))
}

/// Parses and checks a JSON upload and decodes its data (blocking: large bodies).
fn parse_json_upload(bytes: &[u8], max: usize) -> AppResult<Upload> {
    let json: UploadJson<'_> = parse_json(bytes)?;
    if json.data.len() / 4 * 3 > max + 3 {
        return Err(ApiError::PayloadTooLarge);
    }
    let (checksum, device_id, metadata, mut data) = validate((
        ("checksum", parse_checksum(&json.checksum)),
        (
            "deviceId",
            json.device_id.as_deref().map(DeviceId::parse).transpose(),
        ),
        (
            "metadata",
            json.metadata
                .as_ref()
                .map(|m| {
                    let text = m.to_string();
                    if text.len() > MAX_METADATA {
                        Err(format!("must be at most {MAX_METADATA} bytes of JSON"))
                    } else {
                        Ok(text)
                    }
                })
                .transpose(),
        ),
        (
            "data",
            BASE64
                .decode(json.data.as_bytes())
                .map_err(|_| "must be base64 (standard alphabet)".to_owned()),
        ),
    ))?;
    if data.len() > max {
        return Err(ApiError::PayloadTooLarge);
    }
    data.reserve_exact(16);
    Ok(Upload {
        data,
        checksum,
        computed: None,
        device_id,
        metadata,
    })
}

/// The newest backup, as JSON or (with `Accept: application/octet-stream`) as raw bytes with
/// `X-Checksum-SHA256`.
#[utoipa::path(get, path = "/sync/backup/latest", tag = "backups", security(("bearer" = [])),
    responses(
        (status = 200, content(
            (BackupDownload = "application/json"),
            (Vec<u8> = "application/octet-stream"),
        )),
        (status = 404, description = "no backup yet", body = ErrorBody),
        (status = 429, description = "`rate_limited`: `backups.max_transfers` uploads and downloads of this user are running", body = ErrorBody),
    ))]
pub async fn latest(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
) -> AppResult<Response> {
    download(&state, &user, Which::Latest, &headers).await
}

/// One backup, as JSON or raw bytes (see `/sync/backup/latest`).
#[utoipa::path(get, path = "/sync/backup/{id}", tag = "backups", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses(
        (status = 200, content(
            (BackupDownload = "application/json"),
            (Vec<u8> = "application/octet-stream"),
        )),
        (status = 429, description = "`rate_limited`: `backups.max_transfers` uploads and downloads of this user are running", body = ErrorBody),
    ))]
pub async fn by_id(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<String>,
    headers: HeaderMap,
) -> AppResult<Response> {
    let id = parse_backup_id(&id)?;
    download(&state, &user, Which::Id(id), &headers).await
}

/// A backup id is a UUID; anything else cannot exist (404, like someone else's id).
fn parse_backup_id(id: &str) -> AppResult<String> {
    parse_uuid(id).ok_or(ApiError::NotFound)
}

fn wants_raw(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/octet-stream"))
        })
}

/// Streams the backup: the row and its first chunk are read before the answer (404, 500),
/// the rest chunk by chunk while it is sent (see `download.rs`). The transfer slot is held
/// until the body is sent or dropped.
async fn download(
    state: &AppState,
    user: &AuthUser,
    which: Which,
    headers: &HeaderMap,
) -> AppResult<Response> {
    let transfer = state.part::<Transfers>()?.begin(&user.user_id)?;
    let (row, download) = download::start(state, &user.user_id, which).await?;
    let checksum = HeaderValue::from_str(&row.checksum).map_err(ApiError::internal)?;
    let size = u64::try_from(row.size).map_err(ApiError::internal)?;
    let (body, length, content_type) = if wants_raw(headers) {
        let body = body::raw(download, size, transfer);
        (body, size, "application/octet-stream")
    } else {
        let info = serde_json::to_vec(&BackupInfo::from(&row)).map_err(ApiError::internal)?;
        let (body, length) = body::json(download, size, &info, transfer)?;
        (body, length, "application/json")
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Said outright: layers around the body need not keep its size hint, and hyper frames
    // an unknown-length body by this header.
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(CHECKSUM_HEADER, checksum);
    // Base64 or an app's ciphertext gains nothing from compression (and the raw form is
    // excluded by its content type anyway).
    response.extensions_mut().insert(NoCompression);
    Ok(response)
}

/// The user's backups, newest first, without their data.
#[utoipa::path(get, path = "/sync/backups", tag = "backups", security(("bearer" = [])),
    params(PageQuery),
    responses((status = 200, body = BackupList)))]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    AppQuery(query): AppQuery<PageQuery>,
) -> AppResult<AppJson<BackupList>> {
    let limit = query.limit()?;
    let before = query.after::<(i64,)>()?.map(|(seq,)| seq);
    let mut rows = service::page(&state, &user.user_id, before, limit + 1).await?;
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|r| Cursor::encode(&(r.seq,)))
    } else {
        None
    };
    Ok(AppJson(BackupList {
        items: rows.iter().map(BackupInfo::from).collect(),
        next_cursor,
    }))
}

/// Delete one of the user's backups.
#[utoipa::path(delete, path = "/sync/backup/{id}", tag = "backups", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 204)))]
pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    AppPath(id): AppPath<String>,
) -> AppResult<StatusCode> {
    let id = parse_backup_id(&id)?;
    service::delete(&state, &user.user_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
