//! `persona admin config show|example`.

use std::process::ExitCode;

use clap::Subcommand;

use crate::{cli::Cli, config::EXAMPLE};

#[derive(Debug, clap::Args)]
pub struct Opts {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// The effective configuration after file and environment, secrets redacted (TOML)
    Show,
    /// The documented example with every key and its default (a starting persona.toml)
    Example,
}

pub fn run(cli: &Cli, opts: &Opts) -> anyhow::Result<ExitCode> {
    match opts.command {
        ConfigCommand::Show => {
            let config = cli.load_config()?;
            print!("{}", toml::to_string_pretty(&config)?);
        }
        ConfigCommand::Example => print!("{EXAMPLE}"),
    }
    Ok(ExitCode::SUCCESS)
}
