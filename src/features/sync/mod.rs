//! Device sync metadata, SPEC section 4: `/api/v1/sync/status`, `/validate`, `/devices`.
//!
//! Each device reports the version and hash of its local data; the server keeps one row per
//! (user, device), refuses a report that would move a device backwards or fork it at the same
//! version (409 `sync_conflict`), and answers "where does this device stand?" (`validate`).
//! Every response carries `serverEpoch`, so a device notices a restored (rolled back) server.

mod handlers;
mod service;
mod store;
mod types;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    app::{AppState, Feature},
    config::Config,
    http::{ApiRouter, middleware::with_server_epoch},
};

pub struct Sync;

impl Feature for Sync {
    fn name(&self) -> &'static str {
        "sync"
    }

    fn routes(&self, _config: &Config) -> ApiRouter {
        OpenApiRouter::new()
            .routes(routes!(handlers::report_status, handlers::list_status))
            .routes(routes!(handlers::device_status))
            .routes(routes!(handlers::validate))
            .routes(routes!(handlers::deactivate_device))
    }

    fn state_layers(&self, routes: ApiRouter, app: &AppState) -> ApiRouter {
        with_server_epoch(routes, app)
    }
}
