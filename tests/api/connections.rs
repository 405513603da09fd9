//! Issue 14: connections cannot be held forever — a request head dripped byte by byte is cut
//! off after `server.header_read_timeout`, an idle kept-alive connection after
//! `server.keep_alive_timeout`, and past `server.max_connections` new ones wait.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::TestApp;

/// Reads until the peer closes (or resets) the connection; `None` if it is still open after
/// `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((start + wait).into(), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn a_request_head_sent_byte_by_byte_is_cut_off_while_health_answers() {
    let app = TestApp::spawn_with(|c| c.server.header_read_timeout = Duration::from_secs(1)).await;
    let stream = TcpStream::connect(app.addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let drip = tokio::spawn(async move {
        for byte in b"GET /health HTTP/1.1\r\nHost: persona\r\nX-Slow: 0123456789abcdef\r\n\r\n" {
            if write.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    let mut closed = None;
    while start.elapsed() < Duration::from_secs(5) {
        assert_eq!(app.get("/health").await.status(), StatusCode::OK);
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(100), read.read(&mut buf)).await
        {
            closed = Some(start.elapsed());
            break;
        }
    }
    drip.abort();
    let closed = closed.expect("the dripping client is disconnected");
    assert!(closed >= Duration::from_millis(900), "{closed:?}");
    assert_eq!(app.get("/health").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_but_a_fresh_one_may_wait_for_its_head() {
    let app = TestApp::spawn_with(|c| {
        c.server.header_read_timeout = Duration::from_secs(3);
        c.server.keep_alive_timeout = Duration::from_secs(1);
    })
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: persona\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let closed = closed_within(&mut stream, Duration::from_secs(5))
        .await
        .expect("an idle connection is closed");
    assert!(closed < Duration::from_millis(2500), "{closed:?}");

    // A connection that has sent nothing yet gets the header timeout, not the idle one.
    let mut fresh = TcpStream::connect(app.addr).await.unwrap();
    let closed = closed_within(&mut fresh, Duration::from_secs(6))
        .await
        .expect("a silent connection is closed");
    assert!(closed >= Duration::from_millis(2500), "{closed:?}");
}

#[tokio::test]
async fn a_kept_alive_connection_gets_the_header_timeout_for_its_next_head() {
    let app = TestApp::spawn_with(|c| {
        c.server.header_read_timeout = Duration::from_secs(1);
        c.server.keep_alive_timeout = Duration::from_secs(30);
    })
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let mut buf = [0u8; 4096];
    // A few requests, the last a second after the one before (past the first head's
    // deadline), then half of a head.
    for pause in [0, 0, 1200] {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: persona\r\n\r\n")
            .await
            .unwrap();
        let n = stream.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    }
    stream.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
    let closed = closed_within(&mut stream, Duration::from_secs(5))
        .await
        .expect("a stalled head is cut off after the header timeout, not the idle one");
    assert!(closed >= Duration::from_millis(900), "{closed:?}");
    assert!(closed < Duration::from_millis(2500), "{closed:?}");
}

#[tokio::test]
async fn past_max_connections_new_ones_wait() {
    let app = TestApp::spawn_with(|c| c.server.max_connections = 1).await;
    let holder = TcpStream::connect(app.addr).await.unwrap();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    assert!(
        client.get(app.url("/health")).send().await.is_err(),
        "the second connection waits"
    );
    drop(holder);
    let answer = client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
}
