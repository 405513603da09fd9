//! `persona admin secrets rotate jwt`: a new signing key. The running server picks it up
//! within seconds (it watches `secrets.toml`); older keys keep verifying until no token they
//! signed can still be valid, and only then does a later rotation drop them.

use std::process::ExitCode;

use clap::Subcommand;
use time::OffsetDateTime;

use crate::{
    cli::Cli,
    secrets::{JwtKey, Key256, Secrets, new_kid},
};

#[derive(Debug, clap::Args)]
pub struct Opts {
    #[command(subcommand)]
    pub command: SecretsCommand,
}

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Rotate a key ring
    Rotate {
        #[command(subcommand)]
        ring: Ring,
    },
}

#[derive(Debug, Subcommand)]
pub enum Ring {
    /// A new JWT signing key; retired keys are dropped once their tokens have expired
    Jwt,
}

pub fn run(cli: &Cli, opts: &Opts) -> anyhow::Result<ExitCode> {
    let config = cli.load_config()?;
    let path = config.secrets_path();
    match &opts.command {
        SecretsCommand::Rotate { ring: Ring::Jwt } => {
            let mut secrets = Secrets::load_or_create(&path)?;
            let now = OffsetDateTime::now_utc();
            // A key stops signing when its successor appears (plus the server's reload
            // delay); its tokens live `access_ttl` (plus leeway) after that.
            let keep_for = config.auth.access_ttl
                + crate::app::SECRETS_RELOAD_INTERVAL
                + std::time::Duration::from_secs(120);
            let successors: Vec<OffsetDateTime> = secrets
                .jwt_keys
                .iter()
                .skip(1)
                .map(|k| k.created_at)
                .collect();
            let before = secrets.jwt_keys.len();
            let mut index = 0;
            secrets.jwt_keys.retain(|_| {
                let retired_at = successors.get(index).copied();
                index += 1;
                retired_at.is_none_or(|t| now - t < keep_for)
            });
            let dropped = before - secrets.jwt_keys.len();
            let kid = new_kid()?;
            secrets.jwt_keys.push(JwtKey {
                kid: kid.clone(),
                created_at: now,
                key: Key256::generate()?,
            });
            secrets.replace(&path)?;
            println!(
                "new JWT signing key {kid}; {} key(s) still verify; {dropped} expired key(s) dropped",
                secrets.jwt_keys.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
