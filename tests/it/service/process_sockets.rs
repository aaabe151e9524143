//! `leanpoint_process_tcp_sockets` of the real binary against what the
//! process really holds: N idle inbound connections are N ESTABLISHED (plus
//! the scrape's own), the listener is one LISTEN, /proc agrees, and closing
//! some brings the count down. The upstream is a closed port, so leanpoint
//! holds no outbound socket and every count is exact.
//! (tests/process_sockets_self.rs holds a CLOSE-WAIT in its own process.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::{dead_port, idle_connections, metric, wait_until, Leanpoint};

/// One scrape on a fresh connection that leanpoint closes after answering,
/// so it is the only extra socket while /metrics is read.
fn scrape(port: u16) -> Result<String, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: leanpoint\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

fn sockets(text: &str, state: &str) -> Option<f64> {
    metric(text, "leanpoint_process_tcp_sockets", &[("state", state)])
}

/// Waits until the metric shows `established` ESTABLISHED, one LISTEN and
/// nothing else, and /proc shows `inbound` accepted connections.
fn expect_counts(lp: &Leanpoint, established: f64, inbound: usize) {
    let port = lp.port();
    let what = format!("{established} established and 1 listen, nothing else");
    wait_until(Duration::from_secs(15), &what, || {
        let text = scrape(port)?;
        let proc_inbound = lp.fds().iter().filter(|f| f.is_inbound_to(port)).count();
        let all: Vec<(String, Option<f64>)> = leanpoint::telemetry::tcp_sockets::STATES
            .iter()
            .map(|s| (s.to_string(), sockets(&text, s)))
            .collect();
        let want = |s: &str| match s {
            "established" => established,
            "listen" => 1.0,
            _ => 0.0,
        };
        let ok = all.iter().all(|(s, v)| *v == Some(want(s)));
        if ok && proc_inbound == inbound {
            Ok(())
        } else {
            Err(format!("metric {all:?}, /proc inbound {proc_inbound}"))
        }
    });
}

#[test]
fn idle_inbound_connections_are_counted_by_state() {
    let lp = Leanpoint::builder()
        .upstream("dead", &format!("http://127.0.0.1:{}", dead_port()))
        .args(&[
            "--header-timeout-ms",
            "60000",
            "--poll-ms",
            "60000",
            "--stale-ms",
            "120000",
        ])
        .spawn();
    expect_counts(&lp, 1.0, 0);

    let mut idle = idle_connections(lp.addr, 25);
    // 25 idle, the scrape's own connection (accepted, so counted) too.
    expect_counts(&lp, 26.0, 25);

    idle.truncate(15);
    expect_counts(&lp, 16.0, 15);
}
