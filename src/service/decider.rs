//! The decider: turns the upstreams' views into an agreement and applies
//! it (`AppState::decide`, then `AppState::apply`).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use crate::service::AppState;
use crate::shutdown::Shutdown;

/// Recomputes the decision when an input changed (`AppState::decide_soon`:
/// a changed vote, new evidence, a new served pair), when a vote ages out of
/// the stale window, and at least once per poll interval (the chain's
/// current slot, which bounds possible finalized slots, moves with time).
///
/// No decision is made before every upstream's first poll has ended (either
/// way). Until then an upstream not yet asked looks like one that is down,
/// so the first answers would decide alone: under responding-majority the
/// very first upstream to answer is "1 of 1", and under count:N the first N
/// of one fork win before the other fork is heard. The wait is bounded: the
/// first polls start within one interval and each ends at its deadline.
pub async fn run(state: Arc<AppState>, mut shutdown: Shutdown) {
    let mut first_round_done = false;
    let mut ticks = tokio::time::interval(state.config.poll.min(Duration::from_secs(1)));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut had_agreement = false;
    // With many upstreams polls finish continuously; deciding once per batch
    // instead of once per poll keeps the decider's cost flat (a decision
    // reads every upstream's view). A twentieth of the interval keeps the
    // agreement at most that much behind the polls.
    let batch =
        (state.config.poll / 20).clamp(Duration::from_millis(1), Duration::from_millis(100));
    let mut expiry: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = state.decide_soon.notified() => {
                tokio::select! {
                    _ = shutdown.wait() => break,
                    _ = tokio::time::sleep(batch) => {}
                }
            }
            _ = ticks.tick() => {}
            // Just past it: a vote is fresh up to and including `stale`.
            _ = tokio::time::sleep_until(expiry.unwrap_or_else(Instant::now) + Duration::from_millis(1)), if expiry.is_some() => {}
        }
        if !first_round_done {
            let polled = state.polled_once();
            if polled < state.upstreams.len() {
                state.note_first_round(polled);
                continue;
            }
            first_round_done = true;
        }
        let (votes, next_expiry) = state.fresh_votes_until();
        expiry = next_expiry;
        let decision = state.decide(&votes);
        state.apply(&decision, &votes);
        let has = decision.agreed.is_some();
        if has != had_agreement {
            let c = state.consensus();
            if has {
                tracing::info!(
                    finalized_slot = c.finalized.map(|f| f.slot),
                    agreeing = c.agreeing(),
                    required = c.required,
                    "agreement reached"
                );
            } else {
                tracing::warn!(
                    reason = c.last_error.as_deref().unwrap_or(""),
                    "agreement lost"
                );
            }
            had_agreement = has;
        }
    }
}
