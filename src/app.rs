//! The running application: what every handler can reach, and how it is served.
//!
//! `serve` takes a bound listener and a shutdown future, so `persona serve` binds the
//! configured address and waits for SIGINT/SIGTERM, while tests bind port 0 and shut down on
//! demand, with no sleeps.

use std::{
    future::Future,
    net::SocketAddr,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;

use crate::{auth::Auth, config::Config, db::Db, http, mail::Mailer, secrets::Secrets};

/// Shared state of the server. Cheap to clone (an `Arc`).
pub type AppState = Arc<App>;

pub struct App {
    pub config: Config,
    pub db: Db,
    /// Swapped when `secrets.toml` changes (a rotation by the CLI); see [`App::secrets`].
    secrets: RwLock<Arc<Secrets>>,
    pub auth: Auth,
    /// `None` while `smtp.host` is unset.
    pub mailer: Option<Mailer>,
    /// The AI proxy's upstream client, limits and caches.
    pub ai: crate::features::ai::Ai,
    pub started_at: Instant,
}

impl App {
    /// Prepares everything the server needs: the data dir, the secrets, the database with its
    /// migrations applied. Blocking; run it before serving.
    pub fn init(config: Config) -> anyhow::Result<AppState> {
        let (db, report) = Db::open(&config)?;
        for migration in &report.applied {
            tracing::info!(migration, "applied migration");
        }
        let secrets = Secrets::load_or_create(&config.secrets_path())?;
        seed_default_scripts(&db)?;
        let auth = Auth::new(&config, &secrets)?;
        let mailer = Mailer::from_config(&config.smtp)?;
        let ai = crate::features::ai::Ai::new(&config.ai)?;
        Ok(Arc::new(App {
            config,
            db,
            secrets: RwLock::new(Arc::new(secrets)),
            auth,
            mailer,
            ai,
            started_at: Instant::now(),
        }))
    }
}

/// Seeds the default AI scripts into a database that has none yet (a first start). Later
/// starts leave the scripts to the admin (`persona admin scripts seed` adds new defaults).
fn seed_default_scripts(db: &Db) -> anyhow::Result<()> {
    use crate::features::scripts::{service, store};
    let defaults = service::defaults()?;
    let seeded = db.blocking_write(move |tx| {
        if !store::all(tx)?.is_empty() {
            return Ok(None);
        }
        service::seed(tx, &defaults).map(Some)
    })?;
    if let Some(seeded) = seeded {
        tracing::info!(scripts = ?seeded.created, "seeded the default AI scripts");
    }
    Ok(())
}

impl App {
    /// The key rings as last read from `secrets.toml`.
    pub fn secrets(&self) -> Arc<Secrets> {
        self.secrets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads `secrets.toml` again and takes up its key rings (after a rotation by the CLI).
    pub fn reload_secrets(&self) -> anyhow::Result<Arc<Secrets>> {
        let secrets = Arc::new(Secrets::read(&self.config.secrets_path())?);
        self.auth.reload_keys(&self.config, &secrets);
        *self.secrets.write().unwrap_or_else(|p| p.into_inner()) = secrets.clone();
        Ok(secrets)
    }
}

/// Serves the full router on `listener` until `shutdown` completes, then lets in-flight
/// requests finish for at most `server.shutdown_timeout` and closes the database.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_router(state.clone(), http::router(state), listener, shutdown).await
}

/// [`serve`] with a router of the caller's (tests add routes to the real middleware stack).
pub async fn serve_router(
    state: AppState,
    router: Router,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let grace = state.config.server.shutdown_timeout;
    let watcher = tokio::spawn(watch_secrets(Arc::downgrade(&state)));
    let pruner = tokio::spawn(prune_periodically(Arc::downgrade(&state)));
    let usage_writer = state.ai.usage_writer.run(state.db.clone());
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stopping_tx.send(());
    });

    tokio::select! {
        result = server => result.context("server error")?,
        () = async {
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!(?grace, "in-flight requests did not finish in time; dropping them");
        }
    }
    watcher.abort();
    pruner.abort();
    if let Some(writer) = usage_writer {
        state.ai.usage_writer.flush(Duration::from_secs(2)).await;
        writer.abort();
    }
    state.db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// How often the server looks for a rotated `secrets.toml`.
pub const SECRETS_RELOAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Reloads the key rings when `secrets.toml` changes, so a key rotated with the CLI starts
/// signing (or sealing backups) without a restart, and old keys can be retired on schedule.
async fn watch_secrets(state: std::sync::Weak<App>) {
    let modified = |app: &App| {
        std::fs::metadata(app.config.secrets_path())
            .and_then(|m| m.modified())
            .ok()
    };
    let mut seen = match state.upgrade() {
        Some(app) => modified(&app),
        None => return,
    };
    let mut tick = tokio::time::interval(SECRETS_RELOAD_INTERVAL);
    loop {
        tick.tick().await;
        let Some(app) = state.upgrade() else { return };
        let now = modified(&app);
        if now == seen {
            continue;
        }
        match app.reload_secrets() {
            Ok(secrets) => {
                tracing::info!(
                    kid = %secrets.signing_jwt_key().kid,
                    backup_key = secrets.current_backup_key().version,
                    "reloaded the key rings"
                );
                seen = now;
            }
            Err(err) => tracing::warn!(
                error = format!("{err:#}"),
                "secrets.toml changed but cannot be read"
            ),
        }
    }
}

/// Deletes ended sessions and spent tokens once an hour (and once shortly after start).
async fn prune_periodically(state: std::sync::Weak<App>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let Some(app) = state.upgrade() else { return };
        let now = crate::auth::now();
        match app
            .db
            .write(move |tx| crate::features::accounts::store::prune(tx, now))
            .await
        {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "pruned ended sessions and spent tokens"),
            Err(err) => tracing::warn!(error = %err, "pruning failed"),
        }
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
