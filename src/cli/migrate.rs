//! `persona migrate`: apply pending migrations and exit (the server also does it at start).

use std::process::ExitCode;

use super::Cli;
use crate::{db::Db, telemetry};

#[derive(Debug, Default, clap::Args)]
pub struct Opts {}

pub async fn run(cli: &Cli, _opts: &Opts) -> anyhow::Result<ExitCode> {
    let config = cli.load_config()?;
    telemetry::init(&config.log);
    let (db, report) = Db::open(&config)?;
    if report.applied.is_empty() {
        println!(
            "database {} is up to date (schema version {})",
            db.path().display(),
            report.version
        );
    } else {
        for name in &report.applied {
            println!("applied {name}");
        }
        println!(
            "database {} is at schema version {}",
            db.path().display(),
            report.version
        );
    }
    db.close().await;
    Ok(ExitCode::SUCCESS)
}
