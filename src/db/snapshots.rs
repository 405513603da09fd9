//! Scheduled snapshots (`backups.snapshot_interval`), for servers without Litestream: every
//! period, an online `VACUUM INTO` of the database (a read transaction: writers never wait
//! for it) into `backups.snapshot_dir`, integrity-checked, then the oldest beyond
//! `backups.snapshot_retain` are deleted. A snapshot is written under a temporary name and
//! renamed once checked, so a crash never leaves a half snapshot in the list. Each one is a
//! plain database file that `persona admin db restore --from` takes.

use std::{
    fs,
    os::unix::fs::DirBuilderExt,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use anyhow::Context;

const PREFIX: &str = "persona-";
const SUFFIX: &str = ".db";
const PARTIAL: &str = ".partial";

/// One snapshot file.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub path: PathBuf,
    pub size: u64,
    pub taken: SystemTime,
}

/// What [`take`] did.
#[derive(Debug)]
pub struct Taken {
    pub snapshot: Snapshot,
    /// Older snapshots deleted by retention.
    pub removed: usize,
}

/// Takes a snapshot of the database at `db_path` into `dir` and keeps the newest `retain`.
pub fn take(db_path: &Path, dir: &Path, busy: Duration, retain: u32) -> anyhow::Result<Taken> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the snapshot directory {}", dir.display()))?;
    // Leftovers of a snapshot interrupted by a crash.
    for entry in fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(PREFIX) && name.ends_with(PARTIAL) {
            let _ = fs::remove_file(entry.path());
        }
    }
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second].[subsecond digits:3]Z"
        ))
        .context("cannot format the snapshot time")?;
    let path = dir.join(format!("{PREFIX}{stamp}{SUFFIX}"));
    let partial = dir.join(format!("{PREFIX}{stamp}{SUFFIX}{PARTIAL}"));
    let written = super::maintenance::snapshot(db_path, &partial, busy);
    if let Err(err) = written {
        let _ = fs::remove_file(&partial);
        return Err(err);
    }
    fs::rename(&partial, &path)
        .with_context(|| format!("cannot rename the snapshot to {}", path.display()))?;
    let snapshot = describe(&path)?;
    let removed = prune(dir, retain)?;
    Ok(Taken { snapshot, removed })
}

/// The snapshots in `dir`, oldest first (none when the directory does not exist).
pub fn list(dir: &Path) -> anyhow::Result<Vec<Snapshot>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(PREFIX) && n.ends_with(SUFFIX))
        })
        .collect();
    // The names hold the UTC time, so their order is the order taken.
    paths.sort();
    paths.iter().map(|p| describe(p)).collect()
}

fn describe(path: &Path) -> anyhow::Result<Snapshot> {
    let meta = fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Snapshot {
        path: path.to_owned(),
        size: meta.len(),
        taken: meta.modified()?,
    })
}

/// Deletes the oldest snapshots beyond `retain`; answers how many.
fn prune(dir: &Path, retain: u32) -> anyhow::Result<usize> {
    let all = list(dir)?;
    let extra = all.len().saturating_sub(retain as usize);
    for old in &all[..extra] {
        fs::remove_file(&old.path)
            .with_context(|| format!("cannot delete {}", old.path.display()))?;
    }
    Ok(extra)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn snapshots_are_checked_files_and_only_the_newest_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.storage.data_dir = dir.path().join("data");
        let (db, _) = crate::db::Db::open(&config).unwrap();
        let snapshots = dir.path().join("snapshots");
        // A crash's leftover is cleared; other files are left alone.
        fs::create_dir(&snapshots).unwrap();
        fs::write(snapshots.join("persona-x.db.partial"), b"half").unwrap();
        fs::write(snapshots.join("notes.txt"), b"mine").unwrap();
        for _ in 0..4 {
            let taken = take(db.path(), &snapshots, Duration::from_secs(5), 2).unwrap();
            super::super::maintenance::check_file(&taken.snapshot.path).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        let kept = list(&snapshots).unwrap();
        assert_eq!(kept.len(), 2);
        assert!(!snapshots.join("persona-x.db.partial").exists());
        assert!(snapshots.join("notes.txt").exists());
    }
}
