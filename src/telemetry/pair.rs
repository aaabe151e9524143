//! Families of the verified pair and of upstream standings: which (block,
//! state) pair is served, why a candidate pair was refused, how each
//! upstream stands to the agreed chain. Registered by `Metrics::new`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Standing;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StandingLabels {
    pub upstream: String,
    pub standing: Standing,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub upstream: String,
    /// A fixed set: verify_pair's kinds, `block_unavailable`, `fetch_failed`,
    /// `impossible_slot`, `not_descendant`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PairLabels {
    pub block_root: String,
    pub state_root: String,
}

#[derive(Clone, Debug)]
pub struct PairMetrics {
    /// Per upstream, one gauge per standing (one-hot), in `Standing::ALL` order.
    pub standing: Vec<Vec<(Standing, Gauge)>>,
    standing_family: Family<StandingLabels, Gauge>,
    pub failures: Family<ReasonLabels, Counter>,
    pub served: Family<PairLabels, Gauge>,
    pub served_block_bytes: Gauge,
    pub served_verified: Gauge,
    pub served_contradicted: Gauge,
    pub replaced: Counter,
    pub ancestry_reads: Counter,
    pub ancestry_read_bytes: Counter,
}

impl PairMetrics {
    pub fn new(r: &mut Registry, upstream_names: &[String]) -> PairMetrics {
        let family = Family::<StandingLabels, Gauge>::default();
        r.register("upstream_standing", "1 for the upstream's standing to the agreed chain (agreeing, ahead, behind, conflicting, unknown, failing), 0 for the others", family.clone());
        let standing = upstream_names
            .iter()
            .map(|name| standing_handles(&family, name))
            .collect();
        let failures = Family::<ReasonLabels, Counter>::default();
        r.register("upstream_verify_failures", "Evidence or (block, state) pairs from the upstream refused, by reason (block_root_mismatch, state_root_mismatch, ..., block_unavailable, impossible_slot, not_descendant)", failures.clone());
        let served = Family::<PairLabels, Gauge>::default();
        r.register(
            "served_pair",
            "1 for the block root and state root of the served finalized pair",
            served.clone(),
        );
        let served_block_bytes = Gauge::default();
        r.register(
            "served_block_bytes",
            "Size of the served finalized SignedBlock (0 when none is served)",
            served_block_bytes.clone(),
        );
        let served_verified = Gauge::default();
        r.register("served_pair_verified", "1 when the served State is proven by hash tree roots against the agreed block root, 0 when it is served by slot alone (every supporter is a legacy, slot-only upstream)", served_verified.clone());
        let served_contradicted = Gauge::default();
        r.register("served_checkpoint_contradicted", "1 while more than half of the configured upstreams have evidence that their chains do not hold the served finalized checkpoint", served_contradicted.clone());
        let replaced = Counter::default();
        r.register("served_checkpoint_replaced", "Served checkpoints replaced by a majority-supported one after being contradicted (the recovery rule)", replaced.clone());
        let ancestry_reads = Counter::default();
        r.register("ancestry_reads", "Prefix reads of an upstream State's historical_block_hashes (at most one per finalized change of that upstream)", ancestry_reads.clone());
        let ancestry_read_bytes = Counter::default();
        r.register(
            "ancestry_read_bytes",
            "Bytes read by ancestry prefix reads",
            ancestry_read_bytes.clone(),
        );
        PairMetrics {
            standing_family: family,
            standing,
            failures,
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
        for name in removed {
            for &standing in Standing::ALL.iter() {
                self.standing_family.remove(&StandingLabels {
                    upstream: name.to_string(),
                    standing,
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
fn standing_handles(family: &Family<StandingLabels, Gauge>, name: &str) -> Vec<(Standing, Gauge)> {
    let is_new = !Standing::ALL.iter().any(|&standing| {
        family
            .get(&StandingLabels {
                upstream: name.to_string(),
                standing,
            })
            .is_some()
    });
    Standing::ALL
        .iter()
        .map(|&s| {
            let g = family.get_or_create_owned(&StandingLabels {
                upstream: name.to_string(),
                standing: s,
            });
            if is_new {
                g.set(i64::from(s == Standing::Failing));
            }
            (s, g)
        })
        .collect()
}
