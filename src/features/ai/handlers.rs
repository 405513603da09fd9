//! `/ai/*` handlers: check, call the upstream through [`complete`] or the stream relay,
//! respond. The OpenAI-shaped routes keep OpenAI's field names.

use axum::{
    body::Body,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

use super::{
    Ai, sse, store,
    types::*,
    upstream::{not_configured, upstream_error},
    usage::{Meter, tokens},
};
use crate::{
    app::AppState,
    auth::{self, AuthUser},
    error::{ApiError, AppResult, ErrorBody, Invalid},
    features::scripts::{self, store::ScriptRow},
    http::extract::AppJson,
};

fn ensure_configured(ai: &Ai) -> AppResult<()> {
    if ai.configured() {
        Ok(())
    } else {
        Err(not_configured())
    }
}

/// The active script `name` with its parsed content; `None` when there is none.
async fn active_script(state: &AppState, name: &str) -> AppResult<Option<(ScriptRow, Value)>> {
    let Ok(name) = scripts::types::parse_name(name) else {
        return Ok(None);
    };
    let row = state
        .db
        .read(move |conn| scripts::store::get(conn, &name, None))
        .await?;
    Ok(row.map(|row| {
        let content = serde_json::from_str(&row.content).unwrap_or(Value::Null);
        (row, content)
    }))
}

/// Picks the model (`requested`, else the script's, else the default) and checks it is
/// allowed: 422 `model_not_allowed` otherwise.
fn choose_model(
    state: &AppState,
    requested: Option<&str>,
    script: Option<&Value>,
) -> AppResult<String> {
    let model = requested
        .or_else(|| script.and_then(|s| s["model"].as_str()))
        .unwrap_or(&state.config.ai.default_model)
        .to_owned();
    if state.config.is_model_allowed(&model) {
        Ok(model)
    } else {
        Err(ApiError::Unprocessable {
            code: "model_not_allowed",
            message: format!(
                "The model {model} is not offered by this server; see GET /ai/models."
            )
            .into(),
        })
    }
}

/// Applies a script's defaults to a chat body: `temperature`, `max_tokens` and a JSON
/// `response_format` when the body has none of its own.
fn apply_script_defaults(body: &mut Map<String, Value>, script: &Value, cap: u32) {
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
async fn prepare_chat(state: &AppState, body: Value) -> AppResult<(Map<String, Value>, bool)> {
    let Value::Object(mut body) = body else {
        return Err(ApiError::invalid_field("body", "must be a JSON object"));
    };
    let cap = state.config.ai.max_tokens;
    let mut invalid = Invalid::default();
    let messages_ok = body
        .get("messages")
        .and_then(Value::as_array)
        .is_some_and(|m| !m.is_empty() && m.iter().all(|m| m["role"].is_string()));
    invalid.check(
        "messages",
        if messages_ok {
            Ok(())
        } else {
            Err("must be a non-empty array of {role, content}".to_owned())
        },
    );
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            invalid.check::<()>("stream", Err("must be true or false".into()));
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
                None => {
                    invalid.check::<()>(key, Err("must be a whole number of at least 1".into()));
                }
            },
        }
    }
    let requested = match body.get("model") {
        None | Some(Value::Null) => None,
        Some(Value::String(m)) => Some(m.clone()),
        Some(_) => {
            invalid.check::<()>("model", Err("must be a string".into()));
            None
        }
    };
    let script = match body.remove("script") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => match active_script(state, &name).await? {
            Some((_, content)) => Some(content),
            None => {
                invalid.check::<()>("script", Err(format!("no active script named {name}")));
                None
            }
        },
        Some(_) => {
            invalid.check::<()>("script", Err("must be a script name".into()));
            None
        }
    };
    invalid.finish()?;

    let model = choose_model(state, requested.as_deref(), script.as_ref())?;
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
async fn admit(state: &AppState, user: &AuthUser) -> AppResult<()> {
    state.ai.limits.check_rate(&user.user_id)?;
    state.ai.limits.check_budget(state, &user.user_id).await
}

/// One non-streaming upstream call, metered. Returns the upstream's JSON and the model that
/// answered.
async fn complete(
    state: &AppState,
    user: &AuthUser,
    endpoint: &'static str,
    body: &Value,
) -> AppResult<(Value, String)> {
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let mut meter = Meter::new(state.clone(), &user.user_id, endpoint, &model);
    let answer = match state.ai.upstream.chat(body).await {
        Ok(answer) => answer,
        Err(err) => {
            meter.record("error");
            return Err(err);
        }
    };
    meter.set_model(&answer.model);
    let json: Value = match answer.response.json().await {
        Ok(json) => json,
        Err(_) => {
            meter.record("error");
            return Err(upstream_error("The AI provider's answer was not JSON."));
        }
    };
    if let Some(used) = tokens(&json["usage"]) {
        meter.set_tokens(used);
    }
    meter.record("ok");
    Ok((json, answer.model))
}

async fn chat_any(state: AppState, user: AuthUser, body: Value) -> AppResult<Response> {
    ensure_configured(&state.ai)?;
    let (body, stream) = prepare_chat(&state, body).await?;
    admit(&state, &user).await?;
    let body = Value::Object(body);
    if !stream {
        let (json, _) = complete(&state, &user, "chat", &body).await?;
        return Ok(AppJson(json).into_response());
    }
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let mut meter = Meter::new(state.clone(), &user.user_id, "chat", &model);
    let answer = match state.ai.upstream.chat(&body).await {
        Ok(answer) => answer,
        Err(err) => {
            meter.record("error");
            return Err(err);
        }
    };
    meter.set_model(&answer.model);
    // The client's response owns the upstream stream: when the client goes away, the body
    // is dropped, the upstream connection with it, and the meter records `cancelled`.
    let events = sse::relay(answer.response.bytes_stream(), meter);
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

/// OpenAI chat completions through the server's provider key. `stream: true` answers
/// `text/event-stream`, relayed chunk by chunk and ending with `data: [DONE]`.
#[utoipa::path(post, path = "/ai/chat", tag = "ai", security(("bearer" = [])),
    request_body = ChatRequest,
    responses(
        (status = 200, description = "the upstream's chat completion (or an SSE stream)", body = Object),
        (status = 422, description = "`validation_failed` or `model_not_allowed`", body = ErrorBody),
        (status = 429, description = "`rate_limited` or `quota_exceeded`, with Retry-After", body = ErrorBody),
        (status = 502, description = "`upstream_error`", body = ErrorBody),
        (status = 503, description = "`ai_not_configured`", body = ErrorBody),
        (status = 504, description = "`upstream_timeout`", body = ErrorBody),
    ))]
pub async fn chat(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(body): AppJson<Value>,
) -> AppResult<Response> {
    chat_any(state, user, body).await
}

/// The same as `/ai/chat`, at the path OpenAI SDKs call (`base_url=<server>/api/v1/ai`).
#[utoipa::path(post, path = "/ai/chat/completions", tag = "ai", security(("bearer" = [])),
    request_body = ChatRequest,
    responses(
        (status = 200, description = "the upstream's chat completion (or an SSE stream)", body = Object),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 502, body = ErrorBody), (status = 503, body = ErrorBody), (status = 504, body = ErrorBody),
    ))]
pub async fn chat_completions(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(body): AppJson<Value>,
) -> AppResult<Response> {
    chat_any(state, user, body).await
}

/// Render a script's template with variables and answer with the model's text.
#[utoipa::path(post, path = "/ai/content", tag = "ai", security(("bearer" = [])),
    request_body = ContentRequest,
    responses(
        (status = 200, body = ContentResponse),
        (status = 404, description = "no active script of that name", body = ErrorBody),
        (status = 422, description = "a template variable is missing (`details.variables`)", body = ErrorBody),
    ))]
pub async fn content(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(req): AppJson<ContentRequest>,
) -> AppResult<AppJson<ContentResponse>> {
    ensure_configured(&state.ai)?;
    let (row, script) = active_script(&state, &req.script)
        .await?
        .ok_or(ApiError::NotFound)?;
    let Some(template) = script["template"].as_str() else {
        return Err(ApiError::invalid_field(
            "script",
            "this script has no template to render",
        ));
    };
    let rendered = scripts::types::render(template, &req.variables).map_err(|missing| {
        ApiError::invalid_field("variables", format!("missing: {}", missing.join(", ")))
    })?;
    let model = choose_model(&state, req.model.as_deref(), Some(&script))?;
    admit(&state, &user).await?;
    let body = script_body(&script, model, rendered, state.config.ai.max_tokens);
    let (json, model) = complete(&state, &user, "content", &body).await?;
    let content = json["choices"][0]["message"]["content"]
        .as_str()
        .ok_or_else(|| upstream_error("The AI provider's answer had no content."))?
        .to_owned();
    Ok(AppJson(ContentResponse {
        content,
        model,
        usage: json["usage"].clone(),
        script: ScriptRef {
            name: row.name,
            version: row.version,
        },
    }))
}

/// A chat body for a script: its system prompt, then `user_text`.
fn script_body(script: &Value, model: String, user_text: String, cap: u32) -> Value {
    let mut messages = Vec::new();
    if let Some(system) = script["system"].as_str() {
        messages.push(json!({"role": "system", "content": system}));
    }
    messages.push(json!({"role": "user", "content": user_text}));
    let mut body = Map::new();
    body.insert("model".into(), Value::String(model));
    body.insert("messages".into(), Value::Array(messages));
    apply_script_defaults(&mut body, script, cap);
    Value::Object(body)
}

/// Analyse a text (mood, psychology, crisis) into a validated JSON result.
#[utoipa::path(post, path = "/ai/analyze", tag = "ai", security(("bearer" = [])),
    request_body = AnalyzeRequest,
    responses(
        (status = 200, body = AnalyzeResponse),
        (status = 422, body = ErrorBody),
        (status = 502, description = "`upstream_invalid_output` after one retry, or `upstream_error`", body = ErrorBody),
    ))]
pub async fn analyze(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(req): AppJson<AnalyzeRequest>,
) -> AppResult<AppJson<AnalyzeResponse>> {
    ensure_configured(&state.ai)?;
    let length = req.text.chars().count();
    if length == 0 || length > 20_000 || req.text.trim().is_empty() {
        return Err(ApiError::invalid_field(
            "text",
            "must be 1 to 20000 characters",
        ));
    }
    let (_, script) = active_script(&state, req.kind.script())
        .await?
        .ok_or_else(|| {
            ApiError::unavailable(format!(
                "The {} script is not active on this server.",
                req.kind.script()
            ))
        })?;
    let mut variables = Map::new();
    variables.insert("text".into(), Value::String(req.text.clone()));
    let user_text = match script["template"].as_str() {
        Some(template) => {
            scripts::types::render(template, &variables).unwrap_or_else(|_| req.text.clone())
        }
        None => req.text.clone(),
    };
    let model = choose_model(&state, req.model.as_deref(), Some(&script))?;
    admit(&state, &user).await?;
    let body = script_body(&script, model, user_text, state.config.ai.max_tokens);
    // One retry when the output does not have the expected shape.
    for _attempt in 0..2 {
        let (json, model) = complete(&state, &user, "analyze", &body).await?;
        let text = json["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or("");
        let Some(result) = extract_json(text).and_then(|o| validate(req.kind, &o)) else {
            continue;
        };
        let crisis = (req.kind == Kind::Crisis)
            .then(|| serde_json::from_value(result["level"].clone()).ok())
            .flatten()
            .filter(|level| *level >= state.config.crisis.resource_level)
            .map(|level| CrisisFlag { level });
        return Ok(AppJson(AnalyzeResponse {
            kind: req.kind,
            result,
            crisis,
            model,
            usage: json["usage"].clone(),
        }));
    }
    Err(ApiError::Service {
        status: axum::http::StatusCode::BAD_GATEWAY,
        code: "upstream_invalid_output",
        message: "The AI model did not answer in the expected format.".into(),
    })
}

/// The models users may pick, in OpenAI's list shape, with the upstream's details when it
/// answers.
#[utoipa::path(get, path = "/ai/models", tag = "ai", security(("bearer" = [])),
    responses((status = 200, description = "`{object: \"list\", data: [{id, object: \"model\", ...}]}`", body = Object),
        (status = 503, body = ErrorBody)))]
pub async fn models(State(state): State<AppState>, _user: AuthUser) -> AppResult<AppJson<Value>> {
    ensure_configured(&state.ai)?;
    let upstream = state.ai.upstream_models().await.unwrap_or_default();
    let data: Vec<Value> = state
        .config
        .allowed_models()
        .into_iter()
        .map(|id| {
            let mut model = upstream
                .iter()
                .find(|m| m["id"] == id.as_str())
                .and_then(|m| m.as_object().cloned())
                .unwrap_or_default();
            model.insert("id".into(), Value::String(id.clone()));
            model.insert("object".into(), Value::String("model".into()));
            model
                .entry("owned_by")
                .or_insert_with(|| Value::String(id.split('/').next().unwrap_or("").to_owned()));
            Value::Object(model)
        })
        .collect();
    Ok(AppJson(json!({"object": "list", "data": data})))
}

/// The signed-in user's token usage per day and model (last 30 days) and today's budget.
#[utoipa::path(get, path = "/ai/usage", tag = "ai", security(("bearer" = [])),
    responses((status = 200, body = UsageResponse)))]
pub async fn usage(
    State(state): State<AppState>,
    user: AuthUser,
) -> AppResult<AppJson<UsageResponse>> {
    let now = auth::now();
    let since = now - now.rem_euclid(86_400) - 29 * 86_400;
    let owner = user.user_id.clone();
    let (rows, today) = state
        .db
        .read(move |conn| {
            Ok((
                store::user_usage(conn, &owner, since)?,
                store::tokens_on_day(conn, &owner, now)?,
            ))
        })
        .await?;
    let budget = state.config.ai.daily_token_budget;
    Ok(AppJson(UsageResponse {
        daily_token_budget: budget,
        used_today: today,
        remaining_today: (budget as i64 - today).max(0),
        days: rows
            .into_iter()
            .map(|r| UsageDay {
                day: r.key,
                model: r.model,
                requests: r.requests,
                prompt_tokens: r.prompt_tokens,
                completion_tokens: r.completion_tokens,
                total_tokens: r.total_tokens,
            })
            .collect(),
    }))
}

/// Whether the AI proxy is configured and its upstream answers (no sign-in needed).
#[utoipa::path(get, path = "/ai/health", tag = "ai", responses((status = 200, body = AiHealth)))]
pub async fn health(State(state): State<AppState>) -> AppJson<AiHealth> {
    AppJson(state.ai.health().await)
}
