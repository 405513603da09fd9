//! A minimal OpenAI-compatible provider for measuring the AI proxy and for checking it with
//! OpenAI clients (`scripts/openai-sdk-check.sh`). It behaves like a real provider in the
//! ways that matter to a relay: a model "thinks" for `--latency-ms` (default 0) before the
//! answer, and a stream is written the way OpenRouter writes one — the SSE comment at once,
//! then, after the latency, every event in its own write (`--chunk-gap-ms` apart, default 1);
//! the usage-only chunk and `[DONE]` follow the last content chunk at once, each in its own
//! write, as a provider sends them (no token is generated between them).
//! - `POST /v1/chat/completions`: JSON, or with `stream: true` an SSE comment line, 5 content
//!   chunks, a usage-only chunk when `stream_options.include_usage` is set, and `[DONE]`;
//!   when the request offers `tools` (and `tool_choice` is not `"none"`) the answer is a call
//!   of the first tool, streamed as `tool_calls` deltas whose arguments arrive in pieces;
//! - `POST /v1/embeddings`: one small deterministic vector per input (`encoding_format`
//!   `float` or `base64`), with usage;
//! - `GET /v1/models`.
//!
//! Run: `cargo run --release -p persona-bench --bin fake-provider [ADDR] [--latency-ms N]
//! [--chunk-gap-ms N]` (default 127.0.0.1:4000), then point `PERSONA_AI__BASE_URL` at
//! `http://ADDR/v1`.

use std::{sync::OnceLock, time::Duration};

use axum::{
    Json, Router,
    body::Body,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    serve::ListenerExt,
};
use base64::Engine as _;
use serde_json::{Value, json};

fn usage() -> Value {
    json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15})
}

/// The arguments of every tool call, sent in these pieces when streaming.
const TOOL_ARGUMENT_PIECES: [&str; 4] = ["{\"city\": ", "\"Paris\", ", "\"days\": ", "3}"];

/// The tool the request asks to be called: the one `tool_choice` names, else the first of
/// `tools`; none when there are no tools or `tool_choice` is `"none"`.
fn tool_to_call(body: &Value) -> Option<String> {
    let tools = body["tools"].as_array().filter(|tools| !tools.is_empty())?;
    match &body["tool_choice"] {
        Value::String(choice) if choice == "none" => None,
        choice => choice["function"]["name"]
            .as_str()
            .or_else(|| tools[0]["function"]["name"].as_str())
            .map(str::to_owned),
    }
}

/// How long a model "thinks" before its answer, and the gap between two stream events.
#[derive(Debug, Clone, Copy)]
struct Timing {
    latency: Duration,
    chunk_gap: Duration,
}

static TIMING: OnceLock<Timing> = OnceLock::new();

fn timing() -> Timing {
    *TIMING.get().expect("set in main")
}

/// An SSE answer: `comment` at once, then after the latency each of `events` in its own
/// write, `chunk_gap` apart, then each of `tail` in its own write without a gap.
fn sse(comment: String, events: Vec<String>, tail: Vec<String>) -> Response {
    let Timing { latency, chunk_gap } = timing();
    let paced = events.len();
    let frames = futures_util::stream::unfold(
        (Some(comment), events.into_iter().chain(tail).enumerate()),
        move |(comment, mut events)| async move {
            if let Some(comment) = comment {
                return Some((Ok::<_, std::io::Error>(comment), (None, events)));
            }
            let (i, event) = events.next()?;
            if i == 0 {
                tokio::time::sleep(latency).await;
            } else if i < paced {
                tokio::time::sleep(chunk_gap).await;
            } else {
                // A write of its own, as a separate event would be.
                tokio::task::yield_now().await;
            }
            Some((Ok(event), (None, events)))
        },
    );
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(frames))
        .unwrap()
}

async fn chat(Json(body): Json<Value>) -> Response {
    let model = body["model"].as_str().unwrap_or("fake/model").to_owned();
    let tool = tool_to_call(&body);
    if body["stream"].as_bool() == Some(true) {
        let chunk = |delta: Value, finish: Value| {
            let chunk = json!({"id": "gen", "object": "chat.completion.chunk", "created": 1,
                "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
            format!("data: {chunk}\n\n")
        };
        // Like OpenRouter's keep-alive: a comment line before the first event.
        let comment = String::from(": FAKE PROVIDER PROCESSING\n\n");
        let mut events = Vec::new();
        match &tool {
            Some(name) => {
                events.push(chunk(
                    json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0,
                        "id": "call_fake_1", "type": "function",
                        "function": {"name": name, "arguments": ""}}]}),
                    Value::Null,
                ));
                for piece in TOOL_ARGUMENT_PIECES {
                    events.push(chunk(
                        json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                        Value::Null,
                    ));
                }
                events.push(chunk(json!({}), json!("tool_calls")));
            }
            None => {
                let words = ["Hello", " from", " the", " fake", " provider"];
                for (i, word) in words.into_iter().enumerate() {
                    let delta = if i == 0 {
                        json!({"role": "assistant", "content": word})
                    } else {
                        json!({"content": word})
                    };
                    let finish = if i + 1 == words.len() {
                        json!("stop")
                    } else {
                        Value::Null
                    };
                    events.push(chunk(delta, finish));
                }
            }
        }
        let mut tail = Vec::new();
        if body["stream_options"]["include_usage"].as_bool() == Some(true) {
            let usage = json!({"id": "gen", "object": "chat.completion.chunk", "created": 1,
                "model": model, "choices": [], "usage": usage()});
            tail.push(format!("data: {usage}\n\n"));
        }
        tail.push("data: [DONE]\n\n".to_owned());
        return sse(comment, events, tail);
    }
    tokio::time::sleep(timing().latency).await;
    let (message, finish) = match &tool {
        Some(name) => (
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_fake_1",
                "type": "function",
                "function": {"name": name, "arguments": TOOL_ARGUMENT_PIECES.concat()}}]}),
            "tool_calls",
        ),
        None => (
            json!({"role": "assistant", "content": "Hello from the fake provider"}),
            "stop",
        ),
    };
    Json(json!({
        "id": "gen", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage(),
    }))
    .into_response()
}

/// A deterministic vector of `dims` floats in -1..1 for one input.
fn vector(input: &Value, dims: usize) -> Vec<f32> {
    let mut seed = input
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    (0..dims)
        .map(|_| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

async fn embeddings(Json(body): Json<Value>) -> Response {
    let model = body["model"]
        .as_str()
        .unwrap_or("fake/embedding")
        .to_owned();
    // A string, an array of token ids, or an array of strings or of token-id arrays.
    let inputs: Vec<Value> = match &body["input"] {
        Value::String(_) => vec![body["input"].clone()],
        Value::Array(items) if items.iter().all(Value::is_number) && !items.is_empty() => {
            vec![body["input"].clone()]
        }
        Value::Array(items) if !items.is_empty() => items.clone(),
        _ => {
            let error = json!({"error": {"message": "input must be a non-empty string or array",
                "type": "invalid_request_error", "code": null}});
            return (StatusCode::BAD_REQUEST, Json(error)).into_response();
        }
    };
    let dims = body["dimensions"]
        .as_u64()
        .map_or(8, |d| d.clamp(1, 64) as usize);
    let base64 = body["encoding_format"].as_str() == Some("base64");
    let mut tokens = 0;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            tokens += match input {
                Value::String(text) => text.split_whitespace().count().max(1),
                Value::Array(ids) => ids.len(),
                _ => 1,
            };
            let floats = vector(input, dims);
            let embedding = if base64 {
                let bytes: Vec<u8> = floats.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(floats)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Json(json!({
        "object": "list", "model": model, "data": data,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response()
}

async fn models() -> Json<Value> {
    Json(json!({"data": [{"id": "openai/gpt-4o-mini", "name": "fake"}]}))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut addr = "127.0.0.1:4000".to_owned();
    let mut timing = Timing {
        latency: Duration::ZERO,
        chunk_gap: Duration::from_millis(1),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut ms = |what: &str| -> anyhow::Result<Duration> {
            let n: u64 = args
                .next()
                .ok_or_else(|| anyhow::anyhow!("{what} N"))?
                .parse()?;
            Ok(Duration::from_millis(n))
        };
        match arg.as_str() {
            "--latency-ms" => timing.latency = ms("--latency-ms")?,
            "--chunk-gap-ms" => timing.chunk_gap = ms("--chunk-gap-ms")?,
            _ => addr = arg,
        }
    }
    TIMING.set(timing).expect("set once");
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models));
    // Like any server tuned for small writes (providers, and persona): no Nagle delay.
    let listener = tokio::net::TcpListener::bind(&addr).await?.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    eprintln!("fake provider on http://{addr}/v1");
    axum::serve(listener, app).await?;
    Ok(())
}
