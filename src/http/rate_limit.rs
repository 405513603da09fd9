//! Per-client-IP rate limits (tower_governor): the general `rate_limit.per_ip_per_minute`
//! on every route, and `rate_limit.login_per_ip_per_minute` on the credential routes. Over
//! the limit: 429 `rate_limited` with `Retry-After`.
//!
//! The client IP is the TCP peer, unless the peer is one of `server.trusted_proxies`: then it
//! is the right-most address of `X-Forwarded-For` that is not a trusted proxy (the left-most
//! entries are whatever the client chose to send).

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

/// The client's address (see the module docs), as an extractor for limits that handlers
/// apply themselves.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

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
        self.of(req).ok_or(GovernorError::UnableToExtractKey)
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

async fn forget_idle_clients<L>(limiter: Weak<L>)
where
    L: RetainRecent + Send + Sync + 'static,
{
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.tick().await;
    loop {
        tick.tick().await;
        match limiter.upgrade() {
            Some(limiter) => limiter.retain_recent(),
            None => return,
        }
    }
}

/// The one method of governor's keyed limiter this module needs, named so the cleanup task
/// can hold a `Weak` to it.
pub trait RetainRecent {
    fn retain_recent(&self);
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
}
