//! Load from the Python clients people use (aiohttp, httpx, the OpenAI SDK): `bench/clients.py`
//! in the venv `bench/run` prepares (`PERSONA_BENCH_PYTHON`). The harness's own client reads
//! bytes; these read a stream the way an app does, so a relay that holds events back (the
//! Nagle / delayed-ACK stall of issue 17) shows up here even when the first byte is on time.

use std::{net::SocketAddr, path::Path, process::Command, time::Duration};

use anyhow::{Context, bail};
use serde_json::Value;

/// What one client run measured.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub p50: f64,
    pub p99: f64,
}

impl Run {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    pub fn line(&self) -> String {
        let errors = if self.errors > 0 {
            format!(", {} errors", self.errors)
        } else {
            String::new()
        };
        crate::latency_line(self.rps(), self.p50, self.p99, &errors)
    }
}

/// The Python interpreter of the bench venv, when `bench/run` made one.
pub fn python() -> Option<String> {
    std::env::var("PERSONA_BENCH_PYTHON")
        .ok()
        .filter(|p| Path::new(p).exists())
}

/// Runs `client` (`aiohttp`, `httpx` or `openai`) against the OpenAI-style API at
/// `http://addr{base}` with `conns` in flight for `d`; `stream` measures the time to the first
/// `data:` event.
#[allow(clippy::too_many_arguments)]
pub fn run(
    python: &str,
    repo: &Path,
    client: &str,
    addr: SocketAddr,
    base: &str,
    token: &str,
    conns: usize,
    d: Duration,
    stream: bool,
) -> anyhow::Result<Run> {
    let output = Command::new(python)
        .arg(repo.join("bench/clients.py"))
        .args(["--client", client])
        .args(["--url", &format!("http://{addr}{base}")])
        .args(["--token", token])
        .args(["--conns", &conns.to_string()])
        .args(["--seconds", &d.as_secs_f64().to_string()])
        .arg(if stream { "--stream" } else { "--json" })
        .output()
        .context("run bench/clients.py")?;
    if !output.status.success() {
        bail!(
            "bench/clients.py --client {client} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let v: Value = serde_json::from_slice(&output.stdout)?;
    let run = Run {
        requests: v["requests"].as_u64().context("requests")?,
        errors: v["errors"].as_u64().unwrap_or(0),
        seconds: v["seconds"].as_f64().context("seconds")?,
        p50: v["p50"].as_f64().unwrap_or(f64::NAN),
        p99: v["p99"].as_f64().unwrap_or(f64::NAN),
    };
    if run.requests == 0 {
        bail!("bench/clients.py --client {client}: no request succeeded");
    }
    Ok(run)
}
