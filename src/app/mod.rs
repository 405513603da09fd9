//! The running application: what every handler can reach, and how it is served.
//!
//! `App::init` opens the data dir, the secrets and the database, then lets each feature (a
//! [`Feature`], listed by `features::all()` and passed in by the caller) do its start-up work
//! and leave its state in [`App::part`]. `serve` takes a bound listener and a shutdown
//! future, so `persona serve` binds the configured address and waits for SIGINT/SIGTERM,
//! while tests bind port 0 and shut down on demand, with no sleeps.

mod feature;
mod server;
mod tasks;

use std::{
    any::Any,
    future::Future,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use anyhow::Context;
use tokio::net::TcpListener;

pub use feature::{Feature, Init, Parts};
pub use server::raise_fd_limit;
pub use tasks::Tasks;

use crate::{
    auth::Auth, config::Config, db::Db, domain::Timestamp, error::AppResult, http, notify::Notify,
    secrets::Secrets,
};

/// Shared state of the server. Cheap to clone (an `Arc`).
pub type AppState = Arc<App>;

pub struct App {
    pub config: Config,
    pub db: Db,
    /// Swapped when `secrets.toml` changes (a rotation by the CLI); see [`App::secrets`].
    secrets: RwLock<Arc<Secrets>>,
    pub auth: Auth,
    /// Mail and signed webhooks.
    pub notify: Notify,
    /// The one outbound HTTP client (AI upstream, webhooks): one connection pool, rustls.
    pub http: reqwest::Client,
    /// Every background task, drained at shutdown.
    pub tasks: Tasks,
    pub started_at: Instant,
    features: Vec<Arc<dyn Feature>>,
    parts: Parts,
}

impl App {
    /// Prepares everything the server needs: the data dir, the secrets, the database with its
    /// migrations applied, and each feature's start-up work. Blocking; run it before serving.
    pub fn init(config: Config, features: Vec<Arc<dyn Feature>>) -> anyhow::Result<AppState> {
        let (db, report) = Db::open(&config)?;
        for migration in &report.applied {
            tracing::info!(migration, "applied migration");
        }
        let secrets = Secrets::load_or_create(&config.secrets_path())?;
        let auth = Auth::new(&config, &secrets)?;
        // `ai.connect_timeout` is the one outbound connect timeout (the AI provider was the
        // first remote host; webhooks share the client).
        let http = http::client::outbound(config.ai.connect_timeout)?;
        let notify = Notify::new(&config, http.clone())?;
        let mut parts = Parts::default();
        for feature in &features {
            feature
                .init(&mut Init {
                    config: &config,
                    db: &db,
                    http: &http,
                    parts: &mut parts,
                })
                .with_context(|| format!("cannot start the {} feature", feature.name()))?;
        }
        Ok(Arc::new(App {
            config,
            db,
            secrets: RwLock::new(Arc::new(secrets)),
            auth,
            notify,
            http,
            tasks: Tasks::new(),
            started_at: Instant::now(),
            features,
            parts,
        }))
    }

    /// The features this app was started with.
    pub fn features(&self) -> &[Arc<dyn Feature>] {
        &self.features
    }

    /// The state a feature left at start (`Init::parts`); a 500 if it is missing.
    pub fn part<T: Any + Send + Sync>(&self) -> AppResult<&T> {
        self.parts.get::<T>()
    }

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

    /// Starts the background work: the server's own (key reloads, session pruning) and each
    /// feature's.
    fn start(self: &Arc<Self>) {
        let app = Arc::downgrade(self);
        let mut seen = secrets_modified(&self.config);
        self.tasks.every(
            "secrets",
            SECRETS_RELOAD_INTERVAL,
            SECRETS_RELOAD_INTERVAL,
            move || {
                let app = app.upgrade();
                let changed = app.as_ref().map(|app| secrets_modified(&app.config));
                if let (Some(app), Some(now)) = (app, changed)
                    && now != seen
                {
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
                std::future::ready(())
            },
        );
        self.prune_every("sessions", crate::auth::sessions::prune);
        self.snapshot_every();
        // Latency samples go into their buckets (see `http::metrics_upkeep`).
        self.blocking_every("metrics upkeep", METRICS_UPKEEP_INTERVAL, |_| {
            crate::http::metrics_upkeep();
        });
        // What a burst of load allocated and freed goes back to the system (see
        // `crate::trim_allocator`), the auth caches' stale entries and SQLite's page caches
        // first, so the server returns near its idle size after it.
        self.blocking_every("allocator trim", ALLOCATOR_TRIM_INTERVAL, |app| {
            app.auth.forget_stale();
            app.db.release_memory();
            crate::trim_allocator();
        });
        for feature in &self.features {
            feature.start(self);
        }
        // What start-up built and dropped (the API document's structs, the detector's
        // tables while they were compiled) leaves holes in the heap that glibc keeps: about
        // 5 MB until the first periodic trim. One trim now, while the heap is small (< 1 ms).
        crate::trim_allocator();
    }
}

/// How often freed heap memory is handed back to the system.
const ALLOCATOR_TRIM_INTERVAL: Duration = Duration::from_secs(20);

/// How often recorded latencies are folded into the histograms (a few MB of samples at most
/// in between, at the fastest this server answers).
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

impl App {
    /// Runs `work` on the blocking pool every `period` (the first time one period after
    /// start), for as long as the app lives.
    fn blocking_every(self: &Arc<Self>, what: &'static str, period: Duration, work: fn(&App)) {
        let app = Arc::downgrade(self);
        self.tasks.every(what, period, period, move || {
            let app = app.upgrade();
            async move {
                let Some(app) = app else { return };
                let _ = crate::db::run_blocking(move || {
                    work(&app);
                    Ok(())
                })
                .await;
            }
        });
    }

    /// Deletes what can no longer be used, with `prune` (a store function answering how many
    /// rows it removed), a second after start and hourly after that.
    pub fn prune_every(
        self: &Arc<Self>,
        what: &'static str,
        prune: fn(&rusqlite::Connection, Timestamp) -> AppResult<usize>,
    ) {
        let app = Arc::downgrade(self);
        self.tasks.every(
            what,
            Duration::from_secs(1),
            Duration::from_secs(3600),
            move || {
                let app = app.upgrade();
                async move {
                    let Some(app) = app else { return };
                    let now = Timestamp::now();
                    match app.db.write(move |tx| prune(tx, now)).await {
                        Ok(0) => {}
                        Ok(removed) => tracing::info!(removed, what, "pruned"),
                        Err(err) => tracing::warn!(error = %err, what, "pruning failed"),
                    }
                }
            },
        );
    }
}

impl App {
    /// `backups.snapshot_interval`: a checked snapshot of the database every period, the
    /// oldest beyond `backups.snapshot_retain` deleted (see `db::snapshots`).
    fn snapshot_every(self: &Arc<Self>) {
        let Some(period) = self.config.backups.snapshot_interval else {
            return;
        };
        let app = Arc::downgrade(self);
        self.tasks.every("snapshots", period, period, move || {
            let app = app.upgrade();
            async move {
                let Some(app) = app else { return };
                let db_path = app.db.path().to_owned();
                let dir = app.config.snapshot_dir();
                let busy = app.config.storage.busy_timeout;
                let retain = app.config.backups.snapshot_retain;
                let taken = crate::db::run_blocking(move || {
                    crate::db::snapshots::take(&db_path, &dir, busy, retain)
                        .map_err(crate::error::ApiError::internal)
                })
                .await;
                match taken {
                    Ok(taken) => tracing::info!(
                        path = %taken.snapshot.path.display(),
                        size = taken.snapshot.size,
                        removed = taken.removed,
                        "snapshot taken; integrity check ok"
                    ),
                    Err(err) => tracing::warn!(error = %err, "snapshot failed"),
                }
            }
        });
    }
}

fn secrets_modified(config: &Config) -> Option<std::time::SystemTime> {
    std::fs::metadata(config.secrets_path())
        .and_then(|m| m.modified())
        .ok()
}

/// Serves the full router on `listener` until `shutdown` completes, then lets in-flight
/// requests finish for at most `server.shutdown_timeout`, stops the background tasks and
/// closes the database.
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
    router: http::Mounts,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let grace = state.config.server.shutdown_timeout;
    let server_config = &state.config.server;
    let limits = server::Limits {
        header_read_timeout: server_config.header_read_timeout,
        keep_alive_timeout: server_config.keep_alive_timeout,
        max_connections: server_config.max_connections as usize,
    };
    state.start();
    let connections = server::accept_loop(listener, router, limits, shutdown).await;
    tracing::info!("shutting down: finishing in-flight requests");
    if tokio::time::timeout(grace, connections.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "in-flight requests did not finish in time; dropping them"
        );
    }
    if !state.tasks.shutdown(grace).await {
        tracing::warn!(
            ?grace,
            "background tasks did not finish in time; dropping them"
        );
    }
    state.db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// How often the server looks for a rotated `secrets.toml`.
pub const SECRETS_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// Completes on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed when this is called,
/// not when the future is first polled: the accept loop may serve its first connections
/// before it polls the shutdown branch, and a SIGTERM in that window used to kill the
/// process outright instead of stopping it gracefully. Call it before binding.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    let terminate = signal(SignalKind::terminate()).ok();
    let interrupt = signal(SignalKind::interrupt()).ok();
    let received = |signal: Option<Signal>| async move {
        match signal {
            Some(mut signal) => {
                signal.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    async move {
        tokio::select! {
            () = received(terminate) => {},
            () = received(interrupt) => {},
        }
    }
}
