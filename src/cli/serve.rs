//! `persona serve [--bind ADDR]`: start the HTTP server until SIGINT/SIGTERM.

use std::{net::SocketAddr, process::ExitCode};

use anyhow::Context;
use tokio::net::TcpListener;

use super::Cli;
use crate::{
    app::{self, App},
    db::{self, maintenance::DataDirLock},
    telemetry,
};

#[derive(Debug, Default, clap::Args)]
pub struct Opts {
    /// Address to listen on, overriding `server.bind`
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<SocketAddr>,
}

pub async fn run(cli: &Cli, opts: &Opts) -> anyhow::Result<ExitCode> {
    let mut config = cli.load_config()?;
    if let Some(bind) = opts.bind {
        config.server.bind = bind;
    }
    telemetry::init(&config.log);
    let bind = config.server.bind;
    db::create_data_dir(&config.storage.data_dir)?;
    // Held until the server stops: a second server or a restore on this dir is refused.
    let _lock = DataDirLock::acquire(&config.storage.data_dir)?;
    let state = App::init(config, crate::features::all())?;
    app::raise_fd_limit();
    // Before the socket exists: whoever can reach the server can stop it gracefully.
    let shutdown = app::shutdown_signal();
    let listener = TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    let local = listener.local_addr()?;
    tracing::info!(
        address = %local,
        data_dir = %state.config.storage.data_dir.display(),
        version = env!("CARGO_PKG_VERSION"),
        "persona is listening; API docs at http://{local}/api-docs"
    );
    app::serve(state, listener, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
