//! The public listener: a bounded accept loop serving [`router`].
//!
//! The Zig leanpoint served one keep-alive client at a time and stopped
//! accepting when its fds ran out. Here:
//!
//! - every connection runs on its own task, so one slow client delays no one;
//! - at most `--max-connections` are open: a permit is taken *before*
//!   `accept()`, so at the cap the loop stops accepting (new clients wait in
//!   the kernel backlog, costing no fd) instead of accepting and failing;
//!   [`bind`] makes that backlog deep enough to hold them;
//! - a client must send a request's headers within `--header-timeout-ms`,
//!   which also closes an idle keep-alive connection (hyper starts that timer
//!   whenever it waits for a request head);
//! - there is no timeout on a whole request (a slow download of a large
//!   State is legitimate), but a client that stops reading is dropped after
//!   [`ServeOptions::write_stall_timeout`] without progress (see `stall`);
//! - `accept()` errors (EMFILE and friends) are logged, rate-limited, and
//!   retried after a short pause; they never end the loop;
//! - on shutdown the loop stops accepting, in-flight requests get a bounded
//!   grace period, and then every connection task is cancelled.

mod health;
mod json;
mod range;
pub mod routes;
mod sendfile;
mod stall;
mod static_dir;
mod status_page;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::served::sendable::SendableBodies;
use crate::service::reload::Live;
use crate::service::AppState;
use crate::shutdown::Shutdown;
use crate::telemetry::Metrics;

pub use routes::router;

/// Server limits that are not configuration flags.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// A connection whose writes make no progress for this long is closed.
    pub write_stall_timeout: Duration,
    /// How long in-flight requests may run on after shutdown fires.
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            // Long enough for any TCP hiccup of a live client, short enough
            // that dead readers cannot pile up.
            write_stall_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Depth of the public listener's accept queue, where clients wait while
/// `--max-connections` are open. `TcpListener::bind` asks for 128 (std's and
/// mio's value): past 128 waiting clients, or a burst of 128 connects faster
/// than the loop accepts, the kernel drops SYNs and the client (a scrape, a
/// probe) stalls for a SYN retransmit (1 s, then 3 s, ...) instead of waiting
/// its turn. Waiting clients cost kernel memory, not fds. The kernel clamps
/// this to `net.core.somaxconn` (4096 by default).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds the public listener with [`LISTEN_BACKLOG`], and SO_REUSEADDR as
/// `TcpListener::bind` sets it (a restart can rebind at once). Call from
/// within the runtime.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Pause after an `accept()` failure that is about resources (EMFILE,
/// ENFILE, ENOBUFS): retrying at once would spin on the same error.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accept failures are logged at most this often.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(5);

/// Serves the public HTTP API on `listener` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    serve_with(listener, state, shutdown, ServeOptions::default()).await
}

/// [`serve`] with explicit [`ServeOptions`].
pub async fn serve_with(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: Shutdown,
    options: ServeOptions,
) -> std::io::Result<()> {
    let app = router(state.clone());
    let cap = state.config.max_connections;
    accept_loop(listener, app, &state, cap, shutdown, options).await
}

/// [`serve`] on the state in service, which a reload replaces.
pub async fn serve_live(
    listener: TcpListener,
    live: Live,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let cap = live.current().config.max_connections;
    serve_router(
        listener,
        routes::live_router(live.clone()),
        live,
        cap,
        shutdown,
    )
    .await
}

/// Connections the admin listener serves at once: probes and scrapes are a
/// handful of clients; its own cap means public clients cannot take them.
pub const ADMIN_CONNECTIONS: usize = 32;

/// The admin listener (`--admin-port`): probes and /metrics with their own
/// connection cap, so a kubelet probe answers within its timeout however
/// many public clients hold `--max-connections`.
pub async fn serve_admin(
    listener: TcpListener,
    live: Live,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let app = routes::admin_router(live.clone());
    serve_router(listener, app, live, ADMIN_CONNECTIONS, shutdown).await
}

/// A router of the state in service, at most `cap` connections at once.
async fn serve_router(
    listener: TcpListener,
    app: axum::Router,
    live: Live,
    cap: usize,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let state = live.current();
    accept_loop(
        listener,
        app,
        &state,
        cap,
        shutdown,
        ServeOptions::default(),
    )
    .await
}

/// The bounded accept loop, serving `app`, at most `cap` connections at once.
async fn accept_loop(
    listener: TcpListener,
    app: axum::Router,
    state: &AppState,
    cap: usize,
    mut shutdown: Shutdown,
    options: ServeOptions,
) -> std::io::Result<()> {
    // The semaphore panics above MAX_PERMITS; the flag is bounded far below
    // it, and this keeps any other caller from panicking.
    let permits = Arc::new(Semaphore::new(cap.clamp(1, Semaphore::MAX_PERMITS)));
    let graceful = GracefulShutdown::new();
    let mut conns = JoinSet::new();
    let mut accept_log = RateLimitedLog::default();
    let counters = ConnectionCounters::of(&state.metrics);
    loop {
        reap(&mut conns);
        let permit = tokio::select! {
            _ = shutdown.wait() => break,
            p = acquire(&permits, &state.metrics) => p,
        };
        let stream = tokio::select! {
            _ = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    accept_log.record(&e);
                    if needs_backoff(&e) {
                        tokio::select! {
                            _ = shutdown.wait() => break,
                            _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                        }
                    }
                    continue;
                }
            },
        };
        let conn = Connection {
            stream,
            app: app.clone(),
            watcher: graceful.watcher(),
            counters: counters.clone(),
            sendable: state.sendable.clone(),
            header_timeout: state.config.header_timeout,
            write_stall: options.write_stall_timeout,
            _permit: permit,
        };
        conns.spawn(conn.serve());
    }
    // Stop accepting now: the kernel refuses new connections from here on.
    drop(listener);
    finish(graceful, conns, options.shutdown_grace).await;
    Ok(())
}

/// Takes a connection permit, counting the times the cap made us wait.
async fn acquire(permits: &Arc<Semaphore>, metrics: &Metrics) -> OwnedSemaphorePermit {
    if let Ok(p) = permits.clone().try_acquire_owned() {
        return p;
    }
    metrics.http_connections_over_cap.inc();
    tracing::debug!("--max-connections reached; not accepting until a connection closes");
    match permits.clone().acquire_owned().await {
        Ok(p) => p,
        // The semaphore is never closed; if it were, waiting forever is the
        // only safe behaviour (the shutdown branch still ends the loop).
        Err(_) => std::future::pending().await,
    }
}

fn needs_backoff(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    // Per-connection failures (the peer gave up before we accepted) say
    // nothing about our resources.
    !matches!(
        e.kind(),
        K::ConnectionAborted | K::ConnectionReset | K::ConnectionRefused | K::Interrupted
    )
}

/// Collects finished connection tasks so the set does not grow, and reports
/// any that panicked (which ends only that connection).
fn reap(conns: &mut JoinSet<()>) {
    while let Some(done) = conns.try_join_next() {
        if let Err(e) = done {
            if e.is_panic() {
                tracing::error!(error = %e, "an inbound connection task panicked");
            }
        }
    }
}

/// Graceful end: open connections finish their current request (idle ones
/// close at once), bounded by `grace`; anything left is cancelled.
async fn finish(graceful: GracefulShutdown, mut conns: JoinSet<()>, grace: Duration) {
    let open = graceful.count();
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => {
            tracing::warn!(open, grace_ms = grace.as_millis() as u64, "connections still open after the shutdown grace period; closing them");
        }
    }
    conns.shutdown().await;
}

/// One accepted connection and what it holds until it closes.
struct Connection {
    stream: TcpStream,
    app: axum::Router,
    watcher: Watcher,
    counters: ConnectionCounters,
    /// The served State's file, sent with sendfile (a reload's new
    /// state shares it, so this is the current one).
    sendable: Arc<SendableBodies>,
    header_timeout: Duration,
    write_stall: Duration,
    /// Returned to the accept loop when the connection ends.
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn serve(self) {
        let _open = OpenConnection::new(&self.counters);
        // Responses are small JSON or one large body; no reason to wait for
        // more data before sending a segment.
        let _ = self.stream.set_nodelay(true);
        let stream = sendfile::SendfileStream::new(
            self.stream,
            self.sendable,
            self.counters.sendfile_bytes.clone(),
        );
        let io = TokioIo::new(stall::WriteStall::new(stream, self.write_stall));
        let mut builder = http1::Builder::new();
        builder
            // The body must reach the socket as its own iovec, not copied
            // into hyper's head buffer, for `sendfile` to recognise it.
            .writev(true)
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .keep_alive(true);
        let conn = builder.serve_connection(io, TowerToHyperService::new(self.app));
        if let Err(e) = self.watcher.watch(conn).await {
            // A client that went away mid-response, a header timeout, a
            // stalled reader: the connection ends, nobody else is affected.
            tracing::debug!(error = %e, "inbound connection closed with an error");
        }
    }
}

/// The metric handles a connection records into. Its own few handles, not
/// a clone of `Metrics`: that holds every upstream's series, and cloning it
/// per connection was a tenth of the listener's user CPU in a burst of
/// fresh connections (more with more upstreams).
#[derive(Clone)]
struct ConnectionCounters {
    accepted: Counter,
    open: Gauge,
    sendfile_bytes: Counter,
}

impl ConnectionCounters {
    fn of(m: &Metrics) -> Self {
        ConnectionCounters {
            accepted: m.http_connections.clone(),
            open: m.http_open_connections.clone(),
            sendfile_bytes: m.http_sendfile_bytes.clone(),
        }
    }
}

/// Keeps `http_open_connections` right however the connection ends
/// (normally, by error, or cancelled at shutdown).
struct OpenConnection<'a>(&'a ConnectionCounters);

impl<'a> OpenConnection<'a> {
    fn new(counters: &'a ConnectionCounters) -> Self {
        counters.accepted.inc();
        counters.open.inc();
        OpenConnection(counters)
    }
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.open.dec();
    }
}

/// Logs accept failures at most once per [`ACCEPT_LOG_EVERY`], with the
/// number suppressed in between: under EMFILE the loop fails many times a
/// second and the log must not become the next resource problem.
#[derive(Default)]
struct RateLimitedLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    fn record(&mut self, e: &std::io::Error) {
        if self.last.is_some_and(|t| t.elapsed() < ACCEPT_LOG_EVERY) {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(error = %e, suppressed = self.suppressed, "accept() failed on the public listener; retrying");
        self.last = Some(Instant::now());
        self.suppressed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More clients than std's 128 wait in the queue while nothing accepts
    /// (the loop at its cap): every connect completes at once, none is
    /// dropped into a SYN retransmit.
    #[tokio::test]
    async fn the_backlog_holds_hundreds_of_waiting_clients() {
        let listener = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let mut waiting = Vec::new();
        for i in 0..300 {
            let connect = TcpStream::connect(addr);
            match tokio::time::timeout(Duration::from_millis(500), connect).await {
                Ok(Ok(s)) => waiting.push(s),
                Ok(Err(e)) => panic!("client {i}: {e}"),
                Err(_) => panic!("client {i}: SYN dropped, the accept queue is full"),
            }
        }
        assert_eq!(waiting.len(), 300);
    }
}
