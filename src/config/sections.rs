//! The configuration's sections, one struct each, with their defaults. Loading and
//! validation live in `config/mod.rs`; each feature reads its own section.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use crate::domain::{CrisisLevel, Secret};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub auth: AuthConfig,
    pub rate_limit: RateLimitConfig,
    pub sync: SyncConfig,
    pub backups: BackupsConfig,
    pub ai: AiConfig,
    pub crisis: CrisisConfig,
    pub conversations: ConversationsConfig,
    pub smtp: SmtpConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    /// Origins allowed by CORS, e.g. `https://app.example.com`; `"*"` allows any.
    pub cors_origins: Vec<String>,
    pub max_body: ByteSize,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    pub hsts: bool,
    /// Peers whose `X-Forwarded-For` is believed (addresses or CIDR ranges).
    pub trusted_proxies: Vec<String>,
    /// How long shutdown waits for in-flight requests before dropping them.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// A request head must arrive in full within this, from its first byte (or from the
    /// connection's start).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A kept-alive connection with no request in flight is closed after this.
    #[serde(with = "humantime_serde")]
    pub keep_alive_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 3000)),
            cors_origins: Vec::new(),
            max_body: ByteSize::mib(1),
            request_timeout: Duration::from_secs(30),
            hsts: false,
            trusted_proxies: Vec::new(),
            shutdown_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(60),
            max_connections: 4096,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    /// Read connections in the pool; 0 picks twice the number of cores (at least 4).
    pub read_connections: u32,
    /// How long a query waits for a connection or a lock before answering 503.
    #[serde(with = "humantime_serde")]
    pub busy_timeout: Duration,
    /// Litestream replicates the database: persona runs no checkpoints of its own (no
    /// background copier, no `wal_autocheckpoint`, no TRUNCATE at shutdown) and leaves them
    /// to Litestream, which must be running (`litestream replicate`).
    pub litestream: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("./data"),
            read_connections: 0,
            busy_timeout: Duration::from_secs(5),
            litestream: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(with = "humantime_serde")]
    pub access_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub refresh_ttl: Duration,
    /// A retried refresh within this window gets a fresh pair instead of `token_reused`.
    #[serde(with = "humantime_serde")]
    pub refresh_grace: Duration,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// The issuer (`iss`) of access tokens.
    pub issuer: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            refresh_grace: Duration::ZERO,
            argon2_memory_kib: 19456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            issuer: "persona".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    pub per_ip_per_minute: u32,
    pub login_per_ip_per_minute: u32,
    /// Conversation searches per signed-in user (or per client IP) per minute.
    pub search_per_minute: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            per_ip_per_minute: 600,
            login_per_ip_per_minute: 10,
            search_per_minute: 60,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// Active devices per user; a new one beyond is 422.
    pub max_devices: u32,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig { max_devices: 50 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupsConfig {
    pub max_size: ByteSize,
    pub retain: u32,
    /// How often to snapshot the whole database (`VACUUM INTO`); `None`: never.
    #[serde(with = "humantime_serde")]
    pub snapshot_interval: Option<Duration>,
    /// Where snapshots go; `None`: `<data_dir>/snapshots`.
    pub snapshot_dir: Option<PathBuf>,
    /// Snapshots kept; older ones are deleted.
    pub snapshot_retain: u32,
    /// Uploads and downloads of one user at a time; more are 429.
    pub max_transfers: u32,
}

impl Default for BackupsConfig {
    fn default() -> Self {
        BackupsConfig {
            max_size: ByteSize::mib(64),
            retain: 5,
            snapshot_interval: None,
            snapshot_dir: None,
            snapshot_retain: 7,
            max_transfers: 2,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AiConfig {
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub default_model: String,
    /// Models users may pick; empty means only `default_model`.
    pub allowed_models: Vec<String>,
    pub fallback_models: Vec<String>,
    /// Models `POST /ai/embeddings` may use; none: the route answers 404.
    pub embedding_models: Vec<String>,
    pub requests_per_minute: u32,
    pub daily_token_budget: u64,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// The longest a relayed stream may last in all (`timeout` bounds each silence).
    #[serde(with = "humantime_serde")]
    pub stream_timeout: Duration,
    pub max_retries: u32,
    /// Upper bound for `max_tokens` in one request.
    pub max_tokens: u32,
    /// OpenRouter attribution headers (`HTTP-Referer`, `X-Title`); empty sends none.
    pub app_url: String,
    pub app_title: String,
}

impl AiConfig {
    /// The URL of the provider's endpoint `path` (`chat/completions`, `embeddings`,
    /// `models`) under `base_url`. What the URL parser ignores around a lone URL (spaces and
    /// control characters at either end) is dropped before `path` is joined, where it would
    /// land inside the host or the port; config checks call this too, so a base URL that
    /// passes them always makes good endpoints.
    pub fn endpoint(&self, path: &str) -> Result<url::Url, url::ParseError> {
        let base = self
            .base_url
            .trim_matches(|c: char| c <= ' ')
            .trim_end_matches('/');
        url::Url::parse(&format!("{base}/{path}"))
    }
}

impl Default for AiConfig {
    fn default() -> Self {
        AiConfig {
            base_url: "https://openrouter.ai/api/v1".to_owned(),
            api_key: None,
            default_model: "openai/gpt-4o-mini".to_owned(),
            allowed_models: Vec::new(),
            fallback_models: Vec::new(),
            embedding_models: Vec::new(),
            requests_per_minute: 20,
            daily_token_budget: 200_000,
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            stream_timeout: Duration::from_secs(10 * 60),
            max_retries: 2,
            max_tokens: 4096,
            app_url: String::new(),
            app_title: "Persona".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConversationsConfig {
    /// How many of the newest matches a search ranks together (bm25 scores each one).
    pub search_window: u32,
}

impl Default for ConversationsConfig {
    fn default() -> Self {
        ConversationsConfig {
            search_window: 2000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrisisConfig {
    pub resource_level: CrisisLevel,
    pub auto_notify: bool,
    pub webhook_url: Option<Secret>,
    /// Signs webhook bodies; generated into `secrets.toml` when unset.
    pub webhook_secret: Option<Secret>,
    /// Whether an SOS alert's own message goes into its notifications.
    pub webhook_include_message: bool,
    /// Minimum time between two SOS notifications of one user.
    #[serde(with = "humantime_serde")]
    pub alert_cooldown: Duration,
    /// A directory with a tuned copy of the detector's lexicon (`config/crisis/*.toml`).
    pub lexicon_dir: Option<PathBuf>,
    /// A TOML file of hotlines replacing the built-in `config/crisis/resources.toml`.
    pub resources_file: Option<PathBuf>,
}

impl Default for CrisisConfig {
    fn default() -> Self {
        CrisisConfig {
            resource_level: CrisisLevel::Medium,
            auto_notify: false,
            webhook_url: None,
            webhook_secret: None,
            webhook_include_message: false,
            alert_cooldown: Duration::from_secs(15 * 60),
            lexicon_dir: None,
            resources_file: None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: Option<String>,
    pub starttls: Option<bool>,
    /// The app or web address put in mailed links, e.g. `https://persona.example.com`.
    pub public_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, or `info,persona=debug`.
    pub level: String,
    /// Unset: pretty on a terminal, JSON otherwise.
    pub format: Option<LogFormat>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
            format: None,
        }
    }
}
