//! The `persona` command line: one module per subcommand, each an `Opts` and a `run`.
//! `--config FILE` (or `PERSONA_CONFIG`) is global, so it works before or after the
//! subcommand.

pub mod admin;
pub mod doctor;
pub mod migrate;
mod progress;
pub mod serve;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "persona",
    version,
    about = "Self-hosted backend for Persona, a local-first AI assistant"
)]
pub struct Cli {
    /// Configuration file [default: ./persona.toml when it exists]
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "PERSONA_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the HTTP server (what runs with no subcommand)
    Serve(serve::Opts),
    /// Apply pending database migrations, then exit
    Migrate(migrate::Opts),
    /// Check the configuration, data directory, secrets, database and AI upstream
    Doctor(doctor::Opts),
    /// Administration: configuration and, per feature, users, scripts, secrets, backups
    Admin(admin::Opts),
}

impl Cli {
    /// Loads the layered configuration this invocation names.
    /// The app with every feature, for subcommands that work on the data (blocking start-up
    /// work included: migrations, seeding).
    pub fn open_app(&self) -> anyhow::Result<crate::app::AppState> {
        crate::app::App::init(self.load_config()?, crate::features::all())
    }

    pub fn load_config(&self) -> anyhow::Result<Config> {
        Config::load(self.config.as_deref())
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        None => serve::run(&cli, &serve::Opts::default()).await,
        Some(Command::Serve(opts)) => serve::run(&cli, opts).await,
        Some(Command::Migrate(opts)) => migrate::run(&cli, opts).await,
        Some(Command::Doctor(opts)) => doctor::run(&cli, opts).await,
        Some(Command::Admin(opts)) => admin::run(&cli, opts).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn config_flag_works_before_and_after_the_subcommand() {
        let before = Cli::try_parse_from(["persona", "--config", "a.toml", "migrate"]).unwrap();
        let after = Cli::try_parse_from(["persona", "migrate", "--config", "a.toml"]).unwrap();
        assert_eq!(before.config, Some(PathBuf::from("a.toml")));
        assert_eq!(after.config, Some(PathBuf::from("a.toml")));
    }

    #[test]
    fn no_subcommand_means_serve() {
        let cli = Cli::try_parse_from(["persona"]).unwrap();
        assert!(cli.command.is_none());
    }
}
