//! Issue 14: what a client may not choose on the server's provider key — models outside
//! `ai.allowed_models` through OpenRouter's routing fields, more output than `ai.max_tokens`
//! through `n` / `best_of`, and more than the daily budget through concurrent calls.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    ai::{hello, setup, usage_rows},
    fake_ai::Behaviour,
    helpers::{assert_error, expect_json},
};

#[tokio::test]
async fn the_upstream_never_sees_a_disallowed_model() {
    let (app, fake, s) = setup(|_| {}).await;
    // OpenRouter's `models` is a fallback list: every entry must be allowed.
    for models in [
        json!(["openai/gpt-4o-mini", "anthropic/claude-opus"]),
        json!(["anthropic/claude-opus"]),
    ] {
        let mut request = hello();
        request["models"] = models;
        request["route"] = json!("fallback");
        assert_error(
            app.post_as(&s.access, "/api/v1/ai/chat", &request).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "model_not_allowed",
        )
        .await;
    }
    for models in [json!("openai/gpt-4o-mini"), json!([1]), json!([])] {
        let mut request = hello();
        request["models"] = models;
        let error = assert_error(
            app.post_as(&s.access, "/api/v1/ai/chat/completions", &request)
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert!(error["details"].get("models").is_some(), "{error}");
    }
    assert!(fake.requests().is_empty(), "nothing reached the provider");

    // Allowed models pass; the routing preferences are the operator's and are dropped.
    let mut request = hello();
    request["models"] = json!(["openai/gpt-4o-mini", "other/model"]);
    request["route"] = json!("fallback");
    request["provider"] = json!({"order": ["expensive-host"], "allow_fallbacks": true});
    expect_json(
        app.post_as(&s.access, "/api/v1/ai/chat", &request).await,
        StatusCode::OK,
    )
    .await;
    let sent = fake.last_body();
    assert_eq!(sent["models"], json!(["openai/gpt-4o-mini", "other/model"]));
    assert!(sent.get("route").is_none(), "{sent}");
    assert!(sent.get("provider").is_none(), "{sent}");

    // The same holds for streams and embeddings.
    let mut request = hello();
    request["stream"] = json!(true);
    request["models"] = json!(["anthropic/claude-opus"]);
    assert_error(
        app.post_as(&s.access, "/api/v1/ai/chat", &request).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "model_not_allowed",
    )
    .await;
    for sent in fake.requests().iter().map(|(_, body)| body) {
        for model in
            std::iter::once(&sent["model"]).chain(sent["models"].as_array().into_iter().flatten())
        {
            assert!(
                ["openai/gpt-4o-mini", "other/model"].contains(&model.as_str().unwrap()),
                "{sent}"
            );
        }
    }
}

#[tokio::test]
async fn embeddings_cannot_route_to_other_models() {
    let (app, fake, s) = setup(|c| {
        c.ai.embedding_models = vec!["openai/text-embedding-3-small".into()];
    })
    .await;
    assert_error(
        app.post_as(
            &s.access,
            "/api/v1/ai/embeddings",
            &json!({"input": "x", "models": ["big/embedder"]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "model_not_allowed",
    )
    .await;
    assert!(fake.requests().is_empty());
    expect_json(
        app.post_as(
            &s.access,
            "/api/v1/ai/embeddings",
            &json!({"input": "x", "provider": {"order": ["x"]}, "route": "fallback"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let sent = fake.last_body();
    assert!(sent.get("provider").is_none() && sent.get("route").is_none());
}

#[tokio::test]
async fn n_and_best_of_share_the_max_tokens_cap() {
    // ai.max_tokens = 1000 (see `setup`).
    let (app, fake, s) = setup(|_| {}).await;
    for (extra, max_tokens) in [
        (json!({"n": 4}), 250),
        (json!({"n": 4, "max_tokens": 100}), 100),
        (json!({"n": 2, "best_of": 5, "max_tokens": 900}), 200),
        (json!({"n": 3, "max_completion_tokens": 1000}), 333),
    ] {
        let mut request = hello();
        request
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        expect_json(
            app.post_as(&s.access, "/api/v1/ai/chat", &request).await,
            StatusCode::OK,
        )
        .await;
        let sent = fake.last_body();
        let key = if extra.get("max_completion_tokens").is_some() {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        assert_eq!(sent[key], max_tokens, "{extra} -> {sent}");
        assert_eq!(sent["n"], extra["n"], "n itself passes");
    }
    let before = fake.requests().len();
    for (field, value) in [
        ("n", json!(0)),
        ("n", json!(1001)),
        ("n", json!("two")),
        ("best_of", json!(-1)),
    ] {
        let mut request = hello();
        request[field] = value;
        let error = assert_error(
            app.post_as(&s.access, "/api/v1/ai/chat", &request).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert!(error["details"].get(field).is_some(), "{error}");
    }
    assert_eq!(fake.requests().len(), before);
}

#[tokio::test]
async fn concurrent_calls_cannot_overrun_the_daily_budget() {
    const BUDGET: i64 = 1000;
    let (app, fake, s) = setup(|c| {
        c.ai.daily_token_budget = BUDGET as u64;
        c.ai.requests_per_minute = 1000;
    })
    .await;
    // Each call may spend 10 prompt + 200 completion tokens, and the fake spends them all.
    // A 40-character prompt: estimated at 10 tokens, what the fake reports.
    let request = json!({
        "messages": [{"role": "user", "content": "a forty character prompt for the budget"}],
        "max_tokens": 200,
    });
    fake.plan((0..12).map(|_| Behaviour::SlowSpendingAll(Duration::from_millis(300))));
    let calls = (0..12).map(|_| {
        let (app, token, request) = (&app, s.access.clone(), request.clone());
        async move { app.post_as(&token, "/api/v1/ai/chat", &request).await }
    });
    let answers = futures_util::future::join_all(calls).await;
    let mut ok = 0;
    for answer in answers {
        match answer.status() {
            StatusCode::OK => ok += 1,
            _ => {
                assert_error(answer, StatusCode::TOO_MANY_REQUESTS, "quota_exceeded").await;
            }
        }
    }
    assert!(ok >= 4, "the budget lets some calls through ({ok})");
    let rows = usage_rows(&app, ok).await;
    let spent: i64 = rows.iter().map(|row| row.3).sum();
    assert!(spent <= BUDGET, "spent {spent} of {BUDGET} in {ok} calls");
    let allowed: i64 = fake
        .requests()
        .iter()
        .map(|(_, body)| 10 + body["max_tokens"].as_i64().unwrap())
        .sum();
    assert!(allowed <= BUDGET, "the upstream was allowed {allowed}");

    let usage = app
        .call(Method::GET, "/api/v1/ai/usage")
        .bearer(&s.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(usage["usedToday"], Value::from(spent));
    // What is left after the burst is spent by nothing in flight: another call, streamed
    // or not, fits in it or is refused.
    assert!(usage["remainingToday"].as_i64().unwrap() >= 0);
}
