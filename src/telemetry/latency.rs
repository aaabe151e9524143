//! The request-latency histogram of an upstream: prometheus-client's
//! `Histogram` keeps its buckets private to that crate, and the per-upstream
//! exposition (`upstream_text`) has to read them. Same buckets and the same
//! rule as prometheus-client's (a value goes to the first bucket whose upper
//! bound is at or above it), so the exposition is byte for byte what that
//! crate would write.

use std::sync::{Arc, Mutex};

use super::register::LATENCY_BUCKETS;

/// Buckets: the finite upper bounds, then +Inf.
pub const BUCKETS: usize = LATENCY_BUCKETS.len() + 1;

/// One histogram; clones share it.
#[derive(Clone, Debug, Default)]
pub struct Latency(Arc<Mutex<Counts>>);

/// What a histogram holds. One lock around all of it: a scrape must never
/// see a count that its buckets do not add up to.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    pub sum: f64,
    pub count: u64,
    /// Per bucket, not cumulative.
    pub buckets: [u64; BUCKETS],
}

impl Latency {
    pub fn observe(&self, secs: f64) {
        let mut c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        c.sum += secs;
        c.count += 1;
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&upper| upper >= secs)
            .or_else(|| (secs <= f64::MAX).then_some(LATENCY_BUCKETS.len()));
        if let Some(i) = bucket {
            c.buckets[i] += 1;
        }
    }

    pub fn counts(&self) -> Counts {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The upper bounds as the exposition writes them in `le`.
pub fn upper_bounds() -> impl Iterator<Item = Option<f64>> {
    LATENCY_BUCKETS.iter().map(|&b| Some(b)).chain([None])
}
