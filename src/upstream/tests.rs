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
    let prepared = Prepared::new(&config.upstreams[0], config.connect_timeout);
    let channel = Channel::default();
    let requester = Requester {
        client: &client,
        upstream: &config.upstreams[0],
        prepared: &prepared,
        channel: &channel,
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

/// Serves keep-alive connections: request `r` on connection `c` (both from
/// 0) gets `respond(c, r)`, or the connection closed without an answer when
/// that is `None`. Returns the address and the count of connections taken.
async fn serve_kept(
    respond: impl Fn(usize, usize) -> Option<String> + Send + Sync + 'static,
) -> (SocketAddr, Arc<AtomicI64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicI64::new(0));
    let (respond, count) = (Arc::new(respond), accepted.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let c = count.fetch_add(1, Ordering::SeqCst) as usize;
            let respond = respond.clone();
            tokio::spawn(async move {
                for r in 0.. {
                    if read_head(&mut s).await.is_empty() {
                        return;
                    }
                    let Some(answer) = respond(c, r) else {
                        return; // dropped: closed without an answer
                    };
                    if s.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

fn kept_block() -> String {
    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 5\r\n\r\nblock"
        .to_string()
}

#[tokio::test]
async fn requests_to_one_upstream_share_one_kept_connection() {
    let (addr, accepted) = serve_kept(|_, _| Some(kept_block())).await;
    let config = config(addr);
    let seen = Seen::default();
    let deadline = Instant::now() + WAIT;
    let bodies = with_requester(&config, &seen, async |r| {
        let mut bodies = Vec::new();
        for _ in 0..3 {
            bodies.push(r.fetch_block(1 << 20, deadline).await.expect("served"));
        }
        // A prefix read that got the whole body keeps the connection too.
        bodies.push(r.fetch_state_prefix(5, deadline).await.expect("served"));
        bodies.push(r.fetch_block(1 << 20, deadline).await.expect("served"));
        bodies
    })
    .await;
    assert!(bodies.iter().all(|b| &b[..] == b"block"));
    assert_eq!(bodies.len(), 5);
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection, kept");
    assert_eq!(seen.finished().len(), 5);
    assert!(seen.finished().iter().all(|(_, failure)| failure.is_none()));
}

#[tokio::test]
async fn a_kept_connection_the_upstream_closed_is_replaced_within_the_request() {
    // The first connection answers once, then closes on the next request
    // without answering: the keep-alive race a server's idle timeout makes.
    // The GET is sent again on a new connection, inside the same request,
    // and no failure is reported.
    let (addr, accepted) = serve_kept(|c, r| (c > 0 || r == 0).then(kept_block)).await;
    let config = config(addr);
    let seen = Seen::default();
    let deadline = Instant::now() + WAIT;
    let second = with_requester(&config, &seen, async |r| {
        r.fetch_block(1 << 20, deadline).await.expect("first");
        r.fetch_block(1 << 20, deadline).await
    })
    .await
    .expect("sent again on a new connection");
    assert_eq!(&second[..], b"block");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    assert_eq!(seen.finished(), [(Endpoint::BlockFinalized, None); 2]);

    // A new connection that closes unanswered is a failure, not retried.
    let (addr, accepted) = serve_kept(|_, _| None).await;
    let config = self::config(addr);
    let seen = Seen::default();
    let e = block(&config, &seen, 1 << 20)
        .await
        .expect_err("never answered");
    assert_eq!(e.kind, ErrorKind::Closed, "{e}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn url_userinfo_becomes_basic_authorization_and_a_configured_header_wins() {
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen_heads = heads.clone();
    let addr = serve(move |head| {
        seen_heads
            .lock()
            .expect("not poisoned")
            .push(head.to_string());
        response(
            "200 OK",
            "Content-Type: application/octet-stream\r\n",
            "block",
        )
    })
    .await;
    let args = Cli::try_parse_with_sources(["leanpoint"])
        .expect("defaults parse")
        .serve;
    let url = format!("http://us%3Aer:p%40ss@{addr}/base?k=v");
    let mut config =
        Config::with_upstreams(&args, "test", vec![("u".to_string(), url)]).expect("valid config");
    let seen = Seen::default();
    block(&config, &seen, 1 << 20).await.expect("served");
    config.upstreams[0].headers = vec![("Authorization".into(), "Bearer t".into())];
    block(&config, &seen, 1 << 20).await.expect("served");

    let heads = heads.lock().expect("not poisoned").clone();
    let auth = |head: &str| -> Vec<String> {
        head.lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("authorization:"))
            .map(str::to_string)
            .collect()
    };
    // "us:er:p@ss", percent-decoded, in base64.
    assert_eq!(auth(&heads[0]), ["authorization: Basic dXM6ZXI6cEBzcw=="]);
    assert_eq!(auth(&heads[1]), ["authorization: Bearer t"]);
    for head in &heads {
        assert!(
            head.starts_with("GET /base/lean/v0/blocks/finalized?k=v HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(head.contains(&format!("host: {addr}\r\n")), "{head}");
    }
}
