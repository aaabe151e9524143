//! Upstreams without `/lean/v0/fork_choice` (older clients) still count:
//! their finalized slot comes from the finalized State, and they agree by
//! slot.

use std::time::Duration;

use crate::support::fixtures::{assert_fixture_body, FORK_CHOICE, STATE};
use crate::support::{fixture_finalized, start, Mode, Timing};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn a_legacy_upstream_agrees_through_the_fallback_source() {
    let (fakes, lp) = start(
        &[
            ("legacy", Mode::Legacy("advanced")),
            ("full1", Mode::Fixture("advanced")),
            ("full2", Mode::Fixture("advanced")),
        ],
        &Timing::FAST.args(),
    );
    let (slot, root) = fixture_finalized("advanced");
    let all = lp.wait_json(
        "/api/upstreams",
        "the legacy upstream agreeing",
        WAIT,
        |a| {
            a["consensus"]["has_consensus"] == true
                && a["upstreams"]
                    .as_array()
                    .is_some_and(|us| us.iter().all(|u| u["agrees"] == true))
        },
    );
    let legacy = crate::support::find_upstream(&all, "legacy");
    assert_eq!(legacy["source"], "fallback", "{legacy}");
    assert_eq!(legacy["standing"], "agreeing", "{legacy}");
    assert_eq!(legacy["last_finalized_slot"], slot, "{legacy}");
    assert_eq!(legacy["finalized_root"], Value::Null, "{legacy}");
    for name in ["full1", "full2"] {
        assert_eq!(
            crate::support::find_upstream(&all, name)["source"],
            "fork_choice"
        );
    }
    assert_eq!(all["consensus"]["finalized_slot"], slot, "{all}");
    assert_eq!(all["consensus"]["finalized_root"], root, "{all}");

    let status = lp.json("/status");
    assert_eq!(status["agreement"], true, "{status}");
    assert_eq!(status["finalized_slot"], slot, "{status}");
    assert_eq!(status["finalized_root"], root, "{status}");
    let state = lp.wait_code(STATE, 200, WAIT);
    assert_fixture_body(&state, "advanced", "states_finalized.ssz");
    assert!(
        fakes[0].requests(FORK_CHOICE) >= 1,
        "fork_choice was never probed"
    );
}

#[test]
fn three_legacy_upstreams_agree_by_slot() {
    let (_fakes, lp) = start(
        &[
            ("l1", Mode::Legacy("advanced")),
            ("l2", Mode::Legacy("advanced")),
            ("l3", Mode::Legacy("advanced")),
        ],
        &Timing::FAST.args(),
    );
    let (slot, _) = fixture_finalized("advanced");
    let status = lp.wait_json("/status", "agreement by slot", WAIT, |s| {
        s["agreement"] == true && s["finalized_slot"] == slot
    });
    assert_eq!(status["finalized_root"], Value::Null, "{status}");
    let state = lp.wait_code(STATE, 200, WAIT);
    assert_fixture_body(&state, "advanced", "states_finalized.ssz");
    assert!(
        state.header("etag").is_some(),
        "no ETag on a slot-only State"
    );
    let all = lp.json("/api/upstreams");
    for u in all["upstreams"].as_array().expect("upstreams") {
        assert_eq!(u["source"], "fallback", "{u}");
        assert_eq!(u["agrees"], true, "{u}");
    }
}
