//! The HTTP/1.1 connection loop: hyper's connection builder instead of `axum::serve`, so a
//! connection cannot be held forever (issue 14). A request head must arrive in full within
//! `server.header_read_timeout` from its first byte; a kept-alive connection with no request
//! in flight is closed after `server.keep_alive_timeout`; at most `server.max_connections`
//! are served at once (more wait in the listen backlog). Accepted sockets get TCP_NODELAY.
//! Shutdown stops accepting and lets the open connections finish their requests.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{body::Body, extract::ConnectInfo, http::Request};
use futures_util::task::AtomicWaker;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    time::{Instant, Sleep},
};
use tower::Service;

/// The connection limits, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub max_connections: usize,
}

/// Accepts and serves connections until `shutdown` completes; answers the open
/// connections, to be drained with [`GracefulShutdown::shutdown`].
pub async fn accept_loop(
    listener: TcpListener,
    router: crate::http::Mounts,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> GracefulShutdown {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut http = hyper::server::conn::http1::Builder::new();
    // Head and idle deadlines are kept by `TimedIo` (hyper's header timer also runs while
    // a kept-alive connection is idle, which would make the two timeouts one).
    http.timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    if !is_connection_error(&err) {
                        // Out of file descriptors, most likely: wait for some to close.
                        tracing::warn!(error = %err, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // TCP_NODELAY: a relayed stream's small event writes must not wait for the client's
        // delayed ACK (Nagle), which stalled first events by ~40 ms.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        let activity = Arc::new(Activity::default());
        let io = TokioIo::new(TimedIo::new(tcp, activity.clone(), limits));
        let service = hyper::service::service_fn({
            let router = router.clone();
            move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                let busy = activity.begin();
                let mut router = router.clone();
                async move {
                    let response = router.call(request.map(Body::new)).await?;
                    // The request counts as in flight until its body is sent (or dropped).
                    Ok::<_, std::convert::Infallible>(response.map(|body| {
                        Body::new(body.map_frame(move |frame| {
                            let _ = &busy;
                            frame
                        }))
                    }))
                }
            }
        });
        let connection = graceful.watch(http.serve_connection(io, service));
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
            drop(slot);
        });
    }
    graceful
}

/// Errors of one connection that do not concern the listener.
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Requests of one connection: how many began, and how many are still in flight.
#[derive(Default)]
struct Activity {
    begun: AtomicU64,
    in_flight: AtomicU64,
    /// The connection's reader, woken when the last request in flight ends, so its idle
    /// deadline starts then even if no byte comes.
    idle: AtomicWaker,
}

impl Activity {
    fn begin(self: &Arc<Self>) -> InFlight {
        self.begun.fetch_add(1, Ordering::AcqRel);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }
}

/// One request in flight; over when dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.wake();
        }
    }
}

/// Where a connection stands, for its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request in flight, no byte of the next one: `keep_alive_timeout`.
    Idle,
    /// Part of a request head has come: `header_read_timeout` from its first byte.
    Head,
    /// A request is being answered: the request timeout's business, not ours.
    Busy,
}

/// A socket that fails its reads with `TimedOut` once the deadline of its phase passes.
struct TimedIo {
    io: TcpStream,
    activity: Arc<Activity>,
    limits: Limits,
    phase: Phase,
    /// `begun` when the phase was last set: a change means a request began since.
    seen: u64,
    /// When the current phase's time is up.
    due: Instant,
    /// The timer, armed at `due` or before it, never after. A phase that ends later leaves
    /// it as it is: it fires early and is then re-armed at `due` (`poll_expired`). So a busy
    /// connection re-arms it about once per timeout, instead of moving it earlier at each
    /// new request head (a move earlier takes the timer wheel's lock; tokio moves a pending
    /// timer later without it).
    deadline: Pin<Box<Sleep>>,
}

impl TimedIo {
    fn new(io: TcpStream, activity: Arc<Activity>, limits: Limits) -> TimedIo {
        // A new connection waits for its first head like a kept-alive one: a client that
        // connects and sends nothing is closed after the header timeout.
        let due = Instant::now() + limits.header_read_timeout;
        TimedIo {
            io,
            activity,
            limits,
            phase: Phase::Head,
            seen: 0,
            due,
            deadline: Box::pin(tokio::time::sleep_until(due)),
        }
    }

    fn enter(&mut self, phase: Phase, timeout: Duration) {
        self.phase = phase;
        self.due = Instant::now() + timeout;
        if self.deadline.deadline() > self.due {
            self.deadline.as_mut().reset(self.due);
        }
    }

    /// Whether the phase's time is up; arranges a wake-up at `due` when it is not.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        while self.deadline.as_mut().poll(cx).is_ready() {
            if self.deadline.deadline() >= self.due {
                return true;
            }
            // Fired early: the phase it was armed for has been replaced by a longer one.
            let due = self.due;
            self.deadline.as_mut().reset(due);
        }
        false
    }

    /// Moves to the phase the requests say, after a read that brought `read` bytes.
    fn update(&mut self, read: usize) {
        let begun = self.activity.begun.load(Ordering::Acquire);
        let in_flight = self.activity.in_flight.load(Ordering::Acquire);
        if begun != self.seen {
            self.seen = begun;
            self.phase = Phase::Busy;
        }
        if in_flight > 0 {
            self.phase = Phase::Busy;
        } else if self.phase == Phase::Busy {
            self.enter(Phase::Idle, self.limits.keep_alive_timeout);
        }
        if read > 0 && self.phase == Phase::Idle {
            self.enter(Phase::Head, self.limits.header_read_timeout);
        }
    }
}

impl AsyncRead for TimedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        this.update(read);
        match result {
            Poll::Pending if this.phase == Phase::Busy => {
                this.activity.idle.register(cx.waker());
                // The last request may have ended between the check and the registration.
                if this.activity.in_flight.load(Ordering::Acquire) == 0 {
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
            Poll::Pending => {
                if this.poll_expired(cx) {
                    let what = match this.phase {
                        Phase::Head => "request head not received in time",
                        _ => "idle connection timed out",
                    };
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl AsyncWrite for TimedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Raises the soft limit on open files to the hard limit, so the connection cap, not the
/// descriptor limit, is what a flood runs into. Failure is only logged.
#[allow(unsafe_code)]
pub fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed by pointer,
    // which lives on this stack frame for the whole call.
    let raised = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        if limit.rlim_cur >= limit.rlim_max {
            return;
        }
        let wanted = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0
    };
    if raised {
        tracing::debug!(
            from = limit.rlim_cur,
            to = limit.rlim_max,
            "raised the open-file limit"
        );
    } else {
        tracing::warn!(soft = limit.rlim_cur, "cannot raise the open-file limit");
    }
}
