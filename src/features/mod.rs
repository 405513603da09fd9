//! The product, one module per feature. Each is a [`Feature`]: it owns its routes, handlers,
//! SQL and background work, and shows other code only what its `mod.rs` exports. This list
//! is the one place that names them; adding a feature is a folder and a line here.

pub mod accounts;
pub mod admin;
pub mod ai;
pub mod backups;
pub mod conversations;
pub mod crisis;
pub mod health;
pub mod scripts;
pub mod sync;

use std::sync::Arc;

use crate::app::Feature;

/// Every feature of the server, in the order their routes are merged.
pub fn all() -> Vec<Arc<dyn Feature>> {
    vec![
        Arc::new(health::Health),
        Arc::new(accounts::Accounts),
        Arc::new(sync::Sync),
        Arc::new(backups::Backups),
        Arc::new(scripts::Scripts),
        Arc::new(crisis::CrisisSupport),
        Arc::new(ai::AiProxy),
        Arc::new(conversations::ConversationsFeature),
        Arc::new(admin::Admin),
    ]
}
