//! Fake Lean API upstreams: raw HTTP/1.1 over tokio `TcpListener`s on
//! 127.0.0.1:0, so every fault is exact (no framework buffering, retrying or
//! closing on our behalf).
//!
//! Each [`FakeUpstream`] serves one [`Mode`] that can be switched at run time
//! ([`FakeUpstream::set_mode`]), and keeps an exact account of leanpoint's
//! connections to it: accepted, open now, the most ever open at once, and when
//! each one opened and closed.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::fixtures::{Reply, Routes, BLOCK, JSON, SSZ, STATE};

/// How a fake upstream behaves. Applied per request, so a switch takes
/// effect on the next request, also on an open keep-alive connection.
#[derive(Clone, Debug)]
pub enum Mode {
    /// Serves `lean-api/<folder>` (see [`Routes::fixture`]).
    Fixture(&'static str),
    /// Serves only the folder's finalized State (see [`Routes::legacy`]).
    Legacy(&'static str),
    /// Custom routes.
    Routes(Routes),
    /// Reads the request, never answers, keeps the socket open (the incident).
    AcceptHang,
    /// Reads the request, shuts down its write side (FIN), keeps the socket.
    HalfClose,
    /// Sends a 200 head with a large Content-Length, then one body byte
    /// every 100 ms, forever.
    SlowDrip,
}

impl Mode {
    fn resolve(self) -> Mode {
        match self {
            Mode::Fixture(f) => Mode::Routes(Routes::fixture(f)),
            Mode::Legacy(f) => Mode::Routes(Routes::legacy(f)),
            other => other,
        }
    }
}

/// Content-Length announced by [`Mode::SlowDrip`]: under every body cap the
/// tests use, so only the deadline can end the request.
pub const SLOW_DRIP_LENGTH: usize = 4000;

/// One accepted connection.
#[derive(Clone, Copy, Debug)]
pub struct ConnRecord {
    pub accepted_at: Instant,
    /// When the fake saw the peer close it (EOF, reset, or a failed write).
    pub closed_at: Option<Instant>,
    pub requests: usize,
}

#[derive(Default)]
struct Conns {
    /// Open connections: id and a duplicate of the socket used to look for a
    /// pending EOF without disturbing the connection's own task.
    open: Vec<(usize, std::net::TcpStream)>,
    records: Vec<ConnRecord>,
    max_open: usize,
    paths: Vec<String>,
}

impl Conns {
    fn close(&mut self, id: usize, at: Instant) {
        self.open.retain(|(i, _)| *i != id);
        if let Some(r) = self.records.get_mut(id) {
            r.closed_at.get_or_insert(at);
        }
    }

    /// Marks every open connection whose peer has already closed it. The
    /// kernel has the FIN of a connection leanpoint closed before leanpoint
    /// could open the next one, so refreshing before counting a newly
    /// accepted connection makes the "open at once" count exact, whatever
    /// order our tasks happen to be scheduled in.
    fn refresh(&mut self) {
        let now = Instant::now();
        let mut gone = Vec::new();
        for (id, probe) in &self.open {
            let mut byte = [0u8; 1];
            let closed = match probe.peek(&mut byte) {
                Ok(0) => true,
                // Unread bytes (a request our task has not read yet) hide a
                // FIN queued behind them: ask the kernel for the TCP state.
                Ok(_) => super::sys::peer_closed(probe),
                Err(e) => e.kind() != ErrorKind::WouldBlock,
            };
            if closed {
                gone.push(*id);
            }
        }
        for id in gone {
            self.close(id, now);
        }
    }
}

struct Shared {
    mode: Mutex<Mode>,
    conns: Mutex<Conns>,
    tasks: Mutex<Vec<AbortHandle>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A fake upstream. Stops serving (and closes every socket) when dropped.
pub struct FakeUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FakeUpstream {
    /// Binds 127.0.0.1:0 and serves `mode` on the current tokio runtime.
    pub async fn start(mode: Mode) -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a fake upstream on 127.0.0.1:0");
        let addr = listener.local_addr().expect("fake upstream address");
        let shared = Arc::new(Shared {
            mode: Mutex::new(mode.resolve()),
            conns: Mutex::new(Conns::default()),
            tasks: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        lock(&shared.tasks).push(task.abort_handle());
        FakeUpstream { addr, shared }
    }

    /// Base URL (`http://127.0.0.1:PORT`) to put in an upstreams file.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switches the behaviour for every following request.
    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.shared.mode) = mode.resolve();
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        lock(&self.shared.conns).records.len()
    }

    /// Connections open now (peer closes already in the kernel are counted).
    pub fn open(&self) -> usize {
        let mut c = lock(&self.shared.conns);
        c.refresh();
        c.open.len()
    }

    /// The most connections that were ever open at once.
    pub fn max_open(&self) -> usize {
        lock(&self.shared.conns).max_open
    }

    /// Every connection accepted so far, in order.
    pub fn connections(&self) -> Vec<ConnRecord> {
        let mut c = lock(&self.shared.conns);
        c.refresh();
        c.records.clone()
    }

    /// Requests received for `path`.
    pub fn requests(&self, path: &str) -> usize {
        lock(&self.shared.conns)
            .paths
            .iter()
            .filter(|p| *p == path)
            .count()
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        for t in lock(&self.shared.tasks).drain(..) {
            t.abort();
        }
        lock(&self.shared.conns).open.clear();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Some((stream, probe)) = with_probe(stream) else {
            continue;
        };
        let id = {
            let mut c = lock(&shared.conns);
            c.refresh();
            let id = c.records.len();
            c.records.push(ConnRecord {
                accepted_at: Instant::now(),
                closed_at: None,
                requests: 0,
            });
            c.open.push((id, probe));
            c.max_open = c.max_open.max(c.open.len());
            id
        };
        let task = tokio::spawn(serve_connection(stream, shared.clone(), id));
        lock(&shared.tasks).push(task.abort_handle());
    }
}

/// Splits off a duplicate of the socket for [`Conns::refresh`]. The duplicate
/// shares the socket's non-blocking flag, so `peek` never blocks.
fn with_probe(stream: TcpStream) -> Option<(TcpStream, std::net::TcpStream)> {
    let std = stream.into_std().ok()?;
    let probe = std.try_clone().ok()?;
    Some((TcpStream::from_std(std).ok()?, probe))
}

async fn serve_connection(mut stream: TcpStream, shared: Arc<Shared>, id: usize) {
    let mut buf = Vec::new();
    while let Some(head) = read_head(&mut stream, &mut buf).await {
        let path = head
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .split('?')
            .next()
            .unwrap_or("")
            .to_string();
        {
            let mut c = lock(&shared.conns);
            c.paths.push(path.clone());
            if let Some(r) = c.records.get_mut(id) {
                r.requests += 1;
            }
        }
        let mode = lock(&shared.mode).clone();
        let keep_open = match mode {
            Mode::Routes(routes) => {
                let reply = routes.reply(&path);
                if reply.drip {
                    slow_drip(&mut stream, &reply.content_type).await;
                    false
                } else {
                    write_reply(&mut stream, &reply).await
                }
            }
            Mode::AcceptHang => {
                wait_for_eof(&mut stream).await;
                false
            }
            Mode::HalfClose => {
                let _ = stream.shutdown().await;
                wait_for_eof(&mut stream).await;
                false
            }
            Mode::SlowDrip => {
                let ct = if path == STATE || path == BLOCK {
                    SSZ
                } else {
                    JSON
                };
                slow_drip(&mut stream, ct).await;
                false
            }
            Mode::Fixture(_) | Mode::Legacy(_) => unreachable!("resolved in set_mode"),
        };
        if !keep_open || head.to_ascii_lowercase().contains("connection: close") {
            break;
        }
    }
    lock(&shared.conns).close(id, Instant::now());
}

/// Reads one request head (up to the blank line); None at EOF or error.
/// Bytes after the head stay in `buf` for the next request.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            return Some(head);
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Writes `reply`; false when the peer is gone.
async fn write_reply(stream: &mut TcpStream, reply: &Reply) -> bool {
    let reason = match reply.status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let mut out = format!(
        "HTTP/1.1 {} {reason}\r\nServer: leanpoint-test-fake\r\n",
        reply.status
    )
    .into_bytes();
    // An empty content type is sent as no Content-Type header at all.
    if !reply.content_type.is_empty() {
        out.extend_from_slice(format!("Content-Type: {}\r\n", reply.content_type).as_bytes());
    }
    for (k, v) in &reply.headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    if reply.chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        for chunk in reply.body.chunks(1024) {
            out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
    } else {
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", reply.body.len()).as_bytes());
        out.extend_from_slice(&reply.body);
    }
    stream.write_all(&out).await.is_ok()
}

/// Holds the connection, discarding anything read, until the peer closes it.
async fn wait_for_eof(stream: &mut TcpStream) {
    let mut sink = [0u8; 1024];
    while let Ok(n) = stream.read(&mut sink).await {
        if n == 0 {
            return;
        }
    }
}

async fn slow_drip(stream: &mut TcpStream, ct: &str) {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {SLOW_DRIP_LENGTH}\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let (mut rd, mut wr) = stream.split();
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    let mut sink = [0u8; 1024];
    loop {
        tokio::select! {
            r = rd.read(&mut sink) => if matches!(r, Ok(0) | Err(_)) { return },
            _ = ticks.tick() => if wr.write_all(b" ").await.is_err() { return },
        }
    }
}
