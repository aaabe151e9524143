//! Polling: one task per upstream, and the decider that turns the upstreams'
//! views into an agreement.
//!
//! Each upstream task owns at most one poll future at a time. Ticks keep
//! coming on the upstream's own interval; a tick that finds the poll still
//! running is counted as skipped rather than starting a second one, so there
//! is never more than one request in flight per upstream, whatever the
//! upstream does. The poll future itself is bounded by the total deadline
//! (see `upstream`), so it ends, and its socket closes, within
//! --timeout-ms of starting.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;
use tokio::time::{Instant, MissedTickBehavior};

use crate::agreement::ancestry;
use crate::service::AppState;
use crate::shutdown::Shutdown;
use crate::upstream::{Observation, Source, UpstreamError};

/// An upstream known to lack fork_choice is probed for it again every this
/// many polls, so a client that gains the endpoint is detected.
const FORK_CHOICE_REPROBE_EVERY: u64 = 10;

type PollFuture =
    Pin<Box<dyn Future<Output = (Result<Observation, UpstreamError>, Duration)> + Send>>;

/// Polls upstream `i` until shutdown.
pub async fn run_upstream(state: Arc<AppState>, i: usize, mut shutdown: Shutdown) {
    let mut ticks =
        tokio::time::interval_at(Instant::now() + stagger(&state, i), state.config.poll);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut in_flight: Option<PollFuture> = None;
    let mut polls: u64 = 0;
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = ticks.tick() => {
                if in_flight.is_some() {
                    state.record_tick(i, true);
                    tracing::debug!(upstream = %state.upstreams[i].config.name, "poll still running; tick skipped");
                    continue;
                }
                // The state cache may be downloading from this upstream. Then
                // this tick is skipped like one that finds a poll running; a
                // poll queued behind the download would start the instant the
                // download ends, while a timed-out download's socket may not
                // be closed yet.
                let Ok(request) = state.upstreams[i].request_lock.clone().try_lock_owned() else {
                    state.record_tick(i, true);
                    tracing::debug!(upstream = %state.upstreams[i].config.name, "state download running; tick skipped");
                    continue;
                };
                state.record_tick(i, false);
                let prefer_fallback = state.upstreams[i].view().source == Source::Fallback
                    && !polls.is_multiple_of(FORK_CHOICE_REPROBE_EVERY);
                polls += 1;
                in_flight = Some(Box::pin(poll_once(state.clone(), i, request, prefer_fallback)));
            }
            (result, latency) = async { in_flight.as_mut().expect("guarded by the select condition").await }, if in_flight.is_some() => {
                in_flight = None;
                // The next poll starts a full interval after this one ended,
                // never in the same instant. A request cut off at its deadline
                // is closed by hyper's connection task, a moment after the
                // drop; a poll started at once (the deadline is often a
                // multiple of the interval, so a tick is due right then) would
                // briefly hold a second socket to a hung upstream.
                ticks.reset();
                log_outcome(&state, i, &result);
                state.record_poll(i, &result, latency);
                state.poll_finished.notify_one();
            }
        }
    }
    // Dropping `in_flight` here cancels a running poll and closes its socket.
}

/// Upstreams polled in the same instant, at most. A thread woken for one
/// poll costs several times the poll itself (a context switch or two per
/// timer, request and response), so polls share wake-ups in groups; groups
/// this small are no burst for the upstreams or for leanpoint.
const POLL_GROUP: usize = 64;

/// Spreads the first polls over one interval in groups of [`POLL_GROUP`],
/// so N upstreams are not hit in one burst and leanpoint's CPU use is
/// smooth, while each wake-up serves a group of polls.
fn stagger(state: &AppState, i: usize) -> Duration {
    let groups = state.upstreams.len().div_ceil(POLL_GROUP).max(1) as u32;
    state.config.poll / groups * (i as u32 % groups)
}

async fn poll_once(
    state: Arc<AppState>,
    i: usize,
    _request: OwnedMutexGuard<()>,
    prefer_fallback: bool,
) -> (Result<Observation, UpstreamError>, Duration) {
    let started = Instant::now();
    let deadline = started + state.config.timeout;
    let requester = state.requester(i);
    let result = requester
        .poll(&state.config, deadline, prefer_fallback)
        .await;
    if let Ok(obs) = &result {
        read_history(&state, i, obs, deadline).await;
    }
    (result, started.elapsed())
}

/// Reads the head of upstream `i`'s State, while this poll holds the request lock, within its
/// deadline, when the decider wants ancestry evidence from it: at most once
/// per finalized change of that upstream, and only as many bytes as the
/// highest wanted entry of historical_block_hashes needs.
async fn read_history(state: &AppState, i: usize, obs: &Observation, deadline: Instant) {
    let finalized = (obs.finalized_slot, obs.finalized_root);
    let slots = state.history_wanted(i, finalized);
    let Some(&top) = slots.iter().max() else {
        return;
    };
    let n = ancestry::history_prefix_len(top);
    if n as u64 > state.config.max_state_bytes {
        return;
    }
    match state.requester(i).fetch_state_prefix(n, deadline).await {
        Ok(prefix) => state.record_history(i, finalized, &slots, &prefix),
        Err(e) => {
            tracing::debug!(upstream = %state.upstreams[i].config.name, error = %e, "state history read failed");
        }
    }
}

fn log_outcome(state: &AppState, i: usize, result: &Result<Observation, UpstreamError>) {
    let name = &state.upstreams[i].config.name;
    let before = state.upstreams[i].view();
    match result {
        Ok(o) if !before.healthy => {
            tracing::info!(upstream = %name, finalized_slot = o.finalized_slot, source = o.source.as_str(), "upstream answering");
        }
        Err(e) if before.healthy || before.last_attempt_ms.is_none() => {
            tracing::warn!(upstream = %name, kind = e.kind.as_str(), error = %e, "upstream poll failed");
        }
        Err(e) => {
            tracing::debug!(upstream = %name, kind = e.kind.as_str(), error = %e, "upstream poll failed again")
        }
        Ok(_) => {}
    }
}

/// Recomputes the decision after every poll and at least once per poll
/// interval (observations age out of the stale window without any poll).
///
/// No decision is made before every upstream's first poll has ended (either
/// way). Until then an upstream not yet asked looks like one that is down,
/// so the first answers would decide alone: under responding-majority the
/// very first upstream to answer is "1 of 1", and under count:N the first N
/// of one fork win before the other fork is heard. The wait is bounded: the
/// first polls start within one interval and each ends at its deadline.
pub async fn run_decider(state: Arc<AppState>, mut shutdown: Shutdown) {
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
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = state.poll_finished.notified() => {
                tokio::select! {
                    _ = shutdown.wait() => break,
                    _ = tokio::time::sleep(batch) => {}
                }
            }
            _ = ticks.tick() => {}
        }
        if !first_round_done {
            let polled = state.polled_once();
            if polled < state.upstreams.len() {
                state.note_first_round(polled);
                continue;
            }
            first_round_done = true;
        }
        let votes = state.fresh_votes();
        let decision = state.decide(&votes);
        state.apply(&decision, &votes);
        let has = decision.agreed.is_some();
        if has != had_agreement {
            let c = state.consensus();
            if has {
                tracing::info!(
                    finalized_slot = c.finalized.map(|f| f.slot),
                    agreeing = c.agreeing,
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
