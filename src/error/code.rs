//! Every error code the API answers with (SPEC section 2), in one place.

/// Every error code the API answers with, in one place (SPEC section 2). Clients branch on
/// these strings; they never change once published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BadRequest,
    Unauthorized,
    TokenExpired,
    TokenReused,
    InvalidCredentials,
    InvalidToken,
    Forbidden,
    AccountDisabled,
    NotFound,
    MethodNotAllowed,
    EmailTaken,
    SyncConflict,
    AlreadyExists,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    ChecksumMismatch,
    ModelNotAllowed,
    RateLimited,
    QuotaExceeded,
    Internal,
    UpstreamError,
    UpstreamInvalidOutput,
    AiNotConfigured,
    Unavailable,
    UpstreamTimeout,
    UpstreamRateLimited,
    RequestTimeout,
    Error,
}

impl Code {
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::BadRequest => "bad_request",
            Code::Unauthorized => "unauthorized",
            Code::TokenExpired => "token_expired",
            Code::TokenReused => "token_reused",
            Code::InvalidCredentials => "invalid_credentials",
            Code::InvalidToken => "invalid_token",
            Code::Forbidden => "forbidden",
            Code::AccountDisabled => "account_disabled",
            Code::NotFound => "not_found",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::EmailTaken => "email_taken",
            Code::SyncConflict => "sync_conflict",
            Code::AlreadyExists => "already_exists",
            Code::PayloadTooLarge => "payload_too_large",
            Code::UnsupportedMediaType => "unsupported_media_type",
            Code::ValidationFailed => "validation_failed",
            Code::ChecksumMismatch => "checksum_mismatch",
            Code::ModelNotAllowed => "model_not_allowed",
            Code::RateLimited => "rate_limited",
            Code::QuotaExceeded => "quota_exceeded",
            Code::Internal => "internal",
            Code::UpstreamError => "upstream_error",
            Code::UpstreamInvalidOutput => "upstream_invalid_output",
            Code::AiNotConfigured => "ai_not_configured",
            Code::Unavailable => "unavailable",
            Code::UpstreamTimeout => "upstream_timeout",
            Code::UpstreamRateLimited => "upstream_rate_limited",
            Code::RequestTimeout => "request_timeout",
            Code::Error => "error",
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
