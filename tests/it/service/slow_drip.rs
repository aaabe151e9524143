//! A slow-drip upstream (headers, then one body byte every 100 ms, forever)
//! is cut off at the total deadline: a timeout, not a hang, and its socket is
//! closed by leanpoint right then.

use std::time::Duration;

use crate::support::metrics::{assert_at_least, upstream_errors, upstream_timeouts};
use crate::support::{start, wait_until, Mode, Timing};

const WAIT: Duration = Duration::from_secs(30);
const TIMEOUT_MS: u64 = 500;

#[test]
fn slow_drip_is_cut_off_at_the_total_deadline() {
    // A poll interval twice the deadline, so each timed-out request is
    // followed by an idle gap and every connection's life is one request.
    let (fakes, lp) = start(
        &[
            ("drip", Mode::SlowDrip),
            ("good1", Mode::Fixture("advanced")),
            ("good2", Mode::Fixture("advanced")),
        ],
        &Timing::IDLE_GAPS.args(),
    );
    let drip = &fakes[0];

    let u = wait_until(WAIT, "three timed-out polls of drip", || {
        let u = lp.upstream("drip");
        if u["errors_by_kind"]["timeout"].as_u64().unwrap_or(0) >= 3 {
            Ok(u)
        } else {
            Err(u.to_string())
        }
    });
    assert_eq!(u["last_error_kind"], "timeout", "{u}");
    let latency = u["last_latency_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("no last_latency_ms: {u}"));
    assert!(
        (TIMEOUT_MS - 50..1500).contains(&latency),
        "poll latency {latency} ms, deadline {TIMEOUT_MS} ms"
    );

    // The fake saw each connection closed by leanpoint within ~1 s of the
    // deadline (and not before it: the drip never stopped on its own).
    let closed: Vec<Duration> = wait_until(WAIT, "drip connections closed", || {
        let done: Vec<Duration> = drip
            .connections()
            .iter()
            .filter_map(|c| c.closed_at.map(|t| t - c.accepted_at))
            .collect();
        if done.len() >= 3 {
            Ok(done)
        } else {
            Err(format!("{:?}", drip.connections()))
        }
    });
    for life in &closed {
        assert!(
            *life >= Duration::from_millis(TIMEOUT_MS - 50)
                && *life < Duration::from_millis(TIMEOUT_MS + 1000),
            "a drip connection lived {life:?} (deadline {TIMEOUT_MS} ms): {closed:?}"
        );
    }
    drip.assert_one_connection_at_a_time("drip");

    let m = lp.metrics();
    let timeouts = upstream_timeouts(&m, "drip", "total");
    assert_at_least(timeouts, 3.0, "total timeouts");
    let errors = upstream_errors(&m, "drip", "timeout");
    assert_at_least(errors, 3.0, "timeout errors");
    let status = lp.json("/status");
    assert_eq!(
        status["agreement"], true,
        "two of three still agree: {status}"
    );
}
