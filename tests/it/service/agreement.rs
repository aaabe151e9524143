//! Agreement on the real binary: what is served when enough upstreams agree,
//! and that nothing is served when they do not (forks, 2 of 4, dead nodes).

use std::time::Duration;

use crate::support::fixtures::{assert_fixture_body, FORK_CHOICE, STATE};
use crate::support::{
    dead_port, fixture_finalized, fixtures, metric, start, Leanpoint, Mode, Timing,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// Waits for agreement on `folder`'s finalized checkpoint and for its State.
fn wait_served(lp: &Leanpoint, folder: &str) -> crate::support::Resp {
    let (slot, root) = fixture_finalized(folder);
    let status = lp.wait_json("/status", "agreement", WAIT, |s| {
        s["agreement"] == true && s["finalized_slot"] == slot
    });
    assert_eq!(status["finalized_root"], root, "{status}");
    let state = lp.wait_code(STATE, 200, WAIT);
    assert_fixture_body(&state, folder, "states_finalized.ssz");
    state
}

fn agree_and_serve(folder: &'static str) {
    let (_fakes, lp) = start(
        &[
            ("n1", Mode::Fixture(folder)),
            ("n2", Mode::Fixture(folder)),
            ("n3", Mode::Fixture(folder)),
        ],
        &Timing::FAST.args(),
    );
    let (slot, _) = fixture_finalized(folder);
    let state = wait_served(&lp, folder);
    assert_eq!(
        state.header("content-type"),
        Some("application/octet-stream")
    );
    let etag = state
        .header("etag")
        .expect("the State is served with an ETag");
    let again = lp
        .try_get(STATE, &[("if-none-match", etag)])
        .expect("conditional GET");
    assert_eq!(again.status, 304, "If-None-Match {etag}: {}", again.text());
    assert!(again.body.is_empty(), "304 with a body");

    let status = lp.json("/status");
    assert_eq!(status["served_state_slot"], slot, "{status}");
    let all = lp.wait_json("/api/upstreams", "every upstream agreeing", WAIT, |a| {
        a["upstreams"]
            .as_array()
            .is_some_and(|us| us.iter().all(|u| u["agrees"] == true))
    });
    for u in all["upstreams"].as_array().expect("upstreams array") {
        assert_eq!(u["agrees"], true, "{u}");
        assert_eq!(u["standing"], "agreeing", "{u}");
        assert_eq!(u["last_finalized_slot"], slot, "{u}");
    }
    assert_eq!(all["consensus"]["has_consensus"], true, "{all}");
    assert_eq!(all["consensus"]["required_votes"], 2, "{all}");
}

#[test]
fn three_advanced_upstreams_agree_and_the_state_is_served() {
    agree_and_serve("advanced");
}

#[test]
fn three_genesis_upstreams_agree_on_slot_zero() {
    agree_and_serve("genesis");
}

#[test]
fn two_of_three_agree_and_the_fork_is_not_counted() {
    let (_fakes, lp) = start(
        &fixtures(&[("adv1", "advanced"), ("adv2", "advanced"), ("fork", "fork")]),
        &Timing::FAST.args(),
    );
    wait_served(&lp, "advanced");
    let all = lp.wait_json("/api/upstreams", "fork standing conflicting", WAIT, |a| {
        a["upstreams"].as_array().is_some_and(|us| {
            us.iter()
                .any(|u| u["name"] == "fork" && u["standing"] == "conflicting")
        })
    });
    let fork = crate::support::find_upstream(&all, "fork");
    assert_eq!(fork["agrees"], false, "{fork}");
    assert_eq!(
        fork["finalized_root"],
        fixture_finalized("fork").1,
        "{fork}"
    );
    for name in ["adv1", "adv2"] {
        let u = crate::support::find_upstream(&all, name);
        assert_eq!(u["agrees"], true, "{u}");
        assert_eq!(u["standing"], "agreeing", "{u}");
    }
    let m = lp.metrics();
    let by_state = |s: &str| metric(&m, "leanpoint_consensus_upstreams", &[("state", s)]);
    assert_eq!(by_state("agreeing"), Some(2.0), "{m}");
    assert_eq!(by_state("conflicting"), Some(1.0), "{m}");
    assert_eq!(
        metric(
            &m,
            "leanpoint_upstream_agrees_with_consensus",
            &[("upstream", "fork")]
        ),
        Some(0.0)
    );
}

/// Waits until every upstream has answered and been seen by a decision,
/// then checks over several more poll rounds that nothing is ever served.
/// Returns the last /status.
fn assert_never_served(lp: &Leanpoint, responding: usize) -> Value {
    let all = lp.wait_json("/api/upstreams", "all fresh upstreams counted", WAIT, |a| {
        a["consensus"]["responding_upstreams"] == responding
    });
    assert_eq!(all["consensus"]["has_consensus"], false, "{all}");
    let mut last_status = Value::Null;
    lp.hold_for_polls(5, || {
        last_status = lp.json("/status");
        assert_eq!(last_status["agreement"], false, "{last_status}");
        let state = lp.get(STATE);
        assert_eq!(state.status, 503, "State served without agreement");
        // The 503 says why: Zig's words in plain text, JSON when asked for.
        let why = state.text();
        assert!(
            why.starts_with("stale") || why.starts_with("no_finalized_state"),
            "State 503 body: {why:?}"
        );
        let state = lp
            .try_get(STATE, &[("accept", "application/json")])
            .expect("GET State as JSON");
        assert_eq!(state.status, 503, "State served without agreement");
        let _: Value = state.json();
        let health = lp.get("/healthz");
        assert_eq!(
            health.status,
            503,
            "/healthz without agreement: {}",
            health.text()
        );
        assert!(
            !health.text().trim().is_empty(),
            "/healthz 503 without a reason"
        );
        let all = lp.json("/api/upstreams");
        assert_eq!(all["consensus"]["has_consensus"], false, "{all}");
    });
    last_status
}

fn two_against_two(extra: &[&str]) -> (Vec<crate::support::SimUpstream>, Leanpoint) {
    let args = Timing::FAST.with(extra);
    start(
        &fixtures(&[
            ("adv1", "advanced"),
            ("adv2", "advanced"),
            ("fork1", "fork"),
            ("fork2", "fork"),
        ]),
        &args,
    )
}

#[test]
fn two_of_four_is_no_majority() {
    let (_fakes, lp) = two_against_two(&[]);
    assert_never_served(&lp, 4);
}

#[test]
fn two_of_four_is_no_responding_majority_either() {
    let (_fakes, lp) = two_against_two(&["--agreement", "responding-majority"]);
    assert_never_served(&lp, 4);
}

#[test]
fn count_two_with_two_roots_at_one_slot_is_a_conflict() {
    let (_fakes, lp) = two_against_two(&["--agreement", "count:2"]);
    let status = assert_never_served(&lp, 4);
    let reason = status["last_error"].as_str().unwrap_or_default();
    assert!(reason.contains("conflict"), "{status}");
}

#[test]
fn a_disagreeing_upstream_is_not_counted() {
    let dead = format!("http://127.0.0.1:{}", dead_port());
    let fakes = [
        crate::support::SimUpstream::start(Mode::Fixture("advanced")),
        crate::support::SimUpstream::start(Mode::Fixture("fork")),
    ];
    let lp = Leanpoint::builder()
        .upstream("adv", &fakes[0].url())
        .upstream("fork", &fakes[1].url())
        .upstream("dead", &dead)
        .timing(Timing::FAST)
        .spawn();
    let status = assert_never_served(&lp, 2);
    assert_ne!(
        status["finalized_slot"], 9,
        "never agreed, never served: {status}"
    );
    let dead = lp.upstream("dead");
    assert_eq!(dead["last_error_kind"], "refused", "{dead}");
    assert_eq!(dead["standing"], "failing", "{dead}");
    for name in ["adv", "fork"] {
        let u = lp.upstream(name);
        assert_eq!(u["agrees"], false, "{u}");
        assert_eq!(u["healthy"], true, "{u}");
    }
    assert!(fakes[1].requests(FORK_CHOICE) > 0);
}
