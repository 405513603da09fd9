//! CORS (SPEC section 2): tower-http's, for the requests it concerns.
//!
//! A browser sends `Origin` with every request across origins, preflights included; the app,
//! curl and the SDKs send none. tower-http's layer works for every request all the same: a
//! map of headers built, `Vary` and `Access-Control-Expose-Headers` joined anew, the map
//! merged into the answer's. For a `GET /auth/me` that was 4,600 instructions in user space,
//! 11 % of the request (41.8k → 37.3k, `bench/instructions`). [`OriginCors`] hands requests
//! with `Origin`, and every `OPTIONS`, to it and lets the others pass with `Vary: origin`
//! added, so that a cache never serves a browser an answer made for a request without
//! `Origin`. What those others no longer get is what no browser reads from them:
//! `Access-Control-Expose-Headers`, and with `cors_origins = ["*"]`
//! `Access-Control-Allow-Origin: *` (which tower-http sent without `Vary`).

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    extract::Request,
    http::{HeaderName, HeaderValue, Method, header},
    response::Response,
};
use futures_util::{
    FutureExt as _,
    future::{Either, Map},
};
use tower::Layer as _;
use tower_http::cors::{AllowOrigin, Cors, CorsLayer, ResponseFuture};

use super::REQUEST_ID;
use crate::config::Config;

/// The `Vary` tower-http's CORS gives answers with a list of origins.
const VARY: HeaderValue = HeaderValue::from_static("origin");

/// The CORS policy of `server.cors_origins`, as a layer of [`OriginCors`].
pub fn layer(config: &Config) -> OriginCorsLayer {
    let origins = &config.server.cors_origins;
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        // Validated at start: every entry is a plain origin, so each is a valid header value.
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    let cors = CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::IF_NONE_MATCH,
            REQUEST_ID,
            HeaderName::from_static("x-checksum-sha256"),
            HeaderName::from_static("x-device-id"),
        ])
        .expose_headers([
            REQUEST_ID,
            header::RETRY_AFTER,
            header::ETAG,
            HeaderName::from_static("x-checksum-sha256"),
            HeaderName::from_static("x-persona-crisis-level"),
            HeaderName::from_static("x-server-epoch"),
        ])
        .max_age(std::time::Duration::from_secs(3600));
    // tower-http checks its rules when it wraps a service; once here, at start, as when it
    // wrapped the routes itself.
    let _checked: Cors<()> = cors.layer(());
    OriginCorsLayer {
        cors: Arc::new(cors),
    }
}

/// See [`OriginCors`].
#[derive(Debug, Clone)]
pub struct OriginCorsLayer {
    cors: Arc<CorsLayer>,
}

impl<S> tower::Layer<S> for OriginCorsLayer {
    type Service = OriginCors<S>;

    fn layer(&self, inner: S) -> OriginCors<S> {
        OriginCors {
            cors: self.cors.clone(),
            inner,
        }
    }
}

/// tower-http's [`Cors`] around `inner` for a request with `Origin` (or a preflight); the
/// others go straight to `inner`, and their answers get CORS's `Vary`. The layer is kept
/// rather than a `Cors` service beside `inner`: axum clones a route's stack for every
/// request, and a second copy of `inner` would be a second clone of everything in it for
/// every request. A request with `Origin` pays for it instead (a clone of `inner` and of the
/// policy): browsers' requests, the console's, are the few.
#[derive(Debug, Clone)]
pub struct OriginCors<S> {
    cors: Arc<CorsLayer>,
    inner: S,
}

/// What a passing request's answer goes through: [`VARY`] added.
type AddVary<E> = fn(Result<Response, E>) -> Result<Response, E>;

type Passed<F, E> = Map<F, AddVary<E>>;

impl<S> tower::Service<Request> for OriginCors<S>
where
    S: tower::Service<Request, Response = Response> + Clone,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<ResponseFuture<S::Future>, Passed<S::Future, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // OPTIONS too: tower-http answers it as a preflight even without `Origin`.
        if req.headers().contains_key(header::ORIGIN) || req.method() == Method::OPTIONS {
            // The service that was polled ready takes the request; a clone stays.
            let clone = self.inner.clone();
            let ready = std::mem::replace(&mut self.inner, clone);
            let mut cors: Cors<S> = self.cors.layer(ready);
            return Either::Left(cors.call(req));
        }
        let vary: AddVary<S::Error> = |answer| {
            answer.map(|mut response| {
                response.headers_mut().append(header::VARY, VARY);
                response
            })
        };
        Either::Right(self.inner.call(req).map(vary))
    }
}
