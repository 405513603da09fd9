//! Per-client-IP rate limits (tower_governor): the general `rate_limit.per_ip_per_minute`
//! on every route, and `rate_limit.login_per_ip_per_minute` on the credential routes. Over
//! the limit: 429 `rate_limited` with `Retry-After`.
//!
//! The client IP is the TCP peer, unless the peer is one of `server.trusted_proxies`: then it
//! is the right-most address of `X-Forwarded-For` that is not a trusted proxy (the left-most
//! entries are whatever the client chose to send).
//!
//! Limits are kept per client *network*: an IPv4 address, or the /64 of an IPv6 address (one
//! subscriber's usual allocation; hopping between its 2^64 addresses would otherwise give a
//! fresh limit, and a fresh table entry, per request). Idle clients are forgotten every
//! minute, sooner when a table passes `MAX_CLIENTS`.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, Weak},
    time::Duration,
};

use axum::{body::Body, extract::ConnectInfo, http::Request, response::IntoResponse};
use governor::middleware::NoOpMiddleware;
use tower_governor::{
    GovernorError, GovernorLayer, governor::GovernorConfigBuilder, key_extractor::KeyExtractor,
};

use crate::{
    config::{Config, parse_ip_range},
    error::ApiError,
};

pub type RateLimitLayer =
    GovernorLayer<ClientIp, NoOpMiddleware<governor::clock::QuantaInstant>, Body>;

#[derive(Debug, Clone)]
pub struct ClientIp {
    trusted: Arc<Vec<(IpAddr, u8)>>,
}

impl ClientIp {
    pub fn new(config: &Config) -> Self {
        ClientIp {
            trusted: Arc::new(
                config
                    .server
                    .trusted_proxies
                    .iter()
                    .filter_map(|p| parse_ip_range(p))
                    .collect(),
            ),
        }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted
            .iter()
            .any(|(net, prefix)| in_range(ip, *net, *prefix))
    }

    /// The client address of `req` (see the module docs).
    pub fn of<T>(&self, req: &Request<T>) -> Option<IpAddr> {
        self.of_parts(req.headers(), req.extensions())
    }

    /// The client address from a request's headers and extensions.
    fn of_parts(
        &self,
        headers: &axum::http::HeaderMap,
        extensions: &axum::http::Extensions,
    ) -> Option<IpAddr> {
        let peer = extensions.get::<ConnectInfo<SocketAddr>>()?.0.ip();
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",");
        for hop in forwarded.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if self.is_trusted(ip) => continue,
                Ok(ip) => return Some(ip),
                Err(_) => break,
            }
        }
        Some(peer)
    }
}

/// The key a per-client limit counts under: an IPv4 address (an IPv4-mapped IPv6 one
/// included) as it is, an IPv6 address as its /64 network.
pub fn client_network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        },
    }
}

/// The client's address (see the module docs), as an extractor for limits that handlers
/// apply themselves.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// The key for a per-client limit (see [`client_network`]).
    pub fn network(self) -> IpAddr {
        client_network(self.0)
    }
}

impl axum::extract::FromRequestParts<crate::app::AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &crate::app::AppState,
    ) -> Result<Self, ApiError> {
        ClientIp::new(&state.config)
            .of_parts(&parts.headers, &parts.extensions)
            .map(ClientAddr)
            .ok_or_else(|| ApiError::BadRequest("The client address is unknown.".into()))
    }
}

fn in_range(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            u128::from(ip) & mask == u128::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V4(_)) => ip
            .to_ipv4_mapped()
            .is_some_and(|v4| in_range(IpAddr::V4(v4), net, prefix)),
        _ => false,
    }
}

impl KeyExtractor for ClientIp {
    type Key = IpAddr;

    fn extract<T>(&self, req: &Request<T>) -> Result<IpAddr, GovernorError> {
        self.of(req)
            .map(client_network)
            .ok_or(GovernorError::UnableToExtractKey)
    }
}

/// The limit on every route.
pub fn general_layer(config: &Config) -> RateLimitLayer {
    layer(config, config.rate_limit.per_ip_per_minute)
}

/// The stricter limit on login and the other credential routes.
pub fn login_layer(config: &Config) -> RateLimitLayer {
    layer(config, config.rate_limit.login_per_ip_per_minute)
}

fn layer(config: &Config, per_minute: u32) -> RateLimitLayer {
    let per_minute = per_minute.max(1);
    let governor = GovernorConfigBuilder::default()
        .key_extractor(ClientIp::new(config))
        .period(Duration::from_secs(60) / per_minute)
        .burst_size(per_minute)
        .finish()
        .expect("period and burst are non-zero");
    // Forget idle clients now and then, so the table does not grow with every address seen.
    // The task lives as long as the limiter (it holds a `Weak`), not on `app.tasks`: the
    // layer is built with the router, before and without an app.
    let limiter = Arc::downgrade(governor.limiter());
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(forget_idle_clients(limiter));
    }
    GovernorLayer::new(governor).error_handler(|error| match error {
        GovernorError::TooManyRequests { wait_time, .. } => ApiError::rate_limited(
            "Too many requests; slow down.",
            Duration::from_secs(wait_time.max(1)),
        )
        .into_response(),
        GovernorError::UnableToExtractKey => {
            ApiError::BadRequest("The client address is unknown.".into()).into_response()
        }
        GovernorError::Other { code, .. } => code.into_response(),
    })
}

/// Client networks a limiter table holds before it is swept ahead of its minute (~100 bytes
/// each). A client whose limit is still running is never dropped: that would reset it.
pub const MAX_CLIENTS: usize = 100_000;

async fn forget_idle_clients<L>(limiter: Weak<L>)
where
    L: RetainRecent + Send + Sync + 'static,
{
    const CHECK: Duration = Duration::from_secs(5);
    const SWEEP_EVERY: u32 = 12; // one minute of checks
    let mut tick = tokio::time::interval(CHECK);
    tick.tick().await;
    let mut checks = 0u32;
    loop {
        tick.tick().await;
        let Some(limiter) = limiter.upgrade() else {
            return;
        };
        checks += 1;
        if checks >= SWEEP_EVERY || limiter.clients() > MAX_CLIENTS {
            checks = 0;
            limiter.retain_recent();
            if limiter.clients() > MAX_CLIENTS {
                tracing::warn!(
                    clients = limiter.clients(),
                    "more client networks inside their rate-limit window than the table's bound"
                );
            }
        }
    }
}

/// The methods of governor's keyed limiter the cleanup task needs, named so it can hold a
/// `Weak` to it.
pub trait RetainRecent {
    fn retain_recent(&self);
    fn clients(&self) -> usize;
}

impl<K, S, C, M> RetainRecent for governor::RateLimiter<K, S, C, M>
where
    K: std::hash::Hash + Eq + Clone,
    S: governor::state::keyed::ShrinkableKeyedStateStore<K>,
    C: governor::clock::Clock,
    M: governor::middleware::RateLimitingMiddleware<C::Instant>,
{
    fn retain_recent(&self) {
        governor::RateLimiter::retain_recent(self);
        governor::RateLimiter::shrink_to_fit(self);
    }

    fn clients(&self) -> usize {
        governor::RateLimiter::len(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: &str, forwarded: Option<&str>) -> Request<()> {
        let mut req = Request::new(());
        req.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        if let Some(f) = forwarded {
            req.headers_mut()
                .insert("x-forwarded-for", f.parse().unwrap());
        }
        req
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let mut config = Config::default();
        config.server.trusted_proxies = vec!["10.0.0.0/8".into()];
        let ip = ClientIp::new(&config);
        let spoofed = request("203.0.113.9:5000", Some("1.2.3.4"));
        assert_eq!(ip.of(&spoofed), Some("203.0.113.9".parse().unwrap()));
        let proxied = request("10.0.0.2:5000", Some("6.6.6.6, 198.51.100.7, 10.0.0.5"));
        assert_eq!(ip.of(&proxied), Some("198.51.100.7".parse().unwrap()));
        let direct = request("10.0.0.2:5000", None);
        assert_eq!(ip.of(&direct), Some("10.0.0.2".parse().unwrap()));
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let net = |s: &str| client_network(s.parse().unwrap());
        assert_eq!(net("2001:db8:1:2::1"), net("2001:db8:1:2:ffff::9"));
        assert_eq!(net("2001:db8:1:2::1").to_string(), "2001:db8:1:2::");
        assert_ne!(net("2001:db8:1:2::1"), net("2001:db8:1:3::1"));
        assert_eq!(net("::ffff:198.51.100.7").to_string(), "198.51.100.7");
        assert_ne!(net("198.51.100.7"), net("198.51.100.8"));
    }
}
