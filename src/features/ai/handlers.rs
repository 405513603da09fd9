//! `/ai/*` handlers: extract, call `service`, respond. The OpenAI-shaped routes keep
//! OpenAI's field names.

use axum::{
    extract::State,
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{
    service::{self, admit, choose_model, complete, configured},
    store,
    types::*,
    upstream::upstream_error,
};
use crate::{
    app::AppState,
    auth::AuthUser,
    domain::Timestamp,
    error::{ApiError, AppResult, ErrorBody},
    features::{crisis, scripts},
    http::extract::AppJson,
};

/// OpenAI chat completions through the server's provider key. `stream: true` answers
/// `text/event-stream`, relayed chunk by chunk and ending with `data: [DONE]`.
#[utoipa::path(post, path = "/ai/chat", tag = "ai", security(("bearer" = [])),
    request_body = ChatRequest,
    responses(
        (status = 200, description = "the upstream's chat completion (or an SSE stream)", body = Object),
        (status = 422, description = "`model_not_allowed`", body = ErrorBody),
        (status = 429, description = "`rate_limited` (`ai.requests_per_minute`) or `quota_exceeded` (`ai.daily_token_budget`)", body = ErrorBody),
        (status = 502, description = "`upstream_error`", body = ErrorBody),
        (status = 503, description = "`ai_not_configured`", body = ErrorBody),
        (status = 504, description = "`upstream_timeout`", body = ErrorBody),
    ))]
pub async fn chat(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    AppJson(body): AppJson<Value>,
) -> AppResult<Response> {
    service::chat(&state, user, body, &crisis::locales(None, &headers)).await
}

/// The same as `/ai/chat`, at the path OpenAI SDKs call (`base_url=<server>/api/v1/ai`).
#[utoipa::path(post, path = "/ai/chat/completions", tag = "ai", security(("bearer" = [])),
    request_body = ChatRequest,
    responses(
        (status = 200, description = "the upstream's chat completion (or an SSE stream)", body = Object),
        (status = 422, description = "`model_not_allowed`", body = ErrorBody),
        (status = 429, description = "`rate_limited` (`ai.requests_per_minute`) or `quota_exceeded` (`ai.daily_token_budget`)", body = ErrorBody),
        (status = 502, description = "`upstream_error`", body = ErrorBody),
        (status = 503, description = "`ai_not_configured`", body = ErrorBody),
        (status = 504, description = "`upstream_timeout`", body = ErrorBody),
    ))]
pub async fn chat_completions(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    AppJson(body): AppJson<Value>,
) -> AppResult<Response> {
    service::chat(&state, user, body, &crisis::locales(None, &headers)).await
}

/// OpenAI embeddings for one of `ai.embedding_models`, metered and budgeted like chat.
#[utoipa::path(post, path = "/ai/embeddings", tag = "ai", security(("bearer" = [])),
    request_body = Object,
    responses(
        (status = 200, description = "the upstream's embeddings, in OpenAI's shape", body = Object),
        (status = 404, description = "`not_found`: the server offers no embedding models", body = ErrorBody),
        (status = 422, description = "`model_not_allowed`", body = ErrorBody),
        (status = 429, description = "`rate_limited` (`ai.requests_per_minute`) or `quota_exceeded` (`ai.daily_token_budget`)", body = ErrorBody),
        (status = 502, description = "`upstream_error`", body = ErrorBody),
        (status = 503, description = "`ai_not_configured`", body = ErrorBody),
        (status = 504, description = "`upstream_timeout`", body = ErrorBody),
    ))]
pub async fn embeddings(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(body): AppJson<Value>,
) -> AppResult<Response> {
    service::embeddings(&state, &user, body).await
}

/// Render a script's template with variables and answer with the model's text.
#[utoipa::path(post, path = "/ai/content", tag = "ai", security(("bearer" = [])),
    request_body = ContentRequest,
    responses(
        (status = 200, body = ContentResponse),
        (status = 404, description = "no active script of that name", body = ErrorBody),
        (status = 422, description = "a template variable is missing (`details.variables`), or `model_not_allowed`", body = ErrorBody),
        (status = 429, description = "`rate_limited` (`ai.requests_per_minute`) or `quota_exceeded` (`ai.daily_token_budget`)", body = ErrorBody),
        (status = 502, description = "`upstream_error`", body = ErrorBody),
        (status = 503, description = "`ai_not_configured`", body = ErrorBody),
        (status = 504, description = "`upstream_timeout`", body = ErrorBody),
    ))]
pub async fn content(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(req): AppJson<ContentRequest>,
) -> AppResult<Response> {
    let ai = configured(&state)?;
    let script = service::active_script(&state, &req.script)
        .await?
        .ok_or(ApiError::NotFound)?;
    let (row, script) = (script.row, script.content);
    let Some(template) = script["template"].as_str() else {
        return Err(ApiError::invalid_field(
            "script",
            "this script has no template to render",
        ));
    };
    let rendered = scripts::render(template, &req.variables).map_err(|missing| {
        ApiError::invalid_field("variables", format!("missing: {}", missing.join(", ")))
    })?;
    let model = choose_model(ai, req.model.as_deref(), Some(&script))?;
    admit(ai, &user)?;
    let mut body = service::script_body(&script, model, rendered, state.config.ai.max_tokens);
    let reservation = service::reserve(&state, ai, &user, &mut body).await?;
    let completed = complete(&state, ai, &user, "content", &body, reservation).await?;
    let (json, model, tokens) = (completed.json()?, completed.model, completed.tokens);
    let content = json["choices"][0]["message"]["content"]
        .as_str()
        .ok_or_else(|| upstream_error("The AI provider's answer had no content."))?
        .to_owned();
    let response = AppJson(ContentResponse {
        content,
        model,
        usage: json["usage"].clone(),
        script: ScriptRef {
            name: row.name,
            version: row.version,
        },
    })
    .into_response();
    Ok(service::usage_headers(ai, &user, response, tokens))
}

/// Analyse a text (mood, psychology, crisis) into a validated JSON result.
#[utoipa::path(post, path = "/ai/analyze", tag = "ai", security(("bearer" = [])),
    request_body = AnalyzeRequest,
    responses(
        (status = 200, body = AnalyzeResponse),
        (status = 429, description = "`rate_limited` (`ai.requests_per_minute`) or `quota_exceeded` (`ai.daily_token_budget`)", body = ErrorBody),
        (status = 502, description = "`upstream_invalid_output` after one retry, or `upstream_error`", body = ErrorBody),
        (status = 503, description = "`ai_not_configured`", body = ErrorBody),
        (status = 504, description = "`upstream_timeout`", body = ErrorBody),
    ))]
pub async fn analyze(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    AppJson(req): AppJson<AnalyzeRequest>,
) -> AppResult<Response> {
    let locales = crisis::locales(None, &headers);
    let (answer, flag, tokens) = service::analyze(&state, &user, req, &locales).await?;
    let response = AppJson(answer).into_response();
    let response = service::usage_headers(configured(&state)?, &user, response, tokens);
    Ok(service::with_crisis_header(response, flag.as_ref()))
}

/// The models users may pick, in OpenAI's list shape, with the upstream's details when it
/// answers.
#[utoipa::path(get, path = "/ai/models", tag = "ai", security(("bearer" = [])),
    responses((status = 200, description = "`{object: \"list\", data: [{id, object: \"model\", ...}]}`", body = Object),
        (status = 503, description = "`ai_not_configured`", body = ErrorBody)))]
pub async fn models(State(state): State<AppState>, _user: AuthUser) -> AppResult<AppJson<Value>> {
    let ai = configured(&state)?;
    let upstream = ai.upstream_models().await.unwrap_or_default();
    let data: Vec<Value> = ai
        .allowed_models()
        .iter()
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
    let now = Timestamp::now().unix();
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
                estimated_tokens: r.estimated_tokens,
            })
            .collect(),
    }))
}

/// Whether the AI proxy is configured and its upstream answers (no sign-in needed).
#[utoipa::path(get, path = "/ai/health", tag = "ai", responses((status = 200, body = AiHealth)))]
pub async fn health(State(state): State<AppState>) -> AppJson<AiHealth> {
    AppJson(super::upstream_health(&state).await)
}
