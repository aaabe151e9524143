//! Polling: one task per upstream.
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
use crate::service::{lock, AppState};
use crate::shutdown::Shutdown;
use crate::upstream::{LastForkChoice, Observation, Source, UpstreamError};

/// An upstream known to lack fork_choice is probed for it again every this
/// many polls, so a client that gains the endpoint is detected.
const FORK_CHOICE_REPROBE_EVERY: u64 = 10;

type PollFuture = Pin<Box<dyn Future<Output = Polled> + Send>>;

/// What a poll future gives back: its outcome and how long it took, and the
/// upstream's last fork_choice answer it was lent.
struct Polled {
    result: Result<Observation, UpstreamError>,
    latency: Duration,
    last: LastForkChoice,
}

/// Polls upstream `i` until shutdown.
pub async fn run_upstream(state: Arc<AppState>, i: usize, mut shutdown: Shutdown) {
    let period = state.config.poll;
    let mut due = Instant::now() + stagger(&state, i);
    let mut ticks = tokio::time::interval_at(due, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut in_flight: Option<PollFuture> = None;
    let mut polls: u64 = 0;
    // Lent to the poll in flight, given back when it ends (lost, and so
    // parsed afresh next time, only if a poll is dropped at shutdown).
    let mut last = LastForkChoice::default();
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            at = ticks.tick() => {
                due = at + period;
                if in_flight.is_some() {
                    state.record_tick(i, true);
                    tracing::debug!(upstream = %state.upstreams[i].config.name, "poll still running; tick skipped");
                    continue;
                }
                // The fetcher may be downloading from this upstream. Then
                // this tick is skipped like one that finds a poll running; a
                // poll queued behind the download would start the instant the
                // download ends, while a timed-out download's socket may not
                // be closed yet.
                let Some(poll) = start(&state, i, &mut polls, &mut last) else {
                    state.record_tick(i, true);
                    tracing::debug!(upstream = %state.upstreams[i].config.name, "state download running; tick skipped");
                    continue;
                };
                in_flight = Some(poll);
            }
            // Asked by the fetcher, which has released this upstream's lock
            // before ringing. A poll already running answers the same
            // question, and a busy lock means another download started: the
            // next tick polls then.
            _ = state.upstreams[i].poll_soon.notified() => {
                if in_flight.is_some() {
                    continue;
                }
                if let Some(poll) = start(&state, i, &mut polls, &mut last) {
                    state.metrics.early_polls.inc();
                    tracing::debug!(upstream = %state.upstreams[i].config.name, "polled early: its finalized checkpoint moved past the agreed one");
                    in_flight = Some(poll);
                }
            }
            polled = async { in_flight.as_mut().expect("guarded by the select condition").await }, if in_flight.is_some() => {
                in_flight = None;
                let Polled { result, latency, last: given_back } = polled;
                last = given_back;
                // The next poll never starts in the instant this one ended. An
                // https request cut off at its deadline is closed by reqwest's
                // connection task, a moment after the drop; a poll started at
                // once (the deadline is often a multiple of the interval, so
                // a tick is due right then) would briefly hold a second
                // socket to a hung upstream. So a poll that leaves less than
                // half an interval before the next tick pushes it a full
                // interval out. A quick poll keeps the schedule: resetting
                // after every poll moved each upstream by its own latency,
                // and within minutes the groups of `stagger` had dissolved
                // into one wake-up per poll.
                if due.saturating_duration_since(Instant::now()) < period / 2 {
                    ticks.reset();
                    due = Instant::now() + period;
                }
                log_outcome(&state, i, &result);
                if state.record_poll(i, &result, latency) {
                    state.decide_soon.notify_one();
                }
            }
        }
    }
    // Dropping `in_flight` here cancels a running poll and closes its socket.
}

/// Starts a poll of upstream `i` if no download holds its request lock,
/// lending it `last`.
fn start(
    state: &Arc<AppState>,
    i: usize,
    polls: &mut u64,
    last: &mut LastForkChoice,
) -> Option<PollFuture> {
    let request = state.upstreams[i]
        .request_lock
        .clone()
        .try_lock_owned()
        .ok()?;
    state.record_tick(i, false);
    let prefer_fallback = lock(&state.upstreams[i].view).source == Source::Fallback
        && !polls.is_multiple_of(FORK_CHOICE_REPROBE_EVERY);
    *polls += 1;
    Some(Box::pin(poll_once(
        state.clone(),
        i,
        request,
        prefer_fallback,
        std::mem::take(last),
    )))
}

/// Upstreams polled in the same instant, at most. A thread woken for one
/// poll costs several times the poll itself (a context switch or two per
/// timer, request and response), so polls share wake-ups in groups, and the
/// larger the group the less each poll costs: at 1000 upstreams, CPU per
/// poll was 51, 42, 37 and 32 us with groups of 64, 100, 256 and 1000. A
/// group is no burst for any upstream (each gets one request per interval
/// either way) nor for clients (the pollers have a thread of their own, see
/// `poll_thread`); what it costs is that thread's time, about 35 ms a
/// second for a full group, and the mean request latency measured did not
/// move with the group size (0.94 ms at 64, 0.96 ms at 1000).
const POLL_GROUP: usize = 1024;

/// Spreads the first polls over one interval in groups of [`POLL_GROUP`],
/// so past a group's worth of upstreams the polling thread's work is spread
/// over the interval, while each wake-up serves a group of polls.
fn stagger(state: &AppState, i: usize) -> Duration {
    let groups = state.upstreams.len().div_ceil(POLL_GROUP).max(1) as u32;
    state.config.poll / groups * (i as u32 % groups)
}

async fn poll_once(
    state: Arc<AppState>,
    i: usize,
    _request: OwnedMutexGuard<()>,
    prefer_fallback: bool,
    mut last: LastForkChoice,
) -> Polled {
    let started = Instant::now();
    let deadline = started + state.config.timeout;
    let requester = state.requester(i);
    let result = requester
        .poll(&state.config, deadline, prefer_fallback, &mut last)
        .await;
    if let Ok(obs) = &result {
        read_history(&state, i, obs, deadline).await;
    }
    Polled {
        result,
        latency: started.elapsed(),
        last,
    }
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
    let (healthy, attempted) = {
        let v = lock(&state.upstreams[i].view);
        (v.healthy, v.last_attempt_ms.is_some())
    };
    match result {
        Ok(o) if !healthy => {
            tracing::info!(upstream = %name, finalized_slot = o.finalized_slot, source = o.source.as_str(), "upstream answering");
        }
        Err(e) if healthy || !attempted => {
            tracing::warn!(upstream = %name, kind = e.kind.as_str(), error = %e, "upstream poll failed");
        }
        Err(e) => {
            tracing::debug!(upstream = %name, kind = e.kind.as_str(), error = %e, "upstream poll failed again")
        }
        Ok(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::net::TcpListener;

    use crate::service::testing::{state, until};

    /// An upstream that accepts connections, reads nothing and never
    /// answers: every poll runs until its deadline. Counts connections.
    async fn hanging_upstream() -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        });
        (url, accepted)
    }

    #[tokio::test]
    async fn a_tick_that_finds_a_poll_running_is_skipped() {
        let (url, accepted) = hanging_upstream().await;
        let state = state(
            &[("hang", &url)],
            &["--poll-ms", "20", "--timeout-ms", "10000"],
        );
        let (trigger, shutdown) = crate::shutdown::channel();
        let task = tokio::spawn(super::run_upstream(state.clone(), 0, shutdown));
        let skipped = || state.upstreams[0].view().polls_skipped;
        until(Duration::from_secs(5), "5 skipped ticks", || skipped() >= 5).await;
        let v = state.upstreams[0].view();
        assert_eq!(v.polls, 1, "one poll started: {v:?}");
        assert_eq!(v.last_attempt_ms, None, "and it is still running");
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection");
        assert_eq!(state.metrics.upstreams[0].polls.get(), 1);
        assert!(state.metrics.upstreams[0].polls_skipped.get() >= 5);
        trigger.fire();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the poller stops at shutdown")
            .expect("poller task");
    }

    #[tokio::test]
    async fn a_tick_is_skipped_while_the_fetcher_holds_the_request_lock() {
        let (url, accepted) = hanging_upstream().await;
        let state = state(&[("busy", &url)], &["--poll-ms", "20"]);
        let held = state.upstreams[0].request_lock.clone().lock_owned().await;
        let (trigger, shutdown) = crate::shutdown::channel();
        let task = tokio::spawn(super::run_upstream(state.clone(), 0, shutdown));
        let skipped = || state.upstreams[0].view().polls_skipped;
        until(Duration::from_secs(5), "3 skipped ticks", || skipped() >= 3).await;
        assert_eq!(state.upstreams[0].view().polls, 0);
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            0,
            "no request while it is held"
        );
        drop(held);
        let polls = || state.upstreams[0].view().polls;
        until(Duration::from_secs(5), "a poll once released", || {
            polls() >= 1
        })
        .await;
        until(Duration::from_secs(5), "its connection", || {
            accepted.load(Ordering::SeqCst) == 1
        })
        .await;
        trigger.fire();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the poller stops at shutdown")
            .expect("poller task");
    }
}
