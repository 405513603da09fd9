//! The AI proxy, SPEC section 7: `/api/v1/ai/*`. The app sends OpenAI-shaped requests with
//! its user's access token; the server checks the model, the caps, the rate and the budget,
//! calls the upstream with the provider key only it holds, relays the answer (streams chunk
//! by chunk), and records tokens and latency — never the text.

mod handlers;
pub mod sse;
pub mod store;
pub mod types;
pub mod upstream;
pub mod usage;

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Mutex;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{app::AppState, config::AiConfig};

/// How long the upstream's model list is kept (and how long a failure to get it is).
const MODELS_TTL: Duration = Duration::from_secs(600);
const MODELS_RETRY: Duration = Duration::from_secs(30);
/// How long `/ai/health` reuses its last probe.
const HEALTH_TTL: Duration = Duration::from_secs(30);
const HEALTH_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Ai {
    pub upstream: upstream::Upstream,
    pub limits: usage::Limits,
    pub usage_writer: usage::UsageWriter,
    configured: bool,
    models: Mutex<Option<(Instant, Option<Vec<Value>>)>>,
    health: Mutex<Option<(Instant, types::AiHealth)>>,
}

impl Ai {
    pub fn new(config: &AiConfig) -> anyhow::Result<Ai> {
        Ok(Ai {
            upstream: upstream::Upstream::new(config)?,
            limits: usage::Limits::new(config),
            usage_writer: usage::UsageWriter::new(),
            configured: config.api_key.is_some(),
            models: Mutex::new(None),
            health: Mutex::new(None),
        })
    }

    pub fn configured(&self) -> bool {
        self.configured
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

    async fn health(&self) -> types::AiHealth {
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
                checked_at: time::OffsetDateTime::now_utc(),
            }
        } else {
            types::AiHealth {
                configured: false,
                upstream: "unconfigured",
                latency_ms: None,
                checked_at: time::OffsetDateTime::now_utc(),
            }
        };
        *cache = Some((Instant::now(), health.clone()));
        health
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::chat))
        .routes(routes!(handlers::chat_completions))
        .routes(routes!(handlers::content))
        .routes(routes!(handlers::models))
        .routes(routes!(handlers::analyze))
        .routes(routes!(handlers::usage))
        .routes(routes!(handlers::health))
}
