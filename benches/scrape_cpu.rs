//! CPU per count of this process's TCP sockets by state (what every
//! /metrics scrape does for `leanpoint_process_tcp_sockets`), for the
//! TCP_INFO path and the socket-table fallback (sock_diag), holding a few
//! sockets like leanpoint with one upstream.
//!
//! CPU time, not wall time: CLOCK_THREAD_CPUTIME_ID counts user and kernel
//! time of this thread only, so a loaded machine changes it little. (An
//! instruction count from callgrind would not do: the cost being compared is
//! kernel time, which callgrind does not see.)
//!
//! `cargo bench --bench scrape_cpu` measures; scripts/scrape-cpu.sh runs it
//! with and without 30,000 TIME_WAIT sockets in another network namespace.
//! Under `cargo test` each path runs once as a smoke test.

use std::hint::black_box;
use std::net::{TcpListener, TcpStream};

use leanpoint::telemetry::tcp_sockets;

fn cpu_ns() -> u128 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `t`, which is one.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    t.tv_sec as u128 * 1_000_000_000 + t.tv_nsec as u128
}

/// Mean CPU microseconds per call over `n` calls.
fn per_call_us(n: u32, f: impl Fn() -> Option<tcp_sockets::Counts>) -> f64 {
    let start = cpu_ns();
    for _ in 0..n {
        black_box(f()).expect("counting sockets");
    }
    (cpu_ns() - start) as f64 / f64::from(n) / 1000.0
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    // One listener and three connected pairs: 7 TCP sockets of our own.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let _pairs: Vec<(TcpStream, TcpStream)> = (0..3)
        .map(|_| {
            let c = TcpStream::connect(addr).expect("connect");
            (c, listener.accept().expect("accept").0)
        })
        .collect();
    let n = if measuring { 2000 } else { 1 };
    let own = tcp_sockets::count().expect("count");
    assert_eq!(own, tcp_sockets::by_socket_tables().expect("tables"));
    let tcp_info = per_call_us(n, tcp_sockets::count);
    let tables = per_call_us(n, tcp_sockets::by_socket_tables);
    if measuring {
        let host_tcp = std::fs::read_to_string("/proc/net/sockstat")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("TCP:"))
                    .map(str::to_string)
            })
            .unwrap_or_default();
        println!("own TCP sockets: {}", own.iter().sum::<i64>());
        println!("this namespace's /proc/net/sockstat {host_tcp}");
        println!(
            "tcp_info (TCP_INFO on own fds):       {tcp_info:9.1} us CPU per count ({n} calls)"
        );
        println!("socket tables (sock_diag dump):       {tables:9.1} us CPU per count ({n} calls)");
    }
}
