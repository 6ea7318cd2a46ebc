//! Serving a router on a listener: the accept loop and each connection's
//! life, with the limits `axum::serve` leaves out.
//!
//! - **Accept errors never spin.** When descriptors run out (`EMFILE`,
//!   `ENFILE`) or the kernel is short of memory, the loop logs (at most
//!   once per 10 s, with a count) and backs off 10 ms → 1 s instead of
//!   retrying at once, and keeps accepting once descriptors are free.
//! - **Slow and silent clients are closed.** A request head must arrive
//!   within the header timeout (HTTP/1; also the TLS handshake); a
//!   connection with no bytes either way and no request being answered for
//!   the idle timeout is closed, so idle and half-sent-header connections
//!   cannot hold descriptors forever. Bodies have their own timeout in the
//!   receivers' front.
//! - **Graceful stop.** On shutdown the listener closes, every connection
//!   finishes the requests it has and is closed; `serve` returns when all
//!   are done.
//! - HTTP/1.1 and HTTP/2 (prior knowledge, or ALPN under TLS) on every
//!   listener, so gRPC and HTTP share one loop; `TCP_NODELAY` as tonic sets
//!   it.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::tls::TlsAcceptor;

/// Limits of one listener's connections.
#[derive(Debug, Clone)]
pub struct Options {
    /// Which listener, for logs (`OTLP/gRPC`, `query API`, …).
    pub name: &'static str,
    /// Time for a request head (HTTP/1) and for a TLS handshake.
    pub header_timeout: Duration,
    /// A connection with no traffic and no request in progress for this
    /// long is closed.
    pub idle_timeout: Duration,
    /// TLS, when configured.
    pub tls: Option<TlsAcceptor>,
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops
/// accepting, lets every connection finish its requests, and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: Options,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut errors = AcceptErrors::new(options.name);
    let mut shutdown = pin!(shutdown);
    loop {
        // Reap finished connections so the set stays small.
        while connections.try_join_next().is_some() {}
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    errors.reset();
                    stream
                }
                Err(e) => {
                    errors.failed(&e).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(connection(stream, app.clone(), options.clone(), stop_rx.clone()));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Backoff and rate-limited logging for failed accepts.
struct AcceptErrors {
    name: &'static str,
    delay: Duration,
    unlogged: u64,
    last_log: Option<Instant>,
}

const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
const LOG_EVERY: Duration = Duration::from_secs(10);

impl AcceptErrors {
    fn new(name: &'static str) -> Self {
        AcceptErrors { name, delay: MIN_BACKOFF, unlogged: 0, last_log: None }
    }

    fn reset(&mut self) {
        self.delay = MIN_BACKOFF;
    }

    async fn failed(&mut self, e: &io::Error) {
        use rustix::io::Errno;
        let exhausted = e.raw_os_error().is_some_and(|code| {
            [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM].iter().any(|x| x.raw_os_error() == code)
        });
        if !exhausted {
            // A connection reset before it was accepted, and the like.
            tracing::debug!(listener = self.name, error = %e, "accept failed");
            return;
        }
        self.unlogged += 1;
        if self.last_log.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            tracing::warn!(
                listener = self.name,
                error = %e,
                failures = self.unlogged,
                "cannot accept connections (out of file descriptors?); backing off and retrying"
            );
            self.unlogged = 0;
            self.last_log = Some(Instant::now());
        }
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(MAX_BACKOFF);
    }
}

/// One connection: TLS handshake if configured, then HTTP until it ends,
/// idles out, or the server stops.
async fn connection(stream: TcpStream, app: Router, options: Options, stop: watch::Receiver<bool>) {
    let activity = Activity::new();
    let io = Tracked { inner: stream, activity: Arc::clone(&activity) };
    match &options.tls {
        None => http(io, app, &options, activity, stop).await,
        Some(tls) => {
            let handshake = tokio::time::timeout(options.header_timeout, tls.accept(io)).await;
            match handshake {
                Ok(Ok(io)) => http(io, app, &options, activity, stop).await,
                Ok(Err(e)) => tracing::debug!(listener = options.name, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(listener = options.name, "TLS handshake timed out"),
            }
        }
    }
}

async fn http<I>(
    io: I,
    app: Router,
    options: &Options,
    activity: Arc<Activity>,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(options.header_timeout);
    builder.http2().timer(TokioTimer::new());
    let service = TowerToHyperService::new(Counted { app, activity: Arc::clone(&activity) });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    let mut conn = pin!(conn);
    let idle = options.idle_timeout;
    loop {
        let wake = activity.idle_deadline(idle);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(listener = options.name, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.wait_for(|s| *s) => break,
            () = tokio::time::sleep_until(wake) => {
                if activity.is_idle(idle) {
                    tracing::debug!(listener = options.name, "closing an idle connection");
                    break;
                }
            }
        }
    }
    // Finish what is in progress, accept nothing new. A peer that never
    // reads its response is cut off after one more idle period.
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(idle.max(Duration::from_secs(1)), conn).await;
}

/// When a connection last moved bytes, and how many requests it is
/// answering.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    fn idle_deadline(&self, idle: Duration) -> Instant {
        self.last() + idle
    }

    fn is_idle(&self, idle: Duration) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && self.last().elapsed() >= idle
    }
}

pin_project_lite::pin_project! {
    /// An IO stream that records when bytes last moved.
    struct Tracked<T> {
        #[pin]
        inner: T,
        activity: Arc<Activity>,
    }
}

impl<T: AsyncRead> AsyncRead for Tracked<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let result = this.inner.poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.touch();
        }
        result
    }
}

impl<T: AsyncWrite> AsyncWrite for Tracked<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.project();
        let result = this.inner.poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let result = this.inner.poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The router, counting requests in progress (a slow query with no bytes
/// moving is not idle).
#[derive(Clone)]
struct Counted {
    app: Router,
    activity: Arc<Activity>,
}

impl tower::Service<Request<hyper::body::Incoming>> for Counted {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // A Router is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<hyper::body::Incoming>) -> Self::Future {
        use tower::ServiceExt as _;
        let activity = Arc::clone(&self.activity);
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        let app = self.app.clone();
        Box::pin(async move {
            let response = app.oneshot(request.map(axum::body::Body::new)).await;
            activity.in_flight.fetch_sub(1, Ordering::AcqRel);
            activity.touch();
            response
        })
    }
}
