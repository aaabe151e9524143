//! Every metric family leanpoint exports, defined once and registered into a
//! registry that the caller owns (no global registry).
//!
//! Recording sites get cheap clones of the handles: `Metrics` for
//! process-wide families and one `UpstreamMetrics` per upstream, created at
//! start-up so that every per-upstream series exists (at 0) from the first
//! scrape and alert rules never see a missing series. No label takes a value
//! from input or time: `upstream` is the configured name and every other
//! label is one of the fixed enums below.
//!
//! Values that come from polling are recorded by the poller when a poll ends;
//! a scrape only encodes them, it never triggers a request to an upstream.

use std::fmt::Write as _;
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::upstream::{Endpoint, ErrorKind, Source};

pub mod logging;
pub mod process;
pub mod sockdiag;
pub mod tcp_sockets;
mod zig;
pub use zig::ZigFamilies;

/// Latency buckets, seconds: 1 ms (a local node) to 30 s (the largest total
/// deadline anyone should configure).
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

/// Inbound latency buckets, seconds: JSON is sub-millisecond, a large state to
/// a slow client can take a minute.
const HTTP_BUCKETS: [f64; 10] = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 10.0, 60.0];

/// Freshness buckets, seconds: from a decision batch after the poll (tens of
/// ms) to a large State's download over a slow link.
const FRESHNESS_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS)
}

/// Label enums encode as their `as_str` (snake_case), the same text the
/// JSON endpoints use, so a dashboard and /api/upstreams name a failure alike.
macro_rules! label_value {
    ($($t:ty),*) => {$(
        impl EncodeLabelValue for $t {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
                std::fmt::Write::write_str(encoder, self.as_str())
            }
        }
    )*};
}
label_value!(Endpoint, ErrorKind, Source, Phase, Standing);

/// Which deadline a timed-out request hit.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Phase {
    Connect,
    Total,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Total => "total",
        }
    }
}

/// How an upstream stands to the agreed checkpoint (the pure rule lives in
/// `agreement`); the `state` label of `leanpoint_consensus_upstreams`.
pub use crate::agreement::Standing;

pub mod pair;
pub use pair::PairMetrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    pub upstream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub upstream: String,
    pub endpoint: Endpoint,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub upstream: String,
    pub phase: Phase,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub upstream: String,
    pub kind: ErrorKind,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub upstream: String,
    pub source: Source,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: Standing,
}

/// Inbound request labels. `route` is the matched route template (a fixed
/// set; anything unmatched is "unmatched"), `code` the numeric status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: &'static str,
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
}

/// Handles for one upstream. Cloned out of the families once, at start-up.
#[derive(Clone, Debug)]
pub struct UpstreamMetrics {
    pub head_slot: Gauge,
    pub justified_slot: Gauge,
    pub finalized_slot: Gauge,
    pub up: Gauge,
    pub agrees: Gauge,
    pub last_success: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub consecutive_errors: Gauge,
    pub in_flight: Gauge,
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
    name: String,
    timeouts: Vec<(Phase, Counter)>,
    errors: Vec<(ErrorKind, Counter)>,
    source: Vec<(Source, Gauge)>,
}

impl UpstreamMetrics {
    /// One request to `endpoint` finished (either way) after `secs`.
    pub fn observe_request(&self, endpoint: Endpoint, secs: f64) {
        if let Some((_, c)) = self.requests.iter().find(|(e, _)| *e == endpoint) {
            c.inc();
        }
        if endpoint == Endpoint::ForkChoice {
            self.fork_choice_latency.observe(secs);
        } else {
            let labels = EndpointLabels {
                upstream: self.name.clone(),
                endpoint,
            };
            self.latency_family.get_or_create(&labels).observe(secs);
        }
    }

    /// One request failed with `kind`; timeouts are also counted by phase.
    pub fn observe_error(&self, kind: ErrorKind) {
        if let Some((_, c)) = self.errors.iter().find(|(k, _)| *k == kind) {
            c.inc();
        }
        let phase = match kind {
            ErrorKind::ConnectTimeout => Some(Phase::Connect),
            ErrorKind::Timeout => Some(Phase::Total),
            _ => None,
        };
        if let Some((_, c)) = phase.and_then(|p| self.timeouts.iter().find(|(q, _)| *q == p)) {
            c.inc();
        }
    }

    /// Marks `source` as this upstream's current data source (one-hot).
    pub fn set_source(&self, source: Source) {
        for (s, g) in &self.source {
            g.set(i64::from(*s == source));
        }
    }
}

/// The per-upstream families, kept so a reload can add and remove the series
/// of one upstream (`Metrics::for_upstreams`).
#[derive(Debug)]
struct UpstreamFamilies {
    head: Family<UpstreamLabels, Gauge>,
    just: Family<UpstreamLabels, Gauge>,
    fin: Family<UpstreamLabels, Gauge>,
    up: Family<UpstreamLabels, Gauge>,
    agrees: Family<UpstreamLabels, Gauge>,
    last_ok: Family<UpstreamLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    consec: Family<UpstreamLabels, Gauge>,
    in_flight: Family<UpstreamLabels, Gauge>,
    polls: Family<UpstreamLabels, Counter>,
    skipped: Family<UpstreamLabels, Counter>,
    requests: Family<EndpointLabels, Counter>,
    latency: HistogramFamily<EndpointLabels>,
    timeouts: Family<PhaseLabels, Counter>,
    errors: Family<KindLabels, Counter>,
    source: Family<SourceLabels, Gauge>,
}

impl UpstreamFamilies {
    /// The series of upstream `name`: created at 0, or the existing ones
    /// (a reload keeps an upstream's counters running).
    fn handles(&self, name: &str) -> UpstreamMetrics {
        let u = UpstreamLabels {
            upstream: name.to_string(),
        };
        let ep = |e: Endpoint| EndpointLabels {
            upstream: name.to_string(),
            endpoint: e,
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
            polls: self.polls.get_or_create_owned(&u),
            polls_skipped: self.skipped.get_or_create_owned(&u),
            requests: Endpoint::ALL
                .iter()
                .map(|&e| (e, self.requests.get_or_create_owned(&ep(e))))
                .collect(),
            fork_choice_latency: self.latency.get_or_create_owned(&ep(Endpoint::ForkChoice)),
            latency_family: self.latency.clone(),
            name: name.to_string(),
            timeouts: [Phase::Connect, Phase::Total]
                .iter()
                .map(|&p| {
                    (
                        p,
                        self.timeouts.get_or_create_owned(&PhaseLabels {
                            upstream: name.to_string(),
                            phase: p,
                        }),
                    )
                })
                .collect(),
            errors: ErrorKind::ALL
                .iter()
                .map(|&k| {
                    (
                        k,
                        self.errors.get_or_create_owned(&KindLabels {
                            upstream: name.to_string(),
                            kind: k,
                        }),
                    )
                })
                .collect(),
            source: Source::ALL
                .iter()
                .map(|&s| {
                    (
                        s,
                        self.source.get_or_create_owned(&SourceLabels {
                            upstream: name.to_string(),
                            source: s,
                        }),
                    )
                })
                .collect(),
        }
    }

    /// Removes every series of upstream `name`.
    fn remove(&self, name: &str) {
        let upstream = || name.to_string();
        let u = UpstreamLabels {
            upstream: upstream(),
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
        for endpoint in Endpoint::ALL {
            let l = EndpointLabels {
                upstream: upstream(),
                endpoint,
            };
            self.requests.remove(&l);
            self.latency.remove(&l);
        }
        for phase in [Phase::Connect, Phase::Total] {
            self.timeouts.remove(&PhaseLabels {
                upstream: upstream(),
                phase,
            });
        }
        for kind in ErrorKind::ALL {
            self.errors.remove(&KindLabels {
                upstream: upstream(),
                kind,
            });
        }
        for source in Source::ALL {
            self.source.remove(&SourceLabels {
                upstream: upstream(),
                source,
            });
        }
    }
}

/// Every family, registered once. Clone-cheap: all handles share their values.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub upstreams: Vec<UpstreamMetrics>,
    families: Arc<UpstreamFamilies>,
    upstreams_configured: Gauge,
    // Consensus and serving.
    pub finalized_slot: Gauge,
    pub justified_slot: Gauge,
    pub consensus_reached: Gauge,
    pub upstreams_by_state: Family<StateLabels, Gauge>,
    pub required_votes: Gauge,
    pub last_agreement: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub last_decision: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub finalized_advanced: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub regressions_refused: Counter,
    pub served_state_slot: Gauge,
    /// From the poll that completed a majority for a new finalized
    /// checkpoint to its verified pair being served.
    pub checkpoint_freshness: Histogram,
    pub served_state_bytes: Gauge,
    pub state_fetches: Counter,
    pub state_fetch_failures: Counter,
    pub in_flight_total: Gauge,
    /// The verified pair and upstream standings.
    pub pair: PairMetrics,
    // Inbound HTTP.
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: HistogramFamily<RouteLabels>,
    pub http_open_connections: Gauge,
    pub http_connections: Counter,
    pub http_connections_over_cap: Counter,
    pub fd_threshold_ratio: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// The Zig leanpoint's families with successors, deprecated.
    pub zig: ZigFamilies,
}

impl Metrics {
    /// Registers every family into `registry` and creates the per-upstream
    /// series for `upstream_names` (in configuration order).
    pub fn new(registry: &mut Registry, upstream_names: &[String], fd_threshold: f64) -> Metrics {
        let r = registry.sub_registry_with_prefix("leanpoint");

        // Per-upstream families.
        let head = Family::<UpstreamLabels, Gauge>::default();
        r.register("upstream_head_slot", "Head slot reported by the upstream at its last successful poll (polled in the background; a scrape never contacts upstreams)", head.clone());
        let just = Family::<UpstreamLabels, Gauge>::default();
        r.register(
            "upstream_justified_slot",
            "Justified slot reported by the upstream at its last successful poll",
            just.clone(),
        );
        let fin = Family::<UpstreamLabels, Gauge>::default();
        r.register(
            "upstream_finalized_slot",
            "Finalized slot reported by the upstream at its last successful poll",
            fin.clone(),
        );
        let up = Family::<UpstreamLabels, Gauge>::default();
        r.register(
            "upstream_up",
            "1 if the upstream's last poll succeeded, else 0",
            up.clone(),
        );
        let agrees = Family::<UpstreamLabels, Gauge>::default();
        r.register(
            "upstream_agrees_with_consensus",
            "1 if the upstream's fresh finalized checkpoint is the agreed one, else 0",
            agrees.clone(),
        );
        let last_ok = Family::<UpstreamLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        r.register(
            "upstream_last_success_timestamp_seconds",
            "Unix time of the upstream's last successful poll (0 = never)",
            last_ok.clone(),
        );
        let consec = Family::<UpstreamLabels, Gauge>::default();
        r.register(
            "upstream_consecutive_errors",
            "Polls in a row that failed for this upstream",
            consec.clone(),
        );
        let in_flight = Family::<UpstreamLabels, Gauge>::default();
        r.register("upstream_in_flight_requests", "Requests to this upstream in flight now: 0 or 1 by construction (one poll at a time, requests in sequence)", in_flight.clone());
        let polls = Family::<UpstreamLabels, Counter>::default();
        r.register(
            "upstream_polls",
            "Polls started for this upstream",
            polls.clone(),
        );
        let skipped = Family::<UpstreamLabels, Counter>::default();
        r.register(
            "upstream_polls_skipped",
            "Poll ticks skipped because the previous poll of this upstream was still running",
            skipped.clone(),
        );
        let requests = Family::<EndpointLabels, Counter>::default();
        r.register(
            "upstream_requests",
            "Requests sent to the upstream, by Lean API endpoint (failed ones included)",
            requests.clone(),
        );
        let latency: HistogramFamily<EndpointLabels> =
            Family::new_with_constructor(latency_histogram);
        r.register_with_unit("upstream_request_duration", "Duration of requests to the upstream, by Lean API endpoint, until the body is read or the request fails", Unit::Seconds, latency.clone());
        let timeouts = Family::<PhaseLabels, Counter>::default();
        r.register("upstream_timeouts", "Requests to the upstream cancelled at a deadline: connect (TCP handshake) or total (whole request, body included)", timeouts.clone());
        let errors = Family::<KindLabels, Counter>::default();
        r.register(
            "upstream_errors",
            "Failed requests to the upstream, by kind (timeouts included)",
            errors.clone(),
        );
        let source = Family::<SourceLabels, Gauge>::default();
        r.register("upstream_source", "1 for the data source the upstream currently gives: fork_choice (full checkpoints) or fallback (checkpoints/justified + state slot); unknown before the first success", source.clone());

        let families = Arc::new(UpstreamFamilies {
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
        });
        let upstreams: Vec<UpstreamMetrics> =
            upstream_names.iter().map(|n| families.handles(n)).collect();
        for u in &upstreams {
            u.set_source(Source::Unknown);
        }

        // Consensus and serving. The first two keep the Zig leanpoint's names.
        let finalized_slot = Gauge::default();
        r.register(
            "finalized_slot",
            "Agreed finalized slot (0 until agreement); never decreases",
            finalized_slot.clone(),
        );
        let justified_slot = Gauge::default();
        r.register(
            "justified_slot",
            "Agreed justified slot (0 until agreement)",
            justified_slot.clone(),
        );
        let zig = ZigFamilies::register(r);
        let consensus_reached = Gauge::default();
        r.register(
            "consensus_reached",
            "1 if enough fresh upstreams agree on the finalized checkpoint now, else 0",
            consensus_reached.clone(),
        );
        let upstreams_by_state = Family::<StateLabels, Gauge>::default();
        r.register("consensus_upstreams", "Configured upstreams by standing: agreeing, ahead (past it, on its chain), behind (before it, on its chain), conflicting (proven on another chain), unknown (no evidence), failing (no fresh observation)", upstreams_by_state.clone());
        for s in Standing::ALL {
            upstreams_by_state
                .get_or_create(&StateLabels { state: s })
                .set(0);
        }
        let required_votes = Gauge::default();
        r.register("consensus_required_votes", "Upstreams that must agree under the configured rule (for the responding rule: at the last decision)", required_votes.clone());
        let upstreams_configured = Gauge::<i64>::default();
        upstreams_configured.set(upstream_names.len() as i64);
        r.register(
            "upstreams_configured",
            "Number of configured upstreams",
            upstreams_configured.clone(),
        );
        let last_agreement = Gauge::default();
        r.register("last_agreement_timestamp_seconds", "Unix time agreement was last reached (0 = never); successor of leanpoint_last_success_timestamp_ms", last_agreement.clone());
        let last_decision = Gauge::default();
        r.register("last_decision_timestamp_seconds", "Unix time of the last agreement decision, reached or not (0 = never); successor of leanpoint_last_updated_timestamp_ms", last_decision.clone());
        let finalized_advanced = Gauge::default();
        r.register(
            "finalized_advanced_timestamp_seconds",
            "Unix time the agreed finalized checkpoint last moved forward (0 = never)",
            finalized_advanced.clone(),
        );
        let regressions_refused = Counter::default();
        r.register("finalized_regressions_refused", "Decisions that pointed at an older or conflicting finalized checkpoint and were not served", regressions_refused.clone());
        let checkpoint_freshness = Histogram::new(FRESHNESS_BUCKETS);
        r.register(
            "checkpoint_freshness_seconds",
            "Seconds from the poll that gave a new finalized checkpoint its majority to the first serving of its verified pair",
            checkpoint_freshness.clone(),
        );
        let served_state_slot = Gauge::default();
        r.register(
            "served_state_slot",
            "Slot of the finalized State served at /lean/v0/states/finalized (0 = none)",
            served_state_slot.clone(),
        );
        let served_state_bytes = Gauge::default();
        r.register_with_unit(
            "served_state_size",
            "Size of the cached finalized State served (0 = none)",
            Unit::Bytes,
            served_state_bytes.clone(),
        );
        let state_fetches = Counter::default();
        r.register("state_fetches", "Downloads of the finalized State for the cache (one per new agreed checkpoint, more on failure)", state_fetches.clone());
        let state_fetch_failures = Counter::default();
        r.register(
            "state_fetch_failures",
            "State downloads that failed or did not match the agreed checkpoint",
            state_fetch_failures.clone(),
        );
        let in_flight_total = Gauge::default();
        r.register("upstream_requests_in_flight", "Requests to all upstreams in flight now; never more than the number of upstreams plus one state download", in_flight_total.clone());
        let pair = PairMetrics::new(r, upstream_names);

        // Inbound HTTP.
        let http_requests = Family::<HttpLabels, Counter>::default();
        r.register(
            "http_requests",
            "Inbound HTTP requests by route template and status code",
            http_requests.clone(),
        );
        let http_duration: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(http_histogram);
        r.register_with_unit(
            "http_request_duration",
            "Inbound HTTP request duration by route template, until the response head is sent",
            Unit::Seconds,
            http_duration.clone(),
        );
        let http_open_connections = Gauge::default();
        r.register(
            "http_open_connections",
            "Inbound connections open now (capped by --max-connections)",
            http_open_connections.clone(),
        );
        let http_connections = Counter::default();
        r.register(
            "http_connections",
            "Inbound connections accepted",
            http_connections.clone(),
        );
        let http_connections_over_cap = Counter::default();
        r.register(
            "http_connections_over_cap",
            "Times the accept loop paused because --max-connections were open",
            http_connections_over_cap.clone(),
        );
        let fd_threshold_ratio = Gauge::default();
        fd_threshold_ratio.set(fd_threshold);
        r.register(
            "fd_threshold_ratio",
            "Fraction of RLIMIT_NOFILE above which /healthz and /livez fail (--fd-threshold)",
            fd_threshold_ratio.clone(),
        );

        let build = Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]);
        r.register("build", "leanpoint build information", build);

        Metrics {
            upstreams,
            families,
            upstreams_configured,
            finalized_slot,
            justified_slot,
            consensus_reached,
            upstreams_by_state,
            required_votes,
            last_agreement,
            last_decision,
            finalized_advanced,
            regressions_refused,
            served_state_slot,
            checkpoint_freshness,
            served_state_bytes,
            state_fetches,
            state_fetch_failures,
            in_flight_total,
            pair,
            http_requests,
            http_duration,
            http_open_connections,
            http_connections,
            http_connections_over_cap,
            fd_threshold_ratio,
            zig,
        }
    }

    /// The same families for another upstream set (a reload): series of
    /// upstreams no longer configured are removed, new ones created at 0, and
    /// those of upstreams kept by name keep their values.
    pub fn for_upstreams(&self, upstream_names: &[String]) -> Metrics {
        let removed: Vec<&str> = self
            .upstreams
            .iter()
            .map(|old| old.name.as_str())
            .filter(|old| !upstream_names.iter().any(|n| n == old))
            .collect();
        for old in &removed {
            self.families.remove(old);
        }
        let mut next = self.clone();
        next.pair = self.pair.for_upstreams(upstream_names, &removed);
        next.upstreams = upstream_names
            .iter()
            .map(|n| self.families.handles(n))
            .collect();
        for u in &next.upstreams {
            if !self.upstreams.iter().any(|o| o.name == u.name) {
                u.set_source(Source::Unknown);
            }
        }
        next.upstreams_configured.set(upstream_names.len() as i64);
        next
    }

    /// Records one inbound request.
    pub fn observe_http(&self, route: &'static str, code: u16, secs: f64) {
        self.http_requests
            .get_or_create(&HttpLabels { route, code })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels { route })
            .observe(secs);
    }
}

/// Content type of the classic Prometheus text format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of OpenMetrics text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Encodes the registry. OpenMetrics when the scraper asks for it (Prometheus
/// does), else the classic text format, which `promtool check metrics`, curl
/// users and older scrapers read.
///
/// The classic text is converted while prometheus-client writes, line by
/// line, not from a finished OpenMetrics copy: at 1000 upstreams the body is
/// about 7 MB, and a second copy doubled the memory of every scrape (and the
/// heap it leaves behind).
pub fn encode(registry: &Registry, openmetrics: bool) -> Result<String, std::fmt::Error> {
    let mut out = String::with_capacity(64 * 1024);
    if openmetrics {
        prometheus_client::encoding::text::encode(&mut out, registry)?;
    } else {
        let mut text = ClassicText::new(&mut out);
        prometheus_client::encoding::text::encode(&mut text, registry)?;
        text.finish();
    }
    Ok(out)
}

/// Rewrites OpenMetrics text into the classic format (see [`ClassicText`]).
pub fn openmetrics_to_text(om: &str) -> String {
    let mut out = String::with_capacity(om.len() + om.len() / 16);
    let mut text = ClassicText::new(&mut out);
    let _ = text.write_str(om);
    text.finish();
    out
}

/// A `fmt::Write` that turns the OpenMetrics text written into it into the
/// classic format: counter and info families are named with their sample
/// suffix (`_total`, `_info`), info becomes a gauge, and `# UNIT` / `# EOF`
/// (unknown to the classic format) go. prometheus-client writes `# HELP`
/// before `# TYPE`, so the HELP line waits until its family's TYPE tells
/// which suffix it needs.
///
/// prometheus-client writes a sample in a dozen pieces of a few bytes, so
/// looking at each piece cost as much as the encoding itself (classic text
/// took 1.8x the OpenMetrics time). The pieces are appended as they come;
/// whole lines are converted once [`CHUNK`] bytes are waiting (and at
/// `finish`), runs of sample lines copied in one go. The waiting text stays
/// that small, so the body is never held twice.
pub struct ClassicText<'a> {
    out: &'a mut String,
    /// OpenMetrics text not converted yet.
    raw: String,
    /// Convert once `raw` holds this many bytes.
    chunk: usize,
    pending_help: String,
}

/// Bytes of OpenMetrics text converted at a time.
const CHUNK: usize = 32 * 1024;

impl<'a> ClassicText<'a> {
    pub fn new(out: &'a mut String) -> Self {
        ClassicText {
            out,
            raw: String::with_capacity(CHUNK + 1024),
            chunk: CHUNK,
            pending_help: String::new(),
        }
    }

    /// Converts what is left, a last line without a newline included.
    pub fn finish(mut self) {
        self.convert(true);
    }

    /// Converts the whole lines of `raw` (and with `all` a last partial
    /// line), keeping a partial line for the pieces still to come. Only
    /// comment lines change: the text between them is copied as it is.
    fn convert(&mut self, all: bool) {
        let raw = std::mem::take(&mut self.raw);
        let bytes = raw.as_bytes();
        // `at` is always at a line start; `run` starts the sample lines not
        // copied yet.
        let (mut at, mut run) = (0, 0);
        loop {
            let comment = if bytes.get(at) == Some(&b'#') {
                Some(at)
            } else {
                memchr::memmem::find(&bytes[at..], b"\n#").map(|i| at + i + 1)
            };
            let Some(c) = comment else {
                at = if all {
                    bytes.len()
                } else {
                    memchr::memrchr(b'\n', &bytes[at..]).map_or(at, |i| at + i + 1)
                };
                break;
            };
            let (end, next) = match memchr::memchr(b'\n', &bytes[c..]) {
                Some(i) => (c + i, c + i + 1),
                None if all => (bytes.len(), bytes.len()),
                None => {
                    at = c;
                    break;
                }
            };
            self.out.push_str(&raw[run..c]);
            self.comment_line(&raw[c..end]);
            run = next;
            at = next;
        }
        self.out.push_str(&raw[run..at]);
        let mut raw = raw;
        raw.drain(..at);
        self.raw = raw;
    }

    fn comment_line(&mut self, line: &str) {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            return;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            self.pending_help.clear();
            self.pending_help.push_str(rest);
            return;
        }
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            self.out.push_str(line);
            self.out.push('\n');
            return;
        };
        let (name, kind) = rest.rsplit_once(' ').unwrap_or((rest, "unknown"));
        let (suffix, kind) = match kind {
            "counter" if !name.ends_with("_total") => ("_total", "counter"),
            "info" => ("_info", "gauge"),
            "unknown" => ("", "untyped"),
            other => ("", other),
        };
        // Pushes, not writeln!: a scrape has hundreds of these lines.
        if !self.pending_help.is_empty() {
            let help = self.pending_help.split_once(' ').map_or("", |(_, t)| t);
            for piece in ["# HELP ", name, suffix, " ", help, "\n"] {
                self.out.push_str(piece);
            }
            self.pending_help.clear();
        }
        for piece in ["# TYPE ", name, suffix, " ", kind, "\n"] {
            self.out.push_str(piece);
        }
    }
}

impl std::fmt::Write for ClassicText<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.raw.push_str(s);
        if self.raw.len() >= self.chunk {
            self.convert(false);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_upstream_series_exists_at_start() {
        let mut reg = Registry::default();
        let m = Metrics::new(&mut reg, &["a".into(), "b".into()], 0.8);
        assert_eq!(m.upstreams.len(), 2);
        let text = encode(&reg, false).expect("encode");
        for needle in [
            "leanpoint_upstream_up{upstream=\"b\"} 0",
            "leanpoint_upstream_timeouts_total{upstream=\"a\",phase=\"connect\"} 0",
            "leanpoint_upstream_errors_total{upstream=\"a\",kind=\"body_too_large\"} 0",
            "# TYPE leanpoint_upstream_errors_total counter",
            "# HELP leanpoint_upstream_errors_total Failed",
            "# TYPE leanpoint_build_info gauge",
            "leanpoint_upstream_request_duration_seconds_bucket{le=\"0.001\",upstream=\"a\",endpoint=\"fork_choice\"} 0",
            // The Zig leanpoint's six families, exact names and types.
            "# TYPE leanpoint_justified_slot gauge",
            "# TYPE leanpoint_finalized_slot gauge",
            "# TYPE leanpoint_last_success_timestamp_ms gauge",
            "# TYPE leanpoint_last_updated_timestamp_ms gauge",
            "# TYPE leanpoint_last_latency_ms gauge",
            "# TYPE leanpoint_error_total counter",
            "# HELP leanpoint_error_total Deprecated",
            "leanpoint_error_total 0",
        ] {
            assert!(text.contains(needle), "missing {needle}\n{text}");
        }
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
    }

    #[test]
    fn classic_text_is_the_same_however_the_input_is_split() {
        let om = "# HELP a_polls Polls started.\n# TYPE a_polls counter\na_polls_total{upstream=\"x\"} 3\n\
                  # HELP a_build Build.\n# TYPE a_build info\na_build_info{version=\"1\"} 1\n\
                  # HELP a_d Duration.\n# TYPE a_d histogram\n# UNIT a_d seconds\n\
                  a_d_bucket{le=\"+Inf\"} 0\n# EOF\n";
        let want = "# HELP a_polls_total Polls started.\n# TYPE a_polls_total counter\n\
                    a_polls_total{upstream=\"x\"} 3\n# HELP a_build_info Build.\n\
                    # TYPE a_build_info gauge\na_build_info{version=\"1\"} 1\n\
                    # HELP a_d Duration.\n# TYPE a_d histogram\na_d_bucket{le=\"+Inf\"} 0\n";
        assert_eq!(openmetrics_to_text(om), want);
        for size in [1, 2, 3, 7, 64] {
            // Converted at every piece, every few pieces, and only at the end.
            for every in [1, 5, 40, CHUNK] {
                let mut out = String::new();
                let mut w = ClassicText::new(&mut out);
                w.chunk = every;
                for chunk in om.as_bytes().chunks(size) {
                    w.write_str(std::str::from_utf8(chunk).expect("ASCII"))
                        .expect("write");
                }
                w.finish();
                assert_eq!(out, want, "chunks of {size}, converted every {every} bytes");
            }
        }
        // A last line without its newline is kept as it is.
        assert_eq!(
            openmetrics_to_text("# TYPE a counter\na_total 1"),
            "# TYPE a_total counter\na_total 1"
        );
        let mut reg = Registry::default();
        let _m = Metrics::new(&mut reg, &["a".into()], 0.8);
        let mut om = String::new();
        prometheus_client::encoding::text::encode(&mut om, &reg).expect("encode");
        assert_eq!(
            encode(&reg, false).expect("encode"),
            openmetrics_to_text(&om)
        );
    }
}
