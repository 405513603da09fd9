//! The OpenAI-compatible upstream: one reqwest client (rustls), the provider key, retries
//! with backoff on 429/5xx/connection errors, then the fallback models.
//!
//! The key is sent as `Authorization: Bearer` to the upstream only; the user's own token is
//! never forwarded (requests are built here from scratch, not copied from the client's).

use std::time::Duration;

use anyhow::Context as _;

use axum::{
    body::Bytes,
    http::{HeaderMap, HeaderValue, StatusCode},
};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::Value;

use crate::{
    config::{AiConfig, Secret},
    error::{ApiError, AppResult, Code},
};

pub struct Upstream {
    client: reqwest::Client,
    /// OpenRouter's attribution headers (`HTTP-Referer`, `X-Title`), on every request.
    headers: HeaderMap,
    /// The endpoints' URLs, parsed once (`AiConfig::endpoint`; config checks made sure they
    /// parse).
    chat_url: reqwest::Url,
    embeddings_url: reqwest::Url,
    models_url: reqwest::Url,
    key: Option<Secret>,
    timeout: Duration,
    max_retries: u32,
    fallback_models: Vec<String>,
}

/// What a successful call produced: the upstream's response (status 2xx, body unread), the
/// model that answered (a fallback, perhaps) and when `ai.timeout` runs out for the call —
/// reading a JSON body must finish by then too.
pub struct Answer {
    pub response: reqwest::Response,
    pub model: String,
    pub deadline: tokio::time::Instant,
}

/// The longest `Retry-After` passed on to the client when the provider rate-limits us.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How one attempt failed.
enum Failure {
    /// Worth retrying on the same model (429, 5xx, connection trouble).
    Retry {
        timeout: bool,
        retry_after: Option<Duration>,
    },
    /// Not worth retrying on this model (another 4xx): try the next one.
    NextModel,
}

impl Upstream {
    /// The upstream of `config` over the shared `client`.
    pub fn new(config: &AiConfig, client: reqwest::Client) -> anyhow::Result<Upstream> {
        let mut headers = HeaderMap::new();
        if !config.app_url.is_empty() {
            headers.insert("http-referer", HeaderValue::from_str(&config.app_url)?);
        }
        if !config.app_title.is_empty() {
            headers.insert("x-title", HeaderValue::from_str(&config.app_title)?);
        }
        let url = |path: &str| {
            config
                .endpoint(path)
                .with_context(|| format!("ai.base_url {:?}", config.base_url))
        };
        Ok(Upstream {
            client,
            headers,
            chat_url: url("chat/completions")?,
            embeddings_url: url("embeddings")?,
            models_url: url("models")?,
            key: config.api_key.clone(),
            timeout: config.timeout,
            max_retries: config.max_retries,
            fallback_models: config.fallback_models.clone(),
        })
    }

    /// `ai.timeout`: how long a call may take, retries included; also the longest silence
    /// between two parts of an answer being read.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn key(&self) -> AppResult<&str> {
        self.key
            .as_ref()
            .map(Secret::expose)
            .ok_or_else(not_configured)
    }

    /// POSTs a chat-completions `body` (its `model` set), retrying and falling back, all
    /// within `ai.timeout` for the response head. The body is read by the caller: a JSON
    /// answer within the read timeout, a stream for as long as chunks keep coming.
    pub async fn chat(&self, body: &Value) -> AppResult<Answer> {
        self.call(&self.chat_url, body, true).await
    }

    /// POSTs an embeddings `body`, retrying like [`Upstream::chat`] (no fallback models:
    /// those are chat models).
    pub async fn embeddings(&self, body: &Value) -> AppResult<Answer> {
        self.call(&self.embeddings_url, body, false).await
    }

    async fn call(&self, url: &reqwest::Url, body: &Value, fallbacks: bool) -> AppResult<Answer> {
        let key = self.key()?;
        let first = body["model"].as_str().unwrap_or_default().to_owned();
        let mut models = vec![first];
        for fallback in self.fallback_models.iter().filter(|_| fallbacks) {
            if !models.contains(fallback) {
                models.push(fallback.clone());
            }
        }
        // `ai.timeout` bounds the whole call, retries and fallbacks included.
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut timed_out = false;
        // The provider's own rate limit, when that is how the last attempt failed.
        let mut rate_limited: Option<Option<Duration>> = None;
        'models: for model in models {
            // Serialized once per model, not per attempt; the body is copied only for a
            // fallback model.
            let bytes = if body["model"].as_str() == Some(model.as_str()) {
                serde_json::to_vec(body)
            } else {
                let mut body = body.clone();
                body["model"] = Value::String(model.clone());
                serde_json::to_vec(&body)
            };
            let bytes = axum::body::Bytes::from(bytes.map_err(ApiError::internal)?);
            for attempt in 0..=self.max_retries {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() {
                    timed_out = true;
                    break 'models;
                }
                let request = self
                    .client
                    .post(url.clone())
                    .headers(self.headers.clone())
                    .bearer_auth(key)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(bytes.clone());
                rate_limited = None;
                let sent = tokio::time::timeout(left, request.send()).await;
                let failure = match sent {
                    Ok(Ok(response)) if response.status().is_success() => {
                        return Ok(Answer {
                            response,
                            model,
                            deadline,
                        });
                    }
                    Ok(Ok(response)) => {
                        let failure = classify(&response);
                        let retry_after = match &failure {
                            Failure::Retry { retry_after, .. } => *retry_after,
                            Failure::NextModel => None,
                        };
                        rate_limited = (response.status() == StatusCode::TOO_MANY_REQUESTS)
                            .then_some(retry_after);
                        failure
                    }
                    Ok(Err(err)) => Failure::Retry {
                        timeout: err.is_timeout(),
                        retry_after: None,
                    },
                    Err(_elapsed) => Failure::Retry {
                        timeout: true,
                        retry_after: None,
                    },
                };
                match failure {
                    Failure::NextModel => break,
                    Failure::Retry {
                        timeout,
                        retry_after,
                    } => {
                        timed_out = timeout;
                        if attempt < self.max_retries {
                            let left =
                                deadline.saturating_duration_since(tokio::time::Instant::now());
                            tokio::time::sleep(backoff(attempt, retry_after).min(left)).await;
                        }
                    }
                }
            }
        }
        if let Some(retry_after) = rate_limited {
            // "Rate limited", not "timed out": the client can wait and try again.
            return Err(ApiError::TooManyRequests {
                code: Code::UpstreamRateLimited,
                message: "The AI provider is rate-limiting this server; try again shortly.".into(),
                retry_after: retry_after
                    .unwrap_or(Duration::from_secs(5))
                    .min(MAX_RETRY_AFTER),
            });
        }
        Err(if timed_out {
            upstream_timeout()
        } else {
            upstream_error("The AI provider could not answer; try again later.")
        })
    }

    /// The upstream's model list (`data` of `GET /models`).
    pub async fn models(&self) -> AppResult<Vec<Value>> {
        let key = self.key()?;
        let response = self
            .client
            .get(self.models_url.clone())
            .headers(self.headers.clone())
            .bearer_auth(key)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|_| upstream_error("The AI provider's model list is unreachable."))?;
        if !response.status().is_success() {
            return Err(upstream_error(
                "The AI provider's model list is unavailable.",
            ));
        }
        let body: Value = response
            .json()
            .await
            .map_err(|_| upstream_error("The AI provider's model list is not JSON."))?;
        Ok(body["data"].as_array().cloned().unwrap_or_default())
    }

    /// Asks the upstream for `GET /models` within `timeout` (for `/ai/health` and `persona
    /// doctor`): how long it took, or what went wrong.
    pub async fn probe(&self, timeout: Duration) -> Result<Duration, ProbeError> {
        let start = std::time::Instant::now();
        let key = self
            .key()
            .map_err(|_| ProbeError::Unreachable("no ai.api_key"))?;
        let response = self
            .client
            .get(self.models_url.clone())
            .headers(self.headers.clone())
            .bearer_auth(key)
            .timeout(timeout)
            .send()
            .await
            .map_err(|err| {
                // In words: reqwest's own messages embed the URL.
                ProbeError::Unreachable(if err.is_timeout() {
                    "timed out"
                } else if err.is_connect() {
                    "connection failed"
                } else {
                    "request failed"
                })
            })?;
        if response.status().is_success() {
            Ok(start.elapsed())
        } else {
            Err(ProbeError::Status(response.status()))
        }
    }
}

/// Why a probe of the upstream failed.
#[derive(Debug, Clone, Copy)]
pub enum ProbeError {
    /// It answered, with this status.
    Status(reqwest::StatusCode),
    /// It did not answer.
    Unreachable(&'static str),
}

fn classify(response: &reqwest::Response) -> Failure {
    let status = response.status();
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Failure::Retry {
            timeout: false,
            retry_after,
        }
    } else {
        Failure::NextModel
    }
}

/// 100 ms, 200 ms, 400 ms … (or the upstream's Retry-After), never more than 2 s: the
/// client is waiting.
fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    let exponential = Duration::from_millis(100 * 2u64.pow(attempt.min(10)));
    retry_after
        .unwrap_or(exponential)
        .min(Duration::from_secs(2))
}

pub fn not_configured() -> ApiError {
    ApiError::Service {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: Code::AiNotConfigured,
        message: "The AI provider is not configured on this server.".into(),
    }
}

/// 504 `upstream_timeout`: the provider did not answer within `ai.timeout`.
pub fn upstream_timeout() -> ApiError {
    ApiError::Service {
        status: StatusCode::GATEWAY_TIMEOUT,
        code: Code::UpstreamTimeout,
        message: "The AI provider did not answer in time.".into(),
    }
}

/// The body of a successful JSON `answer` as the provider sent it, read by its deadline (a
/// provider that drips its answer byte by byte is cut off like one that never answers), and
/// `T`, what persona reads of it: the array the answer must hold (`choices`, `data`: OpenAI
/// clients index it, and a 200 without it would crash them) and its `usage`. The bytes are
/// passed on to the client as they came; only an answer persona adds to is parsed whole
/// (building and re-encoding every value cost more than the rest of a call's own work).
pub async fn read_json<T: DeserializeOwned>(answer: Answer) -> AppResult<(Bytes, T)> {
    let raw = match tokio::time::timeout_at(answer.deadline, answer.response.bytes()).await {
        Ok(Ok(raw)) => raw,
        Ok(Err(_)) => return Err(not_json()),
        Err(_elapsed) => return Err(upstream_timeout()),
    };
    let incomplete = || upstream_error("The AI provider's answer was incomplete.");
    // A struct reads a JSON array too (by position): the answer must be an object.
    if raw.trim_ascii_start().first() != Some(&b'{') {
        return Err(match serde_json::from_slice::<IgnoredAny>(&raw) {
            Ok(_) => incomplete(),
            Err(_) => not_json(),
        });
    }
    match serde_json::from_slice(&raw) {
        Ok(reading) => Ok((raw, reading)),
        Err(err) if err.is_data() => Err(incomplete()),
        Err(_) => Err(not_json()),
    }
}

/// An answer whose body is not JSON.
pub fn not_json() -> ApiError {
    upstream_error("The AI provider's answer was not JSON.")
}

pub fn upstream_error(message: &'static str) -> ApiError {
    ApiError::Service {
        status: StatusCode::BAD_GATEWAY,
        code: Code::UpstreamError,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0, None), Duration::from_millis(100));
        assert_eq!(backoff(2, None), Duration::from_millis(400));
        assert_eq!(backoff(9, None), Duration::from_secs(2));
        assert_eq!(
            backoff(0, Some(Duration::from_secs(60))),
            Duration::from_secs(2)
        );
    }
}
