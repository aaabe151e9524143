//! Turning a poll into state: the upstream's view and metrics, its poll
//! history, the ancestry evidence it brings back, and the votes the decider
//! reads from the views.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::history::PollOutcome;
use super::{lock, unix_ms, AppState};
use crate::agreement::{ancestry, Vote};
use crate::lean::api::Root;
use crate::upstream::{Observation, UpstreamError};

impl AppState {
    /// Records the outcome of one poll of upstream `i`. Returns whether a
    /// decision could come out differently now: its vote changed (a new
    /// observation, or a fresh one where its last had aged out), or it is
    /// the upstream's first poll (the decider waits for every first one). A
    /// failed poll changes no vote: the last observation votes until it ages
    /// out, which the decider's own clock catches.
    pub fn record_poll(
        &self,
        i: usize,
        result: &Result<Observation, UpstreamError>,
        latency: Duration,
    ) -> bool {
        let slot = &self.upstreams[i];
        let um = &self.metrics.upstreams[i];
        let now_ms = unix_ms();
        let mut v = lock(&slot.view);
        let first = v.last_attempt_ms.is_none();
        let was_fresh = v.fresh_until(Instant::now(), self.config.stale).is_some();
        v.last_attempt_ms = Some(now_ms);
        v.last_latency_ms = Some(latency.as_millis() as u64);
        v.last_latency_us = Some(latency.as_micros() as u64);
        self.history
            .record_poll(i, now_ms, PollOutcome::of(result, latency));
        let changed = match result {
            Ok(obs) => {
                let changed = v.observed(obs, now_ms) || !was_fresh;
                um.up.set(1);
                um.last_success.set(now_ms as f64 / 1000.0);
                um.set_source(obs.source);
                um.finalized_slot.set(obs.finalized_slot as i64);
                if let Some(h) = obs.head_slot {
                    um.head_slot.set(h as i64);
                }
                if let Some(j) = obs.justified {
                    um.justified_slot.set(j.slot as i64);
                }
                changed
            }
            Err(e) => {
                v.failed(e);
                um.up.set(0);
                false
            }
        };
        um.consecutive_errors.set(v.consecutive_errors as i64);
        self.metrics
            .zig
            .poll_finished(latency.as_millis() as u64, result.is_err());
        changed || first
    }

    pub(crate) fn record_tick(&self, i: usize, skipped: bool) {
        self.upstreams[i]
            .last_tick_ms
            .store(unix_ms(), Ordering::Relaxed);
        let mut v = lock(&self.upstreams[i].view);
        if skipped {
            v.polls_skipped += 1;
            self.metrics.upstreams[i].polls_skipped.inc();
        } else {
            v.polls += 1;
            self.metrics.upstreams[i].polls.inc();
        }
    }

    /// Upstreams whose first poll has ended, successfully or not.
    pub(crate) fn polled_once(&self) -> usize {
        self.upstreams
            .iter()
            .filter(|u| lock(&u.view).last_attempt_ms.is_some())
            .count()
    }

    /// Says why there is no decision yet: not every upstream was polled once.
    pub(crate) fn note_first_round(&self, polled: usize) {
        let mut c = self.consensus.write().unwrap_or_else(|p| p.into_inner());
        c.last_error = Some(format!(
            "waiting for the first poll of every upstream ({polled} of {} done)",
            self.upstreams.len()
        ));
    }

    /// One vote per upstream, None where its last success is older than the
    /// stale window.
    pub fn fresh_votes(&self) -> Vec<Option<Vote>> {
        self.fresh_votes_until().0
    }

    /// [`Self::fresh_votes`], and the first instant one of them ages out:
    /// the decider decides again then, whether or not a poll rings.
    pub fn fresh_votes_until(&self) -> (Vec<Option<Vote>>, Option<Instant>) {
        let stale = self.config.stale;
        // One clock read for all upstreams, not one `elapsed()` each.
        let now = Instant::now();
        let mut expiry: Option<Instant> = None;
        let votes = self
            .upstreams
            .iter()
            .map(|u| {
                let v = lock(&u.view);
                match (&v.observation, v.fresh_until(now, stale)) {
                    (Some(o), Some(ends)) => {
                        expiry = Some(expiry.map_or(ends, |e| e.min(ends)));
                        Some(Vote {
                            finalized_slot: o.finalized_slot,
                            finalized_root: o.finalized_root,
                            justified: o.justified,
                            evidence: v.evidence.clone(),
                        })
                    }
                    _ => None,
                }
            })
            .collect();
        (votes, expiry)
    }

    /// History slots to read from upstream `i`'s State after a poll that saw
    /// `finalized`: the wanted slots below it, unless its history was
    /// already read at this finalized checkpoint.
    pub(crate) fn history_wanted(&self, i: usize, finalized: (u64, Option<Root>)) -> Vec<u64> {
        let v = lock(&self.upstreams[i].view);
        if v.history_read_at == Some(finalized) {
            return Vec::new();
        }
        v.wanted
            .iter()
            .copied()
            .filter(|s| *s < finalized.0)
            .collect()
    }

    /// Records a prefix of upstream `i`'s State read for `slots` at
    /// `finalized`: its genesis time and the history entries found.
    pub(crate) fn record_history(
        &self,
        i: usize,
        finalized: (u64, Option<Root>),
        slots: &[u64],
        prefix: &Bytes,
    ) {
        self.metrics.pair.ancestry_reads.inc();
        self.metrics
            .pair
            .ancestry_read_bytes
            .inc_by(prefix.len() as u64);
        let mut v = lock(&self.upstreams[i].view);
        v.history_read_at = Some(finalized);
        let mut ev = (*v.evidence).clone();
        ev.genesis_time = ancestry::state_genesis_time(prefix);
        // A State of another slot belongs to a newer (or older) finalized
        // checkpoint of that upstream: its entries still describe its chain.
        for &s in slots {
            if let Some(root) = ancestry::history_entry(prefix, s) {
                ev.hold(s, root);
            }
        }
        v.evidence = Arc::new(ev);
        drop(v);
        self.decide_soon.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::service::testing::{closed, observation, root};
    use crate::upstream::{Endpoint, ErrorKind, UpstreamError};

    fn error(kind: ErrorKind) -> UpstreamError {
        UpstreamError {
            kind,
            endpoint: Endpoint::ForkChoice,
            message: "refused".to_string(),
            status: None,
        }
    }

    fn count(v: &crate::service::UpstreamView, kind: ErrorKind) -> u64 {
        let k = ErrorKind::ALL
            .iter()
            .position(|x| *x == kind)
            .expect("kind");
        v.errors_by_kind[k]
    }

    #[test]
    fn record_poll_updates_the_view_and_counts_errors_by_kind() {
        let state = closed(2);
        state.record_poll(0, &Ok(observation(9, 1)), Duration::from_micros(1_500));
        let v = state.upstreams[0].view();
        assert!(v.healthy);
        assert_eq!(v.observation.as_ref().map(|o| o.finalized_slot), Some(9));
        assert_eq!(v.last_latency_us, Some(1_500));
        assert_eq!(v.last_latency_ms, Some(1));
        assert_eq!(v.evidence.held_at(9), Some(root(1)), "its finality holds");
        assert_eq!(state.metrics.upstreams[0].up.get(), 1);
        assert_eq!(state.metrics.upstreams[0].finalized_slot.get(), 9);
        assert_eq!(state.metrics.upstreams[0].head_slot.get(), 11);

        let timeout = Err(error(ErrorKind::Timeout));
        state.record_poll(0, &timeout, Duration::from_millis(400));
        state.record_poll(0, &timeout, Duration::from_millis(400));
        let refused = Err(error(ErrorKind::Refused));
        state.record_poll(0, &refused, Duration::from_millis(1));
        let v = state.upstreams[0].view();
        assert!(!v.healthy);
        assert_eq!((v.error_count, v.consecutive_errors), (3, 3));
        assert_eq!(count(&v, ErrorKind::Timeout), 2);
        assert_eq!(count(&v, ErrorKind::Refused), 1);
        assert_eq!(v.last_error_kind, Some(ErrorKind::Refused));
        assert_eq!(
            v.observation.as_ref().map(|o| o.finalized_slot),
            Some(9),
            "the last observation stays until it ages out"
        );
        assert_eq!(state.metrics.upstreams[0].up.get(), 0);
        assert_eq!(state.metrics.upstreams[0].consecutive_errors.get(), 3);
        // The other upstream is untouched; a success resets the run.
        assert_eq!(state.upstreams[1].view().error_count, 0);
        state.record_poll(0, &Ok(observation(10, 1)), Duration::from_millis(1));
        let v = state.upstreams[0].view();
        assert_eq!((v.error_count, v.consecutive_errors), (3, 0));
    }

    #[test]
    fn a_lower_finalized_slot_forgets_what_was_held_above_it() {
        let state = closed(1);
        state.record_poll(0, &Ok(observation(9, 1)), Duration::ZERO);
        state.record_poll(0, &Ok(observation(5, 2)), Duration::ZERO);
        let v = state.upstreams[0].view();
        assert_eq!(v.evidence.held_at(9), None, "a restarted upstream's chain");
        assert_eq!(v.evidence.held_at(5), Some(root(2)));
    }

    /// The decider is rung only when a decision could come out otherwise.
    #[tokio::test(start_paused = true)]
    async fn only_a_poll_that_changes_a_vote_asks_for_a_decision() {
        let state = crate::service::testing::state(
            &[("u0", "http://127.0.0.1:1")],
            &["--poll-ms", "1000", "--stale-ms", "5000"],
        );
        let timeout = Err(error(ErrorKind::Timeout));
        let poll = |r: &Result<_, _>| state.record_poll(0, r, Duration::ZERO);
        assert!(
            poll(&timeout),
            "a first poll, failed: the first round counts it"
        );
        assert!(poll(&Ok(observation(9, 1))), "a first observation");
        let evidence = state.upstreams[0].view().evidence;
        assert!(!poll(&Ok(observation(9, 1))), "the same observation again");
        let kept = state.upstreams[0].view().evidence;
        assert!(
            std::sync::Arc::ptr_eq(&evidence, &kept),
            "its evidence kept"
        );
        assert!(
            !poll(&timeout),
            "a failure: the last observation still votes"
        );
        assert!(poll(&Ok(observation(10, 1))), "a new finalized checkpoint");
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(state.fresh_votes()[0].is_none(), "aged out");
        assert!(poll(&Ok(observation(10, 1))), "the same, but voting again");
        let (votes, expiry) = state.fresh_votes_until();
        assert!(votes[0].is_some());
        let left = expiry
            .expect("one vote ages")
            .duration_since(tokio::time::Instant::now());
        assert_eq!(
            left,
            Duration::from_secs(5),
            "it ages out a stale window on"
        );
    }

    #[test]
    fn only_fresh_observations_vote() {
        let state = closed(3);
        state.record_poll(0, &Ok(observation(9, 1)), Duration::ZERO);
        state.record_poll(1, &Err(error(ErrorKind::Timeout)), Duration::ZERO);
        let votes = state.fresh_votes();
        assert_eq!(votes[0].as_ref().map(|v| v.finalized_slot), Some(9));
        assert!(votes[1].is_none() && votes[2].is_none());
        assert_eq!(state.polled_once(), 2);
    }
}
