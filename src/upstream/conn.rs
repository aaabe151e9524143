//! One upstream's keep-alive HTTP/1 connection, driven by the request that
//! uses it.
//!
//! A plain-HTTP upstream (every devnet's) is asked over one hyper
//! `client::conn::http1` connection that this module makes and keeps, not
//! through reqwest's pool. Why: at 1000 upstreams the pool's layers (redirect
//! and retry services around every request, the URL re-parsed on every
//! response) and the wake-ups of a connection task of its own were half of a
//! poll's CPU. Here the connection is a value, not a task: the request that
//! uses it polls it, on the caller's task, and the connection is idle (no
//! task, no timer) between polls.
//!
//! The connection is taken out of its [`Channel`] for the request and put
//! back only once a response was read to its end. A request dropped at its
//! deadline therefore drops the connection with it, and its socket is
//! closed then and there: no task is left to notice the cancellation later.
//! The caller holds the upstream's request lock, so the channel never has
//! two users and an upstream never has more than one socket.

use std::future::Future;
use std::pin::pin;
use std::sync::Mutex;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::error::{classify_hyper, named, Endpoint, ErrorKind, UpstreamError};

type Io = TokioIo<TcpStream>;
type Body = Empty<Bytes>;

/// Where an upstream's connections go: the host of its URL (resolved at
/// each connect, so a devnet's service name may move) and the port.
#[derive(Debug)]
pub(super) struct Target {
    pub host: url::Host<String>,
    pub port: u16,
}

/// The upstream's connection while it is idle, or nothing (none made yet,
/// or the last one failed, was cut short or closed).
#[derive(Debug, Default)]
pub struct Channel(Mutex<Option<Box<Live>>>);

impl Channel {
    /// The idle connection, if it is still open as far as can be told
    /// without blocking: a peer that closed it since (a server's keep-alive
    /// timeout, a restart) is noticed here, and the connection dropped.
    pub(super) async fn take(&self) -> Option<Box<Live>> {
        let mut live = self.slot().take()?;
        live.still_open().await.then_some(live)
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Box<Live>>> {
        // Nothing can be left half-written in an Option; keep going.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `live` for the next request.
    pub(super) fn put(&self, live: Box<Live>) {
        *self.slot() = Some(live);
    }
}

/// An open connection: the half that sends requests and the half that does
/// the IO (hyper's dispatcher), polled by whoever awaits a response on it.
pub(super) struct Live {
    send: SendRequest<Body>,
    conn: Connection<Io, Body>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Live")
    }
}

/// How a connection ended while something waited on it.
pub(super) struct Ended(pub Option<hyper::Error>);

impl Live {
    /// Opens a TCP connection to `target` within `timeout` (name lookup
    /// included) and starts HTTP/1 on it.
    pub(super) async fn connect(
        target: &Target,
        timeout: Duration,
        endpoint: Endpoint,
    ) -> Result<Box<Live>, UpstreamError> {
        let stream = tokio::time::timeout(timeout, tcp(target))
            .await
            .map_err(|_| named(endpoint, ErrorKind::ConnectTimeout, String::new))?
            .map_err(|e| connect_error(endpoint, &e))?;
        // Requests are one small write each; never hold one back for an ACK.
        let _ = stream.set_nodelay(true);
        let (send, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| classify_hyper(endpoint, &e))?;
        // Boxed: hyper's connection is most of a kilobyte, moved in and out
        // of the channel on every request.
        Ok(Box::new(Live { send, conn }))
    }

    /// Sends `req` and waits for the response head, driving the connection.
    pub(super) async fn send(
        &mut self,
        req: http::Request<Body>,
    ) -> Result<http::Response<hyper::body::Incoming>, Ended> {
        let Live { send, conn } = self;
        drive(conn, send.ready())
            .await?
            .map_err(|e| Ended(Some(e)))?;
        let response = send.send_request(req);
        drive(conn, response).await?.map_err(|e| Ended(Some(e)))
    }

    /// Awaits `f` (a frame of the response body) while driving the
    /// connection that feeds it.
    pub(super) async fn drive<T>(&mut self, f: impl Future<Output = T>) -> Result<T, Ended> {
        drive(&mut self.conn, f).await
    }

    /// Polls the idle connection once: `false` when the peer has closed it
    /// (or sent something it should not have) since the last response.
    async fn still_open(&mut self) -> bool {
        let conn = &mut self.conn;
        std::future::poll_fn(|cx| Poll::Ready(conn.poll_without_shutdown(cx).is_pending())).await
    }
}

/// Polls the connection and then `f`, until `f` is ready: the connection
/// first, so a response it has just read reaches `f` in the same pass. A
/// connection that ends first gives `f` one last poll (hyper hands the error
/// to the waiting response or body), and else ends the wait.
async fn drive<T>(conn: &mut Connection<Io, Body>, f: impl Future<Output = T>) -> Result<T, Ended> {
    let mut f = pin!(f);
    std::future::poll_fn(|cx| {
        let ended = match conn.poll_without_shutdown(cx) {
            Poll::Pending => None,
            Poll::Ready(Ok(())) => Some(None),
            Poll::Ready(Err(e)) => Some(Some(e)),
        };
        match (f.as_mut().poll(cx), ended) {
            (Poll::Ready(v), _) => Poll::Ready(Ok(v)),
            (Poll::Pending, None) => Poll::Pending,
            (Poll::Pending, Some(e)) => Poll::Ready(Err(Ended(e))),
        }
    })
    .await
}

/// The first address of `target` that accepts.
async fn tcp(target: &Target) -> std::io::Result<TcpStream> {
    use std::net::{IpAddr, SocketAddr};
    let ip: IpAddr = match &target.host {
        url::Host::Ipv4(a) => (*a).into(),
        url::Host::Ipv6(a) => (*a).into(),
        url::Host::Domain(name) => return lookup_and_connect(name, target.port).await,
    };
    TcpStream::connect(SocketAddr::new(ip, target.port)).await
}

/// Resolves `name` and connects to the first of its addresses that accepts.
async fn lookup_and_connect(name: &str, port: u16) -> std::io::Result<TcpStream> {
    let mut last = None;
    for addr in tokio::net::lookup_host((name, port)).await? {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "the host name has no address")
    }))
}

fn connect_error(endpoint: Endpoint, e: &std::io::Error) -> UpstreamError {
    use std::io::ErrorKind as Io;
    match e.kind() {
        Io::ConnectionRefused => named(endpoint, ErrorKind::Refused, String::new),
        // The io error's text names no address: the host is in the
        // configuration, and the port and the path stay out of errors.
        _ => UpstreamError::new(
            ErrorKind::Connect,
            endpoint,
            format!(
                "TCP connect failed: {}",
                crate::redact::bound(&e.to_string(), crate::redact::MAX_MESSAGE)
            ),
        ),
    }
}
