//! Extractors whose rejections are [`ApiError`]s, so bad input gets our envelope and the
//! precise status: 400 for malformed JSON or query strings, 415 for a wrong content type,
//! 413 for a body over the limit, 422 (with the field) for well-formed JSON of the wrong shape.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request, rejection::BytesRejection},
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::error::ApiError;

/// JSON body in, JSON body out.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<T, S> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::UnsupportedMediaType(
                "Expected a body with Content-Type: application/json.".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        parse_json(&bytes).map(AppJson)
    }
}

/// What axum's `Json` answers, with room made up front: the body starts at 256 bytes (axum's
/// 128 grows twice for a typical answer) and the header map has room for the nine or so
/// headers the middleware adds (one that starts at six entries is rehashed into a larger
/// one on the way out).
impl<T: Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(256);
        if let Err(err) = serde_json::to_writer(&mut body, &self.0) {
            return ApiError::internal(err).into_response();
        }
        json_response(body)
    }
}

/// A JSON answer whose body is already encoded (`AppJson`'s, or a provider's answer passed
/// on as it came).
pub fn json_response(body: impl Into<axum::body::Body>) -> Response {
    let mut headers = axum::http::HeaderMap::with_capacity(12);
    const JSON: axum::http::HeaderValue = axum::http::HeaderValue::from_static("application/json");
    headers.insert(header::CONTENT_TYPE, JSON);
    let mut response = Response::new(body.into());
    *response.headers_mut() = headers;
    response
}

/// Deserializes JSON, telling a syntax error (400) from a shape error (422 with the path of
/// the offending field).
pub fn parse_json<'de, T: serde::Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, ApiError> {
    // A body of the right shape is read once, without tracking where the reader is: the
    // tracking wraps every value read (4,600 of a JSON chat call's 238,000 instructions,
    // `bench/instructions-ai`). Only a body that fails is read again, tracked, to name the
    // offending field.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = match serde_path_to_error::deserialize(&mut de) {
        Ok(value) => value,
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            return Err(match inner.classify() {
                serde_json::error::Category::Data => {
                    let field = if path == "." { "body".to_owned() } else { path };
                    ApiError::invalid_field(field, strip_position(&inner.to_string()))
                }
                _ => ApiError::BadRequest(
                    format!(
                        "The body is not valid JSON: {}",
                        strip_position(&inner.to_string())
                    )
                    .into(),
                ),
            });
        }
    };
    de.end().map_err(|_| {
        ApiError::BadRequest("The body has trailing characters after the JSON value.".into())
    })?;
    Ok(value)
}

/// serde_json appends " at line 1 column 12"; useful for syntax errors, noise for fields.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// The media type of a `Content-Type` value, lower-cased, without parameters.
fn essence(content_type: Option<&axum::http::HeaderValue>) -> Option<String> {
    let value = content_type?.to_str().ok()?;
    Some(value.split(';').next()?.trim().to_ascii_lowercase())
}

pub fn is_json(content_type: Option<&axum::http::HeaderValue>) -> bool {
    essence(content_type).is_some_and(|essence| {
        essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json"))
    })
}

pub fn is_octet_stream(content_type: Option<&axum::http::HeaderValue>) -> bool {
    essence(content_type).is_some_and(|essence| essence == "application/octet-stream")
}

/// A body that could not be read: over the limit (413) or cut off (400).
pub fn body_error(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::BadRequest("The request body could not be read.".into())
    }
}

/// Reads a body of at most `limit` bytes chunk by chunk, handing each chunk to `inspect`
/// (to hash it as it arrives). A declared `Content-Length` over the limit is refused before
/// anything is read, and a body that grows past it is refused as soon as it does: 413 never
/// waits for the whole body.
pub async fn read_limited(
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
    limit: usize,
    mut inspect: impl FnMut(&[u8]),
) -> Result<Vec<u8>, ApiError> {
    use http_body_util::BodyExt;

    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    // Room for the tag the backup encryption appends in place, so it never reallocates.
    let mut bytes = Vec::with_capacity(declared.map_or(64 * 1024, |n| n as usize) + 16);
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|_| ApiError::BadRequest("The request body could not be read.".into()))?;
        if let Ok(chunk) = frame.into_data() {
            if bytes.len() + chunk.len() > limit {
                return Err(ApiError::PayloadTooLarge);
            }
            inspect(&chunk);
            bytes.extend_from_slice(&chunk);
        }
    }
    Ok(bytes)
}

/// `?limit=&cursor=` of a list (SPEC section 2): `limit` 1..100 (default 20), `cursor` the
/// opaque `nextCursor` of the previous page.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The page size; 422 outside 1..=100.
    pub fn limit(&self) -> Result<u32, ApiError> {
        match self.limit {
            None => Ok(20),
            Some(n @ 1..=100) => Ok(n),
            Some(_) => Err(ApiError::invalid_field("limit", "must be from 1 to 100")),
        }
    }

    /// The sort key the cursor carries (see [`crate::domain::Cursor`]); `None` on the first
    /// page, 400 when the cursor was not made by us for this list.
    pub fn after<K: DeserializeOwned>(&self) -> Result<Option<K>, ApiError> {
        match &self.cursor {
            None => Ok(None),
            Some(cursor) => crate::domain::Cursor::decode(cursor)
                .map(Some)
                .ok_or_else(|| ApiError::BadRequest("The cursor is invalid.".into())),
        }
    }
}

/// Query string, 400 when it does not parse.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for AppQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(AppQuery)
            .map_err(|err| ApiError::BadRequest(format!("Invalid query string: {err}").into()))
    }
}

/// Path parameters, 400 when they do not parse.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppPath<T>(pub T);

impl<T, S> FromRequestParts<S> for AppPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| AppPath(value))
            .map_err(|err| {
                ApiError::BadRequest(format!("Invalid path: {}", err.body_text()).into())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Login {
        email: String,
        age: u32,
    }

    #[test]
    fn syntax_errors_are_400_and_shape_errors_name_the_field() {
        assert!(matches!(
            parse_json::<Login>(b"{\"email\":"),
            Err(ApiError::BadRequest(_))
        ));
        match parse_json::<Login>(br#"{"email":"a@b.c","age":"x"}"#) {
            Err(ApiError::Validation(fields)) => assert!(fields.contains_key("age"), "{fields:?}"),
            other => panic!("unexpected {other:?}"),
        }
        match parse_json::<Login>(br#"{"age":3}"#) {
            Err(ApiError::Validation(fields)) => {
                assert!(fields["body"][0].contains("email"), "{fields:?}")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn json_content_types() {
        let ok = |v: &str| is_json(Some(&axum::http::HeaderValue::from_str(v).unwrap()));
        assert!(ok("application/json"));
        assert!(ok("application/json; charset=utf-8"));
        assert!(ok("application/merge-patch+json"));
        assert!(!ok("text/plain"));
        assert!(!is_json(None));
    }
}
