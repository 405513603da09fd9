//! The one outbound HTTP client (reqwest with rustls): the AI upstream and webhooks share
//! its connection pool. Per-call limits (total time) are set on each request.

use std::time::Duration;

/// The client; connecting to any remote host gives up after `connect_timeout`.
pub fn outbound(connect_timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .user_agent(concat!("persona/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .no_proxy()
        .build()?)
}
