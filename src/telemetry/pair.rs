//! Families of the verified pair and of upstream standings: which (block,
//! state) pair is served, why a candidate pair was refused, how each
//! upstream stands to the agreed chain. Registered by `Metrics::new`, between
//! the serving and the inbound HTTP families.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::labels::{Keyed, StandingLabels};
pub use super::labels::{PairLabels, ReasonLabels};
use super::register::register;
use crate::agreement::Standing;

#[derive(Clone, Debug)]
pub struct PairMetrics {
    /// Per upstream, one gauge per standing (one-hot), in `Standing::ALL` order.
    pub standing: Vec<Vec<(Standing, Gauge)>>,
    standing_family: Family<StandingLabels, Gauge>,
    pub failures: Family<ReasonLabels, Counter>,
    /// Every reason recorded so far: a Family cannot list its series, and a
    /// reload must remove a removed upstream's failure series (the reasons
    /// are a fixed set of a dozen names, so this stays that small).
    reasons_seen: Arc<Mutex<BTreeSet<&'static str>>>,
    pub served: Family<PairLabels, Gauge>,
    pub served_block_bytes: Gauge,
    pub served_verified: Gauge,
    pub served_contradicted: Gauge,
    pub replaced: Counter,
    pub ancestry_reads: Counter,
    pub ancestry_read_bytes: Counter,
}

impl PairMetrics {
    /// Registers the families (the standings created for `upstream_names`).
    pub(super) fn register(r: &mut Registry, upstream_names: &[String]) -> PairMetrics {
        register! { r;
            standing_family => "upstream_standing", "1 for the upstream's standing to the agreed chain (agreeing, ahead, behind, conflicting, unknown, failing), 0 for the others";
            failures => "upstream_verify_failures", "Evidence or (block, state) pairs from the upstream refused, by reason (block_root_mismatch, state_root_mismatch, ..., block_unavailable, impossible_slot, not_descendant)";
            served => "served_pair", "1 for the block root and state root of the served finalized pair";
            served_block_bytes => "served_block_bytes", "Size of the served finalized SignedBlock (0 when none is served)";
            served_verified => "served_pair_verified", "1 when the served State is proven by hash tree roots against the agreed block root, 0 when it is served by slot alone (every supporter is a legacy, slot-only upstream)";
            served_contradicted => "served_checkpoint_contradicted", "1 while more than half of the configured upstreams have evidence that their chains do not hold the served finalized checkpoint";
            replaced => "served_checkpoint_replaced", "Served checkpoints replaced by a majority-supported one after being contradicted (the recovery rule)";
            ancestry_reads => "ancestry_reads", "Prefix reads of an upstream State's historical_block_hashes (at most one per finalized change of that upstream)";
            ancestry_read_bytes => "ancestry_read_bytes", "Bytes read by ancestry prefix reads";
        }
        PairMetrics {
            standing: upstream_names
                .iter()
                .map(|name| standing_handles(&standing_family, name))
                .collect(),
            standing_family,
            failures,
            reasons_seen: Arc::default(),
            served,
            served_block_bytes,
            served_verified,
            served_contradicted,
            replaced,
            ancestry_reads,
            ancestry_read_bytes,
        }
    }

    /// The standing gauges for another upstream set (a reload): positions
    /// follow `upstream_names`; the series of upstreams no longer configured
    /// are removed, those kept by name keep their values.
    pub fn for_upstreams(&self, upstream_names: &[String], removed: &[&str]) -> PairMetrics {
        let reasons = self
            .reasons_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for name in removed {
            for standing in Standing::ALL {
                self.standing_family
                    .remove(&StandingLabels::of(name, standing));
            }
            for &reason in &reasons {
                self.failures.remove(&ReasonLabels {
                    upstream: name.to_string(),
                    reason,
                });
            }
        }
        let mut next = self.clone();
        next.standing = upstream_names
            .iter()
            .map(|name| standing_handles(&self.standing_family, name))
            .collect();
        next
    }

    /// Sets upstream `i`'s one-hot standing.
    pub fn set_standing(&self, i: usize, standing: Standing) {
        if let Some(gs) = self.standing.get(i) {
            for (s, g) in gs {
                g.set(i64::from(*s == standing));
            }
        }
    }

    pub fn failure(&self, upstream: &str, reason: &'static str) {
        self.reasons_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(reason);
        self.failures
            .get_or_create(&ReasonLabels {
                upstream: upstream.to_string(),
                reason,
            })
            .inc();
    }
}

/// One upstream's one-hot standing gauges; a new upstream starts `failing`
/// (not yet polled), one already in the family keeps its values.
pub(super) fn standing_handles(
    family: &Family<StandingLabels, Gauge>,
    name: &str,
) -> Vec<(Standing, Gauge)> {
    let is_new = !Standing::ALL
        .iter()
        .any(|&s| family.get(&StandingLabels::of(name, s)).is_some());
    Standing::ALL
        .iter()
        .map(|&s| {
            let g = family.get_or_create_owned(&StandingLabels::of(name, s));
            if is_new {
                g.set(i64::from(s == Standing::Failing));
            }
            (s, g)
        })
        .collect()
}
