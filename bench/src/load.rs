//! A small closed-loop load generator: `conns` HTTP/1.1 keep-alive connections, each sending
//! its next request as soon as the previous answer is read, for a fixed time. One thread
//! (like `wrk -t1`), so the server under test keeps the other core.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, client::conn::http1};
use hyper_util::rt::TokioIo;

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub requests: u64,
    /// Answers outside 2xx (and transport errors).
    pub errors: u64,
    /// The errors by status (0: a transport error or a broken body).
    pub error_statuses: std::collections::BTreeMap<u16, u64>,
    pub seconds: f64,
    /// Latencies in microseconds, sorted.
    latencies: Vec<u32>,
}

impl Stats {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    /// The `q` quantile (0..1) in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let index = ((self.latencies.len() as f64 - 1.0) * q).round() as usize;
        f64::from(self.latencies[index]) / 1000.0
    }

    pub fn p50(&self) -> f64 {
        self.quantile_ms(0.50)
    }

    pub fn p99(&self) -> f64 {
        self.quantile_ms(0.99)
    }
}

/// What a latency sample ends at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// The whole body was read.
    Body,
    /// The first SSE `data:` line arrived (what a user of a stream waits for: a provider's
    /// keep-alive comment comes before it); the rest is drained.
    FirstEvent,
}

/// Whether `seen` (a stream's bytes so far) holds a complete line that starts with `data:`.
fn has_event(seen: &[u8]) -> bool {
    seen.split(|&b| b == b'\n')
        .rev()
        .skip(1)
        .any(|line| line.starts_with(b"data:"))
}

pub type MakeRequest = Arc<dyn Fn(u64) -> Request<Full<Bytes>> + Send + Sync>;

/// Runs the load for `duration` on a fresh single-threaded runtime.
pub fn run(
    addr: SocketAddr,
    conns: usize,
    duration: Duration,
    until: Until,
    make: MakeRequest,
) -> Stats {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let start = Instant::now();
        let deadline = start + duration;
        let workers: Vec<_> = (0..conns)
            .map(|worker| {
                let make = make.clone();
                tokio::spawn(async move {
                    worker_loop(addr, worker as u64, deadline, until, make).await
                })
            })
            .collect();
        let mut total = Stats::default();
        for worker in workers {
            let stats = worker.await.unwrap_or_default();
            total.requests += stats.requests;
            total.errors += stats.errors;
            for (status, n) in stats.error_statuses {
                *total.error_statuses.entry(status).or_default() += n;
            }
            total.latencies.extend(stats.latencies);
        }
        total.seconds = start.elapsed().as_secs_f64().max(1e-9);
        total.latencies.sort_unstable();
        total
    })
}

async fn connect(addr: SocketAddr) -> Option<http1::SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream.set_nodelay(true).ok()?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(connection);
    Some(sender)
}

async fn worker_loop(
    addr: SocketAddr,
    worker: u64,
    deadline: Instant,
    until: Until,
    make: MakeRequest,
) -> Stats {
    let mut stats = Stats::default();
    let mut sender = None;
    let mut n = worker << 32;
    while Instant::now() < deadline {
        if sender.is_none() {
            sender = connect(addr).await;
            if sender.is_none() {
                stats.errors += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        }
        let Some(s) = sender.as_mut() else { continue };
        if s.ready().await.is_err() {
            sender = None;
            continue;
        }
        n += 1;
        let request = make(n);
        let started = Instant::now();
        let ok = match s.send_request(request).await {
            Ok(response) => {
                let status = response.status().as_u16();
                let good = response.status().is_success();
                let mut body = response.into_body();
                let mut event = None;
                let mut seen = Vec::new();
                let mut broken = false;
                while let Some(frame) = body.frame().await {
                    match frame {
                        Ok(frame) => {
                            if until == Until::FirstEvent && event.is_none() {
                                if let Some(data) = frame.data_ref() {
                                    seen.extend_from_slice(data);
                                }
                                if has_event(&seen) {
                                    event = Some(started.elapsed());
                                }
                            }
                        }
                        Err(_) => {
                            broken = true;
                            break;
                        }
                    }
                }
                let elapsed = match until {
                    Until::FirstEvent => event.unwrap_or_else(|| started.elapsed()),
                    Until::Body => started.elapsed(),
                };
                if good && !broken {
                    stats
                        .latencies
                        .push(elapsed.as_micros().min(u128::from(u32::MAX)) as u32);
                } else {
                    *stats
                        .error_statuses
                        .entry(if broken { 0 } else { status })
                        .or_default() += 1;
                }
                good && !broken
            }
            Err(_) => {
                sender = None;
                *stats.error_statuses.entry(0).or_default() += 1;
                false
            }
        };
        stats.requests += u64::from(ok);
        stats.errors += u64::from(!ok);
    }
    stats
}

/// A request with an optional JSON body and bearer token.
pub fn request(
    method: &str,
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
    content_type: &str,
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    if body.is_some() {
        builder = builder.header("content-type", content_type);
    }
    builder
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .expect("a valid request")
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_event_is_a_whole_data_line() {
        assert!(!super::has_event(b": FAKE PROVIDER PROCESSING\n\n"));
        assert!(!super::has_event(b": keep-alive\n\ndata: {\"a\""));
        assert!(super::has_event(b": keep-alive\n\ndata: {}\n"));
        assert!(super::has_event(b"data: [DONE]\n\n"));
    }
}
