//! `persona admin scripts seed [--dir DIR] | list | export --out FILE | import FILE`.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;

use crate::{
    app::App,
    cli::Cli,
    features::scripts::{self, NewScript, Script},
};

#[derive(Debug, clap::Args)]
pub struct Opts {
    #[command(subcommand)]
    pub command: ScriptsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ScriptsCommand {
    /// Add the default scripts (or those in DIR) whose versions are missing; idempotent
    Seed {
        /// A directory of script files (*.json) instead of the built-in defaults
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// List every script version
    List,
    /// Write every script version to a JSON file (for `import` elsewhere)
    Export {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Add the script versions of a file written by `export`; existing versions are kept
    Import { file: PathBuf },
}

pub async fn run(cli: &Cli, opts: &Opts) -> anyhow::Result<ExitCode> {
    let app = cli.open_app()?;
    match &opts.command {
        ScriptsCommand::Seed { dir } => {
            let scripts = match dir {
                Some(dir) => scripts::read_dir(dir)?,
                None => scripts::defaults()?,
            };
            add(&app, scripts).await?;
        }
        ScriptsCommand::Import { file } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let scripts: Vec<NewScript> = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a scripts export", file.display()))?;
            add(&app, scripts).await?;
        }
        ScriptsCommand::List => {
            let rows = scripts::all(&app).await?;
            println!(
                "{:<28} {:>7}  {:<6}  description",
                "name", "version", "active"
            );
            for row in rows {
                println!(
                    "{:<28} {:>7}  {:<6}  {}",
                    row.name,
                    row.version,
                    if row.is_active { "yes" } else { "" },
                    row.description
                );
            }
        }
        ScriptsCommand::Export { out } => {
            anyhow::ensure!(!out.exists(), "{} already exists", out.display());
            let rows = scripts::all(&app).await?;
            let scripts: Vec<NewScript> = rows
                .into_iter()
                .map(Script::from)
                .map(|s| NewScript {
                    name: s.name,
                    version: Some(s.version),
                    description: s.description,
                    content: s.content,
                    activate: s.is_active,
                })
                .collect();
            std::fs::write(out, serde_json::to_string_pretty(&scripts)?)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "exported {} script version(s) to {}",
                scripts.len(),
                out.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn add(app: &App, scripts: Vec<NewScript>) -> anyhow::Result<()> {
    let seeded = scripts::seed_scripts(app, scripts).await?;
    for created in &seeded.created {
        println!("added {created}");
    }
    println!(
        "{} script version(s) added, {} already present",
        seeded.created.len(),
        seeded.unchanged
    );
    Ok(())
}
