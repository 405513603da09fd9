//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and
//! served at `/api-docs/openapi.json` (Swagger UI at `/api-docs`). The statuses common to a
//! kind of operation (401 with a token, 415 with a body, 429 everywhere, …) are added by
//! [`statuses`], not by the handlers.

mod statuses;

use std::time::Duration;

use axum::Router;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
};
use utoipa_axum::router::OpenApiRouter;

use crate::{
    app::{AppState, Feature},
    config::Config,
    error::{ErrorBody, ErrorObject},
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "persona",
        description = "Self-hosted backend of Persona, a local-first AI assistant. \
            Every API route is served under `/api/v1` and, for the existing app, under `/api`. \
            Errors always have the shape `{\"error\": {code, message, details?, requestId}}`.",
        license(name = "MIT", identifier = "MIT"),
    ),
    components(schemas(ErrorBody, ErrorObject)),
    modifiers(&BearerAuth),
    tags(
        (name = "system", description = "Health, readiness and metrics"),
        (name = "auth", description = "Accounts, sessions and tokens"),
        (name = "sync", description = "Where each device's data stands"),
        (name = "backups", description = "Encrypted disaster-recovery backups"),
        (name = "scripts", description = "Versioned AI prompt templates"),
        (name = "ai", description = "The AI proxy: OpenAI-compatible, with the server's key"),
        (name = "crisis", description = "Crisis support: the detector, hotlines, contacts, SOS"),
        (name = "conversations", description = "Saved AI conversations, public or private, with search"),
        (name = "admin", description = "The admin console's data and account actions (administrators only)"),
    )
)]
struct ApiDoc;

/// Declares the `bearer` security scheme that authenticated routes refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Merges the features' routes, each with its [`Feature::state_layers`] when there is a
/// `state` and wrapped by `around` with its request timeout (the feature's, else
/// `server.request_timeout`), and splits them into the system router, the
/// API router and one document in which the API appears under `/api/v1` (the `/api` mount is
/// an alias and is not repeated), with the common statuses added.
pub fn split(
    config: &Config,
    features: &[std::sync::Arc<dyn Feature>],
    state: Option<&AppState>,
    around: &dyn Fn(super::ApiRouter, Duration) -> super::ApiRouter,
) -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
    let default = config.server.request_timeout;
    let mut system = around(super::metrics::router(), default);
    let mut api = super::ApiRouter::new();
    for feature in features {
        let limit = feature.request_timeout(config).unwrap_or(default);
        system = system.merge(around(feature.system_routes(config), limit));
        let routes = feature.routes(config);
        let routes = match state {
            Some(app) => feature.state_layers(routes, app),
            None => routes,
        };
        api = api.merge(around(routes, limit));
    }
    let (api, api_doc) = api.split_for_parts();
    let (system, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(system)
        .split_for_parts();
    let mut doc = doc.nest("/api/v1", api_doc);
    statuses::add_common(&mut doc);
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    (system, api, doc)
}

/// The whole document (for `persona admin openapi` and tests).
pub fn document(
    config: &Config,
    features: &[std::sync::Arc<dyn Feature>],
) -> utoipa::openapi::OpenApi {
    split(config, features, None, &|routes, _| routes).2
}
