//! Crisis support, SPEC section 8: `/api/v1/crisis/*`, and the screening the AI proxy runs on
//! every chat and analysis.
//!
//! A built-in detector (`detector/`, lexicon in `config/crisis/`) reads a message into
//! `none < low < medium < high`; at or above `crisis.resource_level` answers carry hotlines
//! for the user's locale and an event is recorded (never the text). An SOS alert — or a
//! detected `high` with `crisis.auto_notify` — queues notifications for opted-in contacts and
//! the admin webhook in the same transaction as its event; the outbox worker delivers them
//! with retries, across restarts.

pub mod detector;
mod handlers;
mod outbox;
mod resources;
mod service;
mod store;
mod types;

use std::sync::Arc;

use utoipa_axum::{router::OpenApiRouter, routes};

pub use handlers::locales;
pub use resources::{Resource, accept_language};
pub use service::{assess, screen, screen_analysis};
pub use types::{CrisisFlag, FailedDelivery, Source};

use crate::{
    app::{AppState, Feature, Init},
    config::Config,
    domain::Timestamp,
    error::AppResult,
    http::ApiRouter,
};

pub struct CrisisSupport;

/// The feature's state: the compiled detector, the hotlines, the outbox worker's bell.
pub struct Crisis {
    detector: detector::Detector,
    resources: resources::Resources,
    wake: Arc<tokio::sync::Notify>,
}

impl Feature for CrisisSupport {
    fn name(&self) -> &'static str {
        "crisis"
    }

    fn routes(&self, _config: &Config) -> ApiRouter {
        OpenApiRouter::new()
            .routes(routes!(handlers::check))
            .routes(routes!(handlers::resources))
            .routes(routes!(handlers::contacts, handlers::add_contact))
            .routes(routes!(handlers::update_contact, handlers::delete_contact))
            .routes(routes!(handlers::alert))
            .routes(routes!(handlers::events))
            .routes(routes!(handlers::event))
    }

    fn init(&self, init: &mut Init<'_>) -> anyhow::Result<()> {
        let config = &init.config.crisis;
        let detector = match &config.lexicon_dir {
            Some(dir) => detector::Detector::from_dir(dir)?,
            None => detector::Detector::builtin(),
        };
        let resources = match &config.resources_file {
            Some(file) => resources::Resources::from_file(file)?,
            None => resources::Resources::builtin()?,
        };
        init.parts.insert(Crisis {
            detector,
            resources,
            wake: Arc::new(tokio::sync::Notify::new()),
        });
        Ok(())
    }

    /// The outbox worker.
    fn start(&self, app: &AppState) {
        if let Ok(crisis) = app.part::<Crisis>() {
            let (weak, wake) = (Arc::downgrade(app), crisis.wake.clone());
            app.tasks.spawn(outbox::run(weak, wake));
        }
    }
}

/// Events since `since`, counted by level and source (for `persona admin crisis events`).
pub async fn event_counts(
    app: &crate::app::App,
    since: Timestamp,
) -> AppResult<Vec<(String, String, i64)>> {
    app.db.read(move |conn| store::counts(conn, since)).await
}

/// Events since `since` per UTC day, level and source (the console's crisis page).
pub async fn event_counts_by_day(
    app: &crate::app::App,
    since: Timestamp,
) -> AppResult<Vec<(String, String, String, i64)>> {
    app.db
        .read(move |conn| store::counts_by_day(conn, since))
        .await
}

/// The latest notifications that failed or are retrying after a failure (no text).
pub async fn failed_deliveries(
    app: &crate::app::App,
    limit: u32,
) -> AppResult<Vec<FailedDelivery>> {
    app.db
        .read(move |conn| store::failed_deliveries(conn, limit))
        .await
}

/// Sends a signed test event to `crisis.webhook_url` now (for `persona admin crisis
/// test-webhook`); the error says what went wrong.
pub async fn test_webhook(app: &crate::app::App) -> anyhow::Result<String> {
    let url = app
        .config
        .crisis
        .webhook_url
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("crisis.webhook_url is not set"))?;
    let secret = outbox::webhook_secret(app)
        .ok_or_else(|| anyhow::anyhow!("no webhook secret (secrets.toml has none)"))?;
    let body = serde_json::json!({
        "eventId": "test",
        "userId": "test",
        "level": "high",
        "source": "test",
        "createdAt": Timestamp::now(),
        "test": true,
    });
    app.notify
        .webhook(url.expose(), secret.as_bytes(), &body)
        .await?;
    Ok(url.expose().to_owned())
}
