//! `persona admin db backup --out FILE` (a consistent snapshot while the server runs),
//! `persona admin db snapshots` (the scheduled ones, `backups.snapshot_interval`) and
//! `persona admin db restore --from FILE` (server stopped: the file is checked, the replaced
//! database kept, and the result gets a new server epoch so devices upload again).

use std::{path::PathBuf, process::ExitCode};

use crate::{
    cli::Cli,
    db::{
        self,
        maintenance::{self, DataDirLock},
    },
};

#[derive(Debug, clap::Args)]
pub struct Opts {
    #[command(subcommand)]
    pub command: DbCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum DbCommand {
    /// Write a consistent snapshot of the database (safe while the server runs)
    Backup {
        /// The snapshot file to create (must not exist)
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// List the scheduled snapshots (backups.snapshot_interval), oldest first
    Snapshots,
    /// Replace the database with a snapshot (stop the server first)
    Restore {
        /// A file written by `persona admin db backup`
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
}

pub fn run(cli: &Cli, opts: &Opts) -> anyhow::Result<ExitCode> {
    let config = cli.load_config()?;
    let busy = config.storage.busy_timeout;
    match &opts.command {
        DbCommand::Backup { out } => {
            let size = maintenance::snapshot(&config.database_path(), out, busy)?;
            println!(
                "wrote a snapshot of {} ({}) to {}; integrity check ok",
                config.database_path().display(),
                bytesize::ByteSize::b(size),
                out.display()
            );
            println!(
                "keep secrets.toml with it: the backups inside cannot be read without its backup keys"
            );
        }
        DbCommand::Snapshots => {
            let dir = config.snapshot_dir();
            let snapshots = db::snapshots::list(&dir)?;
            if snapshots.is_empty() {
                let schedule = match config.backups.snapshot_interval {
                    Some(period) => format!("every {}", humantime::format_duration(period)),
                    None => "off: backups.snapshot_interval is unset".to_owned(),
                };
                println!("no snapshots in {} (scheduled {schedule})", dir.display());
            }
            for snapshot in snapshots {
                let taken = time::OffsetDateTime::from(snapshot.taken)
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                println!(
                    "{}  {:>10}  {taken}",
                    snapshot.path.display(),
                    bytesize::ByteSize::b(snapshot.size).to_string()
                );
            }
        }
        DbCommand::Restore { from } => {
            db::create_data_dir(&config.storage.data_dir)?;
            let _lock = DataDirLock::acquire(&config.storage.data_dir)
                .map_err(|e| anyhow::anyhow!("{e:#}; stop it before restoring"))?;
            let restored = maintenance::restore(
                &config.database_path(),
                from,
                busy,
                config.storage.litestream,
            )?;
            println!(
                "restored {} from {}",
                config.database_path().display(),
                from.display()
            );
            if let Some(kept) = &restored.kept {
                println!("the replaced database is kept as {}", kept.display());
            }
            println!(
                "server epoch {} → {}: devices will notice and upload again",
                restored.old_epoch.as_deref().unwrap_or("(none)"),
                restored.new_epoch
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
