//! The per-upstream families and the handles of one upstream, created at
//! start-up (every series exists at 0 from the first scrape) and on a
//! reload (kept upstreams keep their values, removed ones lose their series).
//! `UpstreamMetrics` is what the bounded request reports to.

use std::hash::Hash;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::labels::{
    EndpointLabels, Keyed, KindLabels, Phase, PhaseLabels, SourceLabels, UpstreamLabels,
};
use super::register::{latency_histograms, register, HistogramFamily, UnixTime};
use crate::upstream::{Endpoint, ErrorKind, Report, Source};

type PerUpstream<M = Gauge> = Family<UpstreamLabels, M>;

/// One handle per key of `keys`, labelled for upstream `name`.
fn each<K: Copy, L, M: Clone, C: MetricConstructor<M>>(
    family: &Family<L, M, C>,
    name: &str,
    keys: &[K],
) -> Vec<(K, M)>
where
    L: Keyed<K> + Clone + Hash + Eq,
{
    keys.iter()
        .map(|&k| (k, family.get_or_create_owned(&L::of(name, k))))
        .collect()
}

/// Removes the series `each` created.
fn remove_each<K: Copy, L, M: Clone, C: MetricConstructor<M>>(
    family: &Family<L, M, C>,
    name: &str,
    keys: &[K],
) where
    L: Keyed<K> + Clone + Hash + Eq,
{
    for &k in keys {
        family.remove(&L::of(name, k));
    }
}

/// Handles for one upstream. Cloned out of the families once, at start-up.
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
    requests: Vec<(Endpoint, Counter)>,
    /// fork_choice latency, created at start: every client polled today
    /// serves it.
    fork_choice_latency: Histogram,
    /// The family, for the fallback endpoints' histograms. Those are created
    /// when an upstream first uses them: on an upstream that serves
    /// fork_choice they would stay empty, and at 1000 upstreams they were 30
    /// of the 74 samples per upstream in a scrape (BENCHMARKS.md).
    latency_family: HistogramFamily<EndpointLabels>,
    pub(super) name: String,
    timeouts: Vec<(Phase, Counter)>,
    errors: Vec<(ErrorKind, Counter)>,
    source: Vec<(Source, Gauge)>,
}

impl UpstreamMetrics {
    /// Marks `source` as this upstream's current data source (one-hot).
    pub fn set_source(&self, source: Source) {
        for (s, g) in &self.source {
            g.set(i64::from(*s == source));
        }
    }
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
        if endpoint == Endpoint::ForkChoice {
            self.fork_choice_latency.observe(secs);
        } else {
            let labels = EndpointLabels::of(&self.name, endpoint);
            self.latency_family.get_or_create(&labels).observe(secs);
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

/// The per-upstream families, kept so a reload can add and remove the series
/// of one upstream (`Metrics::for_upstreams`).
#[derive(Debug)]
pub(super) struct UpstreamFamilies {
    head: PerUpstream,
    just: PerUpstream,
    fin: PerUpstream,
    up: PerUpstream,
    agrees: PerUpstream,
    last_ok: PerUpstream<UnixTime>,
    consec: PerUpstream,
    in_flight: PerUpstream,
    polls: PerUpstream<Counter>,
    skipped: PerUpstream<Counter>,
    requests: Family<EndpointLabels, Counter>,
    latency: HistogramFamily<EndpointLabels>,
    timeouts: Family<PhaseLabels, Counter>,
    errors: Family<KindLabels, Counter>,
    source: Family<SourceLabels, Gauge>,
    /// Registered with the process-wide families, by `Metrics::new`.
    pub(super) in_flight_total: Gauge,
}

impl UpstreamFamilies {
    pub(super) fn register(r: &mut Registry) -> UpstreamFamilies {
        register! { r;
            head => "upstream_head_slot", "Head slot reported by the upstream at its last successful poll (polled in the background; a scrape never contacts upstreams)";
            just => "upstream_justified_slot", "Justified slot reported by the upstream at its last successful poll";
            fin => "upstream_finalized_slot", "Finalized slot reported by the upstream at its last successful poll";
            up => "upstream_up", "1 if the upstream's last poll succeeded, else 0";
            agrees => "upstream_agrees_with_consensus", "1 if the upstream's fresh finalized checkpoint is the agreed one, else 0";
            last_ok => "upstream_last_success_timestamp_seconds", "Unix time of the upstream's last successful poll (0 = never)";
            consec => "upstream_consecutive_errors", "Polls in a row that failed for this upstream";
            in_flight => "upstream_in_flight_requests", "Requests to this upstream in flight now: 0 or 1 by construction (one poll at a time, requests in sequence)";
            polls => "upstream_polls", "Polls started for this upstream";
            skipped => "upstream_polls_skipped", "Poll ticks skipped because the previous poll of this upstream was still running";
            requests => "upstream_requests", "Requests sent to the upstream, by Lean API endpoint (failed ones included)";
            latency = latency_histograms() => "upstream_request_duration" [Seconds], "Duration of requests to the upstream, by Lean API endpoint, until the body is read or the request fails";
            timeouts => "upstream_timeouts", "Requests to the upstream cancelled at a deadline: connect (TCP handshake) or total (whole request, body included)";
            errors => "upstream_errors", "Failed requests to the upstream, by kind (timeouts included)";
            source => "upstream_source", "1 for the data source the upstream currently gives: fork_choice (full checkpoints) or fallback (checkpoints/justified + state slot); unknown before the first success";
        }
        UpstreamFamilies {
            head,
            just,
            fin,
            up,
            agrees,
            last_ok,
            consec,
            in_flight,
            polls,
            skipped,
            requests,
            latency,
            timeouts,
            errors,
            source,
            in_flight_total: Gauge::default(),
        }
    }

    /// The series of upstream `name`: created at 0, or the existing ones
    /// (a reload keeps an upstream's counters running).
    pub(super) fn handles(&self, name: &str) -> UpstreamMetrics {
        let u = UpstreamLabels {
            upstream: name.to_string(),
        };
        UpstreamMetrics {
            head_slot: self.head.get_or_create_owned(&u),
            justified_slot: self.just.get_or_create_owned(&u),
            finalized_slot: self.fin.get_or_create_owned(&u),
            up: self.up.get_or_create_owned(&u),
            agrees: self.agrees.get_or_create_owned(&u),
            last_success: self.last_ok.get_or_create_owned(&u),
            consecutive_errors: self.consec.get_or_create_owned(&u),
            in_flight: self.in_flight.get_or_create_owned(&u),
            in_flight_total: self.in_flight_total.clone(),
            polls: self.polls.get_or_create_owned(&u),
            polls_skipped: self.skipped.get_or_create_owned(&u),
            requests: each(&self.requests, name, &Endpoint::ALL),
            fork_choice_latency: self
                .latency
                .get_or_create_owned(&EndpointLabels::of(name, Endpoint::ForkChoice)),
            latency_family: self.latency.clone(),
            name: name.to_string(),
            timeouts: each(&self.timeouts, name, &Phase::ALL),
            errors: each(&self.errors, name, &ErrorKind::ALL),
            source: each(&self.source, name, &Source::ALL),
        }
    }

    /// Removes every series of upstream `name`.
    pub(super) fn remove(&self, name: &str) {
        let u = UpstreamLabels {
            upstream: name.to_string(),
        };
        for f in [
            &self.head,
            &self.just,
            &self.fin,
            &self.up,
            &self.agrees,
            &self.consec,
            &self.in_flight,
        ] {
            f.remove(&u);
        }
        self.last_ok.remove(&u);
        self.polls.remove(&u);
        self.skipped.remove(&u);
        remove_each(&self.requests, name, &Endpoint::ALL);
        remove_each(&self.latency, name, &Endpoint::ALL);
        remove_each(&self.timeouts, name, &Phase::ALL);
        remove_each(&self.errors, name, &ErrorKind::ALL);
        remove_each(&self.source, name, &Source::ALL);
    }
}
