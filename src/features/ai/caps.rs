//! What a client may not choose on the server's provider key (issue 14). Every field that
//! selects a model is checked against the allow-list: `model`, and OpenRouter's `models`
//! fallback list (any entry outside it is 422 `model_not_allowed`). OpenRouter's routing
//! preferences (`route`, `provider`) are the operator's business and are dropped: they pick
//! hosts and fallbacks, which the client cannot be trusted to price. The output allowance
//! `ai.max_tokens` holds across all the choices a call asks for (`n`, `best_of`).

use serde_json::{Map, Value, json};

use crate::error::{ApiError, Code, Invalid};

/// Fields dropped from every body before it goes upstream.
const ROUTING_FIELDS: [&str; 2] = ["route", "provider"];

/// The most choices (`n`, `best_of`) one call may ask for (OpenAI's own limit is 128).
const MAX_CHOICES: u64 = 128;

/// Drops the routing fields and checks `models`: its shape into `invalid`, and the first
/// entry outside `allowed` as the answer (`Some(model)`) for the caller to refuse.
pub fn check_routing(
    body: &mut Map<String, Value>,
    allowed: impl Fn(&str) -> bool,
    invalid: &mut Invalid,
) -> Option<String> {
    for field in ROUTING_FIELDS {
        body.remove(field);
    }
    match body.get("models") {
        None | Some(Value::Null) => None,
        Some(Value::Array(models)) if !models.is_empty() => {
            let mut refused = None;
            for model in models {
                match model.as_str() {
                    Some(model) if allowed(model) => {}
                    Some(model) => {
                        refused.get_or_insert_with(|| model.to_owned());
                    }
                    None => invalid.add("models", "must be a non-empty array of model ids"),
                }
            }
            refused
        }
        Some(_) => {
            invalid.add("models", "must be a non-empty array of model ids");
            None
        }
    }
}

/// 422 `model_not_allowed` for `model`.
pub fn model_not_allowed(model: &str) -> ApiError {
    ApiError::Unprocessable {
        code: Code::ModelNotAllowed,
        message: format!("The model {model} is not offered by this server; see GET /ai/models.")
            .into(),
    }
}

/// Checks `n` and `best_of` (whole numbers, 1 up to 128 and up to `cap`, so each choice may
/// have a token at least) into `invalid`.
pub fn check_choices(body: &Map<String, Value>, cap: u32, invalid: &mut Invalid) {
    let most = MAX_CHOICES.min(u64::from(cap)).max(1);
    for key in ["n", "best_of"] {
        match body.get(key) {
            None | Some(Value::Null) => {}
            Some(v) if v.as_u64().is_some_and(|n| (1..=most).contains(&n)) => {}
            Some(_) => invalid.add(key, format!("must be a whole number from 1 to {most}")),
        }
    }
}

/// How many completions the call asks the model for: the larger of `n` and `best_of`
/// (`best_of` candidates are all generated, and billed).
pub fn choices(body: &Map<String, Value>) -> u64 {
    ["n", "best_of"]
        .iter()
        .filter_map(|key| body.get(*key).and_then(Value::as_u64))
        .max()
        .unwrap_or(1)
        .clamp(1, MAX_CHOICES)
}

/// The output tokens allowed to each choice: the smallest of `max_tokens` and
/// `max_completion_tokens` present, if any.
pub fn max_output(body: &Map<String, Value>) -> Option<u64> {
    ["max_tokens", "max_completion_tokens"]
        .iter()
        .filter_map(|key| body.get(*key).and_then(Value::as_u64))
        .min()
}

/// Lowers `max_tokens` / `max_completion_tokens` (those present) to at most `most`.
pub fn limit_output(body: &mut Map<String, Value>, most: u64) {
    for key in ["max_tokens", "max_completion_tokens"] {
        if let Some(n) = body.get(key).and_then(Value::as_u64)
            && n > most
        {
            body.insert(key.into(), json!(most));
        }
    }
}

/// Makes `choices × max output` fit in `cap` by lowering the output of each choice.
pub fn share_cap(body: &mut Map<String, Value>, cap: u32) {
    let per_choice = u64::from(cap) / choices(body);
    limit_output(body, per_choice.max(1));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn choices_divide_the_cap() {
        let mut b = body(json!({"n": 3, "best_of": 4, "max_tokens": 1000}));
        share_cap(&mut b, 1000);
        assert_eq!(b["max_tokens"], 250);
        let mut b = body(json!({"max_completion_tokens": 10, "n": 2}));
        share_cap(&mut b, 1000);
        assert_eq!(b["max_completion_tokens"], 10);
        assert_eq!(
            max_output(&body(json!({"max_tokens": 9, "max_completion_tokens": 5}))),
            Some(5)
        );
    }

    #[test]
    fn routing_fields_are_dropped_and_models_checked() {
        let mut invalid = Invalid::default();
        let mut b = body(json!({"route": "fallback", "provider": {}, "models": ["a", "b", "c"]}));
        assert_eq!(
            check_routing(&mut b, |m| m == "a", &mut invalid),
            Some("b".into())
        );
        assert!(!b.contains_key("route") && !b.contains_key("provider"));
        assert!(invalid.finish().is_ok());
    }
}
