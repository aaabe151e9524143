//! The real `leanpoint` binary under inbound pressure: its /metrics pass
//! `promtool check metrics`, `process_open_fds` matches /proc, the fd
//! threshold turns /healthz and /livez to 503 and back, and hundreds of
//! slowloris connections neither stop it answering nor push fds past the cap.
//! Upstreams are closed ports on 127.0.0.1, so there is never agreement:
//! these tests are about the listener, not consensus.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{prlimit, Pid, Resource, Rlimit};

use crate::support::sys::{fd_count, raise_own_fd_limit};
use crate::support::*;

fn start(extra: &[&str]) -> Leanpoint {
    // Five upstreams on closed ports: pollers tick, nothing agrees.
    Leanpoint::builder()
        .refused_upstreams(5)
        .args(extra)
        .spawn()
}

/// GET `path` on a new connection; panics if no complete answer arrives.
fn get(addr: SocketAddr, path: &str) -> Resp {
    must_get(&format!("http://{addr}{path}"))
}

fn find_on_path(tool: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}

#[test]
fn metrics_pass_promtool_check() {
    let Some(promtool) = find_on_path("promtool") else {
        panic!(
            "promtool is not on PATH. Run the project's test script, which installs it \
             (Debian/Ubuntu package `prometheus`), or install it yourself."
        );
    };
    let lp = start(&[]);
    // Every upstream polled and failed at least once; a few routes served,
    // so every family has series.
    wait_until(Duration::from_secs(15), "all five upstreams polled", || {
        let t = lp.metrics();
        (1..=5)
            .all(|i| {
                metric_exact(
                    &t,
                    &format!(
                        "leanpoint_upstream_errors_total{{upstream=\"dead_{i}\",kind=\"refused\"}}"
                    ),
                )
                .is_some_and(|v| v >= 1.0)
            })
            .then_some(())
    });
    for path in ["/status", "/api/upstreams", "/healthz", "/nope"] {
        let _ = lp.get(path);
    }
    let text = lp.metrics();
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool output");
    // The Zig leanpoint's deprecated families keep their exact names for its
    // dashboards; promtool's lint of those names (`_ms`) is the one
    // complaint allowed, and only for them.
    const ZIG_NAMES: [&str; 4] = [
        "leanpoint_last_success_timestamp_ms ",
        "leanpoint_last_updated_timestamp_ms ",
        "leanpoint_last_latency_ms ",
        "leanpoint_error_total ",
    ];
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let other: Vec<&str> = report
        .lines()
        .filter(|l| !l.trim().is_empty() && !ZIG_NAMES.iter().any(|z| l.starts_with(z)))
        .collect();
    assert!(
        out.status.success() || other.is_empty(),
        "promtool check metrics failed:\n{report}\n--- metrics ---\n{text}"
    );
    assert!(other.is_empty(), "promtool check metrics: {other:#?}");
}

#[test]
fn process_open_fds_matches_proc() {
    raise_own_fd_limit();
    let lp = start(&["--header-timeout-ms", "60000"]);
    let idle = idle_connections(lp.addr, 20);
    wait_until(
        Duration::from_secs(10),
        "20 idle connections accepted",
        || {
            let t = lp.metrics();
            (metric(&t, "leanpoint_http_open_connections", &[]) == Some(21.0)).then_some(())
        },
    );
    for _ in 0..5 {
        let t = lp.metrics();
        let reported = metric(&t, "process_open_fds", &[]).expect("process_open_fds") as i64;
        let counted = fd_count(lp.pid()) as i64;
        // The scrape's own connection, and an upstream poll socket opening
        // or closing in between, may differ.
        assert!(
            (reported - counted).abs() <= 4,
            "process_open_fds {reported}, /proc/{}/fd has {counted}",
            lp.pid()
        );
        assert!(reported >= 20, "{reported} fds with 20 idle clients");
        let tcp_established = metric(
            &t,
            "leanpoint_process_tcp_sockets",
            &[("state", "established")],
        )
        .expect("tcp sockets by state");
        assert!(tcp_established >= 20.0, "{tcp_established} established");
        assert_eq!(
            metric(&t, "leanpoint_process_tcp_sockets", &[("state", "listen")]),
            Some(1.0)
        );
    }
    drop(idle);
}

#[test]
fn fd_threshold_turns_healthz_and_livez_503_and_back() {
    raise_own_fd_limit();
    let lp = start(&["--fd-threshold", "0.5", "--header-timeout-ms", "60000"]);
    // Lower the running process's limit (both soft and hard) to 128, after
    // its start-up raise: the threshold is then 64 fds.
    let pid = Pid::from_raw(lp.pid() as i32).expect("child pid");
    prlimit(
        Some(pid),
        Resource::Nofile,
        Rlimit {
            current: Some(128),
            maximum: Some(128),
        },
    )
    .expect("prlimit on the child");
    let t = lp.metrics();
    assert_eq!(metric(&t, "process_max_fds", &[]), Some(128.0));
    wait_until(
        Duration::from_secs(10),
        "/livez 200 before the load",
        || (lp.get("/livez").status == 200).then_some(()),
    );
    let before = lp.get("/healthz");
    assert_eq!(before.status, 503, "no agreement with dead upstreams");
    // The Zig leanpoint's word: no upstream answered (all are dead).
    assert!(
        before.text().starts_with("stale") || before.text().starts_with("no_upstreams"),
        "{}",
        before.text()
    );
    assert!(!before.text().contains("fd:"), "{}", before.text());

    let mut idle = Vec::new();
    while fd_count(lp.pid()) <= 70 {
        assert!(idle.len() < 110, "fds did not grow with connections");
        idle.push(TcpStream::connect(lp.addr).expect("connect"));
        if idle.len() % 8 == 0 {
            let n = idle.len();
            wait_until(Duration::from_secs(5), "connections accepted", || {
                (fd_count(lp.pid()) >= n).then_some(())
            });
        }
    }
    let health = lp.get("/healthz");
    assert_eq!(health.status, 503);
    assert!(health.text().contains("fd: "), "{}", health.text());
    assert!(health.text().contains("128 limit"), "{}", health.text());
    let live = lp.get("/livez");
    assert_eq!(live.status, 503, "{}", live.text());
    assert!(live.text().starts_with("fd: "), "{}", live.text());

    drop(idle);
    wait_until(Duration::from_secs(10), "/livez back to 200", || {
        (lp.get("/livez").status == 200).then_some(())
    });
    // Once every first poll has ended (a poll may have met EMFILE while the
    // fds were full), the reason is Zig's `no_upstreams`.
    let after = wait_until(
        Duration::from_secs(10),
        "/healthz says no_upstreams",
        || {
            let h = lp.get("/healthz");
            h.text().starts_with("no_upstreams").then_some(h)
        },
    );
    assert_eq!(after.status, 503, "still no agreement");
    assert!(!after.text().contains("fd:"), "{}", after.text());
}

/// Client side of a slowloris: connections that send a request line and
/// then one header byte per second, never finishing.
struct Slowloris {
    conns: Vec<Option<TcpStream>>,
}

impl Slowloris {
    fn open(addr: std::net::SocketAddr, n: usize) -> Slowloris {
        let conns = (0..n)
            .map(|_| {
                let mut s = TcpStream::connect(addr).expect("connect");
                s.write_all(b"GET /status HTTP/1.1\r\nX-Slow: ")
                    .expect("send");
                s.set_nonblocking(true).expect("nonblocking");
                Some(s)
            })
            .collect();
        Slowloris { conns }
    }

    /// Sends one more byte on every connection still open; forgets those the
    /// server closed. Returns how many are still open.
    fn drip(&mut self) -> usize {
        let mut buf = [0u8; 256];
        for slot in &mut self.conns {
            let Some(s) = slot else { continue };
            let closed = match s.read(&mut buf) {
                Ok(_) => true, // EOF, or a 408 before closing
                Err(e) if e.kind() == ErrorKind::WouldBlock => s.write_all(b"a").is_err(),
                Err(_) => true,
            };
            if closed {
                *slot = None;
            }
        }
        self.open_count()
    }

    fn open_count(&self) -> usize {
        self.conns.iter().filter(|c| c.is_some()).count()
    }
}

/// Time to a complete answer on a fresh connection.
fn timed_get(addr: std::net::SocketAddr, path: &str) -> (u16, Duration) {
    let started = Instant::now();
    let r = get(addr, path);
    (r.status, started.elapsed())
}

#[test]
fn slowloris_connections_neither_block_nor_leak() {
    raise_own_fd_limit();
    // Phase 1: 300 slowloris connections under the default cap (512), with a
    // header timeout long enough that they stay: the service answers anyway.
    let lp = start(&["--header-timeout-ms", "60000"]);
    let mut loris = Slowloris::open(lp.addr, 300);
    let started = Instant::now();
    let mut max_fds = 0;
    while started.elapsed() < Duration::from_secs(3) {
        assert_eq!(
            loris.drip(),
            300,
            "slowloris closed before the header timeout"
        );
        // Dead upstreams never agree: /healthz is 503 for that alone.
        for (path, code) in [("/metrics", 200), ("/healthz", 503)] {
            let (status, took) = timed_get(lp.addr, path);
            assert_eq!(status, code, "{path}");
            assert!(
                took < Duration::from_secs(1),
                "{path} took {took:?} under slowloris"
            );
        }
        max_fds = max_fds.max(fd_count(lp.pid()));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(max_fds <= 512 + 40, "{max_fds} fds with a 512 cap");
    drop(loris);
    drop(lp);

    // Phase 2: the same 300 with a 100 cap and a 500 ms header timeout: the
    // server never holds more than its cap and closes them all by itself.
    let lp = start(&["--max-connections", "100", "--header-timeout-ms", "500"]);
    let mut loris = Slowloris::open(lp.addr, 300);
    let mut max_fds = 0;
    wait_until(
        Duration::from_secs(20),
        "the server to close every slowloris connection",
        || {
            max_fds = max_fds.max(fd_count(lp.pid()));
            (loris.drip() == 0).then_some(())
        },
    );
    assert!(max_fds <= 100 + 40, "{max_fds} fds with a 100 cap");
    let t = lp.metrics();
    assert!(
        metric(&t, "leanpoint_http_connections_over_cap_total", &[]).is_some_and(|v| v >= 1.0),
        "the accept loop never paused at the cap"
    );
    let (status, took) = timed_get(lp.addr, "/metrics");
    assert_eq!(status, 200);
    assert!(
        took < Duration::from_secs(1),
        "/metrics took {took:?} after the attack"
    );
}

#[test]
fn running_out_of_fds_does_not_stop_the_listener() {
    raise_own_fd_limit();
    let mut lp = start(&["--header-timeout-ms", "60000"]);
    // 64 fds for a server allowed 512 connections: inbound connections will
    // exhaust them, and accept() fails with EMFILE.
    let pid = Pid::from_raw(lp.pid() as i32).expect("child pid");
    prlimit(
        Some(pid),
        Resource::Nofile,
        Rlimit {
            current: Some(64),
            maximum: Some(64),
        },
    )
    .expect("prlimit on the child");
    // Beyond the fd limit they wait in the kernel's backlog.
    let idle = idle_connections(lp.addr, 100);
    lp.proc.stderr_line(
        |l| l.contains("accept() failed on the public listener"),
        Duration::from_secs(10),
    );
    let held = fd_count(lp.pid());
    // Fds opened before the limit was lowered (or inherited) may sit above it.
    assert!(held <= 66, "{held} fds held with a limit of 64");
    assert!(lp.exited().is_none(), "leanpoint exited at EMFILE");
    // The clients leave; the listener recovers on its own.
    drop(idle);
    wait_until(
        Duration::from_secs(15),
        "/livez 200 after the fd exhaustion",
        || (lp.get("/livez").status == 200).then_some(()),
    );
    let log = lp.stderr();
    let failures = log
        .matches("accept() failed on the public listener")
        .count();
    assert!(
        failures <= 5,
        "accept failures not rate-limited: {failures} log lines"
    );
}
