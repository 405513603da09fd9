//! The proxy's logic behind the handlers: checking and completing chat bodies (model,
//! token caps, scripts), admitting a call (rate, budget), calling the upstream with metering,
//! and relaying streams. Handlers only extract and answer.

use axum::{
    body::Body,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

use super::{
    Ai, sse,
    upstream::{not_configured, upstream_error},
    usage::{Meter, tokens},
};
use crate::{
    app::App,
    auth::AuthUser,
    error::{ApiError, AppResult, Code, Invalid},
    features::scripts::{self, ActiveScript},
    http::extract::AppJson,
};

/// The proxy's state, or 503 `ai_not_configured` without an API key.
pub fn configured(app: &App) -> AppResult<&Ai> {
    let ai = app.part::<Ai>()?;
    if ai.configured() {
        Ok(ai)
    } else {
        Err(not_configured())
    }
}

/// The active script `name`; `None` when there is none.
pub async fn active_script(app: &App, name: &str) -> AppResult<Option<ActiveScript>> {
    scripts::active_script(&app.db, name).await
}

/// Picks the model (`requested`, else the script's, else the default) and checks it is
/// allowed: 422 `model_not_allowed` otherwise.
pub fn choose_model(ai: &Ai, requested: Option<&str>, script: Option<&Value>) -> AppResult<String> {
    let model = requested
        .or_else(|| script.and_then(|s| s["model"].as_str()))
        .unwrap_or(&ai.default_model)
        .to_owned();
    if ai.is_model_allowed(&model) {
        Ok(model)
    } else {
        Err(ApiError::Unprocessable {
            code: Code::ModelNotAllowed,
            message: format!(
                "The model {model} is not offered by this server; see GET /ai/models."
            )
            .into(),
        })
    }
}

/// Applies a script's defaults to a chat body: `temperature`, `max_tokens` and a JSON
/// `response_format` when the body has none of its own.
pub fn apply_script_defaults(body: &mut Map<String, Value>, script: &Value, cap: u32) {
    if !body.contains_key("temperature")
        && let Some(t) = script.get("temperature")
    {
        body.insert("temperature".into(), t.clone());
    }
    if !body.contains_key("max_tokens") && !body.contains_key("max_completion_tokens") {
        let wanted = script["maxTokens"].as_u64().unwrap_or(u64::from(cap));
        body.insert("max_tokens".into(), json!(wanted.min(u64::from(cap))));
    }
    if !body.contains_key("response_format") {
        match script.get("responseFormat") {
            Some(Value::String(f)) if f == "json" => {
                body.insert("response_format".into(), json!({"type": "json_object"}));
            }
            Some(Value::Object(f)) => {
                body.insert("response_format".into(), Value::Object(f.clone()));
            }
            _ => {}
        }
    }
}

/// Checks and completes an OpenAI chat body: messages, model, token cap, script.
async fn prepare_chat(app: &App, ai: &Ai, body: Value) -> AppResult<(Map<String, Value>, bool)> {
    let Value::Object(mut body) = body else {
        return Err(ApiError::invalid_field("body", "must be a JSON object"));
    };
    let cap = app.config.ai.max_tokens;
    let mut invalid = Invalid::default();
    let messages_ok = body
        .get("messages")
        .and_then(Value::as_array)
        .is_some_and(|m| !m.is_empty() && m.iter().all(|m| m["role"].is_string()));
    if !messages_ok {
        invalid.add("messages", "must be a non-empty array of {role, content}");
    }
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            invalid.add("stream", "must be true or false");
            false
        }
    };
    for key in ["max_tokens", "max_completion_tokens"] {
        match body.get(key) {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_u64().filter(|n| *n >= 1) {
                Some(n) => {
                    body.insert(key.into(), json!(n.min(u64::from(cap))));
                }
                None => invalid.add(key, "must be a whole number of at least 1"),
            },
        }
    }
    let requested = match body.get("model") {
        None | Some(Value::Null) => None,
        Some(Value::String(m)) => Some(m.clone()),
        Some(_) => {
            invalid.add("model", "must be a string");
            None
        }
    };
    let script = match body.remove("script") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => match active_script(app, &name).await? {
            Some(script) => Some(script.content),
            None => {
                invalid.add("script", format!("no active script named {name}"));
                None
            }
        },
        Some(_) => {
            invalid.add("script", "must be a script name");
            None
        }
    };
    invalid.finish()?;

    let model = choose_model(ai, requested.as_deref(), script.as_ref())?;
    body.insert("model".into(), Value::String(model));
    match &script {
        Some(script) => {
            if let Some(system) = script["system"].as_str()
                && let Some(Value::Array(messages)) = body.get_mut("messages")
            {
                messages.insert(0, json!({"role": "system", "content": system}));
            }
            apply_script_defaults(&mut body, script, cap);
        }
        None => apply_script_defaults(&mut body, &Value::Null, cap),
    }
    if stream {
        // Usage arrives in the last chunk only when asked for (OpenAI); others ignore it.
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok((body, stream))
}

/// The request rate and the daily budget, checked before any upstream call.
pub async fn admit(app: &App, ai: &Ai, user: &AuthUser) -> AppResult<()> {
    ai.limits.check_rate(&user.user_id)?;
    ai.limits.check_budget(&app.db, &user.user_id).await
}

/// One non-streaming upstream call, metered. Returns the upstream's JSON and the model that
/// answered.
pub async fn complete(
    app: &App,
    ai: &Ai,
    user: &AuthUser,
    endpoint: &'static str,
    body: &Value,
) -> AppResult<(Value, String)> {
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let mut meter = Meter::new(ai, &app.db, &user.user_id, endpoint, &model);
    let answer = match ai.upstream.chat(body).await {
        Ok(answer) => answer,
        Err(err) => {
            meter.record("error");
            return Err(err);
        }
    };
    meter.set_model(&answer.model);
    // The body, too, must arrive within `ai.timeout` of the call's start.
    let json =
        match tokio::time::timeout(ai.upstream.timeout(), answer.response.json::<Value>()).await {
            Ok(Ok(json)) => json,
            Ok(Err(_)) => {
                meter.record("error");
                return Err(upstream_error("The AI provider's answer was not JSON."));
            }
            Err(_elapsed) => {
                meter.record("error");
                return Err(ApiError::Service {
                    status: axum::http::StatusCode::GATEWAY_TIMEOUT,
                    code: Code::UpstreamTimeout,
                    message: "The AI provider did not answer in time.".into(),
                });
            }
        };
    if let Some(used) = tokens(&json["usage"]) {
        meter.set_tokens(used);
    }
    meter.record("ok");
    Ok((json, answer.model))
}

/// A chat call, JSON or streamed (`/ai/chat` and `/ai/chat/completions`).
pub async fn chat(app: &App, user: AuthUser, body: Value) -> AppResult<Response> {
    let ai = configured(app)?;
    let (body, stream) = prepare_chat(app, ai, body).await?;
    admit(app, ai, &user).await?;
    let body = Value::Object(body);
    if !stream {
        let (json, _) = complete(app, ai, &user, "chat", &body).await?;
        return Ok(AppJson(json).into_response());
    }
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let mut meter = Meter::new(ai, &app.db, &user.user_id, "chat", &model);
    let answer = match ai.upstream.chat(&body).await {
        Ok(answer) => answer,
        Err(err) => {
            meter.record("error");
            return Err(err);
        }
    };
    meter.set_model(&answer.model);
    // The client's response owns the upstream stream: when the client goes away, the body
    // is dropped, the upstream connection with it, and the meter records `cancelled`.
    let events = sse::relay(answer.response.bytes_stream(), meter, ai.upstream.timeout());
    let mut response = Body::from_stream(events).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}
