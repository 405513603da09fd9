//! HTTP assembly: which routes exist, where they are mounted, and the middleware around them.
//!
//! Features own their routes ([`crate::app::Feature::routes`]); this module only merges the
//! ones it is given, mounts the API at both `/api/v1` and `/api` (the paths the existing app
//! uses), adds `/metrics` and the API docs, and wraps everything in the one middleware stack.

pub mod client;
mod compress;
mod cors;
pub mod extract;
mod metrics;
pub mod middleware;
pub mod openapi;
pub mod rate_limit;

pub use metrics::{requests_last_minute, upkeep as metrics_upkeep};

use std::time::Duration;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderName, HeaderValue, header},
};
use tower::ServiceBuilder;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::{app::AppState, error::ApiError};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Swagger UI loads its own scripts and styles from this server, and nothing else.
const DOCS_CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
     script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

/// The API mount `path` is under (`/api/v1`, or its `/api` alias) and the part under it:
/// (`/api/v1`, `/sync/status`) for `/api/v1/sync/status`, (`/api`, `/sync/status`) for
/// `/api/sync/status`.
pub fn api_mount(path: &str) -> Option<(&'static str, &str)> {
    ["/api/v1", "/api"].into_iter().find_map(|mount| {
        path.strip_prefix(mount)
            .filter(|rest| rest.starts_with('/'))
            .map(|rest| (mount, rest))
    })
}

/// A response extension that keeps the response uncompressed (large bodies of random-looking
/// bytes, such as a backup in base64, gain little and cost a lot of CPU).
#[derive(Debug, Clone, Copy)]
pub struct NoCompression;

/// The whole server: every route of the app's features inside the middleware stack.
pub fn router(state: AppState) -> Mounts {
    router_with(state, Router::new())
}

/// [`router`] with `extra` routes beside the features' (tests add some), which get the
/// middleware and the default request timeout like a feature's routes.
///
/// Every route gets the whole stack and its request timeout in one [`Router::layer`] call:
/// axum boxes a route once per layer call, and each box is cloned per request together with
/// all the boxes inside it (folding the timeout's level into the stack's saved about 600
/// instructions per `GET /auth/me`). The routes are wrapped feature by feature, because
/// timeouts are per feature ([`crate::app::Feature::request_timeout`]); the CORS policy and
/// the per-IP limit in the stack are built once and shared by all.
pub fn router_with(state: AppState, extra: Router<AppState>) -> Mounts {
    let config = &state.config;
    let server = &config.server;
    let default = server.request_timeout;
    let cors = cors::layer(config);
    let limit_per_ip = rate_limit::general_layer(config);
    let envelope = middleware::EnvelopeLayer { hsts: server.hsts };
    let max_body = server.max_body.as_u64() as usize;
    // Outermost first: ours in one layer ([`middleware::Envelope`]: request id, tracing,
    // panics, metrics, the error envelope, the security headers), compression, CORS, the
    // per-IP limit, the body limit, the request timeout, and a handler's panics caught where
    // they happen.
    let stack = move |timeout: Duration| {
        ServiceBuilder::new()
            .layer(envelope)
            .layer(compress::layer())
            .layer(cors.clone())
            .layer(limit_per_ip.clone())
            .layer(DefaultBodyLimit::max(max_body))
            .layer(middleware::timeout(timeout))
            .map_future(middleware::catch_panic)
    };
    let (system, api, doc) = openapi::split(
        config,
        state.features(),
        Some(&state),
        &|routes, timeout| routes.layer(stack(timeout)),
    );
    // The document is served as the JSON it serializes to once (170 KB), not kept as the
    // struct utoipa builds (about 3 MB of maps and strings, for the life of the process).
    let json = axum::body::Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
    drop(doc);
    let document = axum::routing::get(move || {
        let json = json.clone();
        async move { ([(header::CONTENT_TYPE, "application/json")], json) }
    });
    let docs: Router<AppState> = Router::from(
        SwaggerUi::new("/api-docs")
            .config(utoipa_swagger_ui::Config::from("/api-docs/openapi.json")),
    )
    .route("/api-docs/openapi.json", document)
    .layer(SetResponseHeaderLayer::overriding(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOCS_CSP),
    ));
    // The 404 for every path no route takes, inside the stack like a route.
    let not_found = || {
        Router::new()
            .fallback(|| async { ApiError::NotFound })
            .layer(stack(default))
    };
    Mounts {
        api: api.merge(not_found()).with_state(state.clone()),
        other: system
            .merge(docs.merge(extra).layer(stack(default)))
            .merge(not_found())
            .with_state(state),
    }
}

/// The server's two routers: the API, served at `/api/v1` and at its alias `/api`, and the
/// rest (`/health`, `/metrics`, the docs, the console). It does what `Router::nest` would,
/// without its cost: `nest` wraps every route in two more services (a third level of boxes,
/// cloned per request) and inserts a `NestedPath` per request; here the mount is taken off
/// the path once, before routing, and the path the client sent is kept as `OriginalUri`
/// (the API's handlers see the path and query under the mount, without an absolute-form
/// request's scheme and host). Every path under `/api/` belongs to the API: a route outside
/// the API must not live there.
#[derive(Clone)]
pub struct Mounts {
    api: Router,
    other: Router,
}

impl tower::Service<axum::extract::Request> for Mounts {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = <Router as tower::Service<axum::extract::Request>>::Future;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        // Both routers are always ready.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: axum::extract::Request) -> Self::Future {
        match under_api_mount(req.uri()) {
            Some(uri) => {
                let original = std::mem::replace(req.uri_mut(), uri);
                req.extensions_mut()
                    .insert(axum::extract::OriginalUri(original));
                self.api.call(req)
            }
            None => self.other.call(req),
        }
    }
}

/// `uri` with the API mount taken off its path (query kept), if it is under one.
fn under_api_mount(uri: &axum::http::Uri) -> Option<axum::http::Uri> {
    let (_, rest) = api_mount(uri.path())?;
    let path_and_query = match uri.query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_owned(),
    };
    axum::http::Uri::try_from(path_and_query).ok()
}

/// A router of this crate's feature routers, documented for OpenAPI.
pub type ApiRouter = OpenApiRouter<AppState>;

#[cfg(test)]
mod tests {
    #[test]
    fn api_paths() {
        let api_path = |path| super::api_mount(path).map(|(_, rest)| rest);
        assert_eq!(api_path("/api/v1/sync/status"), Some("/sync/status"));
        assert_eq!(api_path("/api/sync/status"), Some("/sync/status"));
        assert_eq!(api_path("/health"), None);
        assert_eq!(api_path("/apis/x"), None);
        assert_eq!(
            super::api_mount("/api/v1/sync/status").map(|(mount, _)| mount),
            Some("/api/v1")
        );
        assert_eq!(
            super::api_mount("/api/sync/status").map(|(mount, _)| mount),
            Some("/api")
        );
    }
}
