//! `persona admin crisis events [--since DATE] | test-webhook`.

use std::process::ExitCode;

use anyhow::Context;

use crate::{cli::Cli, domain::Timestamp, features::crisis};

#[derive(Debug, clap::Args)]
pub struct Opts {
    #[command(subcommand)]
    pub command: CrisisCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum CrisisCommand {
    /// Crisis events counted by level and source (no text exists to show)
    Events {
        /// First day to count (YYYY-MM-DD, UTC) [default: 30 days ago]
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
    },
    /// Send a signed test event to crisis.webhook_url now
    TestWebhook,
}

pub async fn run(cli: &Cli, opts: &Opts) -> anyhow::Result<ExitCode> {
    let app = cli.open_app()?;
    match &opts.command {
        CrisisCommand::Events { since } => {
            let since = match since {
                Some(text) => parse_day(text)?,
                None => Timestamp::now().start_of_day().plus_secs(-29 * 86_400),
            };
            let counts = crisis::event_counts(&app, since).await?;
            println!("crisis events since {} (UTC)", since.to_datetime().date());
            println!("{:<8} {:<8} {:>7}", "level", "source", "events");
            let mut total = 0;
            for (level, source, count) in &counts {
                println!("{level:<8} {source:<8} {count:>7}");
                total += count;
            }
            println!("{total} event(s) in all");
        }
        CrisisCommand::TestWebhook => {
            let url = crisis::test_webhook(&app)
                .await
                .context("the test webhook was not delivered")?;
            println!("delivered a signed test event to {url}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_day(text: &str) -> anyhow::Result<Timestamp> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(text.trim(), &format)
        .with_context(|| format!("--since {text}: expected a date like 2026-11-01"))?;
    Ok(Timestamp::from(day.midnight().assume_utc()))
}
