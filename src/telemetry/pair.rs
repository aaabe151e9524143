//! Families of the verified pair and of upstream standings: which (block,
//! state) pair is served, why a candidate pair was refused, how each
//! upstream stands to the agreed chain. Registered in `Metrics::new`'s table.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::labels::{Keyed, StandingLabels};
pub use super::labels::{PairLabels, ReasonLabels};
use crate::agreement::Standing;

#[derive(Clone, Debug)]
pub struct PairMetrics {
    /// Per upstream, one gauge per standing (one-hot), in `Standing::ALL` order.
    pub standing: Vec<Vec<(Standing, Gauge)>>,
    pub(super) standing_family: Family<StandingLabels, Gauge>,
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
    /// The standing gauges for another upstream set (a reload): positions
    /// follow `upstream_names`; the series of upstreams no longer configured
    /// are removed, those kept by name keep their values.
    pub fn for_upstreams(&self, upstream_names: &[String], removed: &[&str]) -> PairMetrics {
        for name in removed {
            for standing in Standing::ALL {
                self.standing_family
                    .remove(&StandingLabels::of(name, standing));
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
