//! The served finalized checkpoint never moves backwards: when every upstream
//! falls behind (a restart from an old database, a reorg to a shorter
//! chain), leanpoint keeps serving the checkpoint and State it already agreed.

use std::time::Duration;

use crate::support::fixtures::STATE;
use crate::support::{
    fixture, fixture_finalized, fixtures, metric, start, wait_until, Mode, Timing,
};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn finalized_never_regresses_when_all_upstreams_fall_behind() {
    // A stale window far longer than the test, so the agreement reached on
    // `advanced` stays fresh and the State stays servable throughout.
    let (fakes, lp) = start(
        &fixtures(&[("n1", "advanced"), ("n2", "advanced"), ("n3", "advanced")]),
        &Timing::STEADY.args(),
    );
    let (slot, root) = fixture_finalized("advanced");
    let (behind_slot, _) = fixture_finalized("behind");
    lp.wait_json("/status", "agreement on advanced", WAIT, |s| {
        s["agreement"] == true && s["finalized_slot"] == slot
    });
    let advanced_state = fixture("advanced", "states_finalized.ssz");
    let served = lp.wait_code(STATE, 200, WAIT);
    assert_eq!(&served.body[..], &advanced_state[..]);
    // One checkpoint served: one freshness observation (observed before the
    // pair is installed), from the poll that gave it its majority.
    let freshness = "leanpoint_checkpoint_freshness_seconds_count";
    let m = lp.metrics();
    assert_eq!(metric(&m, freshness, &[]), Some(1.0));
    let lag = metric(&m, "leanpoint_checkpoint_freshness_seconds_sum", &[]);
    assert!(
        lag.is_some_and(|s| (0.0..WAIT.as_secs_f64()).contains(&s)),
        "{lag:?}"
    );

    for f in &fakes {
        f.set_mode(Mode::Fixture("behind"));
    }
    // Every upstream now reports slot 5, and the decider has refused it.
    lp.wait_json("/api/upstreams", "every upstream behind", WAIT, |a| {
        a["upstreams"]
            .as_array()
            .is_some_and(|us| us.iter().all(|u| u["last_finalized_slot"] == behind_slot))
    });
    wait_until(WAIT, "a refused regression", || {
        let m = lp.metrics();
        match metric(&m, "leanpoint_finalized_regressions_refused_total", &[]) {
            Some(n) if n > 0.0 => Ok(()),
            other => Err(format!(
                "leanpoint_finalized_regressions_refused_total = {other:?}"
            )),
        }
    });

    // Over several more poll rounds the served checkpoint and State stay put.
    lp.hold_for_polls(5, || {
        let status = lp.json("/status");
        assert_eq!(status["finalized_slot"], slot, "{status}");
        assert_eq!(status["finalized_root"], root, "{status}");
        assert_eq!(status["served_state_slot"], slot, "{status}");
        let state = lp.get(STATE);
        assert_eq!(state.status, 200, "{}", state.text());
        assert_eq!(&state.body[..], &advanced_state[..], "the State regressed");
        let m = lp.metrics();
        assert_eq!(
            metric(&m, "leanpoint_finalized_slot", &[]),
            Some(slot as f64)
        );
        assert_eq!(
            metric(&m, "leanpoint_served_state_slot", &[]),
            Some(slot as f64)
        );
        // A refused checkpoint is never served, so never observed.
        assert_eq!(metric(&m, freshness, &[]), Some(1.0));
    });
}
