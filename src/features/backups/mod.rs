//! Encrypted backups, SPEC section 5: `/api/v1/sync/backup*`.
//!
//! The app encrypts its backups; the server adds a layer at rest (XChaCha20-Poly1305 under a
//! versioned key from `secrets.toml`, owner and id bound as associated data). An upload is
//! received whole (hashed as it arrives, refused with 413 as soon as it is too large), sealed
//! chunk by chunk and inserted in one transaction with the retention applied: a failed or
//! cut-off upload leaves nothing. A download streams: one chunk read, opened and sent at a
//! time (`download.rs`, `body.rs`); a reader gets the whole backup or a cut connection,
//! never wrong bytes.

mod body;
mod crypto;
mod download;
mod handlers;
mod service;
mod store;
mod transfers;
mod types;

use utoipa_axum::{router::OpenApiRouter, routes};

pub use service::{all, key_versions_in_use, open_row, reseal_all};
pub use store::BackupRow;

use crate::{
    app::{AppState, Feature, Init},
    config::Config,
    http::{ApiRouter, middleware::with_server_epoch},
};

pub struct Backups;

impl Feature for Backups {
    fn name(&self) -> &'static str {
        "backups"
    }

    fn init(&self, init: &mut Init<'_>) -> anyhow::Result<()> {
        init.parts
            .insert(transfers::Transfers::new(init.config.backups.max_transfers));
        Ok(())
    }

    fn routes(&self, _config: &Config) -> ApiRouter {
        OpenApiRouter::new()
            .routes(routes!(handlers::upload))
            .routes(routes!(handlers::latest))
            .routes(routes!(handlers::by_id, handlers::delete))
            .routes(routes!(handlers::list))
    }

    fn state_layers(&self, routes: ApiRouter, app: &AppState) -> ApiRouter {
        with_server_epoch(routes, app)
    }
}
