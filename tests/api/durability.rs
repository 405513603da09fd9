//! Durability under `kill -9` (SPEC 12): several clients write through the API while the
//! server process is killed outright at random moments, round after round. Afterwards every
//! write the server acknowledged is there — accounts and their sessions, profile changes, sync
//! rows, backups, conversations, emergency contacts, crisis events, AI usage — and the
//! database passes `PRAGMA integrity_check`. A write in flight at the kill may or may not have
//! landed; the checks accept either, never anything else.
//!
//! Rerun with another schedule: `DURABILITY_SEED=<n> cargo test --test api durability`
//! (the seed of a run is printed).

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    fake_ai::{FakeAi, KEY},
    helpers::{PASSWORD, ServerProcess, http_client, sample, sha256},
};

const ROUNDS: usize = 12;
const CLIENTS: usize = 4;
/// Contacts per user stay under the limit of 10 (SPEC 8).
const MAX_CONTACTS: usize = 8;

/// A small deterministic generator (xorshift64*): the kill schedule and the clients' seeds.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A value written again and again: what the server must hold is the last acknowledged
/// value or one of the attempts sent after it (in flight at a kill).
#[derive(Debug, Default)]
struct Register<T> {
    acked: Option<T>,
    since: Vec<T>,
}

impl<T: PartialEq + Clone + std::fmt::Debug> Register<T> {
    fn attempt(&mut self, value: T) {
        self.since.push(value);
    }

    fn ack(&mut self, value: T) {
        self.acked = Some(value);
        self.since.clear();
    }

    /// `held` is what the server answers (`None`: nothing stored).
    fn check(&self, what: &str, held: Option<T>) {
        let fine = match &held {
            None => self.acked.is_none(),
            Some(v) => self.acked.as_ref() == Some(v) || self.since.contains(v),
        };
        assert!(
            fine,
            "{what}: the server holds {held:?}, acknowledged {:?}, in flight after it {:?}",
            self.acked, self.since
        );
    }
}

/// What one user was acknowledged (and what was in flight).
#[derive(Debug, Default)]
struct Ledger {
    email: String,
    refresh: String,
    device: String,
    profile: Register<String>,
    sync: Register<i64>,
    backups: Vec<(String, String)>,
    conversations: Vec<(String, String)>,
    contacts: Vec<String>,
    contacts_tried: usize,
    events: Vec<String>,
    chats_acked: i64,
    chats_tried: i64,
    acked: usize,
    unacked: usize,
}

/// One request to the server being killed: `Err` when it never answered in full (the write
/// was not acknowledged); any answer other than `expected` fails the test.
async fn send(
    http: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: &Value,
    expected: StatusCode,
) -> Result<Value, ()> {
    let mut request = http
        .request(method.clone(), format!("{base}{path}"))
        .json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|_| ())?;
    let status = response.status();
    let text = response.text().await.map_err(|_| ())?;
    assert_eq!(status, expected, "{method} {path}: {text}");
    Ok(if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    })
}

/// One client during one round: registers a user, then writes one kind of thing after another
/// until the server dies under it.
async fn client(base: String, tag: String, seed: u64, ledgers: Arc<Mutex<Vec<Ledger>>>) {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut rng = Rng(seed | 1);
    let email = format!("{tag}@durability.example");
    let body = json!({"email": email, "password": PASSWORD});
    let Ok(auth) = send(
        &http,
        &base,
        Method::POST,
        "/api/v1/auth/register",
        None,
        &body,
        StatusCode::CREATED,
    )
    .await
    else {
        return;
    };
    let token = auth["accessToken"].as_str().unwrap().to_owned();
    let index = {
        let mut all = ledgers.lock().unwrap();
        all.push(Ledger {
            email,
            refresh: auth["refreshToken"].as_str().unwrap().to_owned(),
            device: format!("phone-{tag}"),
            acked: 1,
            ..Ledger::default()
        });
        all.len() - 1
    };
    let ledger = |f: &mut dyn FnMut(&mut Ledger)| f(&mut ledgers.lock().unwrap()[index]);
    let t = Some(token.as_str());
    for step in 0u64.. {
        let outcome = match step % 7 {
            0 => {
                let name = format!("{tag} #{step}");
                ledger(&mut |l| l.profile.attempt(name.clone()));
                let body = json!({"displayName": name});
                let sent = send(
                    &http,
                    &base,
                    Method::PUT,
                    "/api/v1/auth/profile",
                    t,
                    &body,
                    StatusCode::OK,
                )
                .await;
                sent.map(|_| ledger(&mut |l| l.profile.ack(name.clone())))
            }
            1 => {
                let version = step as i64 + 1;
                ledger(&mut |l| l.sync.attempt(version));
                let device = format!("phone-{tag}");
                let body = json!({"deviceId": device, "syncVersion": version,
                    "dataHash": format!("hash-{version}")});
                let sent = send(
                    &http,
                    &base,
                    Method::POST,
                    "/api/v1/sync/status",
                    t,
                    &body,
                    StatusCode::OK,
                )
                .await;
                sent.map(|_| ledger(&mut |l| l.sync.ack(version)))
            }
            2 => {
                let len = 1_000 + rng.below(40_000) as usize;
                let data = sample(rng.next() as u8, len);
                let checksum = sha256(&data);
                let body = json!({"data": STANDARD.encode(&data), "checksum": checksum});
                let sent = send(
                    &http,
                    &base,
                    Method::POST,
                    "/api/v1/sync/backup",
                    t,
                    &body,
                    StatusCode::CREATED,
                )
                .await;
                sent.map(|b| {
                    let id = b["id"].as_str().unwrap().to_owned();
                    ledger(&mut |l| l.backups.push((id.clone(), checksum.clone())));
                })
            }
            3 => {
                let title = format!("{tag} chronicle {step}");
                let body = json!({"title": title, "visibility": "private",
                    "messages": [{"role": "user", "content": format!("entry {step}")}]});
                let sent = send(
                    &http,
                    &base,
                    Method::POST,
                    "/api/v1/conversations",
                    t,
                    &body,
                    StatusCode::CREATED,
                )
                .await;
                sent.map(|c| {
                    let id = c["id"].as_str().unwrap().to_owned();
                    ledger(&mut |l| l.conversations.push((id.clone(), title.clone())));
                })
            }
            4 => {
                let mut tried = 0;
                ledger(&mut |l| tried = l.contacts_tried);
                if tried >= MAX_CONTACTS {
                    continue;
                }
                ledger(&mut |l| l.contacts_tried += 1);
                let body = json!({"name": format!("Friend {step}"),
                    "email": format!("friend{step}@example.com"), "notifyOnCrisis": false});
                let sent = send(
                    &http,
                    &base,
                    Method::POST,
                    "/api/v1/crisis/contacts",
                    t,
                    &body,
                    StatusCode::CREATED,
                )
                .await;
                sent.map(|c| {
                    let id = c["id"].as_str().unwrap().to_owned();
                    ledger(&mut |l| l.contacts.push(id.clone()));
                })
            }
            5 => {
                let sent = send(
                    &http,
                    &base,
                    Method::POST,
                    "/api/v1/crisis/alert",
                    t,
                    &json!({}),
                    StatusCode::OK,
                )
                .await;
                sent.map(|a| {
                    let id = a["eventId"].as_str().unwrap().to_owned();
                    ledger(&mut |l| l.events.push(id.clone()));
                })
            }
            _ => {
                ledger(&mut |l| l.chats_tried += 1);
                let body = json!({"messages": [{"role": "user", "content": "hi there"}]});
                let sent = send(
                    &http,
                    &base,
                    Method::POST,
                    "/api/v1/ai/chat",
                    t,
                    &body,
                    StatusCode::OK,
                )
                .await;
                sent.map(|_| ledger(&mut |l| l.chats_acked += 1))
            }
        };
        match outcome {
            Ok(()) => ledger(&mut |l| l.acked += 1),
            Err(()) => {
                ledger(&mut |l| l.unacked += 1);
                return;
            }
        }
    }
}

fn integrity_check(dir: &Path) {
    let conn = rusqlite::Connection::open(dir.join("data/persona.db")).unwrap();
    let result: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(result, "ok", "PRAGMA integrity_check after a kill -9");
}

fn kill_9(server: &mut ServerProcess) {
    // `Child::kill` is SIGKILL on Unix: no shutdown, no checkpoint, no flush.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

/// Every acknowledged write of one user, read back through the API.
async fn check_user(http: &reqwest::Client, server: &ServerProcess, l: &Ledger) {
    let call = |method: Method, path: &str| http.request(method, server.url(path));
    let login = call(Method::POST, "/api/v1/auth/login")
        .json(&json!({"email": l.email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        login.status(),
        StatusCode::OK,
        "the account {} is gone",
        l.email
    );
    let token = login.json::<Value>().await.unwrap()["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let refreshed = call(Method::POST, "/api/v1/auth/refresh")
        .json(&json!({"refreshToken": l.refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK, "{}'s session", l.email);
    let get = |path: String| {
        let request = call(Method::GET, &path).bearer_auth(&token);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let body = response.bytes().await.unwrap();
            (status, body)
        }
    };
    let json = |body: &[u8]| serde_json::from_slice::<Value>(body).unwrap();

    let (_, body) = get("/api/v1/auth/profile".into()).await;
    let name = json(&body)["user"]["displayName"]
        .as_str()
        .map(str::to_owned);
    l.profile
        .check(&format!("{}'s display name", l.email), name);

    let (status, body) = get(format!("/api/v1/sync/status/{}", l.device)).await;
    let version = (status == StatusCode::OK).then(|| json(&body)["syncVersion"].as_i64().unwrap());
    l.sync
        .check(&format!("{}'s sync version", l.email), version);

    for (id, checksum) in &l.backups {
        let response = call(Method::GET, &format!("/api/v1/sync/backup/{id}"))
            .bearer_auth(&token)
            .header("accept", "application/octet-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "backup {id} of {}",
            l.email
        );
        let data = response.bytes().await.unwrap();
        assert_eq!(&sha256(&data), checksum, "backup {id}'s bytes");
    }
    for (id, title) in &l.conversations {
        let (status, body) = get(format!("/api/v1/conversations/{id}")).await;
        assert_eq!(status, StatusCode::OK, "conversation {id} of {}", l.email);
        assert_eq!(json(&body)["title"], title.as_str());
    }
    let (_, body) = get("/api/v1/crisis/contacts".into()).await;
    let held = json(&body)["items"].clone();
    for id in &l.contacts {
        let found = held
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == id.as_str());
        assert!(found, "contact {id} of {} is gone: {held}", l.email);
    }
    let (_, body) = get("/api/v1/crisis/events?limit=100".into()).await;
    let held = json(&body)["items"].clone();
    for id in &l.events {
        let found = held
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == id.as_str());
        assert!(found, "crisis event {id} of {} is gone: {held}", l.email);
    }
    let (_, body) = get("/api/v1/ai/usage".into()).await;
    let usage = json(&body);
    let requests: i64 = usage["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["requests"].as_i64().unwrap())
        .sum();
    assert!(
        (l.chats_acked..=l.chats_tried).contains(&requests),
        "{}: {requests} AI calls metered, {} acknowledged, {} sent",
        l.email,
        l.chats_acked,
        l.chats_tried
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_write_survives_kill_9_at_random_moments() {
    let seed = std::env::var("DURABILITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.unwrap().as_nanos() as u64
        });
    eprintln!("durability: DURABILITY_SEED={seed}");
    let mut rng = Rng(seed | 1);
    let fake = FakeAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("persona.toml"),
        format!(
            "[rate_limit]\nper_ip_per_minute = 1000000\n\
             [backups]\nretain = 1000\n\
             [ai]\nbase_url = \"{}\"\napi_key = \"{KEY}\"\n\
             requests_per_minute = 100000\ndaily_token_budget = 1000000000\n",
            fake.base_url()
        ),
    )
    .unwrap();

    let ledgers = Arc::new(Mutex::new(Vec::new()));
    for round in 0..ROUNDS {
        let mut server = ServerProcess::start(dir.path());
        let base = format!("http://{}", server.address);
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let tag = format!("r{round}c{c}");
                tokio::spawn(client(base.clone(), tag, rng.next(), ledgers.clone()))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100 + rng.below(600))).await;
        kill_9(&mut server);
        for task in clients {
            task.await.unwrap();
        }
        if round % 2 == 1 {
            integrity_check(dir.path());
        }
    }

    let server = ServerProcess::start(dir.path());
    let http = http_client();
    let ledgers = std::mem::take(&mut *ledgers.lock().unwrap());
    for ledger in &ledgers {
        check_user(&http, &server, ledger).await;
    }
    drop(server);
    integrity_check(dir.path());

    let acked: usize = ledgers.iter().map(|l| l.acked).sum();
    let unacked: usize = ledgers.iter().map(|l| l.unacked).sum();
    eprintln!(
        "durability: {ROUNDS} rounds of kill -9, {} users, {acked} acknowledged writes all \
         present, {unacked} cut off in flight",
        ledgers.len()
    );
    // The run tested something: writes were acknowledged and kills cut writes in flight.
    assert!(
        ledgers.len() >= ROUNDS,
        "too few users registered: {ledgers:?}"
    );
    assert!(acked >= 4 * ROUNDS, "too few acknowledged writes: {acked}");
    assert!(unacked >= ROUNDS, "the kills cut off only {unacked} writes");
}
