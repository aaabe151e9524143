//! Turning a decision into state: standings and their metrics, the served
//! checkpoint (forward only, except by the recovery rule), the state cache's
//! target; and the ancestry evidence the poller brings back.

use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;

use super::{lock, unix_ms, AppState, Finalized, ServedState, StateTarget};
use crate::agreement::ancestry;
use crate::agreement::{Context, Decision, Vote};
use crate::lean::api::Root;
use crate::telemetry::{Standing, StateLabels};

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
    pub fn max_possible_slot(&self, genesis_time: Option<u64>) -> u64 {
        let now_ms = unix_ms();
        let since_ms = now_ms.saturating_sub(genesis_time.unwrap_or(0).saturating_mul(1000));
        let slot_ms = self.config.slot.as_millis().max(1) as u64;
        since_ms / slot_ms + SLOT_SKEW
    }

    /// Applies a decision: updates standings and metrics, moves the served
    /// checkpoint forward (never back, unless contradicted: see
    /// ARCHITECTURE.md, recovery rule), and tells the state cache what to hold.
    pub fn apply(&self, decision: &Decision, votes: &[Option<Vote>]) {
        let now_ms = unix_ms();
        let by = self.apply_standings(decision, votes);
        let m = &self.metrics;
        m.required_votes.set(decision.required as i64);
        m.last_decision.set(now_ms as f64 / 1000.0);
        m.zig.decided(now_ms);
        m.consensus_reached
            .set(i64::from(decision.agreed.is_some()));
        m.pair
            .served_contradicted
            .set(i64::from(decision.served_contradicted));

        let mut c = self.consensus.write().unwrap_or_else(|p| p.into_inner());
        c.last_decision_ms = now_ms;
        c.responding = decision.responding;
        c.required = decision.required;
        c.by_standing = by;
        c.agreeing = by[0] + by[1];
        c.failing = by[Standing::ALL.len() - 1];
        c.conflict = decision.conflict;
        c.served_contradicted = decision.served_contradicted;
        c.agreement = false;
        let Some(agreed) = &decision.agreed else {
            c.last_error = Some(if decision.conflict {
                "conflict: two finalized roots at one slot both meet the agreement rule".to_string()
            } else {
                format!(
                    "no consensus reached among upstreams ({} fresh of {}, {} must agree)",
                    decision.responding,
                    self.upstreams.len(),
                    decision.required
                )
            });
            return;
        };
        let candidate = Finalized {
            slot: agreed.finalized_slot,
            root: agreed.finalized_root,
        };
        let majority = agreed.supporters.len() > self.upstreams.len() / 2;
        let mut replace = false;
        match c.finalized {
            Some(cur)
                if candidate.slot < cur.slot
                    || (candidate.slot == cur.slot
                        && candidate.root != cur.root
                        && cur.root.is_some()
                        && candidate.root.is_some()) =>
            {
                if decision.served_contradicted && majority {
                    // The recovery rule: a majority of all configured
                    // upstreams proves the served checkpoint is not on its
                    // chain and supports another one.
                    m.pair.replaced.inc();
                    tracing::warn!(
                        served_slot = cur.slot,
                        new_slot = candidate.slot,
                        "served checkpoint contradicted by a majority of upstreams; replaced"
                    );
                    replace = true;
                } else {
                    // Older or conflicting: keep serving what was agreed before.
                    m.regressions_refused.inc();
                    c.last_error = Some(format!(
                        "agreement on finalized slot {} refused: slot {} was already served",
                        candidate.slot, cur.slot
                    ));
                    return;
                }
            }
            Some(cur)
                if cur == candidate || (cur.slot == candidate.slot && candidate.root.is_none()) => {
            }
            _ => replace = true,
        }
        if replace {
            if c.finalized.map(|f| f.slot) != Some(candidate.slot) {
                c.finalized_advanced_ms = now_ms;
                m.finalized_advanced.set(now_ms as f64 / 1000.0);
                // The supporters' latest poll is the one that completed the
                // majority (decisions come a batch after polls, not later).
                c.majority_at = agreed
                    .supporters
                    .iter()
                    .filter_map(|&i| lock(&self.upstreams[i].view).observed_at)
                    .max();
            }
            let backwards = c.finalized.is_some_and(|f| candidate.slot <= f.slot);
            c.finalized = Some(candidate);
            m.finalized_slot.set(candidate.slot as i64);
            if backwards {
                // The contradicted pair is no longer served; a verified
                // pair of the new checkpoint replaces it.
                *self.served.write().unwrap_or_else(|p| p.into_inner()) = None;
                c.justified = None;
            }
        }
        if let Some(j) = agreed.justified {
            if c.justified.is_none_or(|cur| j.slot >= cur.slot) {
                c.justified = Some(j);
                m.justified_slot.set(j.slot as i64);
            }
        }
        c.agreement = true;
        c.last_error = None;
        c.last_agreement = Some(Instant::now());
        c.last_agreement_ms = now_ms;
        m.last_agreement.set(now_ms as f64 / 1000.0);
        m.zig.agreed(now_ms);
        let finalized = c.finalized;
        if let Some(served) = finalized {
            let justified = c.justified.map(|j| j.slot);
            let n = agreed.supporters.len();
            self.history
                .record_agreement(now_ms, served, justified, n, decision.required);
        }
        drop(c);

        *lock(&self.supporters) = agreed.supporters.clone();
        if let Some(finalized) = finalized {
            self.state_target.send_if_modified(|t| {
                let changed = t.map(|t| t.finalized) != Some(finalized);
                if changed {
                    let generation = t.map_or(0, |t| t.generation + 1);
                    *t = Some(StateTarget {
                        finalized,
                        generation,
                    });
                }
                changed
            });
        }
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
            self.metrics.pair.set_standing(i, standing);
        }
        for (k, state) in Standing::ALL.iter().enumerate() {
            self.metrics
                .upstreams_by_state
                .get_or_create(&StateLabels { state: *state })
                .set(by[k] as i64);
        }
        by
    }

    /// History slots to read from upstream `i`'s State after a poll that saw
    /// `finalized`: the wanted slots below it, unless its history was
    /// already read at this finalized checkpoint.
    pub fn history_wanted(&self, i: usize, finalized: (u64, Option<Root>)) -> Vec<u64> {
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
    pub fn record_history(
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
    }

    /// Installs a pair if it is the pair of the checkpoint served now (a
    /// pair that lost a race with a newer agreement is dropped).
    pub fn install_state(&self, s: ServedState) {
        let c = self.consensus();
        let finalized = c.finalized;
        if finalized.map(|f| f.slot) != Some(s.slot)
            || finalized.is_some_and(|f| f.root.is_some() && f.root != s.root)
        {
            return;
        }
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
        *served = Some(Arc::new(s));
    }
}

impl ServedState {
    /// The served chain's block root at `slot` (below the served slot), from
    /// the State's own historical_block_hashes.
    pub fn history_at(&self, slot: u64) -> Option<Root> {
        if slot >= self.slot {
            return None;
        }
        ancestry::history_entry(&self.bytes, slot)
    }
}
