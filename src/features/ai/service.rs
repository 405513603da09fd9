//! The proxy's logic behind the handlers: checking and completing chat bodies (model,
//! token caps, scripts), admitting a call (rate, budget), calling the upstream with metering,
//! and relaying streams. Handlers only extract and answer.

use axum::{
    body::{Body, Bytes},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

use super::{
    Ai, caps,
    limits::{Ask, Reservation},
    sse,
    types::{AnalyzeRequest, AnalyzeResponse, Kind, extract_json, validate},
    upstream::{Choices, Vectors, not_configured, not_json, read_json},
    usage::{Meter, estimate_tokens, text_chars, tokens},
};
use crate::{
    app::App,
    auth::AuthUser,
    domain::CrisisLevel,
    error::{ApiError, AppResult, Code, Invalid},
    features::{
        crisis::{self, CrisisFlag},
        scripts::{self, ActiveScript},
    },
    http::extract::{AppJson, json_response},
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
        Err(caps::model_not_allowed(&model))
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
/// A checked chat body, whether it streams, and whether the usage-only chunk the server asked
/// for (and the client did not) must be kept from the client.
struct Prepared {
    body: Map<String, Value>,
    stream: bool,
    strip_usage: bool,
}

async fn prepare_chat(app: &App, ai: &Ai, body: Value) -> AppResult<Prepared> {
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
    let refused = caps::check_routing(&mut body, |m| ai.is_model_allowed(m), &mut invalid);
    caps::check_choices(&body, cap, &mut invalid);
    invalid.finish()?;
    if let Some(model) = refused {
        return Err(caps::model_not_allowed(&model));
    }

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
    caps::share_cap(&mut body, cap);
    let mut strip_usage = false;
    if stream {
        // Usage arrives in a last, usage-only chunk only when asked for (OpenAI); others
        // ignore the option. Asked for on the client's behalf, that chunk is not passed on:
        // a client that did not ask for it may not expect an empty `choices`.
        let options = body.entry("stream_options").or_insert_with(|| json!({}));
        if !options.is_object() {
            *options = json!({});
        }
        if options["include_usage"] != Value::Bool(true) {
            strip_usage = true;
            options["include_usage"] = Value::Bool(true);
        }
    }
    Ok(Prepared {
        body,
        stream,
        strip_usage,
    })
}

/// Characters of text in a chat body's messages (string contents and text parts).
pub fn prompt_chars(body: &Value) -> usize {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| match &m["content"] {
            Value::String(text) => text.chars().count(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .map(|t| t.chars().count())
                .sum(),
            _ => 0,
        })
        .sum()
}

/// What one metered call produced.
pub struct Completed {
    /// The provider's answer, as it sent it.
    pub raw: Bytes,
    pub model: String,
    /// Tokens counted (reported, or estimated when the provider said nothing).
    pub tokens: i64,
}

impl Completed {
    /// The answer parsed whole, for a caller that reads or adds to it.
    pub fn json(&self) -> AppResult<Value> {
        serde_json::from_slice(&self.raw).map_err(|_| not_json())
    }
}

/// `X-Persona-Usage-Tokens` (this call) and `X-Persona-Budget-Remaining` (the user's budget
/// left today) on a JSON AI answer.
pub fn usage_headers(ai: &Ai, user: &AuthUser, mut response: Response, tokens: i64) -> Response {
    let headers = response.headers_mut();
    headers.insert(USAGE_HEADER, HeaderValue::from(tokens));
    if let Some(left) = ai.limits.remaining(&user.user_id) {
        headers.insert(BUDGET_HEADER, HeaderValue::from(left));
    }
    response
}

pub const USAGE_HEADER: &str = "x-persona-usage-tokens";
pub const BUDGET_HEADER: &str = "x-persona-budget-remaining";

/// The request rate, checked before anything else is done for a call.
pub fn admit(ai: &Ai, user: &AuthUser) -> AppResult<()> {
    ai.limits.check_rate(&user.user_id)
}

/// Holds what a chat body may spend against the user's daily budget, before the upstream
/// call: its prompt (estimated from the text) and its output allowance for every choice,
/// the allowance lowered to what is left of the budget (429 `quota_exceeded` when nothing
/// is).
pub async fn reserve(
    app: &App,
    ai: &Ai,
    user: &AuthUser,
    body: &mut Value,
) -> AppResult<Reservation> {
    let ask = Ask {
        prompt: estimate_tokens(prompt_chars(body)),
        choices: body.as_object().map_or(1, caps::choices),
        max_output: body.as_object().and_then(caps::max_output),
    };
    let reservation = ai.limits.reserve(&app.db, &user.user_id, ask).await?;
    if let (Some(granted), Value::Object(body)) = (reservation.max_output, body) {
        caps::limit_output(body, granted);
    }
    Ok(reservation)
}

/// One non-streaming upstream call, metered; its usage row is committed before it returns.
pub async fn complete(
    app: &App,
    ai: &Ai,
    user: &AuthUser,
    endpoint: &'static str,
    body: &Value,
    reservation: Reservation,
) -> AppResult<Completed> {
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let mut meter = Meter::new(
        ai,
        app,
        &user.user_id,
        reservation,
        endpoint,
        &model,
        prompt_chars(body),
    );
    let answer = match ai.upstream.chat(body).await {
        Ok(answer) => answer,
        Err(err) => {
            meter.record("error");
            return Err(err);
        }
    };
    meter.set_model(&answer.model);
    let model = answer.model.clone();
    let (raw, read) = match read_json::<Choices>(answer).await {
        Ok(answer) => answer,
        Err(err) => {
            meter.record("error");
            return Err(err);
        }
    };
    if let Some(used) = tokens(&read.usage) {
        meter.set_tokens(used);
    }
    meter.add_completion_chars(read.list.0.iter().map(|c| text_chars(&c["message"])).sum());
    meter.commit("ok").await;
    Ok(Completed {
        raw,
        model,
        tokens: meter.total_tokens(),
    })
}

/// The text of the latest user message of an OpenAI `messages` array: a string content,
/// or the `text` parts of an array content.
pub fn latest_user_text(body: &Map<String, Value>) -> Option<String> {
    let message = body
        .get("messages")?
        .as_array()?
        .iter()
        .rev()
        .find(|m| m["role"] == "user")?;
    match &message["content"] {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => {
            let text: Vec<&str> = parts
                .iter()
                .filter(|p| p["type"] == "text")
                .filter_map(|p| p["text"].as_str())
                .collect();
            (!text.is_empty()).then(|| text.join("\n"))
        }
        _ => None,
    }
}

/// `X-Persona-Crisis-Level` on an answer (success or error) when the screening flagged it.
pub fn with_crisis_header(mut response: Response, flag: Option<&CrisisFlag>) -> Response {
    if let Some(flag) = flag {
        response
            .headers_mut()
            .insert(CRISIS_HEADER, HeaderValue::from_static(flag.level.as_str()));
    }
    response
}

/// The header that tells every chat answer's crisis level (SPEC section 8).
pub const CRISIS_HEADER: &str = "x-persona-crisis-level";

/// A chat call, JSON or streamed (`/ai/chat` and `/ai/chat/completions`). The latest user
/// message is screened before anything else is done with it; at or above
/// `crisis.resource_level` the answer (error answers included) carries
/// `X-Persona-Crisis-Level`, and a JSON answer a top-level `crisis` field.
pub async fn chat(
    app: &App,
    user: AuthUser,
    body: Value,
    locales: &[String],
) -> AppResult<Response> {
    let ai = configured(app)?;
    let prepared = prepare_chat(app, ai, body).await?;
    let flag = match latest_user_text(&prepared.body) {
        Some(text) => {
            crisis::screen(app, &user.user_id, &text, crisis::Source::Chat, locales).await?
        }
        None => None,
    };
    let answer = chat_upstream(app, ai, &user, prepared, flag.as_ref()).await;
    let response = match answer {
        Ok(response) => response,
        Err(err) => err.into_response(),
    };
    Ok(with_crisis_header(response, flag.as_ref()))
}

async fn chat_upstream(
    app: &App,
    ai: &Ai,
    user: &AuthUser,
    prepared: Prepared,
    flag: Option<&CrisisFlag>,
) -> AppResult<Response> {
    admit(ai, user)?;
    let mut body = Value::Object(prepared.body);
    let reservation = reserve(app, ai, user, &mut body).await?;
    if !prepared.stream {
        let completed = complete(app, ai, user, "chat", &body, reservation).await?;
        let response = match flag {
            // The answer as the provider wrote it.
            None => json_response(completed.raw),
            Some(flag) => {
                let mut json = completed.json()?;
                if let Value::Object(answer) = &mut json {
                    answer.insert(
                        "crisis".into(),
                        serde_json::to_value(flag).map_err(ApiError::internal)?,
                    );
                }
                AppJson(json).into_response()
            }
        };
        return Ok(usage_headers(ai, user, response, completed.tokens));
    }
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let mut meter = Meter::new(
        ai,
        app,
        &user.user_id,
        reservation,
        "chat",
        &model,
        prompt_chars(&body),
    );
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
    let limits = sse::Limits {
        idle: ai.upstream.timeout(),
        total: app.config.ai.stream_timeout,
        strip_usage: prepared.strip_usage,
    };
    let events = sse::relay(answer.response.bytes_stream(), meter, limits);
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

/// An analysis (`/ai/analyze`): the text is screened by the detector before the model sees
/// it; the model's answer is validated (one retry); for `kind: "crisis"` the level is the
/// higher of the detector's and the model's (the model never lowers it).
pub async fn analyze(
    app: &App,
    user: &AuthUser,
    req: AnalyzeRequest,
    locales: &[String],
) -> AppResult<(AnalyzeResponse, Option<CrisisFlag>, i64)> {
    let ai = configured(app)?;
    let length = req.text.chars().count();
    if length == 0 || length > 20_000 || req.text.trim().is_empty() {
        return Err(ApiError::invalid_field(
            "text",
            "must be 1 to 20000 characters",
        ));
    }
    let detected = crisis::assess(app, &req.text)?;
    let (_, mut flag) =
        crisis::screen_analysis(app, &user.user_id, detected, None, locales).await?;
    let script = active_script(app, req.kind.script())
        .await?
        .map(|script| script.content)
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
            scripts::render(template, &variables).unwrap_or_else(|_| req.text.clone())
        }
        None => req.text.clone(),
    };
    let model = choose_model(ai, req.model.as_deref(), Some(&script))?;
    admit(ai, user)?;
    let mut body = script_body(&script, model, user_text, app.config.ai.max_tokens);
    // One retry when the output does not have the expected shape.
    let mut spent = 0;
    for _attempt in 0..2 {
        let reservation = reserve(app, ai, user, &mut body).await?;
        let completed = complete(app, ai, user, "analyze", &body, reservation).await?;
        spent += completed.tokens;
        let (json, model) = (completed.json()?, completed.model);
        let text = json["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or("");
        let Some(mut result) = extract_json(text).and_then(|o| validate(req.kind, &o)) else {
            continue;
        };
        if req.kind == Kind::Crisis {
            let said = result["level"].as_str().and_then(CrisisLevel::parse);
            let level = detected.max(said.unwrap_or(CrisisLevel::None));
            result["level"] = Value::String(level.as_str().to_owned());
            if level > detected {
                // The model saw more than the detector: that is the finding to record.
                let (_, upgraded) =
                    crisis::screen_analysis(app, &user.user_id, detected, said, locales).await?;
                flag = upgraded.or(flag);
            }
        }
        return Ok((
            AnalyzeResponse {
                kind: req.kind,
                result,
                crisis: flag.clone(),
                model,
                usage: json["usage"].clone(),
            },
            flag,
            spent,
        ));
    }
    Err(ApiError::Service {
        status: axum::http::StatusCode::BAD_GATEWAY,
        code: Code::UpstreamInvalidOutput,
        message: "The AI model did not answer in the expected format.".into(),
    })
}

/// A chat body for a script: its system prompt, then `user_text`.
pub fn script_body(script: &Value, model: String, user_text: String, cap: u32) -> Value {
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

/// `POST /ai/embeddings`: an OpenAI embeddings request for one of `ai.embedding_models`,
/// admitted, retried and metered like chat; 404 when the server offers none.
pub async fn embeddings(app: &App, user: &AuthUser, body: Value) -> AppResult<Response> {
    let ai = configured(app)?;
    let offered = &app.config.ai.embedding_models;
    if offered.is_empty() {
        return Err(ApiError::Service {
            status: axum::http::StatusCode::NOT_FOUND,
            code: Code::NotFound,
            message: "This server offers no embedding models (ai.embedding_models).".into(),
        });
    }
    let Value::Object(mut body) = body else {
        return Err(ApiError::invalid_field("body", "must be a JSON object"));
    };
    let mut invalid = Invalid::default();
    let refused = caps::check_routing(&mut body, |m| offered.iter().any(|o| o == m), &mut invalid);
    invalid.finish()?;
    if let Some(model) = refused {
        return Err(caps::model_not_allowed(&model));
    }
    let input_chars = match body.get("input") {
        Some(Value::String(text)) if !text.is_empty() => text.chars().count(),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|i| i.as_str().map_or(8, |t| t.chars().count()))
            .sum(),
        _ => {
            return Err(ApiError::invalid_field(
                "input",
                "must be a non-empty string or array",
            ));
        }
    };
    let model = match body.get("model") {
        None | Some(Value::Null) => offered[0].clone(),
        Some(Value::String(model)) if offered.contains(model) => model.clone(),
        Some(Value::String(model)) => {
            return Err(ApiError::Unprocessable {
                code: Code::ModelNotAllowed,
                message: format!("The embedding model {model} is not offered by this server.")
                    .into(),
            });
        }
        Some(_) => return Err(ApiError::invalid_field("model", "must be a string")),
    };
    body.insert("model".into(), Value::String(model.clone()));
    admit(ai, user)?;
    let ask = Ask {
        prompt: estimate_tokens(input_chars),
        choices: 1,
        max_output: None,
    };
    let reservation = ai.limits.reserve(&app.db, &user.user_id, ask).await?;
    let body = Value::Object(body);
    let mut meter = Meter::new(
        ai,
        app,
        &user.user_id,
        reservation,
        "embeddings",
        &model,
        input_chars,
    );
    let answer = match ai.upstream.embeddings(&body).await {
        Ok(answer) => answer,
        Err(err) => {
            meter.record("error");
            return Err(err);
        }
    };
    let (raw, read) = match read_json::<Vectors>(answer).await {
        Ok(answer) => answer,
        Err(err) => {
            meter.record("error");
            return Err(err);
        }
    };
    if let Some(used) = tokens(&read.usage) {
        meter.set_tokens(used);
    }
    meter.commit("ok").await;
    let tokens = meter.total_tokens();
    // The vectors as the provider wrote them: never parsed into numbers and printed again.
    Ok(usage_headers(ai, user, json_response(raw), tokens))
}
