//! `persona admin conversations export --user E --out FILE`: a user's conversations as JSON
//! (data portability). Written to a new file only (never over an existing one), mode 0600.

use std::{io::Write, os::unix::fs::OpenOptionsExt, path::PathBuf, process::ExitCode};

use anyhow::{Context, bail};

use crate::{
    auth::users,
    cli::{Cli, progress::Progress},
    domain::{Email, Timestamp},
    features::conversations,
};

#[derive(Debug, clap::Args)]
pub struct Opts {
    #[command(subcommand)]
    pub command: ConversationsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ConversationsCommand {
    /// Write every conversation of one user, with its messages, to a JSON file
    Export {
        #[arg(long, value_name = "EMAIL")]
        user: String,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

pub async fn run(cli: &Cli, opts: &Opts) -> anyhow::Result<ExitCode> {
    let ConversationsCommand::Export { user, out } = &opts.command;
    let email = Email::parse(user).map_err(|m| anyhow::anyhow!("--user {m}"))?;
    if out.exists() {
        bail!("{} already exists", out.display());
    }
    let app = cli.open_app()?;
    let lookup = email.as_str().to_owned();
    let Some(owner) = app
        .db
        .read(move |conn| users::user_by_email(conn, &lookup))
        .await?
    else {
        bail!("no account with the email {email}");
    };
    let items = conversations::export(&app, owner.id.clone()).await?;
    let mut progress = Progress::new(items.len() as u64, "conversations exported");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("cannot create {}", out.display()))?;
    let document = serde_json::json!({
        "exportedAt": Timestamp::now(),
        "user": {"id": owner.id, "email": owner.email},
        "count": items.len(),
        "conversations": items,
    });
    for item in document["conversations"].as_array().into_iter().flatten() {
        progress.step(item["id"].as_str().unwrap_or(""));
    }
    serde_json::to_writer_pretty(&mut file, &document)?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    progress.finish();
    println!(
        "exported {} conversation(s) of {email} to {}",
        items.len(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
