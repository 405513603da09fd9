//! Encrypted backups, SPEC section 5: `/api/v1/sync/backup*`.
//!
//! The app encrypts its backups; the server adds a layer at rest (XChaCha20-Poly1305 under a
//! versioned key from `secrets.toml`, owner and id bound as associated data). An upload is
//! received whole (hashed as it arrives, refused with 413 as soon as it is too large), sealed
//! and inserted in one transaction with the retention applied: a failed or cut-off upload
//! leaves nothing, and a reader never sees half a backup.

pub mod crypto;
mod handlers;
pub mod service;
pub mod store;
pub mod types;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::app::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::upload))
        .routes(routes!(handlers::latest))
        .routes(routes!(handlers::by_id, handlers::delete))
        .routes(routes!(handlers::list))
}
