//! The conversation categories, from `config/conversations/categories.toml` (embedded).

use anyhow::{Context, bail};
use serde::Deserialize;

const BUILTIN: &str = include_str!("../../../config/conversations/categories.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    category: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    slug: String,
    name: String,
}

/// `(slug, name)` in the configured order.
pub struct Categories(Vec<(String, String)>);

impl Categories {
    pub fn builtin() -> anyhow::Result<Categories> {
        let file: File = toml::from_str(BUILTIN).context("config/conversations/categories.toml")?;
        let mut all: Vec<(String, String)> = Vec::with_capacity(file.category.len());
        for entry in file.category {
            let ok = (1..=32).contains(&entry.slug.len())
                && entry
                    .slug
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok || all.iter().any(|(slug, _)| *slug == entry.slug) {
                bail!("category slug {:?} is invalid or repeated", entry.slug);
            }
            all.push((entry.slug, entry.name));
        }
        if !all.iter().any(|(slug, _)| slug == "general") {
            bail!("the categories must include \"general\" (the default)");
        }
        Ok(Categories(all))
    }

    pub fn all(&self) -> &[(String, String)] {
        &self.0
    }

    pub fn contains(&self, slug: &str) -> bool {
        self.0.iter().any(|(s, _)| s == slug)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_builtin_list_loads_with_general() {
        let categories = super::Categories::builtin().unwrap();
        assert!(categories.contains("general") && categories.contains("coding"));
        assert!(!categories.contains("nope"));
    }
}
