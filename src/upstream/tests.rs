//! The bounded request against real local listeners: each failure comes back
//! with its named kind, is reported once, and leaves no socket behind.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::*;
use crate::cli::Cli;
use crate::config::Config;

/// Long enough for a loaded machine, short against the tests' waits.
const DEADLINE: Duration = Duration::from_millis(400);
/// How long a condition may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);

/// A `Report` that keeps what it was told.
#[derive(Default)]
struct Seen {
    in_flight: AtomicI64,
    finished: Mutex<Vec<(Endpoint, Option<ErrorKind>)>>,
}

impl Report for Seen {
    fn entered(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
    }
    fn left(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
    fn finished(&self, endpoint: Endpoint, _secs: f64, failure: Option<ErrorKind>) {
        self.finished
            .lock()
            .expect("not poisoned")
            .push((endpoint, failure));
    }
}

impl Seen {
    fn finished(&self) -> Vec<(Endpoint, Option<ErrorKind>)> {
        self.finished.lock().expect("not poisoned").clone()
    }
}

/// The default configuration with one upstream at `addr`.
fn config(addr: SocketAddr) -> Config {
    let args = Cli::try_parse_with_sources(["leanpoint"])
        .expect("defaults parse")
        .serve;
    let upstreams = vec![("u".to_string(), format!("http://{addr}"))];
    Config::with_upstreams(&args, "test", upstreams).expect("valid config")
}

/// Reads one request head.
async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Answers every connection with `respond(request head)`, then closes it.
async fn serve(respond: impl Fn(&str) -> String + Send + Sync + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let respond = Arc::new(respond);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let respond = respond.clone();
            tokio::spawn(async move {
                let head = read_head(&mut s).await;
                let _ = s.write_all(respond(&head).as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

fn response(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n{body}",
        body.len()
    )
}

/// Runs `f` with a requester for the configuration's one upstream.
async fn with_requester<T>(
    config: &Config,
    seen: &Seen,
    f: impl AsyncFnOnce(&Requester<'_>) -> T,
) -> T {
    let client = build_client(config).expect("client");
    let prepared = Prepared::new(&config.upstreams[0]);
    let requester = Requester {
        client: &client,
        upstream: &config.upstreams[0],
        prepared: &prepared,
        report: seen,
    };
    f(&requester).await
}

/// Downloads the block from the configuration's one upstream, with the
/// tests' wait as the deadline.
async fn block(config: &Config, seen: &Seen, cap: u64) -> Result<bytes::Bytes, UpstreamError> {
    let deadline = Instant::now() + WAIT;
    with_requester(config, seen, async |r| r.fetch_block(cap, deadline).await).await
}

#[tokio::test]
async fn slow_drip_body_hits_the_total_deadline_and_the_socket_closes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (closed_tx, closed_rx) = oneshot::channel();
    tokio::spawn(async move {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        read_head(&mut s).await;
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n";
        if s.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        // One byte a tick, each well inside any read timeout: only the total
        // deadline can end this. The peer closing ends the read with 0 or an
        // error, a write with an error.
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut buf = [0u8; 64];
        let mut open = true;
        while open {
            open = tokio::select! {
                r = s.read(&mut buf) => matches!(r, Ok(n) if n > 0),
                _ = tick.tick() => s.write_all(b"x").await.is_ok(),
            };
        }
        let _ = closed_tx.send(());
    });
    let config = config(addr);
    let seen = Seen::default();
    let started = Instant::now();
    let result = with_requester(&config, &seen, async |r| {
        r.fetch_block(1 << 20, started + DEADLINE).await
    })
    .await;
    let elapsed = started.elapsed();
    let e = result.expect_err("a body that never completes");
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert_eq!(e.endpoint, Endpoint::BlockFinalized);
    assert!(
        elapsed >= DEADLINE,
        "ended at {elapsed:?}, before its deadline"
    );
    assert!(elapsed < DEADLINE + WAIT, "ended at {elapsed:?}");
    assert_eq!(
        seen.finished(),
        [(Endpoint::BlockFinalized, Some(ErrorKind::Timeout))]
    );
    assert_eq!(seen.in_flight.load(Ordering::SeqCst), 0);
    tokio::time::timeout(WAIT, closed_rx)
        .await
        .expect("the server saw the socket close within the wait")
        .expect("the server task reported");
}

#[tokio::test]
async fn a_body_over_the_cap_is_body_too_large() {
    // Announced by Content-Length, and streamed without one (chunked).
    let announced = serve(|_| response("200 OK", "", &"x".repeat(100))).await;
    let streamed = serve(|_| {
        let chunk = "x".repeat(100);
        format!("HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n{chunk}\r\n0\r\n\r\n")
    })
    .await;
    for addr in [announced, streamed] {
        let config = config(addr);
        let seen = Seen::default();
        let e = block(&config, &seen, 10)
            .await
            .expect_err("100 bytes against a 10-byte cap");
        assert_eq!(e.kind, ErrorKind::BodyTooLarge, "{e}");
        assert_eq!(
            seen.finished(),
            [(Endpoint::BlockFinalized, Some(ErrorKind::BodyTooLarge))]
        );
    }
}

#[tokio::test]
async fn an_error_status_carries_its_code_and_only_a_404_is_detection() {
    for (status, code, failure) in [
        ("404 Not Found", 404, None),
        (
            "500 Internal Server Error",
            500,
            Some(ErrorKind::HttpStatus),
        ),
    ] {
        let config = config(serve(move |_| response(status, "", "")).await);
        let seen = Seen::default();
        let e = block(&config, &seen, 1 << 20).await.expect_err(status);
        assert_eq!((e.kind, e.status), (ErrorKind::HttpStatus, Some(code)));
        assert_eq!(is_not_found(&e), code == 404);
        // The text /api/upstreams shows stays as it was.
        assert_eq!(e.to_string(), format!("blocks_finalized: HTTP {code}"));
        assert_eq!(seen.finished(), [(Endpoint::BlockFinalized, failure)]);
    }
}

#[tokio::test]
async fn a_poll_of_an_upstream_serving_nothing_reports_one_unsupported() {
    let config = config(serve(|_| response("404 Not Found", "", "")).await);
    let seen = Seen::default();
    let deadline = Instant::now() + WAIT;
    let e = with_requester(&config, &seen, async |r| {
        r.poll(&config, deadline, false, &mut LastForkChoice::default())
            .await
    })
    .await
    .expect_err("nothing served");
    assert_eq!(
        (e.kind, e.endpoint),
        (ErrorKind::Unsupported, Endpoint::StateFinalized)
    );
    // fork_choice, then justified, then the State: only the last 404 is a
    // failure, reported once.
    assert_eq!(
        seen.finished(),
        [
            (Endpoint::ForkChoice, None),
            (Endpoint::Justified, None),
            (Endpoint::StateFinalized, Some(ErrorKind::Unsupported)),
        ]
    );
}

#[tokio::test]
async fn a_cross_origin_redirect_is_refused_and_a_same_origin_one_followed() {
    let elsewhere = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let other = elsewhere.local_addr().expect("addr");
    let addr = serve(move |head| {
        if head.starts_with("GET /moved ") {
            response(
                "200 OK",
                "Content-Type: application/octet-stream\r\n",
                "block",
            )
        } else if head.starts_with("GET /lean/v0/blocks/finalized ") {
            let to = format!("Location: http://{other}/lean/v0/blocks/finalized\r\n");
            response("302 Found", &to, "")
        } else {
            response("302 Found", "Location: /moved\r\n", "")
        }
    })
    .await;
    let config = config(addr);
    let seen = Seen::default();
    let e = block(&config, &seen, 1 << 20)
        .await
        .expect_err("a redirect to another port is another origin");
    assert_eq!(e.kind, ErrorKind::Redirect, "{e}");
    assert!(!e.message.contains(&other.to_string()), "{e}");
    assert_eq!(
        seen.finished(),
        [(Endpoint::BlockFinalized, Some(ErrorKind::Redirect))]
    );

    let seen = Seen::default();
    let deadline = Instant::now() + WAIT;
    let prefix = with_requester(&config, &seen, async |r| {
        r.fetch_state_prefix(5, deadline).await
    })
    .await
    .expect("a redirect within the origin is followed");
    assert_eq!(&prefix[..], b"block");
    assert_eq!(seen.finished(), [(Endpoint::StateFinalized, None)]);
}
