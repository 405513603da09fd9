//! Scripts: their shape, the rules for names and content, and template rendering.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::store::ScriptRow;
use super::version::Version;
use crate::domain::Timestamp;

/// `name`: 1..100 characters of `[a-z0-9_-]`.
pub fn parse_name(input: &str) -> Result<String, String> {
    let ok = (1..=100).contains(&input.len())
        && input
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(input.to_owned())
    } else {
        Err("must be 1 to 100 characters of a-z, 0-9, '_' or '-'".into())
    }
}

/// The keys a script's content may have.
const CONTENT_KEYS: [&str; 6] = [
    "system",
    "template",
    "model",
    "temperature",
    "maxTokens",
    "responseFormat",
];

/// Checks a script's `content`: an object with a non-empty `system` and/or `template`
/// string, and the optional `model`, `temperature` (0..2), `maxTokens` (≥ 1) and
/// `responseFormat` (`"text"`, `"json"` or an OpenAI `response_format` object).
pub fn check_content(content: &Value) -> Result<(), String> {
    let Some(object) = content.as_object() else {
        return Err("must be a JSON object".into());
    };
    if let Some(unknown) = object.keys().find(|k| !CONTENT_KEYS.contains(&k.as_str())) {
        return Err(format!(
            "unknown key `{unknown}` (allowed: {})",
            CONTENT_KEYS.join(", ")
        ));
    }
    let text = |key: &str| -> Result<bool, String> {
        match object.get(key) {
            None => Ok(false),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(true),
            Some(_) => Err(format!("`{key}` must be a non-empty string")),
        }
    };
    let (system, template) = (text("system")?, text("template")?);
    if !system && !template {
        return Err("needs `system` and/or `template`".into());
    }
    if text("model").is_err() {
        return Err("`model` must be a non-empty string".into());
    }
    if let Some(t) = object.get("temperature")
        && !t.as_f64().is_some_and(|t| (0.0..=2.0).contains(&t))
    {
        return Err("`temperature` must be a number from 0 to 2".into());
    }
    if let Some(m) = object.get("maxTokens")
        && m.as_u64().is_none_or(|m| m < 1)
    {
        return Err("`maxTokens` must be a whole number of at least 1".into());
    }
    match object.get("responseFormat") {
        None | Some(Value::Object(_)) => {}
        Some(Value::String(s)) if s == "text" || s == "json" => {}
        Some(_) => return Err("`responseFormat` must be \"text\", \"json\" or an object".into()),
    }
    Ok(())
}

/// The names of the `{{variables}}` in a template, in order of first use.
pub fn placeholders(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].trim();
        if is_variable(name) && !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
        rest = &after[end + 2..];
    }
    names
}

fn is_variable(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

/// Fills the `{{variables}}` of `template`. Strings go in as they are, other JSON values as
/// JSON text. `Err` lists the variables `values` does not have.
pub fn render(template: &str, values: &Map<String, Value>) -> Result<String, Vec<String>> {
    let missing: Vec<String> = placeholders(template)
        .into_iter()
        .filter(|name| !values.contains_key(name))
        .collect();
    if !missing.is_empty() {
        return Err(missing);
    }
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let name = after[..end].trim();
        match values.get(name) {
            Some(Value::String(s)) if is_variable(name) => out.push_str(s),
            Some(other) if is_variable(name) => out.push_str(&other.to_string()),
            _ => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A script as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Script {
    pub name: String,
    pub version: Version,
    pub description: String,
    /// `{system?, template?, model?, temperature?, maxTokens?, responseFormat?}`.
    #[schema(value_type = Object)]
    pub content: Value,
    pub is_active: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<ScriptRow> for Script {
    fn from(row: ScriptRow) -> Self {
        Script {
            content: serde_json::from_str(&row.content).unwrap_or(Value::Null),
            name: row.name,
            version: row.version,
            description: row.description,
            is_active: row.is_active,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScriptList {
    /// Every active script (one version per name), by name.
    pub items: Vec<Script>,
    /// Always `null`: the list is short and comes whole.
    pub next_cursor: Option<String>,
}

/// A script to create (admin), also the shape of the files in `config/scripts/`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewScript {
    pub name: String,
    /// `"1.0.0"`, `"2"`, `"2025.07"` …; left out: the newest bumped in its last number
    /// (`"1"` for a new name).
    pub version: Option<Version>,
    #[serde(default)]
    pub description: String,
    #[schema(value_type = Object)]
    pub content: Value,
    /// Make this version the active one (the first version of a name always is).
    #[serde(default)]
    pub activate: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ActivateRequest {
    pub version: Version,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    /// A specific version instead of the active one.
    pub version: Option<String>,
}

/// Checks a new script's fields; `Ok` holds the normalized name.
pub fn check_new(script: &NewScript) -> crate::error::AppResult<String> {
    let mut invalid = crate::error::Invalid::default();
    let name = invalid.take("name", parse_name(&script.name));
    if script.description.chars().count() > 500 {
        invalid.add("description", "must be at most 500 characters");
    }
    if let Err(message) = check_content(&script.content) {
        invalid.add("content", message);
    }
    if script.content.to_string().len() > 64 * 1024 {
        invalid.add("content", "must be at most 64 KiB of JSON");
    }
    invalid.finish()?;
    name.ok_or_else(|| crate::error::ApiError::invalid_field("name", "is required"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names() {
        assert!(parse_name("mood_analysis-2").is_ok());
        for bad in ["", "Mood", "a b", "ü", &"a".repeat(101)] {
            assert!(parse_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn content_rules() {
        assert!(check_content(&json!({"system": "hi"})).is_ok());
        assert!(check_content(&json!({"template": "{{x}}", "temperature": 0.5, "maxTokens": 10, "responseFormat": "json"})).is_ok());
        for bad in [
            json!("text"),
            json!({}),
            json!({"system": ""}),
            json!({"system": "x", "temperature": 3}),
            json!({"system": "x", "maxTokens": 0}),
            json!({"system": "x", "responseFormat": "xml"}),
            json!({"system": "x", "sytem": "typo"}),
            json!({"system": "x", "model": 5}),
        ] {
            assert!(check_content(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rendering() {
        let values = json!({"name": "Ana", "n": 3, "list": ["a"]});
        let values = values.as_object().unwrap();
        assert_eq!(
            render("Hi {{name}}, {{ n }} {{list}} {{name}}", values).unwrap(),
            "Hi Ana, 3 [\"a\"] Ana"
        );
        assert_eq!(render("no {{ vars", values).unwrap(), "no {{ vars");
        assert_eq!(render("{{}} {{a b}}", values).unwrap(), "{{}} {{a b}}");
        assert_eq!(
            render("{{name}} {{mood}} {{day}}", values).unwrap_err(),
            ["mood", "day"]
        );
        assert_eq!(placeholders("{{a}}{{b}}{{a}}"), ["a", "b"]);
    }
}
