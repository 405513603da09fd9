//! Hotlines by locale, from `config/crisis/resources.toml` (embedded) or the admin's
//! `crisis.resources_file`. A locale falls back from the most specific tag to the language
//! (`id-ID` → `id`), then to the `international` entries.

use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

const BUILTIN: &str = include_str!("../../../config/crisis/resources.toml");

/// The locale whose entries every other locale falls back to.
pub const INTERNATIONAL: &str = "international";

/// One hotline or service, as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sms: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whatsapp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub hours: String,
    pub languages: Vec<String>,
    /// The date (YYYY-MM-DD) the entry was last checked against its source.
    pub last_verified: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    resource: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    locales: Vec<String>,
    name: String,
    phone: Option<String>,
    sms: Option<String>,
    whatsapp: Option<String>,
    url: Option<String>,
    hours: String,
    languages: Vec<String>,
    source: String,
    last_verified: String,
}

/// Every entry, with the lower-cased locales it serves.
pub struct Resources {
    entries: Vec<(Vec<String>, Resource)>,
}

impl Resources {
    pub fn builtin() -> anyhow::Result<Resources> {
        Resources::parse(BUILTIN).context("the built-in config/crisis/resources.toml")
    }

    pub fn from_file(path: &Path) -> anyhow::Result<Resources> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read crisis.resources_file {}", path.display()))?;
        Resources::parse(&text).with_context(|| format!("crisis.resources_file {}", path.display()))
    }

    fn parse(text: &str) -> anyhow::Result<Resources> {
        let file: File = toml::from_str(text)?;
        let mut entries = Vec::with_capacity(file.resource.len());
        for entry in file.resource {
            if entry.name.trim().is_empty() || entry.source.trim().is_empty() {
                bail!("every resource needs a name and a source");
            }
            if entry.phone.is_none()
                && entry.url.is_none()
                && entry.sms.is_none()
                && !entry.locales.iter().any(|l| l == INTERNATIONAL)
            {
                bail!("{}: needs a phone, sms or url", entry.name);
            }
            time::Date::parse(
                &entry.last_verified,
                time::macros::format_description!("[year]-[month]-[day]"),
            )
            .with_context(|| format!("{}: last_verified must be YYYY-MM-DD", entry.name))?;
            let locales: Vec<String> = entry
                .locales
                .iter()
                .map(|l| l.to_ascii_lowercase())
                .collect();
            entries.push((
                locales,
                Resource {
                    name: entry.name,
                    phone: entry.phone,
                    sms: entry.sms,
                    whatsapp: entry.whatsapp,
                    url: entry.url,
                    hours: entry.hours,
                    languages: entry.languages,
                    last_verified: entry.last_verified,
                },
            ));
        }
        if !entries
            .iter()
            .any(|(locales, _)| locales.iter().any(|l| l == INTERNATIONAL))
        {
            bail!("no entry for the \"international\" fallback");
        }
        Ok(Resources { entries })
    }

    /// The entries for the first of `wanted` (most preferred first) that has any, trying
    /// each tag and then its language; `international` when none matches. Answers the
    /// locale that matched.
    pub fn for_locales<'a>(
        &self,
        wanted: impl IntoIterator<Item = &'a str>,
    ) -> (String, Vec<Resource>) {
        for tag in wanted {
            let tag = tag.trim().to_ascii_lowercase().replace('_', "-");
            let language = tag.split('-').next().unwrap_or("").to_owned();
            for candidate in [tag.as_str(), language.as_str()] {
                if candidate.is_empty() {
                    continue;
                }
                let found = self.matching(candidate);
                if !found.is_empty() {
                    return (candidate.to_owned(), found);
                }
            }
        }
        (INTERNATIONAL.to_owned(), self.matching(INTERNATIONAL))
    }

    fn matching(&self, locale: &str) -> Vec<Resource> {
        self.entries
            .iter()
            .filter(|(locales, _)| locales.iter().any(|l| l == locale))
            .map(|(_, resource)| resource.clone())
            .collect()
    }
}

/// The tags of an `Accept-Language` header, most preferred first (by `q`, then order).
pub fn accept_language(header: &str) -> Vec<String> {
    let mut tags: Vec<(f32, usize, String)> = header
        .split(',')
        .take(20)
        .enumerate()
        .filter_map(|(i, part)| {
            let mut pieces = part.split(';');
            let tag = pieces.next()?.trim();
            if tag.is_empty() || tag == "*" || tag.len() > 35 {
                return None;
            }
            let q = pieces
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                })
                .unwrap_or(1.0);
            (q > 0.0).then(|| (q, i, tag.to_owned()))
        })
        .collect();
    tags.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    tags.into_iter().map(|(_, _, tag)| tag).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_file_covers_the_required_countries() {
        let resources = Resources::builtin().unwrap();
        let (locale, id) = resources.for_locales(["id-ID"]);
        assert_eq!(locale, "id-id");
        assert!(id.iter().any(|r| r.phone.as_deref() == Some("119 ext 8")));
        assert!(id.iter().any(|r| r.phone.as_deref() == Some("112")));
        let (_, us) = resources.for_locales(["en-US"]);
        assert!(us.iter().any(|r| r.phone.as_deref() == Some("988")));
        let (_, uk) = resources.for_locales(["en-GB"]);
        assert!(uk.iter().any(|r| r.phone.as_deref() == Some("116 123")));
        let (fallback, international) = resources.for_locales(["fr-FR"]);
        assert_eq!(fallback, INTERNATIONAL);
        assert!(!international.is_empty());
    }

    #[test]
    fn a_region_falls_back_to_its_language() {
        let resources = Resources::builtin().unwrap();
        let (locale, found) = resources.for_locales(["id-XX"]);
        assert_eq!(locale, "id");
        assert!(!found.is_empty());
    }

    #[test]
    fn accept_language_orders_by_quality() {
        assert_eq!(
            accept_language("en-GB;q=0.5, id-ID, fr;q=0.9, *;q=0.1"),
            ["id-ID", "fr", "en-GB"]
        );
        assert!(accept_language("").is_empty());
    }
}
