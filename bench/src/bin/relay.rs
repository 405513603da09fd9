//! The floor of the AI proxy rows: a bare relay on the same axum, tokio, hyper and reqwest as
//! persona, with nothing else (no middleware, sign-in, limits, screening or usage row).
//! `relay ADDR UPSTREAM`: `POST /v1/chat/completions` is sent on to
//! `UPSTREAM/chat/completions` (UPSTREAM as persona's `ai.base_url`, e.g.
//! `http://127.0.0.1:4002/v1`) with its body as it came; a JSON answer is read whole and sent
//! back, a stream is passed through chunk by chunk. What a relay cannot do with less work on
//! this machine is what persona's CPU per call is compared to.

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
    serve::ListenerExt,
};

#[derive(Clone)]
struct Upstream {
    client: reqwest::Client,
    url: String,
}

async fn relay(State(upstream): State<Upstream>, body: Bytes) -> Response {
    let answer = match upstream
        .client
        .post(&upstream.url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, "Bearer sk-relay")
        .body(body)
        .send()
        .await
    {
        Ok(answer) => answer,
        Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
    };
    let status = answer.status();
    let content_type = answer
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/json"));
    let stream = content_type.as_bytes().starts_with(b"text/event-stream");
    let body = if stream {
        Body::from_stream(answer.bytes_stream())
    } else {
        match answer.bytes().await {
            Ok(bytes) => Body::from(bytes),
            Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
        }
    };
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:4003".into());
    let base = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:4002/v1".into());
    // persona's outbound client.
    let client = persona::http::client::outbound(std::time::Duration::from_secs(10))?;
    let upstream = Upstream {
        client,
        url: format!("{}/chat/completions", base.trim_end_matches('/')),
    };
    let app = Router::new()
        .route("/v1/chat/completions", post(relay))
        .route("/health", get(|| async { "ok" }))
        .with_state(upstream);
    let listener = tokio::net::TcpListener::bind(&addr).await?.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}
