//! AI scripts, SPEC section 6: versioned prompt templates at `/api/v1/ai/scripts`, one
//! active version per name. The defaults in `config/scripts/` are embedded in the binary and
//! seeded on first start (and by `persona admin scripts seed`).

mod handlers;
pub mod service;
pub mod store;
pub mod types;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::app::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::list, handlers::create))
        .routes(routes!(handlers::get, handlers::deactivate))
        .routes(routes!(handlers::activate))
}
