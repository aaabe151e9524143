//! `AppState::apply` records what `agreement::advance` rules: the served
//! checkpoint, its metrics, the fetcher's target and the supporters.

use bytes::Bytes;

use super::*;
use crate::agreement::Decision;
use crate::service::testing::{agreed, closed, fin};

fn no_votes(n: usize) -> Vec<Option<Vote>> {
    vec![None; n]
}

/// A served pair of `f` (its bytes do not matter to `apply`).
fn pair(f: crate::agreement::Finalized) -> ServedState {
    ServedState {
        slot: f.slot,
        root: f.root,
        bytes: Bytes::from_static(b"state"),
        etag: "\"e\"".to_string(),
        block: None,
        state_root: None,
        genesis_time: 0,
        fetched_from: "u0".to_string(),
    }
}

/// Three upstreams, all agreeing on (9, root 1): the decision every test
/// starts from.
fn agreed_on_9() -> Arc<AppState> {
    let state = closed(3);
    state.apply(&agreed(3, fin(9, 1), false), &no_votes(3));
    state
}

/// [`agreed_on_9`] with its pair installed: (9, root 1) is served.
fn serving_9() -> Arc<AppState> {
    let state = agreed_on_9();
    state.install_state(pair(fin(9, 1)));
    state
}

/// Asserts that (9, root 1) is still the finalized checkpoint, agreement is
/// off and `last_error` says `why`; returns the view for further checks.
fn held_at_9(state: &AppState, why: &str) -> ConsensusView {
    let c = state.consensus();
    assert_eq!(c.finalized, Some(fin(9, 1)));
    assert!(!c.agreement);
    assert_eq!(c.last_error.as_deref(), Some(why));
    c
}

#[test]
fn an_agreement_is_served_and_sent_to_the_fetcher() {
    let state = agreed_on_9();
    let c = state.consensus();
    assert_eq!(c.finalized, Some(fin(9, 1)));
    assert_eq!(c.justified.map(|j| j.slot), Some(10));
    assert!(c.agreement);
    assert_eq!(c.last_error, None);
    assert!(c.finalized_advanced_ms > 0);
    assert_eq!(*state.fetch_target.borrow(), Some(fin(9, 1)));
    assert_eq!(state.supporters(), vec![0, 1, 2]);
    assert_eq!(state.metrics.finalized_slot.get(), 9);
    assert_eq!(state.metrics.justified_slot.get(), 10);
    assert_eq!(state.metrics.consensus_reached.get(), 1);
    assert_eq!(state.history.checkpoints().len(), 1);
}

#[test]
fn an_older_agreement_is_refused_and_nothing_served_changes() {
    let state = serving_9();
    let advanced = state.consensus().finalized_advanced_ms;
    state.apply(&agreed(2, fin(5, 1), false), &no_votes(3));
    let c = held_at_9(
        &state,
        "agreement on finalized slot 5 refused: slot 9 was already served",
    );
    assert_eq!(c.finalized_advanced_ms, advanced);
    assert_eq!(state.metrics.regressions_refused.get(), 1);
    assert_eq!(state.metrics.finalized_slot.get(), 9);
    assert_eq!(*state.fetch_target.borrow(), Some(fin(9, 1)));
    assert!(state.served_state().is_some(), "the served pair stays");
}

#[test]
fn a_contradicted_checkpoint_is_replaced_by_a_majority_and_its_pair_dropped() {
    let state = serving_9();
    let sent = state.served_state().expect("served").bytes.clone();
    assert!(
        state.sendable.find(&sent).is_some(),
        "its State is sendable"
    );
    assert_eq!(state.metrics.served_state_sendfile.get(), 1);
    state.apply(&agreed(2, fin(8, 2), true), &no_votes(3));
    let c = state.consensus();
    assert_eq!(c.finalized, Some(fin(8, 2)));
    assert!(c.agreement);
    assert!(c.served_contradicted);
    assert!(
        state.served_state().is_none(),
        "the contradicted pair is dropped"
    );
    assert!(state.sendable.find(&sent).is_none(), "and its file with it");
    assert_eq!(state.metrics.served_state_sendfile.get(), 0);
    assert_eq!(state.metrics.pair.replaced.get(), 1);
    assert_eq!(state.metrics.regressions_refused.get(), 0);
    assert_eq!(*state.fetch_target.borrow(), Some(fin(8, 2)));
    assert_eq!(state.supporters(), vec![0, 1]);
}

#[test]
fn no_agreement_says_why_and_keeps_the_served_checkpoint() {
    let state = agreed_on_9();
    let none = Decision {
        agreed: None,
        responding: 1,
        required: 2,
        ..agreed(3, fin(9, 1), false)
    };
    state.apply(&none, &no_votes(3));
    held_at_9(
        &state,
        "no consensus reached among upstreams (1 fresh of 3, 2 must agree)",
    );
    assert_eq!(state.metrics.consensus_reached.get(), 0);
    let conflict = Decision {
        conflict: true,
        ..none
    };
    state.apply(&conflict, &no_votes(3));
    assert_eq!(
        state.consensus().last_error.as_deref(),
        Some("conflict: two finalized roots at one slot both meet the agreement rule")
    );
}

#[test]
fn a_pair_that_lost_the_race_is_not_installed() {
    let state = agreed_on_9();
    state.install_state(pair(fin(8, 1)));
    assert!(state.served_state().is_none(), "older slot");
    state.install_state(pair(fin(9, 2)));
    assert!(state.served_state().is_none(), "other root");
    state.install_state(pair(fin(9, 1)));
    assert_eq!(state.served_state().map(|s| s.slot), Some(9));
    assert_eq!(state.metrics.served_state_slot.get(), 9);
}
