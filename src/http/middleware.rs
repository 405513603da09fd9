//! Ours around every route, in one service ([`Envelope`]): the request id, the request's
//! tracing span and log line, panics caught, the metrics, SPEC section 2's error envelope and
//! the security headers. Compression, CORS and the per-IP limit come from tower-http and
//! tower_governor, inside it.

use std::{any::Any, panic::AssertUnwindSafe, time::Duration};

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header},
    middleware::Next,
    response::IntoResponse,
};
use futures_util::FutureExt as _;

use super::REQUEST_ID;
use crate::{
    app::AppState,
    error::{ErrorBody, ErrorInfo},
};

/// A client's `X-Request-Id` is echoed only when it is short and plain (letters, digits and
/// `._:-`); anything else is dropped and a fresh id is made, so a hostile id cannot inject
/// text into logs or responses.
fn client_request_id(headers: &HeaderMap) -> Option<&HeaderValue> {
    headers.get(&REQUEST_ID).filter(|value| {
        let bytes = value.as_bytes();
        (1..=128).contains(&bytes.len())
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    })
}

/// Makes a request id: a random (version 4) UUID, drawn from a per-thread generator seeded
/// from the OS. tower-http's `MakeRequestUuid` asks the OS for 16 bytes on every request (a
/// system call); ids need to be unique, not secret.
fn new_request_id() -> HeaderValue {
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
    // A hyphenated UUID is always a valid header value.
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Ours around every route, in one service and one boxed future per request:
/// - the request id (SPEC section 2): the client's `X-Request-Id` if it is sane, else a fresh
///   one, in the request's headers for what runs inside and on every answer;
/// - the request's tracing span (method, path, request id: never headers, query strings or
///   bodies, which carry tokens, passwords and user data) and one line when it is answered
///   (status and latency; an `ERROR` line for a server error);
/// - a panic becomes a bare 500 (the message goes to the log, inside the span; a handler's
///   is caught innermost, by [`catch_panic`]);
/// - the metrics of each request ([`super::metrics::Labels`]);
/// - SPEC section 2's error envelope with the request id;
/// - the security headers every answer carries unless its route set its own
///   (`X-Content-Type-Options`, `X-Frame-Options`, `Referrer-Policy`, the API's
///   `Content-Security-Policy`, and `Strict-Transport-Security` with `server.hsts`).
///
/// It is the outermost layer, so CORS preflights and compressed answers get all of it. These
/// were eleven tower-http and `from_fn` layers, each a service, a future and often a body
/// wrapper of its own per request: folded, `GET /health` costs about a quarter less CPU.
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

/// The headers every answer carries unless its route set its own (values built at compile
/// time: `HeaderValue::from_static` called at run time checks every byte, each request).
fn security_headers(headers: &mut axum::http::HeaderMap, hsts: bool) {
    const DEFAULTS: [(HeaderName, HeaderValue); 4] = [
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(API_CSP),
        ),
    ];
    const HSTS: (HeaderName, HeaderValue) = (
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000; includeSubDomains"),
    );
    for (name, value) in DEFAULTS.into_iter().chain(hsts.then_some(HSTS)) {
        if let axum::http::header::Entry::Vacant(entry) = headers.entry(name) {
            entry.insert(value);
        }
    }
}

impl<S> tower::Service<Request> for Envelope<S>
where
    S: tower::Service<Request, Response = axum::response::Response>,
{
    type Response = axum::response::Response;
    type Error = S::Error;
    type Future = EnvelopeFuture<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let start = std::time::Instant::now();
        let request_id = match client_request_id(req.headers()) {
            Some(id) => id.clone(),
            None => {
                let id = new_request_id();
                req.headers_mut().insert(REQUEST_ID, id.clone());
                id
            }
        };
        // The path as the client sent it: under the `/api/v1` and `/api` mounts, `uri` has
        // the mount taken off (see `super::Mounts`), and so has the route's template.
        let path = req
            .extensions()
            .get::<axum::extract::OriginalUri>()
            .map_or(req.uri(), |original| &original.0)
            .path();
        let mount = if path.len() == req.uri().path().len() {
            ""
        } else {
            super::api_mount(path).map_or("", |(mount, _)| mount)
        };
        let labels = super::metrics::Labels::of(
            req.method(),
            mount,
            req.extensions().get::<axum::extract::MatchedPath>(),
        );
        let span = tracing::info_span!(
            "request",
            method = %req.method(),
            path = %path,
            request_id = %request_id.to_str().unwrap_or(""),
        );
        let (answer, panicked) = match span
            .in_scope(|| std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req))))
        {
            Ok(answer) => (Some(answer), None),
            Err(panic) => (None, Some(panic)),
        };
        EnvelopeFuture {
            answer,
            panicked,
            span,
            start,
            labels,
            request_id: Some(request_id),
            hsts: self.hsts,
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of an [`Envelope`]: the inner answer, polled inside the request's span with
    /// its panics caught, then finished ([`finish`]). Not boxed: axum boxes each route's
    /// service and its future once, and a box of its own here would cost an allocation and a
    /// copy of every future inside it per request.
    pub struct EnvelopeFuture<F> {
        #[pin]
        answer: Option<F>,
        // The inner service's `call` panicked: answered at the first poll.
        panicked: Option<Box<dyn Any + Send + 'static>>,
        span: tracing::Span,
        start: std::time::Instant,
        labels: super::metrics::Labels,
        // Taken when the answer is finished.
        request_id: Option<HeaderValue>,
        hsts: bool,
    }

    // What the inner future does as it is dropped (a request cancelled by its client, an AI
    // call's meter settling) logs inside the request's span, as `Instrumented` did.
    impl<F> PinnedDrop for EnvelopeFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            let _entered = this.span.enter();
            this.answer.set(None);
        }
    }
}

impl<F, E> std::future::Future for EnvelopeFuture<F>
where
    F: std::future::Future<Output = Result<axum::response::Response, E>>,
{
    type Output = Result<axum::response::Response, E>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        if this.request_id.is_none() {
            // Polled again after it answered: the caller's bug, not a reason to panic.
            return std::task::Poll::Pending;
        }
        let _entered = this.span.enter();
        let mut slot = this.answer;
        let answered = if let Some(panic) = this.panicked.take() {
            Ok(panic_response(panic))
        } else if let Some(answer) = slot.as_mut().as_pin_mut() {
            match std::panic::catch_unwind(AssertUnwindSafe(|| answer.poll(cx))) {
                Ok(std::task::Poll::Pending) => return std::task::Poll::Pending,
                Ok(std::task::Poll::Ready(answered)) => answered,
                Err(panic) => Ok(panic_response(panic)),
            }
        } else {
            return std::task::Poll::Pending;
        };
        // Done with the inner future: dropped now, inside the span.
        slot.set(None);
        let Some(request_id) = this.request_id.take() else {
            return std::task::Poll::Pending;
        };
        let response = match answered {
            Ok(response) => response,
            Err(err) => return std::task::Poll::Ready(Err(err)),
        };
        std::task::Poll::Ready(Ok(finish(
            response,
            this.start.elapsed(),
            *this.labels,
            request_id,
            *this.hsts,
        )))
    }
}

/// What every answer gets on its way out: its metrics and log line, the error envelope, the
/// security headers and the request id; a stream's body is polled inside the request's span
/// (the caller's, entered).
fn finish(
    response: axum::response::Response,
    latency: Duration,
    labels: super::metrics::Labels,
    request_id: HeaderValue,
    hsts: bool,
) -> axum::response::Response {
    labels.record(response.status(), latency);
    log_response(response.status(), latency);
    let mut response = error_envelope(response, &request_id);
    if hyper::body::Body::size_hint(response.body())
        .exact()
        .is_none()
    {
        // A stream: what it logs while it is sent belongs to this request too.
        let span = tracing::Span::current();
        response = response.map(|body| Body::new(InSpan { body, span }));
    }
    security_headers(response.headers_mut(), hsts);
    response
        .headers_mut()
        .entry(REQUEST_ID)
        .or_insert(request_id);
    response
}

/// A streamed answer's body, polled inside its request's span (an SSE relay records the
/// call's usage as it ends, and logs there if it cannot); a failure while it is sent gets an
/// `ERROR` line.
struct InSpan {
    body: Body,
    span: tracing::Span,
}

impl hyper::body::Body for InSpan {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let _entered = this.span.enter();
        let frame = std::pin::Pin::new(&mut this.body).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Err(err))) = &frame {
            tracing::error!(error = %err, "response failed while it was sent");
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// One line per answered request: status and latency, nothing else (the span has the rest).
fn log_response(status: StatusCode, latency: Duration) {
    let latency_ms = latency.as_secs_f64() * 1000.0;
    let status = status.as_u16();
    if status >= 500 {
        tracing::error!(status, latency_ms, "response failed");
    }
    tracing::info!(status, latency_ms, "finished");
}

/// Gives an error response SPEC section 2's envelope with the request id: the details an
/// [`crate::error::ApiError`] left in the extensions, or a generic one for error statuses set
/// by axum or tower layers (405, 413, timeouts, panics). Other responses pass unchanged.
fn error_envelope(
    response: axum::response::Response,
    request_id: &HeaderValue,
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
    let request_id = request_id.to_str().unwrap_or("").to_owned();
    let body = match serde_json::to_vec(&ErrorBody::new(info, request_id)) {
        Ok(body) => body,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    // The body is replaced: an encoding the inner answer had no longer applies.
    parts.headers.remove(header::CONTENT_ENCODING);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    axum::response::Response::from_parts(parts, Body::from(body))
}

/// A handler's future with its panics caught where they happen, as bare 500s: the innermost
/// step of the stack (`ServiceBuilder::map_future`, no box), so the answer still passes
/// through CORS and compression like any other. [`Envelope`] also catches, for a panic
/// anywhere else in the stack.
pub fn catch_panic<F, E>(
    answer: F,
) -> impl std::future::Future<Output = Result<axum::response::Response, E>>
where
    F: std::future::Future<Output = Result<axum::response::Response, E>>,
{
    AssertUnwindSafe(answer)
        .catch_unwind()
        .map(|answer| answer.unwrap_or_else(|panic| Ok(panic_response(panic))))
}

/// A panic becomes a bare 500, which the envelope turns into `internal` with the request id;
/// the panic message goes to the log (inside the request's span), never to the client.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
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

/// `routes` with `X-Server-Epoch` on every answer (errors and bodiless answers included); the
/// sync and backup features give it as their [`crate::app::Feature::state_layers`].
pub fn with_server_epoch(routes: super::ApiRouter, app: &AppState) -> super::ApiRouter {
    routes.layer(axum::middleware::from_fn_with_state(
        app.clone(),
        server_epoch,
    ))
}

async fn server_epoch(
    State(state): State<AppState>,
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
pub fn timeout(limit: Duration) -> TimeoutLayer {
    TimeoutLayer { limit }
}

/// See [`timeout`].
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    limit: Duration,
}

impl<S> tower::Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            limit: self.limit,
        }
    }
}

/// tower-http's `Timeout`, but the timer is armed only if the answer is not ready at the
/// first poll. The deadline still counts from the call. An answer from the caches (`GET
/// /auth/me`, `/health`) is ready at once, and a tokio timer's registration and removal cost
/// about 2,300 instructions, a twentieth of such a request's work in user space.
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    limit: Duration,
}

impl<S> tower::Service<Request> for Timeout<S>
where
    S: tower::Service<Request, Response = axum::response::Response>,
{
    type Response = axum::response::Response;
    type Error = S::Error;
    type Future = TimeoutFuture<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        TimeoutFuture {
            answer: self.inner.call(req),
            // A limit too far off to add to the clock (a config of centuries) is no limit.
            deadline: tokio::time::Instant::now().checked_add(self.limit),
            timer: None,
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of a [`Timeout`]d service.
    pub struct TimeoutFuture<F> {
        #[pin]
        answer: F,
        deadline: Option<tokio::time::Instant>,
        // Boxed: a `Sleep` is a few hundred bytes, and every future around this one would
        // carry (and copy) it for the many answers that never need a timer.
        timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<F, E> std::future::Future for TimeoutFuture<F>
where
    F: std::future::Future<Output = Result<axum::response::Response, E>>,
{
    type Output = Result<axum::response::Response, E>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        if let std::task::Poll::Ready(answer) = this.answer.poll(cx) {
            return std::task::Poll::Ready(answer);
        }
        if this.timer.is_none() {
            let Some(deadline) = *this.deadline else {
                return std::task::Poll::Pending;
            };
            *this.timer = Some(Box::pin(tokio::time::sleep_until(deadline)));
        }
        match this.timer.as_mut().map(|timer| timer.as_mut().poll(cx)) {
            Some(std::task::Poll::Ready(())) => {
                // A bare 504: the envelope gives it the error shape (`request_timeout`).
                std::task::Poll::Ready(Ok(StatusCode::GATEWAY_TIMEOUT.into_response()))
            }
            _ => std::task::Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{Arc, Mutex},
        time::Duration,
    };

    use axum::body::Body;
    use http_body_util::BodyExt as _;
    use tower::{Layer as _, Service as _};

    #[tokio::test]
    async fn a_limit_too_far_off_for_the_clock_is_no_limit() {
        // Found in review: `now + limit` overflowed and panicked on every request.
        let inner = tower::service_fn(|_: axum::extract::Request| async {
            tokio::task::yield_now().await;
            Ok::<_, std::convert::Infallible>(axum::response::Response::new(Body::empty()))
        });
        for limit in [
            Duration::MAX,
            Duration::from_secs(300_000_000_000 * 31_557_600),
        ] {
            let mut service = super::timeout(limit).layer(inner);
            let response = service
                .call(axum::extract::Request::new(Body::empty()))
                .await
                .unwrap();
            assert_eq!(response.status(), axum::http::StatusCode::OK);
        }
    }

    #[tokio::test]
    async fn an_answer_that_waits_past_the_limit_is_a_504() {
        let inner = tower::service_fn(|_: axum::extract::Request| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, std::convert::Infallible>(axum::response::Response::new(Body::empty()))
        });
        let mut service = super::timeout(Duration::from_millis(50)).layer(inner);
        let started = std::time::Instant::now();
        let response = service
            .call(axum::extract::Request::new(Body::empty()))
            .await
            .unwrap();
        assert_eq!(response.status(), axum::http::StatusCode::GATEWAY_TIMEOUT);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(50) && waited < Duration::from_secs(10),
            "{waited:?}"
        );
    }

    #[test]
    fn a_streamed_body_is_polled_inside_its_request_span() {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let record = seen.clone();
        let inner = tower::service_fn(move |_: axum::extract::Request| {
            let record = record.clone();
            let stream = futures_util::stream::poll_fn(move |_| {
                let span = tracing::Span::current();
                let name = span.metadata().map_or("none", |m| m.name());
                record.lock().unwrap().push(name.to_owned());
                std::task::Poll::Ready(None::<Result<axum::body::Bytes, std::io::Error>>)
            });
            async move {
                Ok::<_, std::convert::Infallible>(axum::response::Response::new(Body::from_stream(
                    stream,
                )))
            }
        });
        let mut envelope = super::EnvelopeLayer::default().layer(inner);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        tracing::subscriber::with_default(tracing_subscriber::registry(), || {
            runtime.block_on(async {
                let response = envelope
                    .call(axum::extract::Request::new(Body::empty()))
                    .await
                    .unwrap();
                response.into_body().collect().await.unwrap();
            })
        });
        assert_eq!(*seen.lock().unwrap(), ["request"]);
    }

    /// What an answer's future does as it is dropped (finished, or cancelled by a client
    /// that went away) happens inside the request's span, so its log lines carry the
    /// request id.
    #[test]
    fn an_answers_future_is_dropped_inside_its_request_span() {
        struct OnDrop(Arc<Mutex<Vec<String>>>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                let span = tracing::Span::current();
                let name = span.metadata().map_or("none", |m| m.name());
                self.0.lock().unwrap().push(name.to_owned());
            }
        }
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let record = seen.clone();
        let inner = tower::service_fn(move |request: axum::extract::Request| {
            let guard = OnDrop(record.clone());
            let never = request.uri().path() == "/never";
            async move {
                let _guard = guard;
                if never {
                    std::future::pending::<()>().await;
                }
                Ok::<_, std::convert::Infallible>(axum::response::Response::new(Body::empty()))
            }
        });
        let mut envelope = super::EnvelopeLayer::default().layer(inner);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        tracing::subscriber::with_default(tracing_subscriber::registry(), || {
            runtime.block_on(async {
                let request = |path: &str| {
                    axum::extract::Request::builder()
                        .uri(path)
                        .body(Body::empty())
                        .unwrap()
                };
                envelope.call(request("/")).await.unwrap();
                let cancelled = tokio::time::timeout(
                    Duration::from_millis(10),
                    envelope.call(request("/never")),
                )
                .await;
                assert!(cancelled.is_err(), "the answer never comes");
            })
        });
        assert_eq!(*seen.lock().unwrap(), ["request", "request"]);
    }

    #[test]
    fn request_ids_are_distinct_version_4_uuids() {
        let ids: std::collections::HashSet<String> = (0..1000)
            .map(|_| {
                let id = super::new_request_id();
                let text = id.to_str().expect("ASCII").to_owned();
                let uuid = uuid::Uuid::parse_str(&text).expect("a UUID");
                assert_eq!(uuid.get_version_num(), 4, "{text}");
                text
            })
            .collect();
        assert_eq!(ids.len(), 1000);
    }
}
