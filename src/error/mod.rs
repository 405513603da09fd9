//! The one error type of the HTTP API.
//!
//! Every failure a handler, extractor or middleware can produce is an [`ApiError`]. Turning
//! one into a response does not write the body yet: it records *what* went wrong in the
//! response extensions, and the envelope middleware (`http::middleware::error_envelope`)
//! renders SPEC section 2's `{"error": {...}}` with the request id. That middleware also gives
//! the same envelope to error responses made outside our code (unknown methods, timeouts), so
//! there is exactly one renderer.

use std::{borrow::Cow, collections::BTreeMap, time::Duration};

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// Result alias used by handlers, stores and the database helpers.
pub type AppResult<T> = Result<T, ApiError>;

mod code;
mod validate;

pub use code::Code;
pub use validate::{Field, Fields, Invalid, field, validate};

/// Field name → human messages, the `details` of a 422 `validation_failed`.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed JSON, a bad query string or path parameter.
    #[error("{0}")]
    BadRequest(Cow<'static, str>),
    /// 401 with a specific code (`unauthorized`, `token_expired`, `invalid_credentials`, …).
    #[error("{message}")]
    Unauthorized {
        code: Code,
        message: Cow<'static, str>,
    },
    /// 403 with a specific code (`forbidden`, `account_disabled`).
    #[error("{message}")]
    Forbidden {
        code: Code,
        message: Cow<'static, str>,
    },
    /// 404: unknown route, or a resource that does not exist *for this caller*.
    #[error("not found")]
    NotFound,
    /// 405: the path exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: uniqueness or version conflict; `details` may carry the stored state.
    #[error("{message}")]
    Conflict {
        code: Code,
        message: Cow<'static, str>,
        details: Option<Value>,
    },
    /// 413: the body is larger than the route accepts.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 415: the body is not in a content type the route reads.
    #[error("{0}")]
    UnsupportedMediaType(Cow<'static, str>),
    /// 422 `validation_failed`: well-formed input with invalid fields.
    #[error("invalid: {}", describe_fields(.0))]
    Validation(FieldErrors),
    /// 422 with a specific code (`checksum_mismatch`, `model_not_allowed`, …).
    #[error("{message}")]
    Unprocessable {
        code: Code,
        message: Cow<'static, str>,
    },
    /// 429 (`rate_limited`, `quota_exceeded`), answered with `Retry-After`.
    #[error("{message}")]
    TooManyRequests {
        code: Code,
        message: Cow<'static, str>,
        retry_after: Duration,
    },
    /// 502 / 503 / 504 from an upstream or a missing dependency, with a safe message.
    #[error("{message}")]
    Service {
        status: StatusCode,
        code: Code,
        message: Cow<'static, str>,
    },
    /// 500: a bug or an unexpected failure. The cause is logged, never sent.
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

/// `email: is not a valid email address; password: must be …` (for the CLI and logs).
fn describe_fields(fields: &FieldErrors) -> String {
    fields
        .iter()
        .map(|(field, messages)| format!("{field} {}", messages.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ApiError {
    /// A 422 `validation_failed` for one field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut fields = FieldErrors::new();
        fields.insert(field.into(), vec![message.into()]);
        ApiError::Validation(fields)
    }

    /// 503 `unavailable`: the database (or another local dependency) cannot serve now.
    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::Service {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: Code::Unavailable,
            message: message.into(),
        }
    }

    /// 401 `unauthorized` with a sentence saying what to do.
    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::Unauthorized {
            code: Code::Unauthorized,
            message: message.into(),
        }
    }

    /// 401 `invalid_credentials`: the same answer for an unknown email and a wrong password.
    pub fn invalid_credentials() -> Self {
        ApiError::Unauthorized {
            code: Code::InvalidCredentials,
            message: "The email or password is wrong.".into(),
        }
    }

    /// 403 `account_disabled`.
    pub fn account_disabled() -> Self {
        ApiError::Forbidden {
            code: Code::AccountDisabled,
            message: "This account is disabled.".into(),
        }
    }

    /// 403 `forbidden`: signed in, but this needs an administrator.
    pub fn admin_only() -> Self {
        ApiError::Forbidden {
            code: Code::Forbidden,
            message: "This needs an administrator.".into(),
        }
    }

    /// 429 `rate_limited` with `Retry-After`.
    pub fn rate_limited(message: impl Into<Cow<'static, str>>, retry_after: Duration) -> Self {
        ApiError::TooManyRequests {
            code: Code::RateLimited,
            message: message.into(),
            retry_after,
        }
    }

    /// 409 with `code` and no details.
    pub fn conflict(code: Code, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::Conflict {
            code,
            message: message.into(),
            details: None,
        }
    }

    /// Wraps any error as a 500 whose cause is logged, never sent.
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(err.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) | ApiError::Unprocessable { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Service { status, .. } => *status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The public part: stable code, human message and optional details.
    fn public(&self) -> ErrorInfo {
        let (code, message, details): (Code, Cow<'static, str>, Option<Value>) = match self {
            ApiError::BadRequest(m) => (Code::BadRequest, m.clone(), None),
            ApiError::Unauthorized { code, message }
            | ApiError::Forbidden { code, message }
            | ApiError::Unprocessable { code, message }
            | ApiError::TooManyRequests { code, message, .. }
            | ApiError::Service { code, message, .. } => (*code, message.clone(), None),
            ApiError::Conflict {
                code,
                message,
                details,
            } => (*code, message.clone(), details.clone()),
            ApiError::Validation(fields) => (
                Code::ValidationFailed,
                "Some fields are invalid.".into(),
                serde_json::to_value(fields).ok(),
            ),
            ApiError::UnsupportedMediaType(m) => (Code::UnsupportedMediaType, m.clone(), None),
            other => return ErrorInfo::for_status(other.status()),
        };
        ErrorInfo {
            code,
            message,
            details,
        }
    }
}

/// What the envelope middleware needs to render an error body. Travels in the response
/// extensions from [`ApiError::into_response`] (or is derived from a bare status).
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    pub code: Code,
    pub message: Cow<'static, str>,
    pub details: Option<Value>,
}

impl ErrorInfo {
    /// The envelope for an error response that did not come from an [`ApiError`]: a status
    /// set by axum or a tower layer (405, 408, 413, a timeout, …).
    pub fn for_status(status: StatusCode) -> Self {
        let (code, message) = match status {
            StatusCode::BAD_REQUEST => (Code::BadRequest, "The request is malformed."),
            StatusCode::UNAUTHORIZED => (Code::Unauthorized, "Authentication is required."),
            StatusCode::FORBIDDEN => (Code::Forbidden, "You are not allowed to do this."),
            StatusCode::NOT_FOUND => (Code::NotFound, "The requested resource was not found."),
            StatusCode::METHOD_NOT_ALLOWED => (
                Code::MethodNotAllowed,
                "This method is not allowed on this path.",
            ),
            StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => (
                Code::RequestTimeout,
                "The request took too long and was stopped.",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => {
                (Code::PayloadTooLarge, "The request body is too large.")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                Code::UnsupportedMediaType,
                "The request body has an unsupported content type.",
            ),
            StatusCode::TOO_MANY_REQUESTS => (Code::RateLimited, "Too many requests."),
            StatusCode::SERVICE_UNAVAILABLE => {
                (Code::Unavailable, "The service is temporarily unavailable.")
            }
            s if s.is_server_error() => (Code::Internal, "An internal error occurred."),
            _ => (Code::Error, "The request failed."),
        };
        ErrorInfo {
            code,
            message: message.into(),
            details: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(err) = &self {
            // Logged inside the request span, which carries the request id.
            tracing::error!(error = format!("{err:#}"), "internal error");
        }
        let mut response = status.into_response();
        if let ApiError::TooManyRequests { retry_after, .. } = &self {
            let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(self.public());
        response
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(err: rusqlite::Error) -> Self {
        ApiError::Internal(anyhow::Error::new(err).context("database error"))
    }
}

/// The error envelope as documented in the OpenAPI document.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorObject,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorObject {
    /// Stable snake_case code, e.g. `not_found`, `validation_failed`.
    pub code: String,
    /// A human sentence; safe to show, never internals.
    pub message: String,
    /// Extra structured data: for `validation_failed`, field → messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// The request id, also in the `X-Request-Id` header.
    pub request_id: String,
}

impl ErrorBody {
    pub fn new(info: ErrorInfo, request_id: String) -> Self {
        ErrorBody {
            error: ErrorObject {
                code: info.code.as_str().to_owned(),
                message: info.message.into_owned(),
                details: info.details,
                request_id,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_say_nothing_about_their_cause() {
        let err = ApiError::internal(anyhow::anyhow!("SELECT * FROM users failed at /srv/x"));
        let info = err.public();
        assert_eq!(info.code, Code::Internal);
        assert!(!info.message.contains("SELECT"));
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn rate_limits_carry_retry_after_in_whole_seconds() {
        let response =
            ApiError::rate_limited("slow down", Duration::from_millis(1500)).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(
            response.extensions().get::<ErrorInfo>().unwrap().code,
            Code::RateLimited
        );
    }

    #[test]
    fn validation_details_map_fields_to_messages() {
        let info = ApiError::invalid_field("email", "is not an email address").public();
        assert_eq!(info.code, Code::ValidationFailed);
        assert_eq!(
            info.details.unwrap(),
            serde_json::json!({"email": ["is not an email address"]})
        );
    }
}
