//! Conversations ("AI Chat Chronicles"), SPEC section 9: saved AI conversations, private or
//! public, with categories, tags, featured picks, stats and full-text search (SQLite FTS5).
//!
//! Another user's private conversation is 404 everywhere, search included. Search keeps
//! every filter inside FTS5 (scope tokens in an indexed column), turns the user's words into
//! quoted terms (never FTS5 syntax) and answers HTML-escaped snippets with `<mark>` hits.
//! Conversation text is stored in plain text so it can be searched.

mod categories;
mod handlers;
mod service;
mod store;
mod types;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use utoipa_axum::{router::OpenApiRouter, routes};

pub use service::export;
pub use types::Conversation;

use crate::{
    app::{AppState, Feature, Init},
    config::Config,
    http::ApiRouter,
};

/// This router's body limit: a conversation holds up to 1 MiB of text, plus JSON.
const BODY_LIMIT: usize = 2 * 1024 * 1024;

pub struct ConversationsFeature;

impl Feature for ConversationsFeature {
    fn name(&self) -> &'static str {
        "conversations"
    }

    fn routes(&self, _config: &Config) -> ApiRouter {
        OpenApiRouter::new()
            .routes(routes!(handlers::list, handlers::create))
            .routes(routes!(handlers::featured))
            .routes(routes!(handlers::categories))
            .routes(routes!(handlers::search))
            .routes(routes!(handlers::stats))
            .routes(routes!(handlers::get, handlers::update, handlers::delete))
            .routes(routes!(handlers::set_featured))
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
    }

    fn init(&self, init: &mut Init<'_>) -> anyhow::Result<()> {
        init.parts.insert(service::Conversations::new(
            categories::Categories::builtin()?,
            init.config.rate_limit.search_per_minute,
        ));
        Ok(())
    }

    /// The search limiter forgets idle callers every minute.
    fn start(&self, app: &AppState) {
        let weak = std::sync::Arc::downgrade(app);
        app.tasks.every(
            "search-limiter",
            Duration::from_secs(60),
            Duration::from_secs(60),
            move || {
                if let Some(app) = weak.upgrade()
                    && let Ok(state) = app.part::<service::Conversations>()
                {
                    state.forget_idle();
                }
                std::future::ready(())
            },
        );
    }
}
