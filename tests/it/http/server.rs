//! The server on real sockets, in process: `http::serve_with` on
//! 127.0.0.1:0 with a large synthetic State installed, driven by blocking
//! clients on their own threads. Covers HEAD/304 on the wire, aborted and
//! stalled downloads, header and keep-alive timeouts, the connection cap and
//! graceful shutdown.

use crate::support::fixtures::FINALIZED_ROOT;
use crate::support::http::{parse_response, DEFAULT_LIMIT};
use crate::support::served::*;
use crate::support::*;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use leanpoint::http::{serve_with, ServeOptions};
use leanpoint::service::AppState;
use leanpoint::shutdown::{self, Trigger};
use tokio::task::JoinHandle;

struct Server {
    addr: SocketAddr,
    state: Arc<AppState>,
    trigger: Trigger,
    task: JoinHandle<std::io::Result<()>>,
}

/// A server on the agreed fixture serving `bytes` as its State.
async fn start_serving(bytes: Bytes, options: ServeOptions) -> Server {
    let state = agreed_with_fixture(FLAGS);
    serve_state(&state, bytes);
    start(state, options).await
}

/// A server whose State is larger than loopback's socket buffers can
/// absorb, so the write to a client that does not read stalls.
async fn start_stalling(options: ServeOptions) -> Server {
    start_serving(big_state(48 * 1024 * 1024), options).await
}

async fn start(state: Arc<AppState>, options: ServeOptions) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (trigger, shutdown) = shutdown::channel();
    let task = tokio::spawn(serve_with(listener, state.clone(), shutdown, options));
    Server {
        addr,
        state,
        trigger,
        task,
    }
}

impl Server {
    /// Fires the shutdown and asserts `serve` returned cleanly.
    async fn stop(self) {
        self.trigger.fire();
        self.task.await.expect("join").expect("serve ok");
    }
}

/// A State-sized body: the fixture's bytes repeated to `len` (the route
/// serves whatever bytes are installed; validity is the cache's concern).
fn big_state(len: usize) -> Bytes {
    let seed = fixture("advanced", "states_finalized.ssz");
    seed.iter()
        .copied()
        .cycle()
        .take(len)
        .collect::<Vec<u8>>()
        .into()
}

fn open_connections(state: &AppState) -> i64 {
    state.metrics.http_open_connections.get()
}

/// Waits until the server counts exactly `n` open connections.
fn wait_open(state: &AppState, n: i64, within: Duration, what: &str) {
    wait_until(within, what, || {
        (open_connections(state) == n).then_some(())
    });
}

/// Runs blocking client code off the runtime's workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("client thread")
}

fn send_get(addr: SocketAddr, path: &str, close: bool) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    let conn = if close { "Connection: close\r\n" } else { "" };
    write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n{conn}\r\n").expect("send");
    s
}

/// Downloads the State and compares the body with `expected` as it
/// streams in (32 clients must not each hold a copy).
fn download_matches(addr: SocketAddr, expected: &[u8]) -> Result<(), String> {
    let mut s = send_get(addr, "/lean/v0/states/finalized", true);
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 64 * 1024];
    // Headers first: read until the blank line.
    let mut head = Vec::new();
    let body_start = loop {
        let n = s.read(&mut buf).map_err(|e| format!("read head: {e}"))?;
        if n == 0 {
            return Err("closed before the headers".into());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    if !head.starts_with(b"HTTP/1.1 200") {
        return Err(String::from_utf8_lossy(&head).into_owned());
    }
    let mut at = 0;
    let mut check = |chunk: &[u8]| -> Result<(), String> {
        if expected.get(at..at + chunk.len()) != Some(chunk) {
            return Err(format!("body differs at byte {at}"));
        }
        at += chunk.len();
        Ok(())
    };
    check(&head[body_start..])?;
    loop {
        let n = s.read(&mut buf).map_err(|e| format!("read body: {e}"))?;
        if n == 0 {
            break;
        }
        check(&buf[..n])?;
    }
    if at == expected.len() {
        Ok(())
    } else {
        Err(format!("got {at} of {} bytes", expected.len()))
    }
}

/// True once the peer has closed the connection (EOF or reset) within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {} // response bytes, keep reading
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true, // reset
        }
    }
    false
}

const FLAGS: &[&str] = &[
    "--lean-url",
    "http://127.0.0.1:1",
    "--stale-ms",
    "600000",
    "--poll-ms",
    "600000",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_and_conditional_get_on_the_wire() {
    let srv = start(agreed_with_fixture(FLAGS), ServeOptions::default()).await;
    let addr = srv.addr;
    let (head, cached) = blocking(move || {
        let etag = format!("\"{FINALIZED_ROOT}\"");
        (
            request(
                addr,
                "HEAD",
                "/lean/v0/states/finalized",
                &[],
                b"",
                DEFAULT_LIMIT,
            )
            .expect("a complete answer"),
            request(
                addr,
                "GET",
                "/lean/v0/states/finalized",
                &[("If-None-Match", etag.as_str())],
                b"",
                DEFAULT_LIMIT,
            )
            .expect("a complete answer"),
        )
    })
    .await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("966"));
    assert!(head.body.is_empty(), "HEAD sent a body");
    assert_eq!(cached.status, 304);
    assert!(cached.body.is_empty());
    assert!(cached.header("etag").is_some());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_downloads_leave_everyone_else_served() {
    let bytes = big_state(4 * 1024 * 1024);
    let srv = start_serving(bytes.clone(), ServeOptions::default()).await;
    let addr = srv.addr;
    // 200 clients give up at different points: right after the request,
    // after the headers, after 1 MiB. Closing with unread data makes the
    // kernel send a reset, the harshest way to leave.
    blocking(move || {
        let workers: Vec<_> = (0..20)
            .map(|w| {
                std::thread::spawn(move || {
                    for i in 0..10 {
                        let mut s = send_get(addr, "/lean/v0/states/finalized", false);
                        let want = [0usize, 512, 1 << 20][(w + i) % 3];
                        let mut buf = vec![0u8; 64 * 1024];
                        let mut got = 0;
                        s.set_read_timeout(Some(Duration::from_secs(10)))
                            .expect("timeout");
                        while got < want {
                            match s.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => got += n,
                            }
                        }
                        drop(s);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("abort worker");
        }
    })
    .await;
    // Then 32 concurrent complete downloads, every byte checked.
    let expected = bytes.clone();
    let results = blocking(move || {
        let downloads: Vec<_> = (0..32)
            .map(|_| {
                let expected = expected.clone();
                std::thread::spawn(move || download_matches(addr, &expected))
            })
            .collect();
        downloads
            .into_iter()
            .map(|d| d.join().expect("download thread"))
            .collect::<Vec<_>>()
    })
    .await;
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    // Those downloads went by sendfile from the State's file, which also
    // takes the writes that would block (4 MiB is more than a socket buffer).
    assert_eq!(srv.state.metrics.served_state_sendfile.get(), 1);
    let sent = srv.state.metrics.http_sendfile_bytes.get();
    assert!(sent >= 32 * bytes.len() as u64, "{sent} bytes by sendfile");
    let st = srv.state.clone();
    blocking(move || wait_open(&st, 0, Duration::from_secs(10), "all connections closed")).await;
    assert!(srv.state.metrics.http_connections.get() >= 232);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped() {
    let options = ServeOptions {
        write_stall_timeout: Duration::from_millis(500),
        ..ServeOptions::default()
    };
    let srv = start_stalling(options).await;
    let addr = srv.addr;
    let st = srv.state.clone();
    blocking(move || {
        let _stalled = send_get(addr, "/lean/v0/states/finalized", true);
        wait_open(&st, 1, Duration::from_secs(5), "the download to start");
        // Never read: the server must give the connection up by itself.
        wait_open(
            &st,
            0,
            Duration::from_secs(15),
            "the stalled connection to close",
        );
        // And keep serving.
        assert_eq!(
            must_get(&format!("http://{addr}/lean/v0/health")).status,
            200
        );
    })
    .await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_timeout_closes_silent_slow_and_idle_connections() {
    let mut flags = FLAGS.to_vec();
    flags.extend(["--header-timeout-ms", "300"]);
    let srv = start(agreed_with_fixture(&flags), ServeOptions::default()).await;
    let addr = srv.addr;
    blocking(move || {
        // Connects and says nothing.
        let mut silent = TcpStream::connect(addr).expect("connect");
        assert!(
            closed_within(&mut silent, Duration::from_secs(5)),
            "silent connection kept"
        );

        // Sends a header line every 100 ms, never finishing (slowloris).
        let mut slow = TcpStream::connect(addr).expect("connect");
        slow.write_all(b"GET /status HTTP/1.1\r\n").expect("send");
        let started = Instant::now();
        let mut closed = false;
        while started.elapsed() < Duration::from_secs(5) {
            if slow.write_all(b"X-Slow: 1\r\n").is_err()
                || closed_within(&mut slow, Duration::from_millis(100))
            {
                closed = true;
                break;
            }
        }
        assert!(closed, "slowloris connection kept for 5 s");

        // A keep-alive connection left idle after a complete exchange.
        let mut idle = send_get(addr, "/lean/v0/health", false);
        let mut buf = [0u8; 512];
        idle.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let n = idle.read(&mut buf).expect("response");
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        assert!(
            closed_within(&mut idle, Duration::from_secs(5)),
            "idle keep-alive kept"
        );
    })
    .await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_holds_and_recovers() {
    let mut flags = FLAGS.to_vec();
    flags.extend(["--max-connections", "4", "--header-timeout-ms", "60000"]);
    let srv = start(agreed_with_fixture(&flags), ServeOptions::default()).await;
    let addr = srv.addr;
    let st = srv.state.clone();
    blocking(move || {
        let mut idle = idle_connections(addr, 4);
        wait_open(&st, 4, Duration::from_secs(5), "4 connections accepted");
        // The fifth gets through the kernel's backlog but is not accepted.
        let mut fifth = send_get(addr, "/lean/v0/health", true);
        wait_until(Duration::from_secs(5), "the accept loop to pause", || {
            (st.metrics.http_connections_over_cap.get() > 0).then_some(())
        });
        fifth.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
        let mut buf = [0u8; 512];
        let early = fifth.read(&mut buf);
        assert!(
            matches!(&early, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
            "answered above the cap: {early:?}"
        );
        assert_eq!(open_connections(&st), 4);
        // One idle client leaves: the fifth is served.
        drop(idle.pop());
        fifth.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut raw = Vec::new();
        fifth.read_to_end(&mut raw).expect("fifth answered");
        assert_eq!(parse_response(&raw).expect("a response").status, 200);
    })
    .await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_accepting_and_is_bounded() {
    let options = ServeOptions {
        shutdown_grace: Duration::from_millis(500),
        ..ServeOptions::default()
    };
    let srv = start_stalling(options).await;
    let addr = srv.addr;
    let st = srv.state.clone();
    // One idle connection and one download that never reads (it would
    // hold a graceful shutdown forever without the bound).
    let (_idle, _stalled) = blocking(move || {
        let idle = TcpStream::connect(addr).expect("connect");
        let stalled = send_get(addr, "/lean/v0/states/finalized", true);
        wait_open(&st, 2, Duration::from_secs(5), "2 connections");
        (idle, stalled)
    })
    .await;
    let started = Instant::now();
    srv.trigger.fire();
    tokio::time::timeout(Duration::from_secs(10), srv.task)
        .await
        .expect("serve returns within the bound")
        .expect("join")
        .expect("serve ok");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(open_connections(&srv.state), 0);
    let refused = TcpStream::connect(addr).expect_err("still accepting after shutdown");
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused, "{refused}");
}
