//! `/metrics`: Prometheus text with request counts and latency histograms by route and
//! status. The recorder is process-wide (the `metrics` facade has one global recorder), so
//! several servers in one process (the tests) share it.

use std::{
    collections::HashMap,
    sync::{
        LazyLock, OnceLock, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    extract::MatchedPath,
    http::{Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{FastHash, app::AppState};

/// Seconds; from 0.5 ms (cached reads) to 60 s (AI calls).
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first, which this crate never does.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

pub fn router() -> OpenApiRouter<AppState> {
    handle();
    OpenApiRouter::new().routes(routes!(render))
}

/// Prometheus metrics of this process.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "system",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String))
)]
async fn render() -> Response {
    upkeep();
    let handle = handle();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}

/// Folds the latencies recorded since the last call into the histograms' buckets. Until
/// then the recorder keeps every sample (8 bytes each, in blocks): a server nobody scrapes
/// grew by about 1 MB per 55,000 requests, for good. The app calls it every few seconds;
/// `/metrics` calls it too.
pub fn upkeep() {
    handle().run_upkeep();
}

/// The labels of one request: every value from a fixed set, never from what the client
/// typed. A method the API does not serve is `other`, a path is its route template (or
/// `unmatched`), and a status is one of the codes the server answers. Each new value would be
/// a new series kept for the life of the process.
#[derive(Debug, Clone, Copy)]
pub struct Labels {
    method: &'static str,
    route: &'static str,
}

impl Labels {
    /// The labels of a request to `route`, served under `mount` (`/api/v1`, `/api`, or
    /// `""` outside the API).
    pub fn of(method: &Method, mount: &'static str, route: Option<&MatchedPath>) -> Labels {
        Labels {
            method: method_label(method),
            route: route.map_or("unmatched", |p| intern(mount, p.as_str())),
        }
    }

    /// Counts the request and observes its latency. The counter and histogram of each
    /// (method, route, status) are looked up once and kept: the per-request path neither
    /// allocates label strings nor hashes them into the recorder's registry.
    pub fn record(self, status: StatusCode, latency: Duration) {
        LAST_MINUTE.count();
        type Key = (usize, usize, u16);
        static HANDLES: LazyLock<RwLock<HashMap<Key, (Counter, Histogram)>>> =
            LazyLock::new(RwLock::default);
        // The labels are interned, so their addresses identify them.
        let key = (
            self.method.as_ptr() as usize,
            self.route.as_ptr() as usize,
            status.as_u16(),
        );
        let seconds = latency.as_secs_f64();
        if let Some((counter, histogram)) = HANDLES.read().ok().as_ref().and_then(|h| h.get(&key)) {
            counter.increment(1);
            histogram.record(seconds);
            return;
        }
        let labels = [
            ("method", self.method),
            ("route", self.route),
            ("status", intern("", status.as_str())),
        ];
        let counter = metrics::counter!("http_requests_total", &labels);
        let histogram = metrics::histogram!("http_request_duration_seconds", &labels);
        counter.increment(1);
        histogram.record(seconds);
        if let Ok(mut handles) = HANDLES.write() {
            handles.insert(key, (counter, histogram));
        }
    }
}

/// Requests answered in the last minute, by second: the console's "requests per minute".
static LAST_MINUTE: PerSecond = PerSecond::new();

/// The requests this process answered in the last 60 seconds (all routes, every status).
pub fn requests_last_minute() -> u64 {
    LAST_MINUTE.sum(now_secs())
}

/// Seconds since the counter was first used: a monotonic clock, so a step of the wall
/// clock neither doubles nor empties the figure.
fn now_secs() -> u64 {
    static START: LazyLock<std::time::Instant> = LazyLock::new(std::time::Instant::now);
    START.elapsed().as_secs()
}

/// Counts per second over a ring of 60 seconds. A bucket is reset by the first count of a
/// new second; counts racing with that reset may be lost, which a rate shown to a person
/// can afford (no lock on the request path).
struct PerSecond {
    buckets: [(AtomicU64, AtomicU64); 60],
}

impl PerSecond {
    const fn new() -> PerSecond {
        PerSecond {
            buckets: [const { (AtomicU64::new(0), AtomicU64::new(0)) }; 60],
        }
    }

    fn count(&self) {
        self.count_at(now_secs());
    }

    fn count_at(&self, second: u64) {
        let (at, count) = &self.buckets[(second % 60) as usize];
        let seen = at.load(Ordering::Relaxed);
        if seen != second
            && at
                .compare_exchange(seen, second, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            count.store(1, Ordering::Relaxed);
            return;
        }
        count.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts of the 60 seconds up to `now`.
    fn sum(&self, now: u64) -> u64 {
        self.buckets
            .iter()
            .filter(|(at, _)| now.saturating_sub(at.load(Ordering::Relaxed)) < 60)
            .map(|(_, count)| count.load(Ordering::Relaxed))
            .sum()
    }
}

/// A `&'static` copy of a label value. Only route templates and status codes come here, a
/// fixed set, so the leaked strings are bounded by the routes the server has.
fn intern(mount: &'static str, route: &str) -> &'static str {
    type Seen = HashMap<&'static str, HashMap<Box<str>, &'static str, FastHash>, FastHash>;
    static SEEN: LazyLock<RwLock<Seen>> = LazyLock::new(RwLock::default);
    let known = |seen: &Seen| seen.get(mount).and_then(|m| m.get(route)).copied();
    if let Some(label) = SEEN.read().ok().and_then(|seen| known(&seen)) {
        return label;
    }
    let Ok(mut seen) = SEEN.write() else {
        return "unmatched";
    };
    if let Some(label) = known(&seen) {
        return label;
    }
    let label: &'static str = Box::leak(format!("{mount}{route}").into_boxed_str());
    seen.entry(mount).or_default().insert(route.into(), label);
    label
}

/// The `method` label: the methods the API serves, else `other` (methods are
/// case-sensitive, so `get` is `other` too).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_minute_is_counted_by_second() {
        let ring = PerSecond::new();
        for second in [1000, 1000, 1001, 1059] {
            ring.count_at(second);
        }
        assert_eq!(ring.sum(1059), 4);
        // A minute later the first second's bucket is reused, and its old count dropped.
        ring.count_at(1060);
        assert_eq!(ring.sum(1060), 3);
        assert_eq!(ring.sum(1200), 0);
    }

    #[test]
    fn unknown_methods_are_other() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::TRACE), "other");
        for invented in ["BREW", "get", "X-1"] {
            let method = Method::from_bytes(invented.as_bytes()).expect("a valid token");
            assert_eq!(method_label(&method), "other", "{invented}");
        }
    }
}
