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

/// Makes a request id: a random (version 4) UUID, drawn from a per-thread generator seeded
/// from the OS. tower-http's `MakeRequestUuid` asks the OS for 16 bytes on every request (a
/// system call); ids need to be unique, not secret.
#[derive(Debug, Clone, Copy, Default)]
pub struct MakeRequestId;

impl tower_http::request_id::MakeRequestId for MakeRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        thread_local! {
            static STATE: std::cell::Cell<u64> = std::cell::Cell::new({
                let mut seed = [0u8; 8];
                // Without OS randomness (never on Linux), the time still tells threads apart.
                if getrandom::fill(&mut seed).is_err() {
                    seed = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos() as u64)
                        .to_le_bytes();
                }
                u64::from_le_bytes(seed)
            });
        }
        // wyrand: two 64-bit outputs per id.
        let next = || {
            STATE.with(|state| {
                let s = state.get().wrapping_add(0xa076_1d64_78bd_642f);
                state.set(s);
                let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
                ((t >> 64) ^ t) as u64
            })
        };
        let bytes = ((u128::from(next()) << 64) | u128::from(next())).to_le_bytes();
        let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let text = id.hyphenated().encode_lower(&mut text);
        HeaderValue::from_str(text).ok().map(RequestId::new)
    }
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

/// Ours around every route, in one service: the metrics of each request
/// ([`super::metrics::Labels`]), SPEC section 2's error envelope and the security headers
/// every answer carries unless its route set its own (`X-Content-Type-Options`,
/// `X-Frame-Options`, `Referrer-Policy`, the API's `Content-Security-Policy`, and
/// `Strict-Transport-Security` with `server.hsts`). They were two `from_fn` layers and five
/// `SetResponseHeader` layers, each a service and a future of its own per request.
#[derive(Debug, Clone, Copy, Default)]
pub struct EnvelopeLayer {
    /// Adds `Strict-Transport-Security` (`server.hsts`).
    pub hsts: bool,
}

impl<S> tower::Layer<S> for EnvelopeLayer {
    type Service = Envelope<S>;

    fn layer(&self, inner: S) -> Envelope<S> {
        Envelope {
            inner,
            hsts: self.hsts,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Envelope<S> {
    inner: S,
    hsts: bool,
}

/// The CSP of every API response: nothing may be loaded or framed.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The headers every answer carries unless its route set its own.
fn security_headers(headers: &mut axum::http::HeaderMap, hsts: bool) {
    let defaults = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CONTENT_SECURITY_POLICY, API_CSP),
    ];
    let hsts = hsts.then_some((
        header::STRICT_TRANSPORT_SECURITY,
        "max-age=31536000; includeSubDomains",
    ));
    for (name, value) in defaults.into_iter().chain(hsts) {
        if let axum::http::header::Entry::Vacant(entry) = headers.entry(name) {
            entry.insert(HeaderValue::from_static(value));
        }
    }
}

impl<S> tower::Service<Request> for Envelope<S>
where
    S: tower::Service<Request, Response = axum::response::Response> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = axum::response::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let start = std::time::Instant::now();
        let labels = super::metrics::Labels::of(
            req.method(),
            req.extensions().get::<axum::extract::MatchedPath>(),
        );
        let request_id = req
            .extensions()
            .get::<RequestId>()
            .map(|id| id.header_value().clone())
            .or_else(|| req.headers().get(&REQUEST_ID).cloned());
        let answer = self.inner.call(req);
        let hsts = self.hsts;
        Box::pin(async move {
            let response = answer.await?;
            labels.record(response.status(), start.elapsed());
            let mut response = error_envelope(response, request_id);
            security_headers(response.headers_mut(), hsts);
            Ok(response)
        })
    }
}

/// Gives an error response SPEC section 2's envelope with the request id: the details an
/// [`crate::error::ApiError`] left in the extensions, or a generic one for error statuses set
/// by axum or tower layers (405, 413, timeouts, panics). Other responses pass unchanged.
fn error_envelope(
    response: axum::response::Response,
    request_id: Option<HeaderValue>,
) -> axum::response::Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let info = response
        .extensions()
        .get::<ErrorInfo>()
        .cloned()
        .unwrap_or_else(|| ErrorInfo::for_status(status));
    let request_id = request_id
        .as_ref()
        .and_then(|id| id.to_str().ok())
        .unwrap_or("")
        .to_owned();
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

#[cfg(test)]
mod tests {
    use tower_http::request_id::MakeRequestId as _;

    #[test]
    fn request_ids_are_distinct_version_4_uuids() {
        let request = axum::http::Request::new(());
        let mut make = super::MakeRequestId;
        let ids: std::collections::HashSet<String> = (0..1000)
            .map(|_| {
                let id = make.make_request_id(&request).expect("an id");
                let text = id.header_value().to_str().expect("ASCII").to_owned();
                let uuid = uuid::Uuid::parse_str(&text).expect("a UUID");
                assert_eq!(uuid.get_version_num(), 4, "{text}");
                text
            })
            .collect();
        assert_eq!(ids.len(), 1000);
    }
}
