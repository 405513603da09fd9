//! `persona admin …`: the administrator's tree. Each feature adds its own subcommand module
//! here (`user`, `scripts`, `secrets`, `backups`, `db`, `usage`, `crisis`, `conversations`).

mod backups;
mod config;
mod conversations;
mod crisis;
mod db;
mod scripts;
mod secrets;
mod usage;
mod user;

use std::process::ExitCode;

use clap::Subcommand;

use super::Cli;

#[derive(Debug, clap::Args)]
pub struct Opts {
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Show the effective configuration or the documented example
    Config(config::Opts),
    /// Print the OpenAPI document (JSON)
    Openapi,
    /// Accounts: create, list, disable, enable, promote, reset-password
    User(user::Opts),
    /// Key rings in secrets.toml: rotate jwt | backup-key
    Secrets(secrets::Opts),
    /// Encrypted backups: export
    Backups(backups::Opts),
    /// The database file: backup (online snapshot), snapshots (scheduled), restore
    Db(db::Opts),
    /// AI scripts: seed, list, export, import
    Scripts(scripts::Opts),
    /// AI requests and tokens per user and model
    Usage(usage::Opts),
    /// Crisis support: events (counts, no text), test-webhook
    Crisis(crisis::Opts),
    /// Conversations: export a user's as JSON
    Conversations(conversations::Opts),
}

pub async fn run(cli: &Cli, opts: &Opts) -> anyhow::Result<ExitCode> {
    match &opts.command {
        AdminCommand::Config(opts) => config::run(cli, opts),
        AdminCommand::User(opts) => user::run(cli, opts).await,
        AdminCommand::Secrets(opts) => secrets::run(cli, opts).await,
        AdminCommand::Backups(opts) => backups::run(cli, opts).await,
        AdminCommand::Db(opts) => db::run(cli, opts),
        AdminCommand::Scripts(opts) => scripts::run(cli, opts).await,
        AdminCommand::Usage(opts) => usage::run(cli, opts).await,
        AdminCommand::Crisis(opts) => crisis::run(cli, opts).await,
        AdminCommand::Conversations(opts) => conversations::run(cli, opts).await,
        AdminCommand::Openapi => {
            let config = cli.load_config()?;
            println!(
                "{}",
                crate::http::openapi::document(&config, &crate::features::all())
                    .to_pretty_json()?
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
