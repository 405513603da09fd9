//! The OpenAI-compatible upstream: one reqwest client (rustls), the provider key, retries
//! with backoff on 429/5xx/connection errors, then the fallback models.
//!
//! The key is sent as `Authorization: Bearer` to the upstream only; the user's own token is
//! never forwarded (requests are built here from scratch, not copied from the client's).

use std::{marker::PhantomData, time::Duration};

use anyhow::Context as _;

use axum::{
    body::Bytes,
    http::{HeaderMap, HeaderValue, StatusCode},
};
use serde::{
    Deserialize, Deserializer,
    de::{DeserializeOwned, DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor},
};
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
/// what persona reads of it: the list `L` the answer must hold (`choices`, `data`: OpenAI
/// clients index it, and a 200 without it would crash them) and its `usage`. The bytes are
/// passed on to the client as they came; only an answer persona adds to is parsed whole
/// (building and re-encoding every value cost more than the rest of a call's own work).
pub async fn read_json<L: AnswerList>(answer: Answer) -> AppResult<(Bytes, Reading<L>)> {
    let raw = match tokio::time::timeout_at(answer.deadline, answer.response.bytes()).await {
        Ok(Ok(raw)) => raw,
        Ok(Err(_)) => return Err(not_json()),
        Err(_elapsed) => return Err(upstream_timeout()),
    };
    match serde_json::from_slice(&raw) {
        Ok(reading) => Ok((raw, reading)),
        // JSON of another shape: not an object, or without the list.
        Err(err) if err.is_data() => {
            Err(upstream_error("The AI provider's answer was incomplete."))
        }
        Err(_) => Err(not_json()),
    }
}

/// What persona reads of a JSON answer: its list and its `usage` (`Null` when it has none).
/// Every other value in it is read too, as strictly as `serde_json::Value` reads one (UTF-8,
/// escapes, numbers in range, nesting depth), but not kept: what reaches the client is JSON
/// any client can read, and an answer that is not is a failed call, metered as one.
pub struct Reading<L> {
    pub list: L,
    pub usage: Value,
}

/// The list an answer must hold, and its name.
pub trait AnswerList: DeserializeOwned {
    const NAME: &'static str;
}

/// A chat completion's `choices`.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct Choices(pub Vec<Value>);

impl AnswerList for Choices {
    const NAME: &'static str = "choices";
}

/// An embeddings answer's `data`, checked and not kept (its vectors go to the client as
/// they came, never parsed into numbers and printed again).
#[derive(Deserialize)]
#[serde(transparent)]
pub struct Vectors(
    // Read only to check it is a list of JSON values.
    #[allow(dead_code)] Vec<Checked>,
);

impl AnswerList for Vectors {
    const NAME: &'static str = "data";
}

impl<'de, L: AnswerList> Deserialize<'de> for Reading<L> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ReadingVisitor(PhantomData))
    }
}

struct ReadingVisitor<L>(PhantomData<L>);

impl<'de, L: AnswerList> Visitor<'de> for ReadingVisitor<L> {
    type Value = Reading<L>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "an object with `{}`", L::NAME)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Reading<L>, A::Error> {
        let (mut list, mut usage) = (None, Value::Null);
        while let Some(key) = entries.next_key_seed(KeyOf(L::NAME))? {
            match key {
                Key::List => list = Some(entries.next_value()?),
                Key::Usage => usage = entries.next_value()?,
                Key::Other => {
                    entries.next_value::<Checked>()?;
                }
            }
        }
        let list = list.ok_or_else(|| A::Error::missing_field(L::NAME))?;
        Ok(Reading { list, usage })
    }
}

/// Which of an answer's keys a name is (read without being copied).
enum Key {
    List,
    Usage,
    Other,
}

/// Reads a key, given the list's name.
struct KeyOf(&'static str);

impl<'de> DeserializeSeed<'de> for KeyOf {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyOf {
    type Value = Key;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Key, E> {
        Ok(match key {
            _ if key == self.0 => Key::List,
            "usage" => Key::Usage,
            _ => Key::Other,
        })
    }
}

/// Any JSON value, read token by token as strictly as `serde_json::Value` reads one, and not
/// kept: serde's way of skipping a value (`IgnoredAny`) only matches brackets and quotes.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Checked, D::Error> {
        deserializer.deserialize_any(Checked)
    }
}

impl<'de> Visitor<'de> for Checked {
    type Value = Checked;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Checked, A::Error> {
        while items.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Checked, A::Error> {
        while entries.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(Checked)
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
