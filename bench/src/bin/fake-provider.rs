//! A minimal OpenAI-compatible provider for measuring the AI proxy: answers
//! `POST /v1/chat/completions` at once (JSON, or 5 SSE chunks + usage + `[DONE]` when
//! `stream: true`) and `GET /v1/models`. Run: `cargo run --release -p persona-bench --bin fake-provider
//! [ADDR]` (default 127.0.0.1:4000), then point `PERSONA_AI__BASE_URL` at `http://ADDR/v1`.

use axum::{
    Json, Router,
    body::Body,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

async fn chat(Json(body): Json<Value>) -> Response {
    let model = body["model"].as_str().unwrap_or("fake/model").to_owned();
    if body["stream"].as_bool() == Some(true) {
        let mut text = String::new();
        for word in ["Hello", " from", " the", " fake", " provider"] {
            let chunk = json!({"id": "gen", "object": "chat.completion.chunk", "model": model,
                "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": null}]});
            text.push_str(&format!("data: {chunk}\n\n"));
        }
        let usage = json!({"id": "gen", "object": "chat.completion.chunk", "model": model,
            "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}});
        text.push_str(&format!("data: {usage}\n\ndata: [DONE]\n\n"));
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from(text))
            .unwrap();
    }
    Json(json!({
        "id": "gen", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the fake provider"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }))
    .into_response()
}

async fn models() -> Json<Value> {
    Json(json!({"data": [{"id": "openai/gpt-4o-mini", "name": "fake"}]}))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4000".into());
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(models));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("fake provider on http://{addr}/v1");
    axum::serve(listener, app).await?;
    Ok(())
}
