//! The pieces of the middleware stack that are ours: request-id hygiene, the tracing span,
//! the error envelope and the panic response. The rest comes from tower-http.

use std::{any::Any, time::Duration};

use axum::{
    Extension,
    body::Body,
    extract::Request,
    http::{HeaderValue, Response, StatusCode, header},
    middleware::Next,
    response::IntoResponse,
};
use tower_http::{
    classify::{ServerErrorsAsFailures, SharedClassifier},
    request_id::RequestId,
    trace::{OnResponse, TraceLayer},
};
use tracing::Span;

use super::REQUEST_ID;
use crate::{
    app::AppState,
    error::{ErrorBody, ErrorInfo},
};

/// A client's `X-Request-Id` is echoed only when it is short and plain (letters, digits and
/// `._:-`); anything else is dropped and a fresh id is made, so a hostile id cannot inject
/// text into logs or responses.
pub fn drop_unsafe_request_id<B>(mut req: axum::http::Request<B>) -> axum::http::Request<B> {
    let safe = req.headers().get(&REQUEST_ID).is_none_or(|value| {
        let bytes = value.as_bytes();
        (1..=128).contains(&bytes.len())
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    });
    if !safe {
        req.headers_mut().remove(&REQUEST_ID);
    }
    req
}

fn request_id_of<B>(req: &axum::http::Request<B>) -> &str {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// One span per request with its method, path and request id; one line when it finishes with
/// the status and latency. Headers, query strings and bodies are never recorded: they carry
/// tokens, passwords and user data.
pub fn trace_layer() -> TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    impl Fn(&axum::http::Request<Body>) -> Span + Clone,
    (),
    LogResponse,
> {
    TraceLayer::new_for_http()
        .make_span_with(|req: &axum::http::Request<Body>| {
            tracing::info_span!(
                "request",
                method = %req.method(),
                path = %req.uri().path(),
                request_id = %request_id_of(req),
            )
        })
        .on_request(())
        .on_response(LogResponse)
}

/// One line per finished request: status and latency, nothing else.
#[derive(Debug, Clone, Copy)]
pub struct LogResponse;

impl<B> OnResponse<B> for LogResponse {
    fn on_response(self, res: &Response<B>, latency: Duration, _span: &Span) {
        tracing::info!(
            status = res.status().as_u16(),
            latency_ms = latency.as_secs_f64() * 1000.0,
            "finished"
        );
    }
}

/// Gives every error response SPEC section 2's envelope with the request id: the details an
/// [`crate::error::ApiError`] left in the extensions, or a generic one for error statuses set
/// by axum or tower layers (405, 413, timeouts, panics).
pub async fn error_envelope(req: Request, next: Next) -> axum::response::Response {
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or_else(|| request_id_of(&req))
        .to_owned();
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let info = response
        .extensions()
        .get::<ErrorInfo>()
        .cloned()
        .unwrap_or_else(|| ErrorInfo::for_status(status));
    let body = match serde_json::to_vec(&ErrorBody::new(info, request_id)) {
        Ok(body) => body,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    axum::response::Response::from_parts(parts, Body::from(body))
}

/// A panic becomes a bare 500, which the envelope turns into `internal` with the request id;
/// the panic message goes to the log (inside the request's span), never to the client.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    tracing::error!(panic = message, "handler panicked");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

/// The header that carries `serverEpoch` (SPEC section 4).
pub const SERVER_EPOCH_HEADER: &str = "x-server-epoch";

/// Adds `X-Server-Epoch` to every answer of the routes it wraps (errors and bodiless
/// answers included); the sync and backup routes use it, as
/// `.layer(axum::middleware::from_fn(server_epoch))`. The app state comes from the request
/// extensions, where the outer stack puts it.
pub async fn server_epoch(
    Extension(state): Extension<AppState>,
    request: Request,
    next: Next,
) -> axum::response::Response {
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(state.db.server_epoch()) {
        response.headers_mut().insert(SERVER_EPOCH_HEADER, value);
    }
    response
}

/// A request timeout for the routes it wraps: 504 (`request_timeout`) when the answer has
/// not started within `limit`. `http` gives every feature's routes one: theirs if they ask
/// (the AI proxy waits for slow models), else `server.request_timeout`. A stream, once
/// started, is bounded by its own feature.
pub fn timeout(limit: Duration) -> tower_http::timeout::TimeoutLayer {
    tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::GATEWAY_TIMEOUT, limit)
}
