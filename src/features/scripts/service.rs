//! Script operations shared by the API, the seeding at start and the admin CLI.

use super::{
    store::{self, NewRow, ScriptRow},
    types::{NewScript, check_new},
    version::{self, Version},
};
use crate::{
    app::App,
    db::Db,
    domain::Timestamp,
    error::{ApiError, AppResult},
};

/// The default scripts, embedded from `config/scripts/` so a server started anywhere has
/// them.
pub const DEFAULTS: [(&str, &str); 5] = [
    (
        "chat_persona.json",
        include_str!("../../../config/scripts/chat_persona.json"),
    ),
    (
        "home_content.json",
        include_str!("../../../config/scripts/home_content.json"),
    ),
    (
        "mood_analysis.json",
        include_str!("../../../config/scripts/mood_analysis.json"),
    ),
    (
        "psychology_analysis.json",
        include_str!("../../../config/scripts/psychology_analysis.json"),
    ),
    (
        "crisis_check.json",
        include_str!("../../../config/scripts/crisis_check.json"),
    ),
];

/// Creates a script version (inside the caller's transaction). The first version of a name,
/// or one created with `activate`, becomes the active one.
pub fn create(tx: &rusqlite::Connection, script: &NewScript) -> AppResult<ScriptRow> {
    let name = check_new(script)?;
    let version = match &script.version {
        Some(v) => v.clone(),
        None => {
            let existing = store::versions(tx, &name)?;
            match version::newest(existing.iter().zip(0..)) {
                Some(newest) => newest
                    .bump()
                    .map_err(|message| ApiError::invalid_field("version", message))?,
                None => Version::first(),
            }
        }
    };
    let now = Timestamp::now();
    store::insert(
        tx,
        &NewRow {
            name: &name,
            version: &version,
            description: script.description.trim(),
            content: &script.content.to_string(),
            now,
        },
    )?;
    if script.activate || !store::has_active(tx, &name)? {
        store::activate(tx, &name, &version, now)?;
    }
    store::get(tx, &name, Some(&version))?.ok_or(ApiError::NotFound)
}

/// What seeding did.
#[derive(Debug, Default)]
pub struct Seeded {
    pub created: Vec<String>,
    pub unchanged: usize,
}

/// Inserts each script whose name+version does not exist yet; existing versions are left
/// as they are (an admin may have changed which one is active). Idempotent.
pub fn seed(tx: &rusqlite::Connection, scripts: &[NewScript]) -> AppResult<Seeded> {
    let mut seeded = Seeded::default();
    for script in scripts {
        let name = check_new(script)?;
        let exists = match &script.version {
            Some(v) => store::get(tx, &name, Some(v))?.is_some(),
            None => !store::versions(tx, &name)?.is_empty(),
        };
        if exists {
            seeded.unchanged += 1;
        } else {
            let row = create(tx, script)?;
            seeded
                .created
                .push(format!("{} v{}", row.name, row.version));
        }
    }
    Ok(seeded)
}

/// The embedded defaults, parsed.
pub fn defaults() -> anyhow::Result<Vec<NewScript>> {
    DEFAULTS
        .iter()
        .map(|(file, text)| {
            serde_json::from_str(text).map_err(|e| anyhow::anyhow!("config/scripts/{file}: {e}"))
        })
        .collect()
}

/// The scripts in `dir` (every `*.json`, by file name).
pub fn read_dir(dir: &std::path::Path) -> anyhow::Result<Vec<NewScript>> {
    use anyhow::Context;
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a script", path.display()))
        })
        .collect()
}

/// The active scripts, one version per name.
pub async fn active(app: &App) -> AppResult<Vec<ScriptRow>> {
    app.db.read(store::active).await
}

/// The active version of `name` (or `version`); 404 when there is none.
pub async fn get(app: &App, name: String, version: Option<Version>) -> AppResult<ScriptRow> {
    app.db
        .read(move |conn| store::get(conn, &name, version.as_ref()))
        .await?
        .ok_or(ApiError::NotFound)
}

/// Creates a version (see [`create`]).
pub async fn create_version(app: &App, script: NewScript) -> AppResult<ScriptRow> {
    app.db.write(move |tx| create(tx, &script)).await
}

/// Makes `version` the active one; 404 when it does not exist.
pub async fn activate(app: &App, name: String, version: Version) -> AppResult<ScriptRow> {
    app.db
        .write(move |tx| {
            if !store::activate(tx, &name, &version, Timestamp::now())? {
                return Err(ApiError::NotFound);
            }
            store::get(tx, &name, Some(&version))?.ok_or(ApiError::NotFound)
        })
        .await
}

/// Deactivates every version of `name`; 404 when no such script exists.
pub async fn deactivate(app: &App, name: String) -> AppResult<()> {
    let found = app
        .db
        .write(move |tx| store::deactivate(tx, &name, Timestamp::now()))
        .await?;
    if found {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

/// A script as the AI proxy uses it: its row and its parsed content.
pub struct ActiveScript {
    pub row: ScriptRow,
    pub content: serde_json::Value,
}

/// The active script `name`, parsed; `None` when there is none (or the name cannot exist).
pub async fn active_script(db: &Db, name: &str) -> AppResult<Option<ActiveScript>> {
    let Ok(name) = super::types::parse_name(name) else {
        return Ok(None);
    };
    let row = db.read(move |conn| store::get(conn, &name, None)).await?;
    Ok(row.map(|row| ActiveScript {
        content: serde_json::from_str(&row.content).unwrap_or(serde_json::Value::Null),
        row,
    }))
}

/// Seeds the defaults into a database that has no scripts yet (a first start). Later starts
/// leave the scripts to the admin (`persona admin scripts seed` adds new defaults).
pub fn seed_if_empty(db: &Db) -> anyhow::Result<()> {
    let defaults = defaults()?;
    let seeded = db.blocking_write(move |tx| {
        if !store::all(tx)?.is_empty() {
            return Ok(None);
        }
        seed(tx, &defaults).map(Some)
    })?;
    if let Some(seeded) = seeded {
        tracing::info!(scripts = ?seeded.created, "seeded the default AI scripts");
    }
    Ok(())
}

/// Every version of every script (for the admin's list and export).
pub async fn all(app: &App) -> AppResult<Vec<ScriptRow>> {
    app.db.read(store::all).await
}

/// Seeds `scripts` (idempotent; see [`seed`]).
pub async fn seed_scripts(app: &App, scripts: Vec<NewScript>) -> AppResult<Seeded> {
    app.db.write(move |tx| seed(tx, &scripts)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_defaults_are_valid_scripts() {
        let scripts = defaults().unwrap();
        assert_eq!(scripts.len(), 5);
        for script in &scripts {
            check_new(script).unwrap_or_else(|e| panic!("{}: {e:?}", script.name));
        }
        let names: Vec<&str> = scripts.iter().map(|s| s.name.as_str()).collect();
        for kind in [
            "mood_analysis",
            "psychology_analysis",
            "crisis_check",
            "chat_persona",
        ] {
            assert!(names.contains(&kind), "{kind}");
        }
    }
}
