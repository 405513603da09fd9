//! A fake OpenAI-compatible provider: a real axum server on loopback that answers
//! `/chat/completions` and `/models` the way OpenRouter does, following a script of
//! behaviours, and remembers every request it got.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub enum Behaviour {
    /// A normal completion whose message content is this text.
    Reply(String),
    /// An error status with an OpenAI error body.
    Status(u16),
    /// SSE: these content deltas, with OpenRouter's comment lines between them, a final
    /// usage chunk, then `[DONE]` when `done`.
    Stream { deltas: Vec<String>, done: bool },
    /// SSE: these deltas, then the connection breaks.
    StreamThenBreak(Vec<String>),
    /// SSE: these deltas, then an `error` event (as OpenRouter sends mid-stream), then the
    /// connection stays open, silent.
    StreamThenError(Vec<String>),
    /// SSE: one delta, then nothing, forever (until the client goes away).
    StreamForever,
    /// Waits, then replies.
    Slow(Duration, String),
    /// Waits for a minute, setting `stream_dropped` if the proxy gives up on it first.
    Hang,
    /// A 200 JSON answer without `choices`.
    NoChoices,
    /// This JSON body as the answer, as it is.
    Raw(Value),
    /// This text as a JSON answer's body, byte for byte.
    Text(String),
    /// SSE: these chunks as they are, then `[DONE]`.
    RawStream(Vec<Value>),
    /// A completion without `usage` (llama.cpp, some vLLM builds).
    ReplyNoUsage(String),
    /// SSE: these deltas and `[DONE]`, never a usage chunk.
    StreamNoUsage(Vec<String>),
    /// A whole JSON completion, one byte every `Duration`.
    DripJson(Duration),
    /// SSE headers, then one byte every `Duration` that never makes up an event.
    DripStream(Duration),
    /// SSE: a chunk every `Duration`, forever.
    StreamSlowly(Duration),
    /// 429 with `Retry-After: N` seconds.
    RateLimited(u64),
    /// Waits, then replies as a model that spends every token it was allowed: 10 prompt
    /// tokens and `max_tokens` completion tokens for each of the `n` choices.
    SlowSpendingAll(Duration),
}

#[derive(Default)]
struct Inner {
    plan: VecDeque<Behaviour>,
    requests: Vec<(HeaderMap, Value)>,
}

#[derive(Clone)]
pub struct FakeAi {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    /// Set when a `StreamForever` body was dropped (the proxy hung up on us).
    pub stream_dropped: Arc<AtomicBool>,
}

pub const KEY: &str = "sk-fake-provider-key";

impl FakeAi {
    pub async fn start() -> FakeAi {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let stream_dropped = Arc::new(AtomicBool::new(false));
        let state = (inner.clone(), stream_dropped.clone());
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/embeddings", post(embeddings))
            .route("/v1/models", get(models))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeAi {
            addr,
            inner,
            stream_dropped,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The next requests get these behaviours, in order; after them, `Reply("Hello!")`.
    pub fn plan(&self, behaviours: impl IntoIterator<Item = Behaviour>) {
        self.inner.lock().unwrap().plan.extend(behaviours);
    }

    pub fn requests(&self) -> Vec<(HeaderMap, Value)> {
        self.inner.lock().unwrap().requests.clone()
    }

    pub fn last_body(&self) -> Value {
        self.requests()
            .last()
            .expect("a request reached the fake")
            .1
            .clone()
    }
}

type FakeState = (Arc<Mutex<Inner>>, Arc<AtomicBool>);

async fn models(State((inner, _)): State<FakeState>, headers: HeaderMap) -> Json<Value> {
    inner.lock().unwrap().requests.push((headers, Value::Null));
    Json(json!({"data": [
        {"id": "openai/gpt-4o-mini", "name": "GPT-4o mini", "context_length": 128000},
        {"id": "other/model", "name": "Other", "context_length": 8000},
    ]}))
}

fn completion(model: &str, content: &str) -> Value {
    json!({
        "id": "gen-1", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    })
}

fn chunk(model: &str, delta: &str) -> String {
    let chunk = json!({"id": "gen-1", "object": "chat.completion.chunk", "model": model,
        "choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": null}]});
    format!(": OPENROUTER PROCESSING\n\ndata: {chunk}\n\n")
}

struct DropFlag(Arc<AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

async fn chat(
    State((inner, dropped)): State<FakeState>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let behaviour = {
        let mut inner = inner.lock().unwrap();
        inner.requests.push((headers, body.clone()));
        inner
            .plan
            .pop_front()
            .unwrap_or(Behaviour::Reply("Hello!".into()))
    };
    let model = body["model"].as_str().unwrap_or("?").to_owned();
    match behaviour {
        Behaviour::Reply(text) => Json(completion(&model, &text)).into_response(),
        Behaviour::Slow(wait, text) => {
            tokio::time::sleep(wait).await;
            Json(completion(&model, &text)).into_response()
        }
        Behaviour::Hang => {
            let _flag = DropFlag(dropped);
            tokio::time::sleep(Duration::from_secs(60)).await;
            Json(completion(&model, "too late")).into_response()
        }
        Behaviour::SlowSpendingAll(wait) => {
            tokio::time::sleep(wait).await;
            let choices = body["n"].as_i64().unwrap_or(1);
            let spent = body["max_tokens"].as_i64().unwrap_or(0) * choices;
            let mut answer = completion(&model, "every token");
            answer["usage"] = json!({"prompt_tokens": 10, "completion_tokens": spent,
                "total_tokens": 10 + spent});
            Json(answer).into_response()
        }
        Behaviour::Raw(answer) => Json(answer).into_response(),
        Behaviour::Text(text) => ([("content-type", "application/json")], text).into_response(),
        Behaviour::RawStream(chunks) => {
            let mut text: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
            text.push_str("data: [DONE]\n\n");
            sse(Body::from(text))
        }
        Behaviour::ReplyNoUsage(text) => {
            let mut answer = completion(&model, &text);
            answer.as_object_mut().unwrap().remove("usage");
            Json(answer).into_response()
        }
        Behaviour::StreamNoUsage(deltas) => {
            let mut text: String = deltas.iter().map(|d| chunk(&model, d)).collect();
            text.push_str("data: [DONE]\n\n");
            sse(Body::from(text))
        }
        Behaviour::NoChoices => Json(json!({"id": "gen-1", "object": "chat.completion",
            "model": model, "usage": {"prompt_tokens": 1, "completion_tokens": 0, "total_tokens": 1}}))
        .into_response(),
        Behaviour::DripJson(every) => {
            let bytes: Vec<u8> = completion(&model, "slowly").to_string().into_bytes();
            let parts: Vec<Result<Bytes, std::io::Error>> = bytes
                .into_iter()
                .map(|b| Ok(Bytes::copy_from_slice(&[b])))
                .collect();
            let stream =
                futures_util::StreamExt::then(futures_util::stream::iter(parts), move |p| async move {
                    tokio::time::sleep(every).await;
                    p
                });
            Response::builder()
                .header("content-type", "application/json")
                .body(Body::from_stream(stream))
                .unwrap()
        }
        Behaviour::DripStream(every) => {
            let stream = futures_util::stream::unfold((), move |()| async move {
                tokio::time::sleep(every).await;
                Some((Ok::<_, std::io::Error>(Bytes::from_static(b"d")), ()))
            });
            sse(Body::from_stream(stream))
        }
        Behaviour::StreamSlowly(every) => {
            let model = model.clone();
            let stream = futures_util::stream::unfold((), move |()| {
                let model = model.clone();
                async move {
                    tokio::time::sleep(every).await;
                    Some((Ok::<_, std::io::Error>(Bytes::from(chunk(&model, "more"))), ()))
                }
            });
            sse(Body::from_stream(stream))
        }
        Behaviour::RateLimited(seconds) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", seconds.to_string())],
            Json(json!({"error": {"message": "rate limited", "code": 429}})),
        )
            .into_response(),
        Behaviour::Status(code) => (
            StatusCode::from_u16(code).unwrap(),
            Json(json!({"error": {"message": "provider says no", "code": code}})),
        )
            .into_response(),
        Behaviour::Stream { deltas, done } => {
            let mut text: String = deltas.iter().map(|d| chunk(&model, d)).collect();
            let usage = json!({"id": "gen-1", "object": "chat.completion.chunk", "model": model,
                "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}});
            text.push_str(&format!("data: {usage}\n\n"));
            if done {
                text.push_str("data: [DONE]\n\n");
            }
            let parts: Vec<Result<Bytes, std::io::Error>> = text
                .split_inclusive("\n\n")
                .map(|p| Ok(Bytes::from(p.to_owned())))
                .collect();
            let stream =
                futures_util::StreamExt::then(futures_util::stream::iter(parts), |p| async {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    p
                });
            sse(Body::from_stream(stream))
        }
        Behaviour::StreamThenBreak(deltas) => {
            let mut parts: Vec<Result<Bytes, std::io::Error>> = deltas
                .iter()
                .map(|d| Ok(Bytes::from(chunk(&model, d))))
                .collect();
            parts.push(Err(std::io::Error::other("connection lost")));
            // Paced, so the chunks are on the wire before the connection breaks.
            let stream =
                futures_util::StreamExt::then(futures_util::stream::iter(parts), |p| async {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    p
                });
            sse(Body::from_stream(stream))
        }
        Behaviour::StreamThenError(deltas) => {
            let mut text: String = deltas.iter().map(|d| chunk(&model, d)).collect();
            text.push_str("data: {\"error\":{\"message\":\"overloaded\",\"code\":502}}\n\n");
            let first: Result<Bytes, std::io::Error> = Ok(Bytes::from(text));
            let stream = futures_util::StreamExt::chain(
                futures_util::stream::iter([first]),
                futures_util::stream::pending(),
            );
            sse(Body::from_stream(stream))
        }
        Behaviour::StreamForever => {
            let flag = DropFlag(dropped);
            let first = Bytes::from(chunk(&model, "Thinking"));
            let stream =
                futures_util::stream::unfold((Some(first), flag), |(next, flag)| async move {
                    match next {
                        Some(bytes) => Some((Ok::<_, std::io::Error>(bytes), (None, flag))),
                        None => {
                            std::future::pending::<()>().await;
                            None
                        }
                    }
                });
            sse(Body::from_stream(stream))
        }
    }
}

/// Embeddings: one three-number vector per input, with usage unless the plan says
/// `ReplyNoUsage`, or the planned status.
async fn embeddings(
    State((inner, _)): State<FakeState>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let behaviour = {
        let mut inner = inner.lock().unwrap();
        inner.requests.push((headers, body.clone()));
        inner.plan.pop_front()
    };
    let inputs = match &body["input"] {
        Value::Array(items) => items.len(),
        _ => 1,
    };
    let data: Vec<Value> = (0..inputs)
        .map(|i| json!({"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}))
        .collect();
    let mut answer = json!({"object": "list", "data": data, "model": body["model"],
        "usage": {"prompt_tokens": 4, "total_tokens": 4}});
    match behaviour {
        Some(Behaviour::Status(code)) => {
            return (
                StatusCode::from_u16(code).unwrap(),
                Json(json!({"error": {}})),
            )
                .into_response();
        }
        Some(Behaviour::ReplyNoUsage(_)) => {
            answer.as_object_mut().unwrap().remove("usage");
        }
        Some(Behaviour::Text(text)) => {
            return ([("content-type", "application/json")], text).into_response();
        }
        _ => {}
    }
    Json(answer).into_response()
}

fn sse(body: Body) -> Response {
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(body)
        .unwrap()
}
