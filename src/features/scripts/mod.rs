//! AI scripts, SPEC section 6: versioned prompt templates at `/api/v1/ai/scripts`, one
//! active version per name. The defaults in `config/scripts/` are embedded in the binary and
//! seeded on first start (and by `persona admin scripts seed`).

mod handlers;
mod service;
mod store;
mod types;
mod version;

use utoipa_axum::{router::OpenApiRouter, routes};

pub use service::{ActiveScript, Seeded, active_script, all, defaults, read_dir, seed_scripts};
pub use store::ScriptRow;
pub use types::{NewScript, Script, render};
pub use version::Version;

use crate::{
    app::{Feature, Init},
    config::Config,
    http::ApiRouter,
};

pub struct Scripts;

impl Feature for Scripts {
    fn name(&self) -> &'static str {
        "scripts"
    }

    fn routes(&self, _config: &Config) -> ApiRouter {
        OpenApiRouter::new()
            .routes(routes!(handlers::list, handlers::create))
            .routes(routes!(handlers::get, handlers::deactivate))
            .routes(routes!(handlers::activate))
    }

    fn init(&self, init: &mut Init<'_>) -> anyhow::Result<()> {
        service::seed_if_empty(init.db)
    }
}
