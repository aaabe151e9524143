//! The finalized-State download is a request like any other: it never runs
//! beside a poll of the same upstream (one request in flight per upstream;
//! the upstream's ticks are skipped meanwhile), it ends at its deadline, and
//! the cache then takes the State from the next agreeing upstream.

use std::time::Duration;

use crate::support::fixtures::{assert_fixture_body, FORK_CHOICE, STATE};
use crate::support::metrics::{assert_at_least, upstream_timeouts};
use crate::support::{metric, start, wait_until, FixtureRoutes, Mode, Reply, Routes, Timing};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn a_hung_state_download_never_overlaps_polls_of_that_upstream() {
    // "drip" answers polls normally but drips its State forever. It is the
    // first supporter, so the cache asks it first; its download lasts until
    // the cache's deadline while polls keep ticking every 100 ms.
    let drip = Routes::fixture("advanced")
        .with(STATE, Reply::ok("application/octet-stream", "").dripping());
    let (fakes, lp) = start(
        &[
            ("drip", Mode::Routes(drip)),
            ("good1", Mode::Fixture("advanced")),
            ("good2", Mode::Fixture("advanced")),
        ],
        &Timing::SHORT_DEADLINES.args(),
    );
    let fake = &fakes[0];

    // Sample the in-flight gauge until the State is served from a good one.
    let served = wait_until(WAIT, "the State served from another supporter", || {
        let m = lp.metrics();
        let n = metric(
            &m,
            "leanpoint_upstream_in_flight_requests",
            &[("upstream", "drip")],
        );
        assert!(
            n.is_some_and(|n| n <= 1.0),
            "drip has {n:?} requests in flight"
        );
        let r = lp.try_get(STATE, &[]).map_err(|e| e.to_string())?;
        if r.status == 200 {
            Ok(r)
        } else {
            Err(format!("HTTP {}: {}", r.status, r.text()))
        }
    });
    assert_fixture_body(&served, "advanced", "states_finalized.ssz");
    assert!(fake.requests(STATE) >= 1, "the cache never asked drip");
    // Its polls waited out the download (skipped ticks), then resumed.
    let u = wait_until(WAIT, "drip polled again", || {
        let u = lp.upstream("drip");
        let skipped = u["polls_skipped"].as_u64().unwrap_or(0);
        if skipped >= 5 && u["polls"].as_u64().unwrap_or(0) >= 3 && u["healthy"] == true {
            Ok(u)
        } else {
            Err(u.to_string())
        }
    });
    assert_eq!(u["agrees"], true, "{u}");
    assert!(fake.requests(FORK_CHOICE) >= 3, "drip was not polled");
    fake.assert_one_connection_at_a_time("drip");
    let m = lp.metrics();
    let timeouts = upstream_timeouts(&m, "drip", "total");
    assert_at_least(timeouts, 1.0, "the download did not time out");
    // The dripping download's socket was closed at its deadline.
    let state_conn = fake
        .connections()
        .into_iter()
        .max_by_key(|c| c.closed_at.map(|t| t - c.accepted_at))
        .expect("drip connections");
    let life = state_conn.closed_at.map(|t| t - state_conn.accepted_at);
    assert!(
        life.is_some_and(|l| l < Duration::from_millis(2000 + 1000)),
        "the longest drip connection lived {life:?} (download deadline 4 x 500 ms)"
    );
}

/// Upstreams whose finalized checkpoint moves past the agreed one between
/// the poll and the pair's download (a chain finalizing faster than
/// leanpoint polls). The downloaded pair is newer than the agreement, proven
/// and kept; the fetcher asks each such upstream for an early poll, so the
/// agreement reaches the kept pair and it is served within moments, not a
/// poll interval later (60 s here, longer than the test's wait).
#[test]
fn a_pair_that_moved_on_is_served_after_early_polls_not_a_poll_interval_later() {
    let moves_on = || Mode::Sim(leanpoint::devnet::Behaviour::MovesOn(2));
    let (fakes, lp) = start(
        &[("m1", moves_on()), ("m2", moves_on()), ("m3", moves_on())],
        &["--poll-ms", "60000", "--timeout-ms", "2000"],
    );
    let status = lp.wait_json("/status", "a served pair", WAIT, |s| {
        s["agreement"] == true
            && s["served_pair_verified"] == true
            && s["served_state_slot"] == s["finalized_slot"]
    });
    let m = lp.metrics();
    // The first agreement (two slots behind) was never served: every
    // source's pair was newer.
    let refused: f64 = ["m1", "m2", "m3"]
        .iter()
        .filter_map(|u| {
            let labels = [("upstream", *u), ("reason", "moved_on")];
            metric(&m, "leanpoint_upstream_verify_failures_total", &labels)
        })
        .sum();
    assert_at_least(Some(refused), 1.0, "pairs refused as moved on");
    let early = metric(&m, "leanpoint_early_polls_total", &[]);
    assert_at_least(early, 1.0, "early polls");
    // Two fork_choice polls of a source inside one 60 s interval: the tick's
    // and the early one.
    let polled = fakes.iter().map(|f| f.requests(FORK_CHOICE)).max();
    assert!(polled.is_some_and(|n| n >= 2), "{polled:?} {status}");
    let state = lp.get(STATE);
    assert_eq!(state.status, 200, "{}", state.text());
}

/// A source whose last download failed is asked last for the next
/// checkpoint: one stalled upstream costs one download budget, not one per
/// checkpoint. "drip" is the first supporter and drips its State; the first
/// checkpoint's download from it times out and another source serves. For
/// the next checkpoint it is not asked at all (the others serve at once).
#[test]
fn a_source_whose_download_failed_is_asked_last_next_time() {
    let dripping = |folder| {
        Mode::Routes(
            Routes::fixture(folder)
                .with(STATE, Reply::ok("application/octet-stream", "").dripping()),
        )
    };
    let (fakes, lp) = start(
        &[
            ("drip", dripping("behind")),
            ("good1", Mode::Fixture("behind")),
            ("good2", Mode::Fixture("behind")),
        ],
        &Timing::SHORT_DEADLINES.args(),
    );
    let fetch_failures = || {
        let m = lp.metrics();
        let labels = [("upstream", "drip"), ("reason", "fetch_failed")];
        metric(&m, "leanpoint_upstream_verify_failures_total", &labels)
    };
    let (behind, _) = crate::support::fixture_finalized("behind");
    lp.wait_json("/status", "behind's pair served", WAIT, |s| {
        s["served_state_slot"] == behind
    });
    assert_eq!(fetch_failures(), Some(1.0), "drip was asked first, once");

    // drip first, so that it reports the next checkpoint when the others
    // give it a majority: it is a source then, and would be asked first.
    let (advanced, _) = crate::support::fixture_finalized("advanced");
    fakes[0].set_mode(dripping("advanced"));
    lp.wait_json("/api/upstreams", "drip reporting advanced", WAIT, |a| {
        a["upstreams"][0]["last_finalized_slot"] == advanced
    });
    for f in &fakes[1..] {
        f.set_mode(Mode::Fixture("advanced"));
    }
    let status = lp.wait_json("/status", "advanced's pair served", WAIT, |s| {
        s["served_state_slot"] == advanced
    });
    assert_ne!(status["served_from"], "drip", "{status}");
    assert_eq!(
        fetch_failures(),
        Some(1.0),
        "drip was asked again before the good sources: {status}"
    );
}
