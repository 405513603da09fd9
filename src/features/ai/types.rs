//! Shapes of the AI routes that are ours (the OpenAI-shaped ones pass JSON through), and
//! the analysis result shapes of SPEC section 7.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::{domain::Timestamp, features::crisis::CrisisFlag};

/// An OpenAI chat-completions request (any extra fields are passed on), plus `script`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ChatRequest {
    /// One of the allowed models; defaults to the script's model or `ai.default_model`.
    pub model: Option<String>,
    /// `[{role, content}]`, at least one.
    #[schema(value_type = Vec<Object>)]
    pub messages: Vec<Value>,
    /// `text/event-stream` when true.
    pub stream: Option<bool>,
    /// Capped at `ai.max_tokens`.
    pub max_tokens: Option<u32>,
    /// A script whose `system` prompt is put before the messages.
    pub script: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContentRequest {
    pub script: String,
    /// Values for the script template's `{{variables}}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: Map<String, Value>,
    pub model: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScriptRef {
    pub name: String,
    pub version: crate::features::scripts::Version,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContentResponse {
    pub content: String,
    pub model: String,
    /// The upstream's `usage` object.
    #[schema(value_type = Object)]
    pub usage: Value,
    pub script: ScriptRef,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Mood,
    Psychology,
    Crisis,
}

impl Kind {
    /// The script that asks for this analysis.
    pub fn script(self) -> &'static str {
        match self {
            Kind::Mood => "mood_analysis",
            Kind::Psychology => "psychology_analysis",
            Kind::Crisis => "crisis_check",
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeRequest {
    /// 1..20000 characters.
    pub text: String,
    pub kind: Kind,
    pub model: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AnalyzeResponse {
    pub kind: Kind,
    /// mood `{mood, score, emotions, summary}`, psychology `{summary, themes, suggestions}`,
    /// crisis `{level, reasons}`.
    #[schema(value_type = Object)]
    pub result: Value,
    /// At or above `crisis.resource_level` (the detector on `text`, and for `kind:
    /// "crisis"` the higher of it and the model); otherwise null.
    pub crisis: Option<CrisisFlag>,
    pub model: String,
    #[schema(value_type = Object)]
    pub usage: Value,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageDay {
    pub day: String,
    pub model: String,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    /// Of `totalTokens`, those estimated from the text (the provider reported none).
    pub estimated_tokens: i64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageResponse {
    pub daily_token_budget: u64,
    pub used_today: i64,
    pub remaining_today: i64,
    /// The last 30 days, newest first.
    pub days: Vec<UsageDay>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AiHealth {
    pub configured: bool,
    /// `ok`, `unreachable` or `unconfigured`.
    pub upstream: &'static str,
    pub latency_ms: Option<u64>,
    pub checked_at: Timestamp,
}

/// The first JSON object in a model's answer (which may wrap it in prose or a code fence).
pub fn extract_json(text: &str) -> Option<Map<String, Value>> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    if end < start {
        return None;
    }
    match serde_json::from_str(&text[start..=end]) {
        Ok(Value::Object(object)) => Some(object),
        _ => None,
    }
}

fn string(object: &Map<String, Value>, key: &str) -> Option<Value> {
    object
        .get(key)
        .and_then(Value::as_str)
        .map(|s| Value::String(s.to_owned()))
}

fn strings(object: &Map<String, Value>, key: &str) -> Option<Value> {
    let items = object.get(key)?.as_array()?;
    items
        .iter()
        .map(|v| v.as_str().map(|s| Value::String(s.to_owned())))
        .collect::<Option<Vec<_>>>()
        .map(Value::Array)
}

/// Checks a model's output against the kind's shape; extra keys are dropped, a missing or
/// mistyped key makes it invalid (`None`).
pub fn validate(kind: Kind, output: &Map<String, Value>) -> Option<Value> {
    match kind {
        Kind::Mood => {
            let score = output.get("score")?.as_f64()?;
            if !(-1.0..=1.0).contains(&score) {
                return None;
            }
            Some(json!({
                "mood": string(output, "mood")?,
                "score": score,
                "emotions": strings(output, "emotions")?,
                "summary": string(output, "summary")?,
            }))
        }
        Kind::Psychology => Some(json!({
            "summary": string(output, "summary")?,
            "themes": strings(output, "themes")?,
            "suggestions": strings(output, "suggestions")?,
        })),
        Kind::Crisis => {
            let level = output.get("level")?.as_str()?;
            if !["none", "low", "medium", "high"].contains(&level) {
                return None;
            }
            Some(json!({"level": level, "reasons": strings(output, "reasons")?}))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_found_in_chatty_answers() {
        let object = extract_json("Sure!\n```json\n{\"a\": 1}\n```").unwrap();
        assert_eq!(object["a"], 1);
        assert!(extract_json("no json here").is_none());
        assert!(extract_json("[1, 2]").is_none());
    }

    #[test]
    fn shapes_are_enforced() {
        let mood = extract_json(
            r#"{"mood":"calm","score":0.4,"emotions":["content"],"summary":"ok","extra":1}"#,
        )
        .unwrap();
        let result = validate(Kind::Mood, &mood).unwrap();
        assert!(result.get("extra").is_none());
        for bad in [
            r#"{"mood":"calm","score":2,"emotions":[],"summary":"x"}"#,
            r#"{"mood":"calm","score":"0.4","emotions":[],"summary":"x"}"#,
            r#"{"mood":"calm","score":0.1,"emotions":[1],"summary":"x"}"#,
            r#"{"mood":"calm","score":0.1,"emotions":[]}"#,
        ] {
            assert!(
                validate(Kind::Mood, &extract_json(bad).unwrap()).is_none(),
                "{bad}"
            );
        }
        let crisis = extract_json(r#"{"level":"high","reasons":["plan"]}"#).unwrap();
        assert_eq!(validate(Kind::Crisis, &crisis).unwrap()["level"], "high");
        let unknown = extract_json(r#"{"level":"severe","reasons":[]}"#).unwrap();
        assert!(validate(Kind::Crisis, &unknown).is_none());
        let psych = extract_json(r#"{"summary":"s","themes":["t"],"suggestions":[]}"#).unwrap();
        assert!(validate(Kind::Psychology, &psych).is_some());
    }
}
