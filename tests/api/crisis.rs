//! SPEC section 8: crisis support — the check, resources, contacts, SOS alerts and their
//! durable delivery (a local SMTP listener and a local webhook receiver), the screening of
//! chat and analysis, and that crisis text lands in no file and no log.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, http::HeaderMap, routing::post};
use hmac::{Hmac, KeyInit, Mac};
use persona::config::{Config, Secret};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::{
    fake_ai::{Behaviour, FakeAi, KEY},
    helpers::{Session, TestApp, assert_error, expect_json, serve_logged, smtp_listener},
};

/// Unmistakable risk: intent, timing and means.
const HIGH: &str = "I'm going to kill myself tonight. I already counted out the pills.";
const HIGH_ID: &str = "aku mau bunuh diri malam ini, obatnya udah aku kumpulin semua";
/// An idiom: no risk.
const IDIOM: &str = "this traffic is killing me lol, dying to get home";

/// A webhook receiver on loopback: answers each POST with the next planned status (200 when
/// the plan is empty) and passes on (signature header, body) of every request.
struct Receiver {
    received: mpsc::UnboundedReceiver<(String, Bytes)>,
    plan: Arc<Mutex<Vec<u16>>>,
}

async fn receiver_on(listener: tokio::net::TcpListener) -> Receiver {
    let (tx, received) = mpsc::unbounded_channel();
    let plan: Arc<Mutex<Vec<u16>>> = Arc::default();
    let statuses = plan.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let (tx, statuses) = (tx.clone(), statuses.clone());
            async move {
                let signature = headers
                    .get("x-persona-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let status = statuses.lock().unwrap().pop().unwrap_or(200);
                tx.send((signature, body)).ok();
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { received, plan }
}

/// A free loopback port with nothing listening on it (yet).
fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// The signature is HMAC-SHA256(secret, "<t>.<body>") in hex, as `t=…,v1=…`.
fn verify(signature: &str, body: &[u8], secret: &str) -> bool {
    let Some((t, v1)) = signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
    else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes()) == v1
}

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>, within: Duration) -> T {
    tokio::time::timeout(within, rx.recv())
        .await
        .expect("in time")
        .expect("channel open")
}

async fn check(app: &TestApp, s: &Session, text: &str, locale: &str) -> Value {
    app.call(Method::POST, "/api/v1/crisis/check")
        .bearer(&s.access)
        .json(&json!({"text": text, "locale": locale}))
        .expect(StatusCode::OK)
        .await
}

async fn events(app: &TestApp, s: &Session) -> Vec<Value> {
    let list = app
        .call(Method::GET, "/api/v1/crisis/events")
        .bearer(&s.access)
        .expect(StatusCode::OK)
        .await;
    list["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn check_grades_risk_and_attaches_local_resources() {
    let app = TestApp::spawn().await;
    let s = app.register("ana@example.com").await;

    let high = check(&app, &s, HIGH, "en-US").await;
    assert_eq!(high["level"], "high", "{high}");
    assert!(!high["categories"].as_array().unwrap().is_empty());
    let resources = high["resources"].as_array().expect("resources at high");
    assert!(resources.iter().any(|r| r["phone"] == "988"), "{high}");

    let indonesian = check(&app, &s, HIGH_ID, "id-ID").await;
    assert_eq!(indonesian["level"], "high", "{indonesian}");
    let resources = indonesian["resources"].as_array().unwrap();
    assert!(resources.iter().any(|r| r["phone"] == "119 ext 8"));

    let idiom = check(&app, &s, IDIOM, "en-GB").await;
    assert_eq!(idiom["level"], "none", "{idiom}");
    assert!(idiom.get("resources").is_none());

    // Two events recorded (the idiom is below crisis.resource_level), with no text.
    let recorded = events(&app, &s).await;
    assert_eq!(recorded.len(), 2);
    assert!(
        recorded
            .iter()
            .all(|e| e["source"] == "check" && e["level"] == "high")
    );
    assert!(!recorded[0].to_string().contains("pills"));
}

#[tokio::test]
async fn check_names_a_third_person_only_when_it_is_someone_else() {
    let app = TestApp::spawn().await;
    let s = app.register("ana@example.com").await;
    let own = check(&app, &s, "i want to die", "en-US").await;
    assert_ne!(own["level"], "none", "{own}");
    let categories = own["categories"].as_array().unwrap();
    assert!(!categories.iter().any(|c| c == "third_party"), "{own}");

    let friend = check(&app, &s, "my friend wants to kill herself", "en-US").await;
    assert_eq!(friend["level"], "medium", "{friend}");
    assert_eq!(friend["categories"], json!(["third_party"]), "{friend}");
}

#[tokio::test]
async fn check_refuses_bad_input() {
    let app = TestApp::spawn().await;
    let s = app.register("ana@example.com").await;
    assert_error(
        app.post_json("/api/v1/crisis/check", &json!({"text": HIGH}))
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    for text in ["", "   ", &"x".repeat(16 * 1024 + 1)] {
        let error = assert_error(
            app.post_as(&s.access, "/api/v1/crisis/check", &json!({"text": text}))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert!(error["details"]["text"].is_array());
    }
}

#[tokio::test]
async fn resources_follow_the_locale_without_a_sign_in() {
    let app = TestApp::spawn().await;
    let uk = expect_json(
        app.get("/api/v1/crisis/resources?locale=en-GB").await,
        StatusCode::OK,
    )
    .await;
    assert!(
        uk.as_array()
            .unwrap()
            .iter()
            .any(|r| r["phone"] == "116 123")
    );
    let by_header = app
        .call(Method::GET, "/api/v1/crisis/resources")
        .header("accept-language", "fr-FR, id;q=0.8")
        .expect(StatusCode::OK)
        .await;
    assert!(
        by_header
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["phone"] == "119 ext 8"),
        "{by_header}"
    );
    let fallback = expect_json(
        app.get("/api/v1/crisis/resources?locale=xx").await,
        StatusCode::OK,
    )
    .await;
    let fallback = fallback.as_array().unwrap();
    assert!(!fallback.is_empty());
    assert!(fallback.iter().all(|r| r["lastVerified"].is_string()));
}

#[tokio::test]
async fn contacts_are_validated_capped_and_private() {
    let app = TestApp::spawn().await;
    let ana = app.register("ana@example.com").await;
    let bob = app.register("bob@example.com").await;
    let url = "/api/v1/crisis/contacts";

    let mum = app
        .call(Method::POST, url)
        .bearer(&ana.access)
        .json(
            &json!({"name": "Mum", "relationship": "mother", "phone": "+62 812 3456 7890",
                      "notifyOnCrisis": true}),
        )
        .expect(StatusCode::CREATED)
        .await;
    assert_eq!(mum["phone"], "+6281234567890");
    assert_eq!(mum["notifyOnCrisis"], true);

    for (body, field) in [
        (json!({"name": "X", "phone": "0812345"}), "phone"),
        (json!({"name": "X", "email": "not-an-email"}), "email"),
        (json!({"name": "X"}), "phone"),
        (json!({"name": "", "email": "x@example.com"}), "name"),
    ] {
        let error = assert_error(
            app.post_as(&ana.access, url, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert!(error["details"][field].is_array(), "{field}: {error}");
    }

    for i in 1..10 {
        app.call(Method::POST, url)
            .bearer(&ana.access)
            .json(&json!({"name": format!("Friend {i}"), "email": format!("f{i}@example.com")}))
            .expect(StatusCode::CREATED)
            .await;
    }
    assert_error(
        app.post_as(
            &ana.access,
            url,
            &json!({"name": "Eleventh", "email": "e@example.com"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let list = app
        .call(Method::GET, url)
        .bearer(&ana.access)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 10);

    // Bob sees none of them and can change none of them.
    let id = mum["id"].as_str().unwrap();
    let mine = format!("{url}/{id}");
    let theirs = app
        .call(Method::GET, url)
        .bearer(&bob.access)
        .expect(StatusCode::OK)
        .await;
    assert!(theirs["items"].as_array().unwrap().is_empty());
    assert_error(
        app.put_as(
            &bob.access,
            &mine,
            &json!({"name": "Mine now", "phone": "+441234567890"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.delete_as(&bob.access, &mine).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    let renamed = app
        .call(Method::PUT, &mine)
        .bearer(&ana.access)
        .json(&json!({"name": "Ibu", "email": "ibu@example.com"}))
        .expect(StatusCode::OK)
        .await;
    assert_eq!(renamed["name"], "Ibu");
    assert_eq!(renamed["phone"], Value::Null);
    assert_eq!(renamed["notifyOnCrisis"], false);
    assert_eq!(
        app.delete_as(&ana.access, &mine).await.status(),
        StatusCode::NO_CONTENT
    );
}

/// An app with mail (a local SMTP listener) and the admin webhook at `hook`.
async fn alerting_app(
    hook: SocketAddr,
    configure: impl FnOnce(&mut Config) + Send + 'static,
) -> (TestApp, mpsc::UnboundedReceiver<String>) {
    let (port, mails) = smtp_listener().await;
    let app = TestApp::spawn_with(move |c| {
        c.smtp.host = Some("127.0.0.1".into());
        c.smtp.port = Some(port);
        c.smtp.starttls = Some(false);
        c.smtp.from = Some("Persona <persona@example.com>".into());
        c.crisis.webhook_url = Some(Secret::new(format!("http://{hook}/hook")));
        c.crisis.webhook_secret = Some(Secret::new("test-webhook-secret"));
        configure(c);
    })
    .await;
    (app, mails)
}

async fn add_contact(app: &TestApp, s: &Session, body: Value) -> String {
    let contact = app
        .call(Method::POST, "/api/v1/crisis/contacts")
        .bearer(&s.access)
        .json(&body)
        .expect(StatusCode::CREATED)
        .await;
    contact["id"].as_str().unwrap().to_owned()
}

/// Polls the event until no notification is pending.
async fn settled(app: &TestApp, s: &Session, event_id: &str) -> Value {
    for _ in 0..200 {
        let event = app
            .call(Method::GET, &format!("/api/v1/crisis/events/{event_id}"))
            .bearer(&s.access)
            .expect(StatusCode::OK)
            .await;
        let pending = event["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["status"] == "pending");
        if !pending {
            return event;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("notifications of {event_id} still pending");
}

#[tokio::test]
async fn an_sos_mails_opted_in_contacts_and_signs_the_webhook() {
    let hook = free_port();
    let mut receiver = receiver_on(tokio::net::TcpListener::bind(hook).await.unwrap()).await;
    let (app, mut mails) = alerting_app(hook, |_| {}).await;
    let s = app.register("ana@example.com").await;
    // The welcome mail of the registration first.
    next(&mut mails, Duration::from_secs(10)).await;
    let mum = add_contact(
        &app,
        &s,
        json!({"name": "Mum", "email": "mum@example.com", "notifyOnCrisis": true}),
    )
    .await;
    add_contact(
        &app,
        &s,
        json!({"name": "Not told", "email": "quiet@example.com"}),
    )
    .await;

    let alert = app
        .call(Method::POST, "/api/v1/crisis/alert")
        .bearer(&s.access)
        .json(&json!({"message": "please call me, I am not safe"}))
        .expect(StatusCode::OK)
        .await;
    let notified = alert["notified"].as_array().unwrap();
    assert_eq!(notified.len(), 2, "{alert}");
    assert!(
        notified
            .iter()
            .any(|n| n["channel"] == "email" && n["contactId"] == mum.as_str())
    );
    assert!(notified.iter().any(|n| n["channel"] == "webhook"));
    assert!(!alert["resources"].as_array().unwrap().is_empty());

    let mail = next(&mut mails, Duration::from_secs(10)).await;
    assert!(mail.contains("To: mum@example.com"), "{mail}");
    assert!(
        !mail.contains("not safe"),
        "the message stays out unless webhook_include_message"
    );
    let (signature, body) = next(&mut receiver.received, Duration::from_secs(10)).await;
    assert!(
        verify(&signature, &body, "test-webhook-secret"),
        "{signature}"
    );
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["eventId"], alert["eventId"]);
    assert_eq!(
        (body["level"].as_str(), body["source"].as_str()),
        (Some("high"), Some("alert"))
    );
    assert!(body.get("message").is_none());

    let event_id = alert["eventId"].as_str().unwrap();
    let event = settled(&app, &s, event_id).await;
    assert_eq!(event["source"], "alert");
    assert!(
        event["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["status"] == "sent" && n["attempts"] == 1),
        "{event}"
    );

    // Within the cooldown: recorded, resources given, nobody told twice.
    let again = app
        .call(Method::POST, "/api/v1/crisis/alert")
        .bearer(&s.access)
        .json(&json!({}))
        .expect(StatusCode::OK)
        .await;
    assert!(
        again["notified"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["status"] == "cooldown"),
        "{again}"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(500), mails.recv())
            .await
            .is_err()
    );
    assert_eq!(events(&app, &s).await.len(), 2);
}

#[tokio::test]
async fn the_message_is_sent_only_when_the_admin_allows_it_and_then_forgotten() {
    let hook = free_port();
    let mut receiver = receiver_on(tokio::net::TcpListener::bind(hook).await.unwrap()).await;
    let (app, _mails) = alerting_app(hook, |c| c.crisis.webhook_include_message = true).await;
    let s = app.register("ana@example.com").await;
    app.call(Method::POST, "/api/v1/crisis/alert")
        .bearer(&s.access)
        .json(&json!({"message": "at the bridge on 5th street"}))
        .expect(StatusCode::OK)
        .await;
    let (_, body) = next(&mut receiver.received, Duration::from_secs(10)).await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["message"], "at the bridge on 5th street");
    // Delivered: the outbox row no longer holds it (the record is written just after).
    let mut kept = 1;
    for _ in 0..100 {
        kept = app
            .state
            .db
            .read(|conn| {
                Ok(conn.query_row(
                    "SELECT count(*) FROM crisis_notifications WHERE message IS NOT NULL",
                    [],
                    |r| r.get::<_, i64>(0),
                )?)
            })
            .await
            .unwrap();
        if kept == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(kept, 0);
}

#[tokio::test]
async fn a_webhook_that_is_down_gets_the_event_when_it_comes_back() {
    let hook = free_port();
    let (app, _mails) = alerting_app(hook, |_| {}).await;
    let s = app.register("ana@example.com").await;
    let alert = app
        .call(Method::POST, "/api/v1/crisis/alert")
        .bearer(&s.access)
        .json(&json!({}))
        .expect(StatusCode::OK)
        .await;
    let event_id = alert["eventId"].as_str().unwrap().to_owned();
    // Nothing listens yet: the first attempt fails and is scheduled again.
    for _ in 0..100 {
        let event = app
            .call(Method::GET, &format!("/api/v1/crisis/events/{event_id}"))
            .bearer(&s.access)
            .expect(StatusCode::OK)
            .await;
        if event["notifications"][0]["attempts"].as_i64() >= Some(1) {
            assert_eq!(event["notifications"][0]["status"], "pending");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // It comes up answering 503 once, then 200.
    let mut receiver = receiver_on(tokio::net::TcpListener::bind(hook).await.unwrap()).await;
    receiver.plan.lock().unwrap().push(503);
    let (_, first) = next(&mut receiver.received, Duration::from_secs(15)).await;
    let (signature, second) = next(&mut receiver.received, Duration::from_secs(15)).await;
    assert_eq!(first, second, "the same event, retried");
    assert!(verify(&signature, &second, "test-webhook-secret"));
    let event = settled(&app, &s, &event_id).await;
    let webhook = &event["notifications"][0];
    assert_eq!(webhook["status"], "sent");
    assert!(webhook["attempts"].as_i64().unwrap() >= 3, "{event}");
}

#[tokio::test]
async fn queued_notifications_survive_a_restart() {
    let hook = free_port();
    let (app, _mails) = alerting_app(hook, |_| {}).await;
    let s = app.register("ana@example.com").await;
    let alert = app
        .call(Method::POST, "/api/v1/crisis/alert")
        .bearer(&s.access)
        .json(&json!({}))
        .expect(StatusCode::OK)
        .await;
    // Stopped while the receiver is down, started again once it is up.
    let app = app.restart().await;
    let mut receiver = receiver_on(tokio::net::TcpListener::bind(hook).await.unwrap()).await;
    let (_, body) = next(&mut receiver.received, Duration::from_secs(20)).await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["eventId"], alert["eventId"]);
    let s = app.login("ana@example.com").await;
    let event = settled(&app, &s, alert["eventId"].as_str().unwrap()).await;
    assert_eq!(event["notifications"][0]["status"], "sent");
}

#[tokio::test]
async fn events_of_others_are_404() {
    let app = TestApp::spawn().await;
    let ana = app.register("ana@example.com").await;
    let bob = app.register("bob@example.com").await;
    let alert = app
        .call(Method::POST, "/api/v1/crisis/alert")
        .bearer(&ana.access)
        .json(&json!({}))
        .expect(StatusCode::OK)
        .await;
    let path = format!(
        "/api/v1/crisis/events/{}",
        alert["eventId"].as_str().unwrap()
    );
    assert_error(
        app.get_as(&bob.access, &path).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.get_as(&bob.access, "/api/v1/crisis/events/not-a-uuid")
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Without mail or webhook, an SOS is still recorded and answered with resources.
    assert!(alert["notified"].as_array().unwrap().is_empty());
    assert!(!alert["resources"].as_array().unwrap().is_empty());
}

async fn ai_app() -> (TestApp, FakeAi, Session) {
    let fake = FakeAi::start().await;
    let base = fake.base_url();
    let app = TestApp::spawn_with(move |c| {
        c.ai.base_url = base;
        c.ai.api_key = Some(Secret::new(KEY));
    })
    .await;
    let session = app.register("ana@example.com").await;
    (app, fake, session)
}

#[tokio::test]
async fn chat_answers_carry_the_crisis_level_and_resources() {
    let (app, fake, s) = ai_app().await;
    fake.plan([Behaviour::Reply("I'm here with you.".into())]);
    let body = json!({"messages": [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi!"},
        {"role": "user", "content": HIGH},
    ]});
    let response = app.post_as(&s.access, "/api/v1/ai/chat", &body).await;
    assert_eq!(response.headers()["x-persona-crisis-level"], "high");
    let answer = expect_json(response, StatusCode::OK).await;
    assert_eq!(answer["crisis"]["level"], "high");
    assert!(!answer["crisis"]["resources"].as_array().unwrap().is_empty());
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "I'm here with you."
    );

    // A stream: the header comes with the head, before the first event.
    fake.plan([Behaviour::Stream {
        deltas: vec!["I'm".into(), " here".into()],
        done: true,
    }]);
    let mut stream = body.clone();
    stream["stream"] = json!(true);
    let response = app
        .post_as(&s.access, "/api/v1/ai/chat/completions", &stream)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-persona-crisis-level"], "high");
    assert!(response.text().await.unwrap().contains("[DONE]"));

    // An ordinary message: no header, no field.
    fake.plan([Behaviour::Reply("Sure.".into())]);
    let plain = json!({"messages": [{"role": "user", "content": IDIOM}]});
    let response = app.post_as(&s.access, "/api/v1/ai/chat", &plain).await;
    assert!(response.headers().get("x-persona-crisis-level").is_none());
    assert!(
        expect_json(response, StatusCode::OK)
            .await
            .get("crisis")
            .is_none()
    );

    let recorded = events(&app, &s).await;
    assert_eq!(recorded.len(), 2);
    assert!(recorded.iter().all(|e| e["source"] == "chat"));
}

#[tokio::test]
async fn a_crisis_analysis_is_never_lower_than_the_detector() {
    let (app, fake, s) = ai_app().await;
    // The model calls it low; the detector reads high.
    fake.plan([Behaviour::Reply(
        json!({"level": "low", "reasons": ["tired"]}).to_string(),
    )]);
    let response = app
        .post_as(
            &s.access,
            "/api/v1/ai/analyze",
            &json!({"text": HIGH, "kind": "crisis"}),
        )
        .await;
    assert_eq!(response.headers()["x-persona-crisis-level"], "high");
    let answer = expect_json(response, StatusCode::OK).await;
    assert_eq!(answer["result"]["level"], "high");
    assert_eq!(answer["crisis"]["level"], "high");

    // The model sees more than the detector: its level counts.
    fake.plan([Behaviour::Reply(
        json!({"level": "high", "reasons": ["plan"]}).to_string(),
    )]);
    let answer = app
        .call(Method::POST, "/api/v1/ai/analyze")
        .bearer(&s.access)
        .json(&json!({"text": "I sorted out who gets my things", "kind": "crisis"}))
        .expect(StatusCode::OK)
        .await;
    assert_eq!(answer["result"]["level"], "high");
    assert!(
        events(&app, &s)
            .await
            .iter()
            .all(|e| e["source"] == "analyze")
    );
}

#[tokio::test]
async fn crisis_text_lands_in_no_file_and_no_log() {
    // The real binary, its JSON log captured in a file, its AI provider the fake.
    let fake = FakeAi::start().await;
    let base = fake.base_url();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let (mut child, address) = serve_logged(
        dir.path(),
        &log_path,
        &[
            ("PERSONA_LOG__LEVEL", "debug"),
            ("PERSONA_CRISIS__WEBHOOK_INCLUDE_MESSAGE", "false"),
            ("PERSONA_AI__BASE_URL", base.as_str()),
            ("PERSONA_AI__API_KEY", KEY),
        ],
    )
    .await;
    let client = crate::helpers::http_client();
    let url = |path: &str| format!("http://{address}{path}");
    let session: Value = client
        .post(url("/api/v1/auth/register"))
        .json(&json!({"email": "ana@example.com", "password": "password123"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = session["accessToken"].as_str().unwrap();
    let probe = "Zanzibar-quokka: I'm going to kill myself tonight with the pills I counted";
    let checked: Value = client
        .post(url("/api/v1/crisis/check"))
        .bearer_auth(token)
        .json(&json!({"text": probe}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(checked["level"], "high");
    let alert = client
        .post(url("/api/v1/crisis/alert"))
        .bearer_auth(token)
        .json(&json!({"message": probe}))
        .send()
        .await
        .unwrap();
    assert_eq!(alert.status(), StatusCode::OK);
    let chat = client
        .post(url("/api/v1/ai/chat"))
        .bearer_auth(token)
        .json(&json!({"messages": [{"role": "user", "content": probe}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.headers()["x-persona-crisis-level"], "high");
    // Stop it cleanly (SIGTERM), so every file is final.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().unwrap();

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("crisis event recorded"), "the event is logged");
    assert!(!log.contains("quokka"), "the text is not");
    for entry in walk(dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        let found = bytes.windows(7).any(|w| w == b"quokka");
        assert!(!found, "crisis text in {}", entry.display());
    }
}

#[tokio::test]
async fn a_notification_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let hook = free_port();
    let url = format!("http://{hook}/hook");
    let env = [("PERSONA_CRISIS__WEBHOOK_URL", url.as_str())];
    let (mut child, address) = serve_logged(dir.path(), &log_path, &env).await;
    let client = crate::helpers::http_client();
    let session: Value = client
        .post(format!("http://{address}/api/v1/auth/register"))
        .json(&json!({"email": "ana@example.com", "password": "password123"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let alert: Value = client
        .post(format!("http://{address}/api/v1/crisis/alert"))
        .bearer_auth(session["accessToken"].as_str().unwrap())
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Acknowledged, the receiver still down: the server is killed outright.
    child.kill().unwrap();
    child.wait().unwrap();

    let mut receiver = receiver_on(tokio::net::TcpListener::bind(hook).await.unwrap()).await;
    let (mut again, _) = serve_logged(dir.path(), &log_path, &env).await;
    let (_, body) = next(&mut receiver.received, Duration::from_secs(20)).await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["eventId"], alert["eventId"]);
    again.kill().unwrap();
    again.wait().unwrap();
}

#[tokio::test]
async fn auto_notify_tells_opted_in_contacts_of_a_detected_high() {
    let hook = free_port();
    let mut receiver = receiver_on(tokio::net::TcpListener::bind(hook).await.unwrap()).await;
    let fake = FakeAi::start().await;
    let base = fake.base_url();
    let (app, mut mails) = alerting_app(hook, move |c| {
        c.crisis.auto_notify = true;
        c.ai.base_url = base;
        c.ai.api_key = Some(Secret::new(KEY));
    })
    .await;
    let s = app.register("ana@example.com").await;
    next(&mut mails, Duration::from_secs(10)).await; // the welcome mail
    add_contact(
        &app,
        &s,
        json!({"name": "Sis", "email": "sis@example.com", "notifyOnCrisis": true}),
    )
    .await;
    add_contact(
        &app,
        &s,
        json!({"name": "Boss", "email": "boss@example.com"}),
    )
    .await;

    fake.plan([Behaviour::Reply("I'm here.".into())]);
    let body = json!({"messages": [{"role": "user", "content": HIGH}]});
    app.call(Method::POST, "/api/v1/ai/chat")
        .bearer(&s.access)
        .json(&body)
        .expect(StatusCode::OK)
        .await;
    let mail = next(&mut mails, Duration::from_secs(10)).await;
    assert!(mail.contains("To: sis@example.com"), "{mail}");
    let (_, hooked) = next(&mut receiver.received, Duration::from_secs(10)).await;
    let hooked: Value = serde_json::from_slice(&hooked).unwrap();
    assert_eq!(hooked["source"], "auto");
    let sources: Vec<Value> = events(&app, &s)
        .await
        .iter()
        .map(|e| e["source"].clone())
        .collect();
    assert!(sources.contains(&json!("chat")) && sources.contains(&json!("auto")));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), mails.recv())
            .await
            .is_err(),
        "the contact without notifyOnCrisis was not told"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.extension().is_none_or(|e| e != "log") {
            files.push(path);
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_counts_events_and_tests_the_webhook() {
    let app = TestApp::spawn().await;
    let s = app.register("ana@example.com").await;
    check(&app, &s, HIGH, "en").await;
    app.call(Method::POST, "/api/v1/crisis/alert")
        .bearer(&s.access)
        .json(&json!({}))
        .expect(StatusCode::OK)
        .await;
    let data = app.dir.path().join("data");

    let hook = free_port();
    let mut receiver = receiver_on(tokio::net::TcpListener::bind(hook).await.unwrap()).await;
    let dir = app.dir.path().to_owned();
    let (events, webhook) = tokio::task::spawn_blocking(move || {
        let run = |args: &[&str]| {
            crate::helpers::persona_command(&dir)
                .env("PERSONA_STORAGE__DATA_DIR", &data)
                .env("PERSONA_CRISIS__WEBHOOK_URL", format!("http://{hook}/hook"))
                .args(args)
                .output()
                .unwrap()
        };
        (
            run(&["admin", "crisis", "events"]),
            run(&["admin", "crisis", "test-webhook"]),
        )
    })
    .await
    .unwrap();
    let out = crate::helpers::stdout(&events);
    assert!(
        events.status.success(),
        "{}",
        crate::helpers::stderr(&events)
    );
    assert!(
        out.contains("high") && out.contains("alert") && out.contains("check"),
        "{out}"
    );
    assert!(out.contains("2 event(s) in all"), "{out}");
    assert!(!out.contains("pills"));

    assert!(
        webhook.status.success(),
        "{}",
        crate::helpers::stderr(&webhook)
    );
    let (signature, body) = next(&mut receiver.received, Duration::from_secs(5)).await;
    let secrets = std::fs::read_to_string(app.dir.path().join("data/secrets.toml")).unwrap();
    let secret = secrets
        .lines()
        .find_map(|l| l.strip_prefix("webhook_secret = "))
        .map(|v| v.trim_matches('"').to_owned())
        .expect("a generated webhook secret");
    assert!(verify(&signature, &body, &secret));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["test"], true);
}

#[tokio::test]
async fn crisis_routes_need_a_token_limit_the_message_and_page_events() {
    let app = TestApp::spawn().await;
    let s = app.register("ana@example.com").await;
    for path in ["/api/v1/crisis/contacts", "/api/v1/crisis/events"] {
        assert_error(
            app.get(path).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
    }
    assert_error(
        app.post_json("/api/v1/crisis/alert", &json!({})).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let error = assert_error(
        app.post_as(
            &s.access,
            "/api/v1/crisis/alert",
            &json!({"message": "x".repeat(2001)}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(error["details"]["message"].is_array());

    for _ in 0..3 {
        app.call(Method::POST, "/api/v1/crisis/alert")
            .bearer(&s.access)
            .json(&json!({}))
            .expect(StatusCode::OK)
            .await;
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/crisis/events?limit=2".to_owned();
    loop {
        let page = app
            .call(Method::GET, &path)
            .bearer(&s.access)
            .expect(StatusCode::OK)
            .await;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].clone()),
        );
        match page["nextCursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/crisis/events?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 3);
    seen.dedup();
    assert_eq!(seen.len(), 3, "each event once");
}
