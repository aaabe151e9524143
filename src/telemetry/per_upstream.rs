//! The per-upstream series: the handles of one upstream (`UpstreamMetrics`,
//! what the bounded request and the decider record into) and the set of
//! every configured upstream's handles (`UpstreamSeries`), which the
//! exposition writes (with `upstream_text`) and a reload replaces.
//!
//! Why not prometheus-client `Family`s: at 1000 upstreams these are 53,000
//! of a scrape's 54,000 samples, and that crate's encoder, a dozen small
//! writes per sample through `dyn Write`, spent about 350 ns on each (a
//! 1000-upstream scrape was 17-25 ms of CPU; issue 13's target is a 15 ms
//! p99). Written from a per-upstream table with the label text rendered
//! once, a sample is a few appends. The values are still prometheus-client
//! `Gauge`s and `Counter`s (the latency histogram is `latency::Latency`),
//! and the text is byte for byte what its encoder writes (a test compares
//! the two), so nothing that reads /metrics can tell.
//!
//! Every series exists at 0 from the start (alert rules never see a
//! missing series), except the latency of fallback endpoints, written once
//! an upstream first uses them: on an upstream that serves fork_choice they
//! would stay empty, and they were 30 of the 74 samples of an upstream.

use std::sync::{Arc, RwLock};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use super::labels::{write_escaped, Phase};
use super::latency::Latency;
use super::register::UnixTime;
use crate::agreement::Standing;
use crate::upstream::{Endpoint, ErrorKind, Report, Source};

/// Handles for one upstream. Clones share the values: the poller records
/// into one, the exposition reads another.
#[derive(Clone, Debug)]
pub struct UpstreamMetrics {
    pub head_slot: Gauge,
    pub justified_slot: Gauge,
    pub finalized_slot: Gauge,
    pub up: Gauge,
    pub agrees: Gauge,
    pub last_success: UnixTime,
    pub consecutive_errors: Gauge,
    pub in_flight: Gauge,
    /// All upstreams' in-flight requests, moved with this one's.
    in_flight_total: Gauge,
    pub polls: Counter,
    pub polls_skipped: Counter,
    pub(super) requests: Vec<(Endpoint, Counter)>,
    pub(super) latency: Vec<(Endpoint, Latency)>,
    pub(super) timeouts: Vec<(Phase, Counter)>,
    pub(super) errors: Vec<(ErrorKind, Counter)>,
    pub(super) source: Vec<(Source, Gauge)>,
    /// One-hot, in `Standing::ALL` order.
    pub(super) standing: Vec<(Standing, Gauge)>,
    pub(super) name: Arc<str>,
    /// `upstream="<name>"`, escaped: rendered once, written in every sample.
    pub(super) label: Arc<str>,
}

impl UpstreamMetrics {
    /// New handles, every value 0 but the standing (`failing`: not polled
    /// yet) and the source (`unknown`).
    fn new(name: &str, in_flight_total: &Gauge) -> UpstreamMetrics {
        fn each<K: Copy, M: Default>(keys: &[K]) -> Vec<(K, M)> {
            keys.iter().map(|&k| (k, M::default())).collect()
        }
        let m = UpstreamMetrics {
            head_slot: Gauge::default(),
            justified_slot: Gauge::default(),
            finalized_slot: Gauge::default(),
            up: Gauge::default(),
            agrees: Gauge::default(),
            last_success: UnixTime::default(),
            consecutive_errors: Gauge::default(),
            in_flight: Gauge::default(),
            in_flight_total: in_flight_total.clone(),
            polls: Counter::default(),
            polls_skipped: Counter::default(),
            requests: each(&Endpoint::ALL),
            latency: each(&Endpoint::ALL),
            timeouts: each(&Phase::ALL),
            errors: each(&ErrorKind::ALL),
            source: each(&Source::ALL),
            standing: each(&Standing::ALL),
            name: name.into(),
            label: upstream_label(name).into(),
        };
        m.set_source(Source::Unknown);
        m.set_standing(Standing::Failing);
        m
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Marks `source` as this upstream's current data source (one-hot).
    pub fn set_source(&self, source: Source) {
        for (s, g) in &self.source {
            g.set(i64::from(*s == source));
        }
    }

    /// Marks `standing` as this upstream's standing (one-hot).
    pub fn set_standing(&self, standing: Standing) {
        for (s, g) in &self.standing {
            g.set(i64::from(*s == standing));
        }
    }
}

/// `upstream="<name>"`, the name escaped (`labels::write_escaped`).
fn upstream_label(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 12);
    s.push_str("upstream=\"");
    // Writing into a String cannot fail.
    let _ = write_escaped(&mut s, name);
    s.push('"');
    s
}

fn find<K: PartialEq, M>(handles: &[(K, M)], key: K) -> Option<&M> {
    handles.iter().find(|(k, _)| *k == key).map(|(_, m)| m)
}

impl Report for UpstreamMetrics {
    fn entered(&self) {
        self.in_flight.inc();
        self.in_flight_total.inc();
    }

    fn left(&self) {
        self.in_flight.dec();
        self.in_flight_total.dec();
    }

    /// Counts the request and its latency; a failure by kind, and a timeout
    /// also by the deadline it hit.
    fn finished(&self, endpoint: Endpoint, secs: f64, failure: Option<ErrorKind>) {
        if let Some(c) = find(&self.requests, endpoint) {
            c.inc();
        }
        if let Some(h) = find(&self.latency, endpoint) {
            h.observe(secs);
        }
        let Some(kind) = failure else { return };
        if let Some(c) = find(&self.errors, kind) {
            c.inc();
        }
        if let Some(c) = Phase::of(kind).and_then(|p| find(&self.timeouts, p)) {
            c.inc();
        }
    }
}

/// Every configured upstream's handles, in configuration order (the order
/// of the exposition). Shared by every `Metrics` a reload makes.
#[derive(Debug, Default)]
pub struct UpstreamSeries {
    current: RwLock<Vec<UpstreamMetrics>>,
    /// Registered with the process-wide families, by `Metrics::new`.
    pub(super) in_flight_total: Gauge,
}

impl UpstreamSeries {
    /// Makes `names` the configured upstreams and returns their handles:
    /// an upstream kept by name keeps its handles (its counters run on), a
    /// new one starts at 0, and one no longer named leaves the exposition.
    pub(super) fn set(&self, names: &[String]) -> Vec<UpstreamMetrics> {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        let next: Vec<UpstreamMetrics> = names
            .iter()
            .map(|n| match current.iter().find(|u| &*u.name == n) {
                Some(kept) => kept.clone(),
                None => UpstreamMetrics::new(n, &self.in_flight_total),
            })
            .collect();
        *current = next.clone();
        next
    }

    /// Runs `f` on the current upstreams' handles (for the exposition,
    /// `upstream_text`), a reload waiting meanwhile.
    pub(super) fn with_current<R>(&self, f: impl FnOnce(&[UpstreamMetrics]) -> R) -> R {
        f(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }
}
