//! Script operations shared by the API, the seeding at start and the admin CLI.

use super::{
    store::{self, NewRow, ScriptRow},
    types::{NewScript, check_new},
};
use crate::{
    auth,
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
    let version = match script.version {
        Some(v) => v,
        None => store::latest_version(tx, &name)?.unwrap_or(0) + 1,
    };
    let now = auth::now();
    store::insert(
        tx,
        &NewRow {
            name: &name,
            version,
            description: script.description.trim(),
            content: &script.content.to_string(),
            now,
        },
    )?;
    if script.activate || !store::has_active(tx, &name)? {
        store::activate(tx, &name, version, now)?;
    }
    store::get(tx, &name, Some(version))?.ok_or(ApiError::NotFound)
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
        let exists = match script.version {
            Some(v) => store::get(tx, &name, Some(v))?.is_some(),
            None => store::latest_version(tx, &name)?.is_some(),
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
