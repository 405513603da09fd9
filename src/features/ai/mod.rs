//! The AI proxy, SPEC section 7: `/api/v1/ai/*`. The app sends OpenAI-shaped requests with
//! its user's access token; the server checks the model, the caps, the rate and the budget,
//! calls the upstream with the provider key only it holds, relays the answer (streams chunk
//! by chunk), and records tokens and latency — never the text.

mod caps;
mod handlers;
mod limits;
mod service;
mod sse;
mod store;
mod types;
mod upstream;
mod usage;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::Value;
use tokio::sync::Mutex;
use utoipa_axum::{router::OpenApiRouter, routes};

pub use store::{UsageSum, usage_by_day, usage_by_user};
pub use types::AiHealth;
pub use upstream::{ProbeError, Upstream};

use crate::{
    app::{AppState, Feature, Init},
    config::{AiConfig, Config},
    http::ApiRouter,
};

/// How long the upstream's model list is kept (and how long a failure to get it is).
const MODELS_TTL: Duration = Duration::from_secs(600);
const MODELS_RETRY: Duration = Duration::from_secs(30);
/// How long `/ai/health` reuses its last probe.
const HEALTH_TTL: Duration = Duration::from_secs(30);
const HEALTH_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct AiProxy;

impl Feature for AiProxy {
    fn name(&self) -> &'static str {
        "ai"
    }

    fn routes(&self, _config: &Config) -> ApiRouter {
        OpenApiRouter::new()
            .routes(routes!(handlers::chat))
            .routes(routes!(handlers::chat_completions))
            .routes(routes!(handlers::embeddings))
            .routes(routes!(handlers::content))
            .routes(routes!(handlers::models))
            .routes(routes!(handlers::analyze))
            .routes(routes!(handlers::usage))
            .routes(routes!(handlers::health))
    }

    /// AI calls may legitimately take up to `ai.timeout` (a slow local model): they get that
    /// plus a margin, so the proxy's own 504 `upstream_timeout` answers first.
    fn request_timeout(&self, config: &Config) -> Option<Duration> {
        Some(
            config
                .server
                .request_timeout
                .max(config.ai.timeout + Duration::from_secs(5)),
        )
    }

    fn init(&self, init: &mut Init<'_>) -> anyhow::Result<()> {
        init.parts.insert(Ai::new(init.config, init.http.clone())?);
        Ok(())
    }

    fn start(&self, app: &AppState) {
        if app.part::<Ai>().is_ok() {
            // The per-user limits forget users idle for a minute (the rate) or with nothing
            // in flight since the day's tally was loaded (it is read again when needed).
            let weak = std::sync::Arc::downgrade(app);
            app.tasks.every(
                "ai-limits",
                std::time::Duration::from_secs(60),
                std::time::Duration::from_secs(60),
                move || {
                    if let Some(app) = weak.upgrade()
                        && let Ok(ai) = app.part::<Ai>()
                    {
                        ai.limits.forget_idle();
                    }
                    std::future::ready(())
                },
            );
        }
    }
}

/// The proxy's state: the upstream, the limits and two small caches.
pub struct Ai {
    upstream: Upstream,
    limits: Arc<limits::Limits>,
    configured: bool,
    default_model: String,
    allowed_models: Vec<String>,
    models: Mutex<Option<(Instant, Option<Vec<Value>>)>>,
    health: Mutex<Option<(Instant, types::AiHealth)>>,
}

impl Ai {
    pub fn new(config: &Config, http: reqwest::Client) -> anyhow::Result<Ai> {
        let ai: &AiConfig = &config.ai;
        Ok(Ai {
            upstream: Upstream::new(ai, http)?,
            limits: Arc::new(limits::Limits::new(ai)),
            configured: ai.api_key.is_some(),
            default_model: ai.default_model.clone(),
            allowed_models: if ai.allowed_models.is_empty() {
                vec![ai.default_model.clone()]
            } else {
                ai.allowed_models.clone()
            },
            models: Mutex::new(None),
            health: Mutex::new(None),
        })
    }

    pub fn configured(&self) -> bool {
        self.configured
    }

    /// The models users may pick: `ai.allowed_models`, or only the default model.
    pub fn allowed_models(&self) -> &[String] {
        &self.allowed_models
    }

    pub fn is_model_allowed(&self, model: &str) -> bool {
        self.allowed_models.iter().any(|m| m == model)
    }

    /// The upstream's model list, cached; `None` while it cannot be had.
    async fn upstream_models(&self) -> Option<Vec<Value>> {
        let mut cache = self.models.lock().await;
        if let Some((at, models)) = cache.as_ref() {
            let ttl = if models.is_some() {
                MODELS_TTL
            } else {
                MODELS_RETRY
            };
            if at.elapsed() < ttl {
                return models.clone();
            }
        }
        let models = self.upstream.models().await.ok();
        *cache = Some((Instant::now(), models.clone()));
        models
    }

    /// The upstream's health, from a probe at most every `HEALTH_TTL`.
    pub async fn health(&self) -> types::AiHealth {
        let mut cache = self.health.lock().await;
        if let Some((at, health)) = cache.as_ref()
            && at.elapsed() < HEALTH_TTL
        {
            return health.clone();
        }
        let health = if self.configured {
            let probe = self.upstream.probe(HEALTH_PROBE_TIMEOUT).await;
            types::AiHealth {
                configured: true,
                upstream: if probe.is_ok() { "ok" } else { "unreachable" },
                latency_ms: probe.ok().map(|latency| latency.as_millis() as u64),
                checked_at: crate::domain::Timestamp::now(),
            }
        } else {
            types::AiHealth {
                configured: false,
                upstream: "unconfigured",
                latency_ms: None,
                checked_at: crate::domain::Timestamp::now(),
            }
        };
        *cache = Some((Instant::now(), health.clone()));
        health
    }
}

/// The AI upstream's health (`GET /ai/health`, the console's overview): the proxy's cached
/// probe, or `unconfigured` when the app runs without the proxy.
pub async fn upstream_health(app: &crate::app::App) -> AiHealth {
    match app.part::<Ai>() {
        Ok(ai) => ai.health().await,
        Err(_) => AiHealth {
            configured: false,
            upstream: "unconfigured",
            latency_ms: None,
            checked_at: crate::domain::Timestamp::now(),
        },
    }
}
