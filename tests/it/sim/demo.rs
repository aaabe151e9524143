//! `leanpoint demo`: one process, a simulated devnet and leanpoint polling
//! it. It prints the URLs to open, reaches agreement with the default
//! 8-node devnet (5 healthy, 1 accept-hang, 1 lagging, 1 fork), shows the
//! hung node as down, and stops cleanly on SIGTERM.

use std::time::Duration;

use crate::support::http::http;
use crate::support::sim::spawn;
use crate::support::wait_until;

#[test]
fn demo_prints_its_urls_reaches_agreement_and_stops_on_sigterm() {
    let mut demo = spawn(&["--log-level", "info", "demo", "--port", "0"]);
    let lines = demo.stdout_until(|l| l.starts_with("Ctrl-C stops"), Duration::from_secs(20));

    // The URL lines, all on the one port leanpoint bound.
    let url_of = |label: &str| -> String {
        lines
            .iter()
            .find_map(|l| l.trim_start().strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label:?} line in {lines:#?}"))
            .trim()
            .to_string()
    };
    let page = url_of("status page");
    assert!(
        page.starts_with("http://127.0.0.1:") && page.ends_with('/'),
        "{page}"
    );
    let base = page.trim_end_matches('/').to_string();
    assert_ne!(base, "http://127.0.0.1:0", "the real port is printed");
    assert_eq!(url_of("metrics"), format!("{base}/metrics"));
    assert_eq!(url_of("upstreams"), format!("{base}/api/upstreams"));
    assert_eq!(
        url_of("finalized state"),
        format!("{base}/lean/v0/states/finalized")
    );
    let nodes: Vec<_> = lines
        .iter()
        .filter(|l| l.trim_start().starts_with("node "))
        .collect();
    assert_eq!(nodes.len(), 8, "{lines:#?}");
    assert!(nodes[5].contains("node-5-accept-hang"), "{}", nodes[5]);

    // leanpoint answers on the printed port.
    assert_eq!(http("GET", &format!("{base}/status"), "").0, 200);

    // 5 of 8 agree: the decider logs the agreement.
    demo.stderr_line(|l| l.contains("agreement reached"), Duration::from_secs(20));

    wait_until(
        Duration::from_secs(20),
        "consensus and a down hung node in /metrics",
        || {
            let (status, _, body) = http("GET", &format!("{base}/metrics"), "");
            let text = String::from_utf8_lossy(&body).to_string();
            (status == 200
                && text.contains("\nleanpoint_consensus_reached 1\n")
                && text.contains("leanpoint_upstream_up{upstream=\"node-5-accept-hang\"} 0")
                && text.contains("leanpoint_upstream_up{upstream=\"node-0-healthy\"} 1"))
            .then_some(())
        },
    );

    demo.signal(rustix::process::Signal::TERM);
    let exit = wait_until(
        Duration::from_secs(10),
        "the demo to exit after SIGTERM",
        || demo.exited(),
    );
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn demo_rejects_an_invalid_configuration() {
    let mut demo = spawn(&["demo", "--port", "0", "--poll-ms", "0"]);
    let exit = wait_until(Duration::from_secs(10), "the demo to exit", || {
        demo.exited()
    });
    assert_eq!(exit.code(), Some(2));
    demo.stderr_line(|l| l.contains("--poll-ms"), Duration::from_secs(5));
}
