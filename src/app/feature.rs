//! How a feature plugs into the server: one small interface that `app` and `http` iterate
//! over, never naming a feature. A feature contributes its routes (with the layers that
//! belong to them), a request timeout if it needs another, its start-up work and state, and
//! its background tasks. `features::all()` lists them; adding one is a folder and a line.

use std::{
    any::{Any, TypeId, type_name},
    collections::HashMap,
    time::Duration,
};

use super::AppState;
use crate::{
    config::Config,
    db::Db,
    error::{ApiError, AppResult},
    http::ApiRouter,
};

pub trait Feature: Send + Sync + 'static {
    /// A short name, for logs.
    fn name(&self) -> &'static str;

    /// The feature's routes under `/api/v1` (and `/api`), with their own layers.
    fn routes(&self, config: &Config) -> ApiRouter;

    /// The layers of the feature's API routes that need the app state (the server epoch
    /// header); [`crate::http`] applies them inside the middleware stack. The API document is
    /// built without a state, and without them.
    fn state_layers(&self, routes: ApiRouter, _app: &AppState) -> ApiRouter {
        routes
    }

    /// Routes outside the API mount (`/health`).
    fn system_routes(&self, _config: &Config) -> ApiRouter {
        ApiRouter::new()
    }

    /// How long a request to this feature's routes may take, when `server.request_timeout`
    /// is not right for it (the AI proxy waits for slow models).
    fn request_timeout(&self, _config: &Config) -> Option<Duration> {
        None
    }

    /// Start-up work before the server serves (blocking is fine here): seeding, and the
    /// state its handlers find with [`crate::app::App::part`].
    fn init(&self, _init: &mut Init<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    /// Starts the feature's background tasks on `app.tasks`; they stop when it is cancelled
    /// at shutdown, after the last request finished and before the database closes.
    fn start(&self, _app: &AppState) {}
}

/// What a feature's [`Feature::init`] can use, and where it leaves its state.
pub struct Init<'a> {
    pub config: &'a Config,
    pub db: &'a Db,
    /// The shared outbound HTTP client.
    pub http: &'a reqwest::Client,
    pub parts: &'a mut Parts,
}

/// Feature state by type: each feature puts in what its handlers need (one value per type).
#[derive(Default)]
pub struct Parts(HashMap<TypeId, Box<dyn Any + Send + Sync>>);

impl Parts {
    pub fn insert<T: Any + Send + Sync>(&mut self, value: T) {
        self.0.insert(TypeId::of::<T>(), Box::new(value));
    }

    pub fn get<T: Any + Send + Sync>(&self) -> AppResult<&T> {
        self.0
            .get(&TypeId::of::<T>())
            .and_then(|value| value.downcast_ref::<T>())
            .ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!(
                    "{} was not set up at start (is its feature listed in features::all?)",
                    type_name::<T>()
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_found_by_type() {
        let mut parts = Parts::default();
        parts.insert(7_u32);
        parts.insert("seven");
        assert_eq!(*parts.get::<u32>().unwrap(), 7);
        assert_eq!(*parts.get::<&str>().unwrap(), "seven");
        assert!(matches!(parts.get::<u64>(), Err(ApiError::Internal(_))));
    }
}
