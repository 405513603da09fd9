//! `persona admin usage [--since DATE]`: AI requests and tokens per user and model.

use std::process::ExitCode;

use anyhow::Context;

use crate::{cli::Cli, domain::Timestamp, features::ai};

#[derive(Debug, clap::Args)]
pub struct Opts {
    /// First day to count (YYYY-MM-DD, UTC) [default: 30 days ago]
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
}

pub async fn run(cli: &Cli, opts: &Opts) -> anyhow::Result<ExitCode> {
    let app = cli.open_app()?;
    let since = match &opts.since {
        Some(text) => {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            time::Date::parse(text.trim(), &format)
                .with_context(|| format!("--since {text}: expected a date like 2026-11-01"))?
                .midnight()
                .assume_utc()
                .unix_timestamp()
        }
        None => Timestamp::now()
            .start_of_day()
            .plus_secs(-29 * 86_400)
            .unix(),
    };
    let rows = app
        .db
        .read(move |conn| ai::usage_by_user(conn, since))
        .await?;
    let day = time::OffsetDateTime::from_unix_timestamp(since)?.date();
    println!("AI usage since {day} (UTC)");
    println!(
        "{:<32} {:<32} {:>9} {:>12} {:>12} {:>12}",
        "user", "model", "requests", "prompt", "completion", "total"
    );
    let (mut requests, mut total) = (0, 0);
    for row in &rows {
        println!(
            "{:<32} {:<32} {:>9} {:>12} {:>12} {:>12}",
            row.key,
            row.model,
            row.requests,
            row.prompt_tokens,
            row.completion_tokens,
            row.total_tokens
        );
        requests += row.requests;
        total += row.total_tokens;
    }
    println!("{requests} request(s), {total} token(s) in all");
    Ok(ExitCode::SUCCESS)
}
