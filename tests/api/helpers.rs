//! The one test harness: `TestApp::spawn()` starts persona in-process on `127.0.0.1:0` with a
//! fresh data dir and returns typed helpers to drive it over real HTTP.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Command, Stdio},
};

use axum::Router;
use persona::{
    app::{self, App, AppState},
    config::Config,
};
use reqwest::{Response, StatusCode};
use serde_json::Value;
use tempfile::TempDir;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub state: AppState,
    pub dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

/// With `TEST_LOG=1` (or a filter such as `TEST_LOG=persona=debug`), the server's log goes
/// to the test output; otherwise tests are quiet.
fn init_test_log() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(filter) = std::env::var("TEST_LOG") {
            let filter = if filter == "1" {
                "info".to_owned()
            } else {
                filter
            };
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
    });
}

/// The configuration every test starts from: defaults, a data dir inside `dir`, port 0, and
/// argon2 parameters small enough for a debug build.
pub fn test_config(dir: &Path) -> Config {
    let mut config = Config::default();
    config.storage.data_dir = dir.join("data");
    config.server.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    config.auth.argon2_memory_kib = 1024;
    config.auth.argon2_iterations = 1;
    config
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(|_| {}).await
    }

    /// Starts with the test config changed by `configure`.
    pub async fn spawn_with(configure: impl FnOnce(&mut Config)) -> TestApp {
        TestApp::start(tempfile::tempdir().unwrap(), configure, Router::new()).await
    }

    /// Starts with extra routes inside the real middleware stack (for behaviour no product
    /// route can trigger on demand: panics, slow handlers).
    pub async fn spawn_with_routes(
        configure: impl FnOnce(&mut Config),
        extra: Router<AppState>,
    ) -> TestApp {
        TestApp::start(tempfile::tempdir().unwrap(), configure, extra).await
    }

    /// Starts on an existing data dir (a restart with another configuration).
    pub async fn spawn_in(dir: TempDir, configure: impl FnOnce(&mut Config)) -> TestApp {
        TestApp::start(dir, configure, Router::new()).await
    }

    async fn start(
        dir: TempDir,
        configure: impl FnOnce(&mut Config),
        extra: Router<AppState>,
    ) -> TestApp {
        init_test_log();
        let mut config = test_config(dir.path());
        configure(&mut config);
        config.validate().expect("test config is valid");
        let state = App::init(config, persona::features::all()).expect("app starts");
        let listener = TcpListener::bind(state.config.server.bind).await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Extra routes get the middleware and the default request timeout, like a feature's.
        let router = persona::http::router_with(state.clone(), extra);
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(app::serve_router(
            state.clone(),
            router,
            listener,
            async move {
                let _ = rx.await;
            },
        ));
        TestApp {
            addr,
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            state,
            dir,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// A request to `path`, built step by step: `app.call(Method::PUT, "/x").bearer(t)
    /// .json(&body).expect(StatusCode::OK).await` returns the parsed body.
    pub fn call(&self, method: reqwest::Method, path: &str) -> Call {
        Call(self.client.request(method, self.url(path)))
    }

    /// GET with a bearer token.
    pub async fn get_as(&self, token: &str, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// POST JSON with a bearer token.
    pub async fn post_as(&self, token: &str, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// PUT JSON with a bearer token.
    pub async fn put_as(&self, token: &str, path: &str, body: &Value) -> Response {
        self.client
            .put(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// DELETE with a bearer token.
    pub async fn delete_as(&self, token: &str, path: &str) -> Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// Registers `email` with the password `password123` and returns the auth response.
    pub async fn register(&self, email: &str) -> Session {
        let response = self
            .post_json(
                "/api/v1/auth/register",
                &serde_json::json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "register {email}");
        Session::from(response.json::<Value>().await.unwrap())
    }

    /// `POST /auth/login` with these credentials, whatever it answers.
    pub async fn try_login(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/api/v1/auth/login",
            &serde_json::json!({"email": email, "password": password, "deviceName": "test"}),
        )
        .await
    }

    /// Logs in with `PASSWORD` and returns the new session.
    pub async fn login(&self, email: &str) -> Session {
        let response = self.try_login(email, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK, "login {email}");
        Session::from(response.json::<Value>().await.unwrap())
    }

    /// Registers `email`, makes it an administrator (no route can) and signs it in again, so
    /// the session's token carries the admin role.
    pub async fn admin(&self, email: &str) -> Session {
        self.register(email).await;
        self.sql("UPDATE users SET role = 'admin' WHERE email = ?1", email)
            .await;
        self.login(email).await
    }

    /// Runs a closure on the writer connection (to arrange what no route can, e.g. an admin).
    pub async fn sql(&self, sql: &'static str, email: &str) {
        let email = email.to_owned();
        self.state
            .db
            .write(move |tx| {
                tx.execute(sql, [email])?;
                Ok(())
            })
            .await
            .unwrap();
        self.state.auth.forget_all_sessions();
    }

    /// Asks the server to stop and waits until it has; the data dir is kept.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }

    /// Stops this server and starts a new one on the same data dir.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let config = self.state.config.clone();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        drop(self);
        TestApp::start(dir, move |c| *c = config, Router::new()).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A request under construction (see [`TestApp::call`]).
pub struct Call(reqwest::RequestBuilder);

impl Call {
    pub fn bearer(self, token: &str) -> Call {
        Call(self.0.bearer_auth(token))
    }

    pub fn json(self, body: &Value) -> Call {
        Call(self.0.json(body))
    }

    pub fn header(self, name: &str, value: &str) -> Call {
        Call(self.0.header(name, value))
    }

    pub async fn send(self) -> Response {
        self.0.send().await.unwrap()
    }

    /// Sends, asserts `status` and returns the JSON body.
    pub async fn expect(self, status: StatusCode) -> Value {
        expect_json(self.send().await, status).await
    }
}

/// The password every test account has.
pub const PASSWORD: &str = "password123";

/// What register and login answer.
#[derive(Debug, Clone)]
pub struct Session {
    pub access: String,
    pub refresh: String,
    pub user: Value,
}

impl From<Value> for Session {
    fn from(body: Value) -> Self {
        Session {
            access: body["accessToken"]
                .as_str()
                .expect("accessToken")
                .to_owned(),
            refresh: body["refreshToken"]
                .as_str()
                .expect("refreshToken")
                .to_owned(),
            user: body["user"].clone(),
        }
    }
}

/// Asserts `status` (showing the body when it differs) and returns the JSON body (`null` for
/// an empty one): the one-line form of "send, check the status, parse".
pub async fn expect_json(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "status; body: {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("JSON body ({e}): {text}"))
    }
}

/// Asserts SPEC section 2's error envelope with `status` and `code`; the body's `requestId`
/// must be the `X-Request-Id` header. Returns the `error` object.
pub async fn assert_error(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "status");
    let header_id = response
        .headers()
        .get("x-request-id")
        .expect("x-request-id header")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        response.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = response.json().await.expect("JSON error body");
    let error = body["error"].clone();
    assert_eq!(error["code"], code, "code in {body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message in {body}"
    );
    assert_eq!(
        error["requestId"],
        header_id.as_str(),
        "requestId in {body}"
    );
    error
}

/// The `persona` binary with a clean environment (no `PERSONA_*` from the developer's shell)
/// running in `dir`, so no stray `./persona.toml` is read.
pub fn persona_command(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_persona"));
    for (key, _) in std::env::vars() {
        if key.starts_with("PERSONA_") {
            command.env_remove(key);
        }
    }
    command
        .current_dir(dir)
        .env("PERSONA_LOG__FORMAT", "json")
        .env("PERSONA_AUTH__ARGON2_MEMORY_KIB", "1024")
        .env("PERSONA_AUTH__ARGON2_ITERATIONS", "1")
        // Tests poll; the login limit has tests of its own.
        .env("PERSONA_RATE_LIMIT__LOGIN_PER_IP_PER_MINUTE", "10000");
    command
}

/// Runs `persona ARGS` in `dir` (see [`persona_command`]) to completion.
pub fn run_persona(dir: &Path, args: &[&str]) -> std::process::Output {
    persona_command(dir).args(args).output().unwrap()
}

pub fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A client for servers started as processes (no proxy from the environment).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A `persona serve` child process, killed when dropped.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub address: String,
}

impl ServerProcess {
    pub fn start(dir: &Path) -> ServerProcess {
        let (child, address) = start_server(dir);
        ServerProcess { child, address }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `persona serve` on port 0 and returns the child and the address it logged.
pub fn start_server(dir: &std::path::Path) -> (std::process::Child, String) {
    let mut child = persona_command(dir)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("server logged its address").unwrap();
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some(address) = event["address"].as_str() {
            break address.to_owned();
        }
    };
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, address)
}

/// `persona serve` in `dir` with `env`, its log appended to `log_path`; answers the child
/// and the address it logged.
pub async fn serve_logged(
    dir: &std::path::Path,
    log_path: &std::path::Path,
    env: &[(&str, &str)],
) -> (std::process::Child, String) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .unwrap();
    let already = std::fs::read_to_string(log_path).unwrap_or_default().len();
    let mut child = persona_command(dir)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    for _ in 0..1000 {
        let text = std::fs::read_to_string(log_path).unwrap_or_default();
        let found = text[already.min(text.len())..]
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find_map(|e| e["address"].as_str().map(str::to_owned));
        if let Some(address) = found {
            return (child, address);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the server did not log its address");
}

/// A minimal SMTP server: accepts every message and sends its text down a channel.
pub async fn smtp_listener() -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    slow_smtp_listener(std::time::Duration::ZERO).await
}

/// [`smtp_listener`] that waits `delay` before greeting each connection (a slow relay).
pub async fn slow_smtp_listener(
    delay: std::time::Duration,
) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(read));
                tokio::time::sleep(delay).await;
                tokio::io::AsyncWriteExt::write_all(&mut write, b"220 test ESMTP\r\n")
                    .await
                    .unwrap();
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(body) = data.as_mut() {
                        if line == "." {
                            tx.send(data.take().unwrap()).ok();
                            tokio::io::AsyncWriteExt::write_all(&mut write, b"250 queued\r\n")
                                .await
                                .unwrap();
                        } else {
                            body.push_str(&line);
                            body.push('\n');
                        }
                        continue;
                    }
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 test\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go on\r\n"
                        }
                        "QUIT" => {
                            tokio::io::AsyncWriteExt::write_all(&mut write, b"221 bye\r\n")
                                .await
                                .ok();
                            return;
                        }
                        _ => b"250 ok\r\n",
                    };
                    tokio::io::AsyncWriteExt::write_all(&mut write, reply)
                        .await
                        .unwrap();
                }
            });
        }
    });
    (port, rx)
}

/// The SHA-256 of `data` in lower-case hex (what backups declare as their checksum).
pub fn sha256(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(data))
}

/// Bytes that look like an app's encrypted backup and are unique to `seed`.
pub fn sample(seed: u8, len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(seed);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}
