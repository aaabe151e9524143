//! Hostile upstream bodies are named failures, counted by kind, and never
//! take the service down: HTML where JSON belongs, the wrong content type,
//! bodies over the cap (with and without Content-Length), truncated States.

use std::time::Duration;

use crate::support::fixtures::{FORK_CHOICE, JSON, SSZ, STATE};
use crate::support::metrics::{assert_at_least, upstream_errors};
use crate::support::{fixture, metric, start, wait_until, FixtureRoutes, Mode, Reply, Routes};

const WAIT: Duration = Duration::from_secs(30);

/// Cases whose fork_choice is unusable but whose State serves.
const FALLS_BACK: [&str; 2] = ["garbage", "wrong-type"];

/// JSON-looking bytes well over the 4096-byte cap the test sets.
fn oversized_json() -> Vec<u8> {
    let mut body = b"{\"nodes\":[".to_vec();
    while body.len() < 20_000 {
        body.extend_from_slice(b"{\"slot\":1,\"root\":\"0x00\"},");
    }
    body.extend_from_slice(b"{}]}");
    body
}

#[test]
fn hostile_bodies_are_named_counted_and_survived() {
    let advanced = || Routes::fixture("advanced");
    let state = fixture("advanced", "states_finalized.ssz");
    let html = "<html><body><h1>502 Bad Gateway</h1></body></html>";
    // (name, routes, expected error kind); the first one is also a
    // supporter of the agreement (its State header parses), so the State
    // cache meets its broken full State first.
    let hostile: Vec<(&str, Routes, &str)> = vec![
        (
            "truncated-long",
            Routes::legacy("advanced").with(STATE, Reply::ok(SSZ, state[..500].to_vec())),
            "",
        ),
        (
            "garbage",
            advanced().with(FORK_CHOICE, Reply::ok(JSON, html)),
            "decode",
        ),
        (
            "wrong-type",
            advanced().with(
                FORK_CHOICE,
                Reply::ok(
                    "text/html; charset=utf-8",
                    fixture("advanced", "fork_choice.json"),
                ),
            ),
            "content_type",
        ),
        (
            "huge",
            advanced().with(FORK_CHOICE, Reply::ok(JSON, oversized_json())),
            "body_too_large",
        ),
        (
            "huge-chunked",
            advanced().with(FORK_CHOICE, Reply::ok(JSON, oversized_json()).chunked()),
            "body_too_large",
        ),
        (
            "truncated",
            Routes::legacy("advanced").with(STATE, Reply::ok(SSZ, state[..100].to_vec())),
            "decode",
        ),
    ];
    let mut upstreams: Vec<(&str, Mode)> = hostile
        .iter()
        .map(|(n, r, _)| (*n, Mode::Routes(r.clone())))
        .collect();
    upstreams.push(("good1", Mode::Fixture("advanced")));
    upstreams.push(("good2", Mode::Fixture("advanced")));
    let args =
        crate::support::Timing::FAST.with(&["--max-body-bytes", "4096", "--agreement", "count:2"]);
    let (_fakes, mut lp) = start(&upstreams, &args);

    for (name, _, kind) in hostile.iter().filter(|(_, _, k)| !k.is_empty()) {
        let what = format!("{name} failing with {kind}");
        wait_until(WAIT, &what, || {
            let u = lp.upstream(name);
            // An unusable fork_choice is counted (in the metric: the poll
            // itself succeeds), and the node is then read through its
            // State, as the Zig leanpoint read it, and re-probed.
            let (expected, n) = if FALLS_BACK.contains(name) {
                let m = lp.metrics();
                let counted = upstream_errors(&m, name, kind);
                let fell_back = u["source"] == "fallback" && u["healthy"] == true;
                (fell_back, counted.unwrap_or(0.0) as u64)
            } else {
                let failed = u["last_error_kind"] == *kind && u["healthy"] == false;
                (failed, u["errors_by_kind"][*kind].as_u64().unwrap_or(0))
            };
            if expected && n >= 2 {
                Ok(())
            } else {
                Err(u.to_string())
            }
        });
    }

    // The good upstreams (and the slot-only vote of truncated-long) still
    // agree, and the State served is whole: truncated-long's broken one was
    // refused by the cache.
    let served = lp.wait_code(STATE, 200, WAIT);
    assert_eq!(&served.body[..], &state[..]);
    let status = lp.json("/status");
    assert_eq!(status["agreement"], true, "{status}");
    assert_eq!(status["finalized_slot"], 9, "{status}");

    let m = lp.metrics();
    for (name, _, kind) in hostile.iter().filter(|(_, _, k)| !k.is_empty()) {
        assert_at_least(
            upstream_errors(&m, name, kind),
            2.0,
            &format!("{name} {kind}"),
        );
    }
    let long = upstream_errors(&m, "truncated-long", "decode");
    assert_at_least(long, 1.0, "truncated-long decode");
    let failures = metric(&m, "leanpoint_state_fetch_failures_total", &[]);
    assert_at_least(failures, 1.0, "state fetch failures");
    assert!(lp.exited().is_none(), "leanpoint exited");
    let health = lp.get("/livez");
    assert_eq!(health.status, 200, "{}", health.text());
}
