//! SPEC section 7: the AI proxy, against a fake provider on loopback (`fake_ai.rs`).

use std::time::Duration;

use persona::config::{Config, Secret};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    fake_ai::{Behaviour, FakeAi, KEY},
    helpers::{Session, TestApp, assert_error, expect_json},
};

pub(crate) async fn setup(configure: impl FnOnce(&mut Config)) -> (TestApp, FakeAi, Session) {
    let fake = FakeAi::start().await;
    let base = fake.base_url();
    let app = TestApp::spawn_with(move |c| {
        c.ai.base_url = base;
        c.ai.api_key = Some(Secret::new(KEY));
        c.ai.allowed_models = vec!["openai/gpt-4o-mini".into(), "other/model".into()];
        c.ai.max_retries = 1;
        c.ai.max_tokens = 1000;
        c.ai.app_url = "https://persona.example".into();
        configure(c);
    })
    .await;
    let session = app.register("ana@example.com").await;
    (app, fake, session)
}

pub(crate) fn hello() -> Value {
    json!({"messages": [{"role": "user", "content": "hi there"}]})
}

/// The usage rows, oldest first: (endpoint, model, status, total tokens). Waits for the
/// `expected` count (rows are written just after the answer).
pub(crate) async fn usage_rows(
    app: &TestApp,
    expected: usize,
) -> Vec<(String, String, String, i64)> {
    for _ in 0..100 {
        let rows = app
            .state
            .db
            .read(|conn| {
                let mut stmt = conn.prepare(
                    "SELECT endpoint, model, status, total_tokens FROM ai_usage ORDER BY id",
                )?;
                let rows =
                    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await
            .unwrap();
        if rows.len() >= expected {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("expected {expected} usage rows");
}

#[tokio::test]
async fn chat_passes_through_with_the_servers_key_only() {
    let (app, fake, s) = setup(|_| {}).await;
    let body = expect_json(
        app.post_as(&s.access, "/api/v1/ai/chat", &hello()).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello!");
    assert_eq!(body["usage"]["total_tokens"], 15);

    let (headers, sent) = fake.requests().pop().unwrap();
    assert_eq!(headers["authorization"], format!("Bearer {KEY}").as_str());
    assert_eq!(headers["http-referer"], "https://persona.example");
    assert_eq!(headers["x-title"], "Persona");
    assert_eq!(sent["model"], "openai/gpt-4o-mini", "the default model");
    assert_eq!(sent["max_tokens"], 1000, "capped by default");
    assert_eq!(sent["messages"][0]["content"], "hi there");
    for (headers, body) in fake.requests() {
        let everything = format!("{headers:?}{body}");
        assert!(
            !everything.contains(&s.access),
            "the user's token reached the provider"
        );
    }
    assert_eq!(
        usage_rows(&app, 1).await[0],
        ("chat".into(), "openai/gpt-4o-mini".into(), "ok".into(), 15)
    );

    // The OpenAI SDK path, with a script's system prompt put first.
    let mut request = hello();
    request["script"] = json!("chat_persona");
    request["model"] = json!("other/model");
    request["max_tokens"] = json!(100_000);
    let response = app
        .post_as(&s.access, "/api/v1/ai/chat/completions", &request)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let sent = fake.last_body();
    assert_eq!(sent["model"], "other/model");
    assert_eq!(sent["max_tokens"], 1000);
    assert_eq!(sent["messages"][0]["role"], "system");
    assert!(
        sent["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("Persona")
    );
    assert_eq!(sent["messages"][1]["content"], "hi there");
    assert!(sent.get("script").is_none());
}

#[tokio::test]
async fn bad_chat_requests() {
    let (app, fake, s) = setup(|_| {}).await;
    let mut request = hello();
    request["model"] = json!("anthropic/claude-opus");
    assert_error(
        app.post_as(&s.access, "/api/v1/ai/chat", &request).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "model_not_allowed",
    )
    .await;
    for (body, field) in [
        (json!({"messages": []}), "messages"),
        (json!({"messages": [{"content": "no role"}]}), "messages"),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}),
            "max_tokens",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "stream": "yes"}),
            "stream",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "script": "nope"}),
            "script",
        ),
        (json!([1, 2]), "body"),
    ] {
        let error = assert_error(
            app.post_as(&s.access, "/api/v1/ai/chat", &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert!(error["details"].get(field).is_some(), "{body}: {error}");
    }
    assert_error(
        app.post_json("/api/v1/ai/chat", &hello()).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    assert!(
        fake.requests().is_empty(),
        "nothing invalid reached the provider"
    );
}

async fn stream_text(app: &TestApp, token: &str) -> (reqwest::header::HeaderMap, String) {
    let mut request = hello();
    request["stream"] = json!(true);
    let response = app
        .post_as(token, "/api/v1/ai/chat/completions", &request)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    (headers, response.text().await.unwrap())
}

#[tokio::test]
async fn streams_are_relayed_without_comments_and_metered() {
    let (app, fake, s) = setup(|_| {}).await;
    fake.plan([Behaviour::Stream {
        deltas: vec!["Hel".into(), "lo".into(), "!".into()],
        done: true,
    }]);
    let (headers, text) = stream_text(&app, &s.access).await;
    assert_eq!(headers["content-type"], "text/event-stream");
    assert!(headers.get("content-encoding").is_none());
    assert!(
        !text.contains("OPENROUTER"),
        "comment lines are dropped: {text}"
    );
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert!(events.iter().all(|e| e.starts_with("data: ")), "{events:?}");
    let deltas: String = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(&e[6..]).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(deltas, "Hello!");
    assert_eq!(*events.last().unwrap(), "data: [DONE]");
    assert_eq!(fake.last_body()["stream_options"]["include_usage"], true);
    let rows = usage_rows(&app, 1).await;
    assert_eq!(
        (rows[0].2.as_str(), rows[0].3),
        ("ok", 10),
        "usage from the final chunk"
    );
}

#[tokio::test]
async fn a_stream_without_done_or_broken_is_a_failure() {
    let (app, fake, s) = setup(|_| {}).await;
    fake.plan([
        Behaviour::Stream {
            deltas: vec!["Hel".into()],
            done: false,
        },
        Behaviour::StreamThenBreak(vec!["Hel".into(), "lo".into()]),
    ]);
    let (_, text) = stream_text(&app, &s.access).await;
    assert!(!text.contains("[DONE]"));
    let last: Value = serde_json::from_str(
        text.trim_end()
            .rsplit("\n\n")
            .next()
            .unwrap()
            .strip_prefix("data: ")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(last["error"]["code"], "upstream_error", "{text}");

    let (_, text) = stream_text(&app, &s.access).await;
    assert!(
        text.contains("\"lo\""),
        "chunks before the break arrive: {text}"
    );
    assert!(text.trim_end().ends_with("}}"), "{text}");
    assert!(text.contains("\"error\""), "{text}");

    // An error event from the upstream is passed on, and the stream ends there even though
    // the upstream keeps the connection open.
    fake.plan([Behaviour::StreamThenError(vec!["Hi".into()])]);
    let (_, text) = tokio::time::timeout(Duration::from_secs(5), stream_text(&app, &s.access))
        .await
        .expect("the stream ends after the upstream's error event");
    assert!(
        text.trim_end()
            .ends_with(r#"data: {"error":{"message":"overloaded","code":502}}"#),
        "{text}"
    );

    let statuses: Vec<String> = usage_rows(&app, 3).await.into_iter().map(|r| r.2).collect();
    assert_eq!(statuses, ["incomplete", "error", "error"]);
}

#[tokio::test]
async fn a_client_that_hangs_up_cancels_the_upstream_call() {
    let (app, fake, s) = setup(|_| {}).await;
    fake.plan([Behaviour::StreamForever]);
    let mut request = hello();
    request["stream"] = json!(true);
    let mut response = app.post_as(&s.access, "/api/v1/ai/chat", &request).await;
    let first = response.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("Thinking"));
    drop(response);
    for _ in 0..100 {
        if fake
            .stream_dropped
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        fake.stream_dropped
            .load(std::sync::atomic::Ordering::SeqCst),
        "upstream still open"
    );
    assert_eq!(usage_rows(&app, 1).await[0].2, "cancelled");
}

#[tokio::test]
async fn a_client_that_hangs_up_before_the_answer_cancels_the_upstream_call() {
    let (app, fake, s) = setup(|_| {}).await;
    fake.plan([Behaviour::Hang]);
    let gave_up = app
        .client
        .post(app.url("/api/v1/ai/chat"))
        .bearer_auth(&s.access)
        .json(&hello())
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(gave_up.is_err());
    for _ in 0..150 {
        if fake
            .stream_dropped
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        fake.stream_dropped
            .load(std::sync::atomic::Ordering::SeqCst),
        "upstream call still running"
    );
}

#[tokio::test]
async fn retries_then_fallback_models_then_a_safe_502() {
    let (app, fake, s) = setup(|c| c.ai.fallback_models = vec!["other/model".into()]).await;
    fake.plan([
        Behaviour::Status(500),
        Behaviour::Reply("second try".into()),
    ]);
    let body = app
        .call(Method::POST, "/api/v1/ai/chat")
        .bearer(&s.access)
        .json(&hello())
        .expect(StatusCode::OK)
        .await;
    assert_eq!(body["choices"][0]["message"]["content"], "second try");
    assert_eq!(fake.requests().len(), 2);

    // 429 twice on the first model (1 retry), then the fallback answers.
    fake.plan([
        Behaviour::Status(429),
        Behaviour::Status(429),
        Behaviour::Reply("fallback".into()),
    ]);
    let body = app
        .call(Method::POST, "/api/v1/ai/chat")
        .bearer(&s.access)
        .json(&hello())
        .expect(StatusCode::OK)
        .await;
    assert_eq!(body["choices"][0]["message"]["content"], "fallback");
    assert_eq!(fake.last_body()["model"], "other/model");

    // Everything fails: 502 with our own words, not the provider's.
    fake.plan(vec![Behaviour::Status(503); 4]);
    let error = assert_error(
        app.post_as(&s.access, "/api/v1/ai/chat", &hello()).await,
        StatusCode::BAD_GATEWAY,
        "upstream_error",
    )
    .await;
    assert!(!error.to_string().contains("provider says no"));
}

#[tokio::test]
async fn a_slow_upstream_is_504() {
    let (app, fake, s) = setup(|c| {
        c.ai.timeout = Duration::from_millis(300);
        c.ai.max_retries = 0;
    })
    .await;
    fake.plan([Behaviour::Slow(Duration::from_secs(3), "late".into())]);
    assert_error(
        app.post_as(&s.access, "/api/v1/ai/chat", &hello()).await,
        StatusCode::GATEWAY_TIMEOUT,
        "upstream_timeout",
    )
    .await;
}

#[tokio::test]
async fn without_a_key_the_ai_routes_are_503() {
    let app = TestApp::spawn().await;
    let s = app.register("ana@example.com").await;
    for (path, body) in [
        ("/api/v1/ai/chat", hello()),
        ("/api/v1/ai/content", json!({"script": "home_content"})),
        ("/api/v1/ai/analyze", json!({"text": "x", "kind": "mood"})),
    ] {
        assert_error(
            app.post_as(&s.access, path, &body).await,
            StatusCode::SERVICE_UNAVAILABLE,
            "ai_not_configured",
        )
        .await;
    }
    assert_error(
        app.get_as(&s.access, "/api/v1/ai/models").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "ai_not_configured",
    )
    .await;
    let health: Value = app.get("/api/v1/ai/health").await.json().await.unwrap();
    assert_eq!(health["configured"], false);
    assert_eq!(health["upstream"], "unconfigured");
}

#[tokio::test]
async fn per_user_rate_and_daily_budget() {
    let (app, _fake, s) = setup(|c| {
        c.ai.requests_per_minute = 3;
        c.ai.daily_token_budget = 20;
    })
    .await;
    assert_eq!(
        app.post_as(&s.access, "/api/v1/ai/chat", &hello())
            .await
            .status(),
        StatusCode::OK
    );
    usage_rows(&app, 1).await;
    // 15 of 20 spent: one more is allowed, then the budget is gone.
    assert_eq!(
        app.post_as(&s.access, "/api/v1/ai/chat", &hello())
            .await
            .status(),
        StatusCode::OK
    );
    usage_rows(&app, 2).await;
    let over = app.post_as(&s.access, "/api/v1/ai/chat", &hello()).await;
    let retry: u64 = over.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry));
    assert_error(over, StatusCode::TOO_MANY_REQUESTS, "quota_exceeded").await;
    let usage = app
        .call(Method::GET, "/api/v1/ai/usage")
        .bearer(&s.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(usage["usedToday"], 30);
    assert_eq!(usage["remainingToday"], 0);
    assert_eq!(usage["days"][0]["requests"], 2);
    assert_eq!(usage["days"][0]["model"], "openai/gpt-4o-mini");

    // Another user has a budget of their own, and the rate is per user too.
    let bob = app.register("bob@example.com").await;
    assert_eq!(
        app.post_as(&bob.access, "/api/v1/ai/chat", &hello())
            .await
            .status(),
        StatusCode::OK
    );

    // Three requests a minute: Ana's fourth (the refused one counted) is rate limited.
    let limited = app.post_as(&s.access, "/api/v1/ai/chat", &hello()).await;
    assert!(limited.headers().contains_key("retry-after"));
    assert_error(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn content_renders_a_script() {
    let (app, fake, s) = setup(|_| {}).await;
    fake.plan([Behaviour::Reply("Good morning, Ana!".into())]);
    let request = json!({"script": "home_content", "variables": {
        "time_of_day": "morning", "name": "Ana", "mood": "calm", "topics": ["garden"]
    }});
    let body = expect_json(
        app.post_as(&s.access, "/api/v1/ai/content", &request).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["content"], "Good morning, Ana!");
    assert_eq!(
        body["script"],
        json!({"name": "home_content", "version": "1"})
    );
    assert_eq!(body["usage"]["total_tokens"], 15);
    let sent = fake.last_body();
    let user = sent["messages"][1]["content"].as_str().unwrap();
    assert!(
        user.contains("morning for Ana") && user.contains("[\"garden\"]"),
        "{user}"
    );

    let error = assert_error(
        app.post_as(
            &s.access,
            "/api/v1/ai/content",
            &json!({"script": "home_content", "variables": {"name": "Ana"}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let missing = error["details"]["variables"][0].as_str().unwrap();
    assert!(
        missing.contains("time_of_day") && missing.contains("topics"),
        "{missing}"
    );
    assert_error(
        app.post_as(
            &s.access,
            "/api/v1/ai/content",
            &json!({"script": "no_such_script"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn analyze_validates_the_models_json() {
    let (app, fake, s) = setup(|_| {}).await;
    let mood = r#"Here you go: {"mood":"calm","score":0.5,"emotions":["content"],"summary":"At ease.","extra":true}"#;
    fake.plan([Behaviour::Reply(mood.into())]);
    let body = expect_json(
        app.post_as(
            &s.access,
            "/api/v1/ai/analyze",
            &json!({"text": "I walked in the park.", "kind": "mood"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["kind"], "mood");
    assert_eq!(
        body["result"],
        json!({"mood": "calm", "score": 0.5, "emotions": ["content"], "summary": "At ease."})
    );
    assert_eq!(body["crisis"], Value::Null);
    let sent = fake.last_body();
    assert_eq!(sent["response_format"]["type"], "json_object");
    assert!(
        sent["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("I walked in the park.")
    );

    // Invalid once, valid on the retry.
    let before = fake.requests().len();
    fake.plan([
        Behaviour::Reply("I feel you are calm".into()),
        Behaviour::Reply(r#"{"level":"high","reasons":["a plan"]}"#.into()),
    ]);
    let body = app
        .call(Method::POST, "/api/v1/ai/analyze")
        .bearer(&s.access)
        .json(&json!({"text": "…", "kind": "crisis"}))
        .expect(StatusCode::OK)
        .await;
    assert_eq!(body["result"]["level"], "high");
    assert_eq!(body["crisis"]["level"], "high");
    assert_eq!(fake.requests().len(), before + 2);

    // Invalid twice: 502.
    fake.plan([
        Behaviour::Reply("{}".into()),
        Behaviour::Reply("{\"summary\": 3}".into()),
    ]);
    assert_error(
        app.post_as(
            &s.access,
            "/api/v1/ai/analyze",
            &json!({"text": "x", "kind": "psychology"}),
        )
        .await,
        StatusCode::BAD_GATEWAY,
        "upstream_invalid_output",
    )
    .await;
    assert_error(
        app.post_as(
            &s.access,
            "/api/v1/ai/analyze",
            &json!({"text": "", "kind": "mood"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_error(
        app.post_as(
            &s.access,
            "/api/v1/ai/analyze",
            &json!({"text": "x", "kind": "astrology"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn models_and_health() {
    let (app, _fake, s) = setup(|_| {}).await;
    let models = app
        .call(Method::GET, "/api/v1/ai/models")
        .bearer(&s.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(models["object"], "list");
    let data = models["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["id"], "openai/gpt-4o-mini");
    assert_eq!(data[0]["object"], "model");
    assert_eq!(data[0]["name"], "GPT-4o mini", "enriched from the upstream");
    assert_eq!(data[1]["context_length"], 8000);

    let health: Value = app.get("/api/v1/ai/health").await.json().await.unwrap();
    assert_eq!(health["configured"], true);
    assert_eq!(health["upstream"], "ok");
    assert!(health["latencyMs"].is_u64());
}

#[tokio::test]
async fn no_text_is_stored() {
    let (app, _fake, s) = setup(|_| {}).await;
    let secret = "my deepest secret sentence";
    let request = json!({"messages": [{"role": "user", "content": secret}]});
    app.post_as(&s.access, "/api/v1/ai/chat", &request).await;
    usage_rows(&app, 1).await;
    let mut app = app;
    app.stop().await;
    for entry in std::fs::read_dir(app.dir.path().join("data")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
        assert!(
            !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
            "the key is not stored"
        );
    }
}

#[tokio::test]
async fn admin_usage_reports_per_user_and_model() {
    let (app, _fake, s) = setup(|_| {}).await;
    app.post_as(&s.access, "/api/v1/ai/chat", &hello()).await;
    app.post_as(&s.access, "/api/v1/ai/chat", &hello()).await;
    usage_rows(&app, 2).await;
    let dir = app.dir.path().to_owned();
    let output = crate::helpers::persona_command(&dir)
        .args(["admin", "usage"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("ana@example.com"))
        .expect(&text);
    assert!(line.contains("openai/gpt-4o-mini"), "{line}");
    let numbers: Vec<&str> = line.split_whitespace().skip(2).collect();
    assert_eq!(numbers, ["2", "20", "10", "30"], "{line}");

    let future = crate::helpers::persona_command(&dir)
        .args(["admin", "usage", "--since", "2999-01-01"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&future.stdout).contains("0 request(s)"));
    let bad = crate::helpers::persona_command(&dir)
        .args(["admin", "usage", "--since", "yesterday"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--since"));
}

#[tokio::test]
async fn ai_calls_may_outlast_the_servers_request_timeout() {
    let (app, fake, s) = setup(|c| {
        c.server.request_timeout = Duration::from_millis(300);
        c.ai.timeout = Duration::from_secs(5);
    })
    .await;
    fake.plan([Behaviour::Slow(
        Duration::from_millis(800),
        "worth the wait".into(),
    )]);
    let body = expect_json(
        app.post_as(&s.access, "/api/v1/ai/chat", &hello()).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["choices"][0]["message"]["content"], "worth the wait");
}

#[tokio::test]
async fn a_200_without_choices_is_an_upstream_error() {
    let (app, fake, s) = setup(|_| {}).await;
    fake.plan([Behaviour::NoChoices]);
    assert_error(
        app.post_as(&s.access, "/api/v1/ai/chat", &hello()).await,
        StatusCode::BAD_GATEWAY,
        "upstream_error",
    )
    .await;
}

#[tokio::test]
async fn a_json_answer_reaches_the_client_as_the_provider_wrote_it() {
    let (app, fake, s) = setup(|_| {}).await;
    // Keys out of order, fields persona does not know, spacing: all kept as they came.
    const ANSWER: &str = r#"{"zeta": 1, "id":"gen-7","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],
 "usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4},"alpha":[true]}"#;
    fake.plan([Behaviour::Text(ANSWER.into())]);
    let response = app
        .post_as(&s.access, "/api/v1/ai/chat/completions", &hello())
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["x-persona-usage-tokens"], "4");
    assert_eq!(response.text().await.unwrap(), ANSWER);
    // Nothing that is not JSON every client can read is passed on, even where persona does
    // not read it: checked as strictly as before, when the answer was parsed whole.
    let deep = format!(
        "{{\"choices\": [], \"x\": {}1{}}}",
        "[".repeat(200),
        "]".repeat(200)
    );
    let not_json = [
        "hello",
        "{\"choices\": [",
        r#"{"choices": [], "x": 1e999}"#,
        r#"{"choices": [], "id": "\ud800"}"#,
        &deep,
    ];
    // JSON without a list of choices, or not an object at all, is incomplete.
    let incomplete = [
        r#"[[{"message": {}}]]"#,
        r#"{"choices": 1}"#,
        r#"{"id": "x"}"#,
    ];
    for (answers, message) in [
        (&not_json[..], "The AI provider's answer was not JSON."),
        (&incomplete[..], "The AI provider's answer was incomplete."),
    ] {
        for answer in answers {
            fake.plan([Behaviour::Text(answer.to_string())]);
            let error = assert_error(
                app.post_as(&s.access, "/api/v1/ai/chat/completions", &hello())
                    .await,
                StatusCode::BAD_GATEWAY,
                "upstream_error",
            )
            .await;
            assert_eq!(error["message"], message, "{answer:.40}");
        }
    }
    // Each of those is metered as a failed call, never as a success.
    let rows = usage_now(&app).await;
    assert_eq!(rows.len(), 1 + not_json.len() + incomplete.len());
    assert!(
        rows[1..].iter().all(|(status, ..)| status == "error"),
        "{rows:?}"
    );
}

#[tokio::test]
async fn an_embeddings_answer_is_passed_on_only_when_it_is_json() {
    let (app, fake, s) = setup(|c| {
        c.ai.embedding_models = vec!["openai/text-embedding-3-small".into()];
    })
    .await;
    const ANSWER: &str = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.25,-1.5e-3]}],"model":"m","usage":{"prompt_tokens":2,"total_tokens":2}}"#;
    fake.plan([Behaviour::Text(ANSWER.into())]);
    let response = app
        .post_as(&s.access, "/api/v1/ai/embeddings", &json!({"input": "x"}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-persona-usage-tokens"], "2");
    assert_eq!(response.text().await.unwrap(), ANSWER);
    for answer in [
        r#"{"data": [{"embedding": [1e999]}], "usage": {}}"#,
        r#"{"data": {}, "usage": {}}"#,
    ] {
        fake.plan([Behaviour::Text(answer.to_string())]);
        assert_error(
            app.post_as(&s.access, "/api/v1/ai/embeddings", &json!({"input": "x"}))
                .await,
            StatusCode::BAD_GATEWAY,
            "upstream_error",
        )
        .await;
    }
}

#[tokio::test]
async fn a_dripping_json_answer_is_cut_by_ai_timeout() {
    let (app, fake, s) = setup(|c| {
        c.ai.timeout = Duration::from_millis(500);
        c.ai.max_retries = 0;
    })
    .await;
    fake.plan([Behaviour::DripJson(Duration::from_millis(50))]);
    let start = std::time::Instant::now();
    assert_error(
        app.post_as(&s.access, "/api/v1/ai/chat", &hello()).await,
        StatusCode::GATEWAY_TIMEOUT,
        "upstream_timeout",
    )
    .await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_dripping_stream_ends_with_an_error_event() {
    let (app, fake, s) = setup(|c| c.ai.timeout = Duration::from_millis(400)).await;
    fake.plan([Behaviour::DripStream(Duration::from_millis(50))]);
    let mut request = hello();
    request["stream"] = json!(true);
    let start = std::time::Instant::now();
    let response = app.post_as(&s.access, "/api/v1/ai/chat", &request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = tokio::time::timeout(Duration::from_secs(5), response.text())
        .await
        .expect("the stream ends")
        .unwrap();
    assert!(text.contains("upstream_error"), "{text}");
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn an_endless_stream_is_cut_by_ai_stream_timeout() {
    let (app, fake, s) = setup(|c| c.ai.stream_timeout = Duration::from_millis(600)).await;
    fake.plan([Behaviour::StreamSlowly(Duration::from_millis(50))]);
    let mut request = hello();
    request["stream"] = json!(true);
    let response = app.post_as(&s.access, "/api/v1/ai/chat", &request).await;
    let text = tokio::time::timeout(Duration::from_secs(5), response.text())
        .await
        .expect("the stream ends")
        .unwrap();
    assert!(text.contains("\"more\""), "events were relayed: {text}");
    assert!(text.contains("took too long"), "{text}");
}

#[tokio::test]
async fn a_rate_limited_provider_is_a_429_with_retry_after() {
    let (app, fake, s) = setup(|c| c.ai.max_retries = 0).await;
    fake.plan([Behaviour::RateLimited(30)]);
    let response = app.post_as(&s.access, "/api/v1/ai/chat", &hello()).await;
    assert_eq!(response.headers()["retry-after"], "30");
    assert_error(
        response,
        StatusCode::TOO_MANY_REQUESTS,
        "upstream_rate_limited",
    )
    .await;
    // A provider asking for an hour is passed on as a minute at most.
    fake.plan([Behaviour::RateLimited(3600)]);
    let response = app.post_as(&s.access, "/api/v1/ai/chat", &hello()).await;
    assert_eq!(response.headers()["retry-after"], "60");
}

/// The usage rows as they are now (no waiting): (status, total, estimated tokens).
async fn usage_now(app: &TestApp) -> Vec<(String, i64, i64)> {
    app.state
        .db
        .read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT status, total_tokens, estimated_tokens FROM ai_usage ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn answers_carry_usage_and_budget_headers_and_their_row_is_already_written() {
    let (app, _fake, s) = setup(|c| c.ai.daily_token_budget = 1000).await;
    let response = app.post_as(&s.access, "/api/v1/ai/chat", &hello()).await;
    assert_eq!(response.headers()["x-persona-usage-tokens"], "15");
    assert_eq!(response.headers()["x-persona-budget-remaining"], "985");
    expect_json(response, StatusCode::OK).await;
    // Acknowledged means recorded: no polling for the row.
    assert_eq!(usage_now(&app).await, [("ok".to_owned(), 15, 0)]);
}

#[tokio::test]
async fn a_stream_is_metered_without_the_usage_chunk_the_client_did_not_ask_for() {
    let (app, fake, s) = setup(|_| {}).await;
    let mut request = hello();
    request["stream"] = json!(true);
    fake.plan([Behaviour::Stream {
        deltas: vec!["Hi".into(), " there".into()],
        done: true,
    }]);
    let text = app
        .post_as(&s.access, "/api/v1/ai/chat", &request)
        .await
        .text()
        .await
        .unwrap();
    assert!(!text.contains("\"usage\""), "{text}");
    assert!(text.contains("[DONE]"));
    let sent = fake.last_body();
    assert_eq!(sent["stream_options"]["include_usage"], true);
    assert_eq!(usage_now(&app).await, [("ok".to_owned(), 10, 0)]);

    // A client that asks for usage gets the chunk, and its other options are kept.
    request["stream_options"] = json!({"include_usage": true, "future_option": 1});
    fake.plan([Behaviour::Stream {
        deltas: vec!["Hi".into()],
        done: true,
    }]);
    let text = app
        .post_as(&s.access, "/api/v1/ai/chat", &request)
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("\"usage\""), "{text}");
    assert_eq!(fake.last_body()["stream_options"]["future_option"], 1);
}

#[tokio::test]
async fn a_provider_without_usage_is_estimated_never_zero() {
    let (app, fake, s) = setup(|_| {}).await;
    fake.plan([Behaviour::ReplyNoUsage(
        "An answer of some forty characters, ok.".into(),
    )]);
    let response = app.post_as(&s.access, "/api/v1/ai/chat", &hello()).await;
    let counted: i64 = response.headers()["x-persona-usage-tokens"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    expect_json(response, StatusCode::OK).await;
    // "hi there" (8 characters) and 39 characters: 2 + 10 tokens at four characters each.
    assert_eq!(counted, 12);

    let mut request = hello();
    request["stream"] = json!(true);
    fake.plan([Behaviour::StreamNoUsage(vec![
        "Twelve chars".into(),
        " and more!".into(),
    ])]);
    app.post_as(&s.access, "/api/v1/ai/chat", &request)
        .await
        .text()
        .await
        .unwrap();
    let rows = usage_now(&app).await;
    assert_eq!(rows[0], ("ok".to_owned(), 12, 12));
    assert_eq!(rows[1], ("ok".to_owned(), 2 + 6, 8));

    let usage = app
        .call(Method::GET, "/api/v1/ai/usage")
        .bearer(&s.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(usage["days"][0]["estimatedTokens"], 20);
    assert_eq!(usage["days"][0]["totalTokens"], 20);
}

#[tokio::test]
async fn everything_but_model_max_tokens_and_stream_options_passes_through_untouched() {
    let (app, fake, s) = setup(|_| {}).await;
    let request = json!({
        "model": "openai/gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [
                {"type": "text", "text": "what is in this picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "result"}
        ],
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object",
            "properties": {"q": {"type": "string"}}}}}],
        "tool_choice": "auto",
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        "n": 2,
        "seed": 42,
        "logprobs": true,
        "top_logprobs": 3,
        "a_field_from_the_future": {"nested": [1, 2, 3]},
        "max_tokens": 100,
    });
    let answer = json!({
        "id": "gen-9", "object": "chat.completion", "created": 1, "model": "openai/gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": {"content": []},
            "message": {"role": "assistant", "content": null, "tool_calls": [{"id": "call_2",
                "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"y\"}"}}]}}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 9, "total_tokens": 39},
        "system_fingerprint": "fp_1", "provider_extra": {"anything": true},
    });
    fake.plan([Behaviour::Raw(answer.clone())]);
    let back = expect_json(
        app.post_as(&s.access, "/api/v1/ai/chat/completions", &request)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(back, answer, "the answer comes back untouched");
    assert_eq!(fake.last_body(), request, "the request goes up untouched");

    // Streamed tool-call deltas, relayed as they are.
    let chunks = vec![
        json!({"id": "gen-10", "object": "chat.completion.chunk", "choices": [{"index": 0,
            "delta": {"tool_calls": [{"index": 0, "id": "call_3", "type": "function",
                "function": {"name": "lookup", "arguments": ""}}]}}]}),
        json!({"id": "gen-10", "object": "chat.completion.chunk", "choices": [{"index": 0,
            "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"q\":"}}]}}]}),
        json!({"id": "gen-10", "object": "chat.completion.chunk", "choices": [{"index": 0,
            "delta": {}, "finish_reason": "tool_calls"}]}),
    ];
    fake.plan([Behaviour::RawStream(chunks.clone())]);
    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let text = app
        .post_as(&s.access, "/api/v1/ai/chat/completions", &streamed)
        .await
        .text()
        .await
        .unwrap();
    let relayed: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|p| *p != "[DONE]")
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    assert_eq!(relayed, chunks);
}

#[tokio::test]
async fn embeddings_are_offered_metered_and_budgeted() {
    let (app, fake, s) = setup(|c| {
        c.ai.embedding_models = vec!["openai/text-embedding-3-small".into()];
        c.ai.daily_token_budget = 100;
    })
    .await;
    let request = json!({"input": ["first text", "second"], "encoding_format": "float"});
    let response = app
        .post_as(&s.access, "/api/v1/ai/embeddings", &request)
        .await;
    assert_eq!(response.headers()["x-persona-usage-tokens"], "4");
    assert_eq!(response.headers()["x-persona-budget-remaining"], "96");
    let answer = expect_json(response, StatusCode::OK).await;
    assert_eq!(answer["data"].as_array().unwrap().len(), 2);
    let sent = fake.last_body();
    assert_eq!(sent["model"], "openai/text-embedding-3-small");
    assert_eq!(sent["encoding_format"], "float", "passed through");

    assert_error(
        app.post_as(
            &s.access,
            "/api/v1/ai/embeddings",
            &json!({"input": "x", "model": "openai/gpt-4o-mini"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "model_not_allowed",
    )
    .await;
    assert_error(
        app.post_as(&s.access, "/api/v1/ai/embeddings", &json!({"input": []}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    // No usage from the provider: estimated from the input.
    fake.plan([Behaviour::ReplyNoUsage(String::new())]);
    let response = app
        .post_as(
            &s.access,
            "/api/v1/ai/embeddings",
            &json!({"input": "sixteen chars ok"}),
        )
        .await;
    assert_eq!(response.headers()["x-persona-usage-tokens"], "4");
}

#[tokio::test]
async fn embeddings_are_404_when_the_server_offers_none() {
    let (app, _fake, s) = setup(|_| {}).await;
    let error = assert_error(
        app.post_as(&s.access, "/api/v1/ai/embeddings", &json!({"input": "x"}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert!(error["message"].as_str().unwrap().contains("embedding"));
}
