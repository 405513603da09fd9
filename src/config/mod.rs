//! Typed configuration: built-in defaults → `persona.toml` → `PERSONA_<SECTION>__<KEY>`
//! environment variables, later wins (SPEC section 1).
//!
//! Every key is typed (durations like `"15m"`, sizes like `"64MiB"`, socket addresses) and
//! documented in `persona.toml.example`; unknown keys are errors, so a typo cannot silently
//! fall back to a default. [`Config::validate`] checks what types alone cannot, and every
//! error names the key.

mod sections;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

pub use crate::domain::Secret;
use anyhow::{Context, bail};
use bytesize::ByteSize;
use figment::{
    Figment,
    providers::{Env, Format, Toml},
};
pub use sections::*;

/// The documented example configuration, also printed by `persona admin config example`.
pub const EXAMPLE: &str = include_str!("../../persona.toml.example");

/// The shortest `storage.busy_timeout` allowed with `storage.litestream` on.
pub const LITESTREAM_MIN_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The file read when neither `--config` nor `PERSONA_CONFIG` names one.
pub const DEFAULT_FILE: &str = "persona.toml";

impl Config {
    /// Loads the layered configuration. `file` is `--config` / `PERSONA_CONFIG`; when it is
    /// `None`, `./persona.toml` is read if present. Environment variables are read from the
    /// process.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let mut figment = Figment::new();
        match file {
            Some(path) => {
                if !path.is_file() {
                    bail!("configuration file {} does not exist", path.display());
                }
                figment = figment.merge(Toml::file_exact(path));
            }
            None if Path::new(DEFAULT_FILE).is_file() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_FILE));
            }
            None => {}
        }
        // Only `SECTION__KEY` variables are configuration; `PERSONA_CONFIG` names the file.
        let env = Env::prefixed("PERSONA_")
            .filter(|key| key.as_str().contains("__"))
            .split("__");
        let config: Config = figment
            .merge(env)
            .extract()
            .map_err(|err| anyhow::anyhow!(describe_figment_error(err)))
            .context("invalid configuration")?;
        config.validate().context("invalid configuration")?;
        Ok(config)
    }

    /// Checks what serde types cannot; each error names the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        let s = &self.server;
        for origin in &s.cors_origins {
            if origin != "*" {
                let parsed = url::Url::parse(origin).ok();
                let ok = parsed.as_ref().is_some_and(|u| {
                    matches!(u.scheme(), "http" | "https")
                        && u.host().is_some()
                        && u.path() == "/"
                        && !origin.ends_with('/')
                });
                if !ok {
                    bail!(
                        "server.cors_origins: {origin:?} is not an origin like \"https://app.example.com\""
                    );
                }
            }
        }
        for proxy in &s.trusted_proxies {
            if parse_ip_range(proxy).is_none() {
                bail!("server.trusted_proxies: {proxy:?} is not an IP address or CIDR range");
            }
        }
        positive("server.max_body", s.max_body.as_u64())?;
        positive_duration("server.request_timeout", s.request_timeout)?;
        positive_duration("storage.busy_timeout", self.storage.busy_timeout)?;
        // Litestream holds a read transaction while it copies the WAL and takes the write
        // lock for its own checkpoints: a short busy timeout would turn those moments into 503s.
        if self.storage.litestream && self.storage.busy_timeout < LITESTREAM_MIN_BUSY_TIMEOUT {
            bail!("storage.busy_timeout: must be at least 5s when storage.litestream is on");
        }
        if self.storage.data_dir.as_os_str().is_empty() {
            bail!("storage.data_dir: must not be empty");
        }

        let a = &self.auth;
        positive_duration("auth.access_ttl", a.access_ttl)?;
        positive_duration("auth.refresh_ttl", a.refresh_ttl)?;
        if a.refresh_ttl <= a.access_ttl {
            bail!("auth.refresh_ttl: must be longer than auth.access_ttl");
        }
        if !(1..=16).contains(&a.argon2_parallelism) {
            bail!("auth.argon2_parallelism: must be between 1 and 16");
        }
        if a.argon2_memory_kib < 8 * a.argon2_parallelism || a.argon2_memory_kib > 4 * 1024 * 1024 {
            bail!(
                "auth.argon2_memory_kib: must be between 8 × argon2_parallelism and 4194304 (4 GiB)"
            );
        }
        if !(1..=100).contains(&a.argon2_iterations) {
            bail!("auth.argon2_iterations: must be between 1 and 100");
        }
        if a.issuer.trim().is_empty() {
            bail!("auth.issuer: must not be empty");
        }

        positive(
            "rate_limit.per_ip_per_minute",
            self.rate_limit.per_ip_per_minute.into(),
        )?;
        positive(
            "rate_limit.login_per_ip_per_minute",
            self.rate_limit.login_per_ip_per_minute.into(),
        )?;
        positive_duration(
            "server.header_read_timeout",
            self.server.header_read_timeout,
        )?;
        positive_duration("server.keep_alive_timeout", self.server.keep_alive_timeout)?;
        positive("server.max_connections", self.server.max_connections.into())?;
        positive("sync.max_devices", self.sync.max_devices.into())?;
        if self.sync.max_devices > 10_000 {
            bail!("sync.max_devices: must be at most 10000");
        }
        positive("backups.max_size", self.backups.max_size.as_u64())?;
        positive("backups.retain", self.backups.retain.into())?;
        positive(
            "backups.snapshot_retain",
            self.backups.snapshot_retain.into(),
        )?;
        if let Some(interval) = self.backups.snapshot_interval {
            positive_duration("backups.snapshot_interval", interval)?;
        }
        positive("backups.max_transfers", self.backups.max_transfers.into())?;
        // A backup is held in memory a few times over while it is sealed, and one SQLite
        // value cannot exceed 1 GB.
        if self.backups.max_size > ByteSize::mib(512) {
            bail!("backups.max_size: must be at most 512MiB");
        }

        let ai = &self.ai;
        http_url("ai.base_url", &ai.base_url)?;
        for path in ["chat/completions", "embeddings", "models"] {
            if let Err(err) = ai.endpoint(path) {
                bail!(
                    "ai.base_url: {:?} gives no valid URL for {path}: {err}",
                    ai.base_url
                );
            }
        }
        if ai.default_model.trim().is_empty() {
            bail!("ai.default_model: must not be empty");
        }
        positive("ai.requests_per_minute", ai.requests_per_minute.into())?;
        positive("ai.max_tokens", ai.max_tokens.into())?;
        positive_duration("ai.timeout", ai.timeout)?;
        positive_duration("ai.connect_timeout", ai.connect_timeout)?;
        positive_duration("ai.stream_timeout", ai.stream_timeout)?;
        if ai.max_retries > 10 {
            bail!("ai.max_retries: must be at most 10");
        }
        if let Some(url) = &self.crisis.webhook_url {
            http_url("crisis.webhook_url", url.expose())?;
        }

        if !(1..=100_000).contains(&self.conversations.search_window) {
            bail!("conversations.search_window: must be between 1 and 100000");
        }

        if let Some(host) = &self.smtp.host {
            if host.trim().is_empty() {
                bail!("smtp.host: must not be empty when set");
            }
            if self.smtp.from.is_none() {
                bail!("smtp.from: is required when smtp.host is set");
            }
        }

        tracing_subscriber::EnvFilter::try_new(&self.log.level).map_err(|err| {
            anyhow::anyhow!(
                "log.level: {:?} is not a valid filter: {err}",
                self.log.level
            )
        })?;
        Ok(())
    }

    /// `persona.db` inside the data dir.
    pub fn database_path(&self) -> PathBuf {
        self.storage.data_dir.join("persona.db")
    }

    /// `backups.snapshot_dir`, or `snapshots` inside the data dir.
    pub fn snapshot_dir(&self) -> PathBuf {
        self.backups
            .snapshot_dir
            .clone()
            .unwrap_or_else(|| self.storage.data_dir.join("snapshots"))
    }

    /// `secrets.toml` inside the data dir.
    pub fn secrets_path(&self) -> PathBuf {
        self.storage.data_dir.join("secrets.toml")
    }
}

/// `server.bind: invalid socket address syntax (from TOML file persona.toml)`: the key as
/// written in the file (environment keys arrive upper-cased), the reason and the source.
fn describe_figment_error(err: figment::Error) -> String {
    err.into_iter()
        .map(|e| {
            let key = e.path.join(".").to_lowercase();
            let source = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(source) => format!(" (from {} {source})", m.name),
                    None => format!(" (from {})", m.name),
                })
                .unwrap_or_default();
            if key.is_empty() {
                format!("{}{source}", e.kind)
            } else {
                format!("{key}: {}{source}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn positive(key: &str, value: u64) -> anyhow::Result<()> {
    if value == 0 {
        bail!("{key}: must be greater than zero");
    }
    Ok(())
}

fn positive_duration(key: &str, value: Duration) -> anyhow::Result<()> {
    if value.is_zero() {
        bail!("{key}: must be longer than zero");
    }
    Ok(())
}

fn http_url(key: &str, value: &str) -> anyhow::Result<()> {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => bail!("{key}: {value:?} is not an http(s) URL"),
    }
}

/// Parses `10.0.0.1` or `10.0.0.0/8` (v4 or v6) into an address and a prefix length.
pub fn parse_ip_range(text: &str) -> Option<(std::net::IpAddr, u8)> {
    let (addr, prefix) = match text.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (text, None),
    };
    let addr: std::net::IpAddr = addr.trim().parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
        None => max,
    };
    Some((addr, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uncomments every `# key = value` line of the example.
    fn uncommented_example() -> String {
        EXAMPLE
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest)
                    if rest.split_once(" = ").is_some_and(|(k, _)| {
                        k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    }) =>
                {
                    rest
                }
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn keys_of(value: &serde_json::Value) -> Vec<String> {
        let mut keys = Vec::new();
        for (section, table) in value.as_object().unwrap() {
            for key in table.as_object().unwrap().keys() {
                keys.push(format!("{section}.{key}"));
            }
        }
        keys.sort();
        keys
    }

    #[test]
    fn example_documents_every_key_and_parses() {
        let parsed: Config = toml::from_str(&uncommented_example()).expect("example parses");
        parsed.validate().expect("example values are valid");
        let documented = keys_of(&serde_json::to_value(&parsed).unwrap());
        let all = keys_of(&serde_json::to_value(Config::default()).unwrap());
        assert_eq!(documented, all);
    }

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    /// What the URL parser forgives around a lone base URL (a trailing space in the TOML, a
    /// stray control character) is forgiven in the endpoints too, instead of landing in the
    /// port and keeping the AI feature from starting (found in review).
    #[test]
    fn an_ai_base_url_with_space_around_it_makes_good_endpoints() {
        for base in [
            "http://localhost:4000 ",
            " http://localhost:4000/\u{0}",
            "http://localhost:4000\t",
        ] {
            let mut config = Config::default();
            config.ai.base_url = base.to_owned();
            config.validate().expect(base);
            assert_eq!(
                config.ai.endpoint("chat/completions").unwrap().as_str(),
                "http://localhost:4000/chat/completions",
                "{base:?}"
            );
        }
        let mut config = Config::default();
        config.ai.base_url = "https://openrouter.ai/api/v1/".to_owned();
        assert_eq!(
            config.ai.endpoint("models").unwrap().as_str(),
            "https://openrouter.ai/api/v1/models"
        );
        config.ai.base_url = "localhost:4000".to_owned();
        assert!(config.validate().is_err());
    }

    #[test]
    fn sizes_and_durations_read_human_units() {
        let config: Config = toml::from_str(
            "[server]\nmax_body = \"2MiB\"\nrequest_timeout = \"1m 30s\"\n[auth]\nrefresh_ttl = \"7d\"",
        )
        .unwrap();
        assert_eq!(config.server.max_body.as_u64(), 2 * 1024 * 1024);
        assert_eq!(config.server.request_timeout, Duration::from_secs(90));
        assert_eq!(config.auth.refresh_ttl, Duration::from_secs(7 * 86400));
    }

    #[test]
    fn invalid_values_name_their_key() {
        let mut config = Config::default();
        config.server.cors_origins = vec!["not a url".into()];
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("server.cors_origins"), "{err}");

        let mut config = Config::default();
        config.auth.argon2_memory_kib = 1;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("auth.argon2_memory_kib"), "{err}");
    }

    #[test]
    fn litestream_mode_needs_a_busy_timeout_of_five_seconds() {
        let mut config = Config::default();
        config.storage.litestream = true;
        config.validate().unwrap();
        config.storage.busy_timeout = Duration::from_secs(1);
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("storage.busy_timeout"), "{err}");
    }

    #[test]
    fn ip_ranges_parse() {
        assert_eq!(parse_ip_range("10.0.0.0/8").unwrap().1, 8);
        assert_eq!(parse_ip_range("::1").unwrap().1, 128);
        assert!(parse_ip_range("10.0.0.0/33").is_none());
        assert!(parse_ip_range("proxy").is_none());
    }
}
