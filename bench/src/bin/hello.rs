//! The floor: a bare axum "hello" on the same axum, tokio and hyper as persona, with no
//! middleware. `hello [ADDR]` (default 127.0.0.1:4001).

use axum::{Router, routing::get, serve::ListenerExt};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4001".into());
    let app = Router::new().route("/", get(|| async { "hello" }));
    // Like any server tuned for small writes (providers, and persona): no Nagle delay.
    let listener = tokio::net::TcpListener::bind(&addr).await?.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}
