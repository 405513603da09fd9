//! `GET /health` (is the process up) and `GET /health/ready` (can it serve: the database
//! answers). Load balancers and the app's "server reachable" check use them.

use axum::extract::State;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    app::{AppState, Feature},
    config::Config,
    error::AppResult,
    http::{ApiRouter, extract::AppJson},
};

pub struct Health;

impl Feature for Health {
    fn name(&self) -> &'static str {
        "health"
    }

    fn routes(&self, _config: &Config) -> ApiRouter {
        ApiRouter::new()
    }

    fn system_routes(&self, _config: &Config) -> ApiRouter {
        OpenApiRouter::new()
            .routes(routes!(health))
            .routes(routes!(ready))
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Health)]
pub struct HealthBody {
    /// `OK`.
    status: &'static str,
    message: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    timestamp: OffsetDateTime,
    /// Seconds since the server started.
    uptime: f64,
    version: &'static str,
    /// Readiness only: `ok` when the database answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<&'static str>,
}

impl HealthBody {
    fn now(state: &AppState, message: &'static str) -> Self {
        HealthBody {
            status: "OK",
            message,
            timestamp: OffsetDateTime::now_utc(),
            uptime: (state.started_at.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            version: env!("CARGO_PKG_VERSION"),
            database: None,
        }
    }
}

/// Liveness: the process is up.
#[utoipa::path(get, path = "/health", tag = "system",
    responses((status = 200, body = HealthBody)))]
async fn health(State(state): State<AppState>) -> AppJson<HealthBody> {
    AppJson(HealthBody::now(&state, "persona is running"))
}

/// Readiness: the database answers a query within two seconds.
#[utoipa::path(get, path = "/health/ready", tag = "system",
    responses(
        (status = 200, body = HealthBody),
        (status = 503, description = "The database is not usable", body = crate::error::ErrorBody),
    ))]
async fn ready(State(state): State<AppState>) -> AppResult<AppJson<HealthBody>> {
    state.db.ready().await?;
    Ok(AppJson(HealthBody {
        database: Some("ok"),
        ..HealthBody::now(&state, "persona is ready")
    }))
}
