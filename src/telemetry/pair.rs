//! Families of the verified pair: which (block, state) pair is served and
//! why a candidate pair or an upstream's evidence was refused. Registered by
//! `Metrics::new`, between the serving and the inbound HTTP families. (How
//! each upstream stands to the agreed chain is a per-upstream series,
//! `per_upstream`.)

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub use super::labels::{PairLabels, ReasonLabels, UpstreamName};
use super::register::register;

#[derive(Clone, Debug)]
pub struct PairMetrics {
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
    pub(super) fn register(r: &mut Registry) -> PairMetrics {
        register! { r;
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

    /// Removes the failure series of upstreams a reload removed.
    pub fn remove_upstreams(&self, removed: &[&str]) {
        let reasons = self
            .reasons_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for name in removed {
            for &reason in &reasons {
                self.failures.remove(&ReasonLabels {
                    upstream: UpstreamName(name.to_string()),
                    reason,
                });
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
                upstream: UpstreamName(upstream.to_string()),
                reason,
            })
            .inc();
    }
}
