//! Turning a decision into state: standings and their metrics, the served
//! checkpoint as `agreement::advance` rules (forward only, except by the
//! recovery rule), the fetcher's target, and installing a fetched pair.

use std::sync::Arc;

use tokio::time::Instant;

use super::{lock, unix_ms, AppState, ConsensusView};
use crate::agreement::{advance, Advance, Context, Decision, Served, Step, Vote};
use crate::served::pair::ServedState;
use crate::served::sendable::SendableBody;
use crate::telemetry::{Standing, StandingCountLabels};

/// Slots of clock skew allowed before a finalized slot is impossible.
const SLOT_SKEW: u64 = 2;

impl AppState {
    /// Decides over the fresh votes with what is known: the served
    /// checkpoint, its verified history, and the chain's current slot.
    pub fn decide(&self, votes: &[Option<Vote>]) -> Decision {
        let served = self.served_state();
        let finalized = self.consensus().finalized;
        let chain = |s: u64| served.as_ref().and_then(|p| p.history_at(s));
        let ctx = Context {
            served: finalized.map(|f| (f.slot, f.root)),
            chain: &chain,
            max_slot: self.max_possible_slot(served.as_ref().map(|p| p.genesis_time)),
            genesis_time: served.as_ref().map(|p| p.genesis_time),
        };
        crate::agreement::decide_with(votes, self.config.agreement, &ctx)
    }

    /// The highest finalized slot the chain can have reached now: from the
    /// served State's genesis time, or from the Unix epoch (a genesis time
    /// is never negative) while none is served.
    pub(crate) fn max_possible_slot(&self, genesis_time: Option<u64>) -> u64 {
        let now_ms = unix_ms();
        let since_ms = now_ms.saturating_sub(genesis_time.unwrap_or(0).saturating_mul(1000));
        let slot_ms = self.config.slot.as_millis().max(1) as u64;
        since_ms / slot_ms + SLOT_SKEW
    }

    /// Applies a decision: updates standings and metrics, then serves what
    /// the served-checkpoint rule (`agreement::advance`) says and tells the
    /// fetcher what to hold.
    pub fn apply(&self, decision: &Decision, votes: &[Option<Vote>]) {
        let now_ms = unix_ms();
        let by = self.apply_standings(decision, votes);
        self.record_decision(decision, now_ms);
        // Only the decider sends the target: read outside the lock, it is
        // still the fetcher's target when the rule's answer is sent.
        let fetching = *self.fetch_target.borrow();

        let mut c = self.consensus.write().unwrap_or_else(|p| p.into_inner());
        c.last_decision_ms = now_ms;
        c.responding = decision.responding;
        c.required = decision.required;
        c.by_standing = by;
        c.failing = by[Standing::ALL.len() - 1];
        c.served_contradicted = decision.served_contradicted;
        c.agreement = false;
        let served = Served {
            finalized: c.finalized,
            justified: c.justified,
        };
        let step = match advance(decision, self.upstreams.len(), served, fetching) {
            Advance::Hold => {
                c.last_error = Some(self.no_agreement(decision));
                return;
            }
            Advance::Refuse {
                agreed_slot,
                served_slot,
            } => {
                self.metrics.regressions_refused.inc();
                c.last_error = Some(format!(
                    "agreement on finalized slot {agreed_slot} refused: slot {served_slot} was already served"
                ));
                return;
            }
            Advance::Serve(step) => step,
        };
        self.serve(&mut c, &step, now_ms);
        let supporters = decision
            .agreed
            .as_ref()
            .map(|a| a.supporters.clone())
            .unwrap_or_default();
        if step.advanced {
            // The supporters' latest poll is the one that completed the
            // majority (decisions come a batch after polls, not later):
            // where leanpoint_checkpoint_freshness_seconds starts.
            c.majority_at = supporters
                .iter()
                .filter_map(|&i| lock(&self.upstreams[i].view).observed_at)
                .max();
        }
        let justified = c.justified.map(|j| j.slot);
        self.history.record_agreement(
            now_ms,
            step.served,
            justified,
            supporters.len(),
            decision.required,
        );
        drop(c);

        *lock(&self.supporters) = supporters;
        if let Some(target) = step.fetch {
            self.fetch_target.send_replace(Some(target));
        }
    }

    /// The metrics every decision sets, agreed or not.
    fn record_decision(&self, decision: &Decision, now_ms: u64) {
        let m = &self.metrics;
        m.required_votes.set(decision.required as i64);
        m.last_decision.set(now_ms as f64 / 1000.0);
        m.zig.decided(now_ms);
        m.consensus_reached
            .set(i64::from(decision.agreed.is_some()));
        m.pair
            .served_contradicted
            .set(i64::from(decision.served_contradicted));
    }

    /// Why a decision agreed on nothing, for /status `last_error`.
    fn no_agreement(&self, decision: &Decision) -> String {
        if decision.conflict {
            "conflict: two finalized roots at one slot both meet the agreement rule".to_string()
        } else {
            format!(
                "no consensus reached among upstreams ({} fresh of {}, {} must agree)",
                decision.responding,
                self.upstreams.len(),
                decision.required
            )
        }
    }

    /// Records an accepted agreement: the served checkpoints, their metrics
    /// and the agreement's time.
    fn serve(&self, c: &mut ConsensusView, step: &Step, now_ms: u64) {
        let m = &self.metrics;
        if let Some(served_slot) = step.recovered_from {
            m.pair.replaced.inc();
            tracing::warn!(
                served_slot,
                new_slot = step.served.slot,
                "served checkpoint contradicted by a majority of upstreams; replaced"
            );
        }
        if step.advanced {
            c.finalized_advanced_ms = now_ms;
            m.finalized_advanced.set(now_ms as f64 / 1000.0);
        }
        if step.moved {
            m.finalized_slot.set(step.served.slot as i64);
        }
        if step.drop_pair {
            // The contradicted pair is no longer served; a verified pair of
            // the new checkpoint replaces it.
            *self.served.write().unwrap_or_else(|p| p.into_inner()) = None;
            self.register_sendable(None);
        }
        if let (true, Some(j)) = (step.justified_moved, step.justified) {
            m.justified_slot.set(j.slot as i64);
        }
        c.finalized = Some(step.served);
        c.justified = step.justified;
        c.agreement = true;
        c.last_error = None;
        c.last_agreement = Some(Instant::now());
        c.last_agreement_ms = now_ms;
        m.last_agreement.set(now_ms as f64 / 1000.0);
        m.zig.agreed(now_ms);
    }

    /// Writes every upstream's standing, wanted history slots and the
    /// standing metrics; returns the count per standing.
    fn apply_standings(
        &self,
        decision: &Decision,
        votes: &[Option<Vote>],
    ) -> [usize; Standing::ALL.len()] {
        let mut by = [0usize; Standing::ALL.len()];
        let mut wanted: Vec<Vec<u64>> = vec![Vec::new(); self.upstreams.len()];
        for &(i, s) in &decision.wanted {
            if let Some(w) = wanted.get_mut(i) {
                w.push(s);
            }
        }
        for (i, slot) in self.upstreams.iter().enumerate() {
            let standing = decision
                .standings
                .get(i)
                .copied()
                .unwrap_or(Standing::Failing);
            if let Some(k) = Standing::ALL.iter().position(|s| *s == standing) {
                by[k] += 1;
            }
            let reason = decision.impossible.contains(&i).then(|| {
                let slot = votes
                    .get(i)
                    .and_then(|v| v.as_ref())
                    .map_or(0, |v| v.finalized_slot);
                format!("impossible_slot: finalized slot {slot} is past the chain's current slot")
            });
            let mut v = lock(&slot.view);
            if reason.is_some() && v.standing_reason.is_none() {
                self.metrics
                    .pair
                    .failure(&slot.config.name, "impossible_slot");
            }
            v.standing = standing;
            v.standing_reason = reason;
            v.agrees = standing.supports();
            v.wanted = std::mem::take(&mut wanted[i]);
            self.metrics.upstreams[i].agrees.set(i64::from(v.agrees));
            self.metrics.upstreams[i].set_standing(standing);
        }
        for (k, state) in Standing::ALL.iter().enumerate() {
            self.metrics
                .upstreams_by_state
                .get_or_create(&StandingCountLabels { state: *state })
                .set(by[k] as i64);
        }
        by
    }

    /// Installs a pair if it is the pair of the checkpoint served now (a
    /// pair that lost a race with a newer agreement is dropped).
    /// The State moves into a file of its own here (see `served::sendable`),
    /// the one place a State becomes served, so every download of it can go
    /// out by sendfile.
    pub fn install_state(&self, mut s: ServedState) {
        let c = self.consensus();
        if !c.finalized.is_some_and(|f| s.is_pair_of(f)) {
            return;
        }
        let (bytes, sendable) = self.sendable.make(std::mem::take(&mut s.bytes));
        s.bytes = bytes;
        let mut served = self.served.write().unwrap_or_else(|p| p.into_inner());
        let m = &self.metrics;
        if served.as_ref().map(|p| p.slot) != Some(s.slot) {
            if let Some(at) = c.majority_at {
                m.checkpoint_freshness.observe(at.elapsed().as_secs_f64());
            }
        }
        m.served_state_slot.set(s.slot as i64);
        m.served_state_bytes.set(s.bytes.len() as i64);
        m.pair
            .served_block_bytes
            .set(s.block.as_ref().map_or(0, |b| b.len() as i64));
        m.pair
            .served_verified
            .set(i64::from(s.state_root.is_some()));
        m.pair.served.clear();
        if let (Some(block_root), Some(state_root)) = (s.root, s.state_root) {
            m.pair
                .served
                .get_or_create(&crate::telemetry::pair::PairLabels {
                    block_root: block_root.to_string(),
                    state_root: state_root.to_string(),
                })
                .set(1);
        }
        self.register_sendable(sendable);
        *served = Some(Arc::new(s));
        drop(served);
        // Its history is evidence for standings.
        self.decide_soon.notify_one();
    }

    /// Makes `body` the file the listener sends the served State from (none:
    /// no State, or one served from the heap), with the gauge that says so.
    fn register_sendable(&self, body: Option<Arc<SendableBody>>) {
        self.metrics
            .served_state_sendfile
            .set(i64::from(body.is_some()));
        self.sendable.set(body);
    }
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
