//! The product, one module per feature. Each owns its routes (`router()`), its handlers and
//! its SQL; `http` only merges the routers.

pub mod accounts;
pub mod ai;
pub mod backups;
pub mod health;
pub mod scripts;
pub mod sync;

use crate::{config::Config, http::ApiRouter};

/// Routes outside the API: health and readiness (metrics and docs are added by `http`).
pub fn system_router() -> ApiRouter {
    health::router()
}

/// Every `/api/v1` route (also mounted at `/api`).
pub fn api_router(config: &Config) -> ApiRouter {
    ApiRouter::new()
        .merge(accounts::router(config))
        .merge(sync::router())
        .merge(backups::router())
        .merge(scripts::router())
        .merge(ai::router())
}
