//! The admin console, SPEC section 13: the page at `/admin` (`console.rs`, assets embedded
//! from `console/`) and its API at `/api/v1/admin` (every route `AdminUser`: 401 without a
//! token, 403 for users).
//!
//! Nothing is implemented twice: the routes call the functions the CLI calls — accounts'
//! `change_account` and `issue_reset`, ai's usage reports, crisis's event counts, scripts'
//! catalogue — and the console's other actions (creating and switching script versions,
//! featuring conversations) use the features' own admin routes. It is the one feature that
//! may read the others' doors (`mod.rs`), for the reports of its overview.

mod console;
mod handlers;
mod service;
mod types;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{app::Feature, config::Config, http::ApiRouter};

pub struct Admin;

impl Feature for Admin {
    fn name(&self) -> &'static str {
        "admin"
    }

    fn routes(&self, _config: &Config) -> ApiRouter {
        OpenApiRouter::new()
            .routes(routes!(handlers::overview))
            .routes(routes!(handlers::users))
            .routes(routes!(handlers::disable))
            .routes(routes!(handlers::enable))
            .routes(routes!(handlers::promote))
            .routes(routes!(handlers::reset_token))
            .routes(routes!(handlers::usage))
            .routes(routes!(handlers::scripts))
            .routes(routes!(handlers::crisis))
    }

    fn system_routes(&self, _config: &Config) -> ApiRouter {
        OpenApiRouter::from(console::router())
    }
}
