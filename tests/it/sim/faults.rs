//! Each raw-socket fault of `leanpoint sim` does exactly what it says, on
//! real sockets: what leanpoint's deadlines are tested against.

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::http::{http, raw_get};
use crate::support::sim::{Sim, SimNode};
use crate::support::wait_until;
use leanpoint::lean::api::paths;

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Reads until `\r\n\r\n`, asserts a 200 head; returns the head and any
/// body bytes after it.
fn read_ok_head(s: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).to_string();
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
            return (head, buf[end + 4..].to_vec());
        }
        let n = s.read(&mut chunk).expect("read the response head");
        assert!(n > 0, "EOF before the response head");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The same fault with a port per node and on one shared port: the
/// connection-level faults work in both.
fn both_modes(node: &str) -> Vec<Sim> {
    vec![
        Sim::start(&["--node", node]),
        Sim::start(&["--single-port", "--node", "healthy", "--node", node]),
    ]
}

fn request(node: &SimNode, path: &str, timeout: Duration) -> TcpStream {
    let s = raw_get(node.addr(), &format!("{}{path}", node.prefix()));
    s.set_read_timeout(Some(timeout)).expect("timeout");
    s
}

/// `fault` in both modes, asked for the fork choice: per mode, the node's
/// URL and what the first read (`timeout` at most) gave.
fn first_read(fault: &str, timeout: Duration) -> Vec<(String, std::io::Result<usize>)> {
    both_modes(fault)
        .iter()
        .map(|sim| {
            let node = sim.nodes.last().expect("node");
            let mut s = request(node, paths::FORK_CHOICE, timeout);
            let mut buf = [0u8; 16];
            (node.url.clone(), s.read(&mut buf))
        })
        .collect()
}

#[test]
fn accept_hang_accepts_then_says_nothing() {
    for (url, read) in first_read("accept-hang", Duration::from_secs(1)) {
        let e = read.expect_err("no byte within 1 s");
        assert!(is_timeout(&e), "{url}: {e}");
    }
}

#[test]
fn half_close_sends_fin_without_an_answer() {
    for (url, read) in first_read("half-close", Duration::from_secs(5)) {
        let n = read.expect("EOF, not an error");
        assert_eq!(n, 0, "{url}");
    }
}

#[test]
fn reset_starts_a_body_then_resets() {
    for sim in both_modes("reset") {
        let node = sim.nodes.last().expect("node");
        let mut s = request(node, paths::STATE_FINALIZED, Duration::from_secs(5));
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let err = loop {
            match s.read(&mut buf) {
                Ok(0) => panic!("clean EOF after {} bytes; expected a reset", got.len()),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => break e,
            }
        };
        assert_eq!(
            err.kind(),
            ErrorKind::ConnectionReset,
            "{}: {err}",
            node.url
        );
        eprintln!("{}: {} bytes before the reset", node.url, got.len());
        // Whatever arrived before the RST is a 200 head announcing more.
        let text = String::from_utf8_lossy(&got);
        assert!(
            got.is_empty() || text.starts_with("HTTP/1.1 200 OK\r\n"),
            "{text}"
        );
    }
}

#[test]
fn slow_drip_sends_a_byte_at_a_time() {
    let sim = Sim::start(&["--node", "slow-drip"]);
    let mut s = request(
        &sim.nodes[0],
        paths::FORK_CHOICE,
        Duration::from_millis(200),
    );
    let (head, mut body) = read_ok_head(&mut s);
    assert!(!head.contains("Content-Length"), "{head}");
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    while started.elapsed() < Duration::from_millis(1500) {
        match s.read(&mut buf) {
            Ok(0) => panic!("slow-drip ended its body"),
            Ok(n) => body.extend_from_slice(&buf[..n]),
            Err(e) if is_timeout(&e) => {}
            Err(e) => panic!("{e}"),
        }
    }
    // 100 ms per byte: about 15 in 1.5 s; never a burst, never a stall.
    assert!(
        (3..=20).contains(&body.len()),
        "{} body bytes in 1.5 s",
        body.len()
    );
    assert!(
        body.starts_with(b"{\"nodes\""),
        "{:?}",
        String::from_utf8_lossy(&body)
    );
}

#[test]
fn oversized_streams_without_end() {
    let sim = Sim::start(&["--node", "oversized"]);
    let mut s = request(&sim.nodes[0], paths::FORK_CHOICE, Duration::from_secs(5));
    let (_head, first) = read_ok_head(&mut s);
    let mut total = first.len();
    let mut buf = vec![0u8; 256 * 1024];
    let deadline = Instant::now() + Duration::from_secs(20);
    while total <= 10 << 20 {
        assert!(Instant::now() < deadline, "only {total} bytes in 20 s");
        let n = s.read(&mut buf).expect("body keeps coming");
        assert!(n > 0, "body ended after {total} bytes");
        total += n;
    }
    assert!(s.read(&mut buf).expect("still coming") > 0);
}

#[test]
fn blackhole_connect_never_completes_the_handshake() {
    let sim = Sim::start(&["--node", "blackhole-connect", "--node", "healthy"]);
    let addr = sim.nodes[0].addr();
    for _ in 0..3 {
        let started = Instant::now();
        let e = TcpStream::connect_timeout(&addr, Duration::from_millis(300))
            .expect_err("connect must not complete");
        assert!(is_timeout(&e), "{e}");
        assert!(started.elapsed() >= Duration::from_millis(250));
    }

    // Switched at runtime both ways through the admin endpoint.
    let admin = |i: usize, b: &str| {
        let url = format!("{}/admin/node/{i}/behaviour", sim.admin);
        assert_eq!(http("POST", &url, b).0, 200, "{b}");
    };
    admin(0, "healthy");
    wait_until(Duration::from_secs(10), "node 0 to accept again", || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()
    });
    assert_eq!(
        http("GET", &format!("{}{}", sim.nodes[0].url, paths::HEALTH), "").0,
        200
    );
    admin(1, "blackhole-connect");
    let e = TcpStream::connect_timeout(&sim.nodes[1].addr(), Duration::from_millis(300))
        .expect_err("node 1 now blackholed");
    assert!(is_timeout(&e), "{e}");
}
