//! Every metric family leanpoint exports, defined once (the tables in
//! `Metrics::new` and, for the per-upstream families, `upstream_text`) and
//! registered into a registry that the caller owns (no global registry).
//!
//! Recording sites get cheap clones of the handles: `Metrics` for
//! process-wide families and one `UpstreamMetrics` per upstream, created at
//! start-up so that every per-upstream series exists (at 0) from the first
//! scrape and alert rules never see a missing series.
//!
//! Values that come from polling are recorded by the poller when a poll ends;
//! a scrape only encodes them, it never triggers a request to an upstream.
//! Each table registers in the order written, which is the order of the
//! exposition.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use super::labels::{HttpLabels, RouteLabels, StandingCountLabels};
use super::pair::PairMetrics;
use super::per_upstream::{UpstreamMetrics, UpstreamSeries};
use super::register::{freshness_histogram, http_histograms, register, HistogramFamily, UnixTime};
use super::zig::ZigFamilies;
use crate::agreement::Standing;

/// Every family, registered once. Clone-cheap: all handles share their values.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub upstreams: Vec<UpstreamMetrics>,
    /// Every upstream's series, for the exposition and for a reload.
    series: Arc<UpstreamSeries>,
    upstreams_configured: Gauge,
    // Consensus and serving.
    pub finalized_slot: Gauge,
    pub justified_slot: Gauge,
    pub consensus_reached: Gauge,
    pub upstreams_by_state: Family<StandingCountLabels, Gauge>,
    pub required_votes: Gauge,
    // Unix seconds, 0 = never.
    pub last_agreement: UnixTime,
    pub last_decision: UnixTime,
    pub finalized_advanced: UnixTime,
    pub regressions_refused: Counter,
    /// From the poll that completed a majority for a new finalized
    /// checkpoint to its verified pair being served.
    pub checkpoint_freshness: Histogram,
    // The served State and its downloads.
    pub served_state_slot: Gauge,
    pub served_state_bytes: Gauge,
    pub served_state_sendfile: Gauge,
    pub state_fetches: Counter,
    pub state_fetch_failures: Counter,
    /// Polls started ahead of their tick because a download found the
    /// upstream past the agreed checkpoint.
    pub early_polls: Counter,
    /// All upstreams' requests in flight; each `UpstreamMetrics` moves it
    /// with its own gauge.
    pub in_flight_total: Gauge,
    /// The verified pair and upstream standings.
    pub pair: PairMetrics,
    // Inbound HTTP.
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: HistogramFamily<RouteLabels>,
    pub http_open_connections: Gauge,
    pub http_connections: Counter,
    pub http_connections_over_cap: Counter,
    pub http_sendfile_bytes: Counter,
    pub fd_threshold_ratio: Gauge<f64, AtomicU64>,
    /// `/metrics` bodies encoded and gzipped (`scrape::Scrapes`): fewer
    /// than scrapes when concurrent scrapes share one.
    pub metrics_encodings: Counter,
    pub metrics_compressions: Counter,
    /// The Zig leanpoint's families with successors, deprecated.
    pub zig: ZigFamilies,
}

impl Metrics {
    /// Registers every family into `registry` and creates the per-upstream
    /// series for `upstream_names` (in configuration order).
    pub fn new(registry: &mut Registry, upstream_names: &[String], fd_threshold: f64) -> Metrics {
        let r = registry.sub_registry_with_prefix("leanpoint");
        let series = Arc::new(UpstreamSeries::default());
        // The first two keep the Zig leanpoint's names.
        register! { r;
            finalized_slot => "finalized_slot", "Agreed finalized slot (0 until agreement); never decreases";
            justified_slot => "justified_slot", "Agreed justified slot (0 until agreement)";
        }
        let zig = ZigFamilies::register(r);
        register! { r;
            consensus_reached => "consensus_reached", "1 if enough fresh upstreams agree on the finalized checkpoint now, else 0";
            upstreams_by_state => "consensus_upstreams", "Configured upstreams by standing: agreeing, ahead (past it, on its chain), behind (before it, on its chain), conflicting (proven on another chain), unknown (no evidence), failing (no fresh observation)";
            required_votes => "consensus_required_votes", "Upstreams that must agree under the configured rule (for the responding rule: at the last decision)";
            upstreams_configured => "upstreams_configured", "Number of configured upstreams";
            last_agreement => "last_agreement_timestamp_seconds", "Unix time agreement was last reached (0 = never); successor of leanpoint_last_success_timestamp_ms";
            last_decision => "last_decision_timestamp_seconds", "Unix time of the last agreement decision, reached or not (0 = never); successor of leanpoint_last_updated_timestamp_ms";
            finalized_advanced => "finalized_advanced_timestamp_seconds", "Unix time the agreed finalized checkpoint last moved forward (0 = never)";
            regressions_refused => "finalized_regressions_refused", "Decisions that pointed at an older or conflicting finalized checkpoint and were not served";
            checkpoint_freshness = freshness_histogram() => "checkpoint_freshness" [Seconds], "Seconds from the poll that gave a new finalized checkpoint its majority to the first serving of its verified pair";
            served_state_slot => "served_state_slot", "Slot of the finalized State served at /lean/v0/states/finalized (0 = none)";
            served_state_bytes => "served_state_size" [Bytes], "Size of the cached finalized State served (0 = none)";
            served_state_sendfile => "served_state_sendfile", "1 when the served State is in a file of its own (an unnamed tmpfile, or a sealed memfd) and downloads of it go out with sendfile (no copy per download); 0 when none is served or no such file could be made (the reason is logged) and each download copies it";
            state_fetches => "state_fetches", "Downloads of the finalized State for the cache (one per new agreed checkpoint, more on failure)";
            state_fetch_failures => "state_fetch_failures", "State downloads that failed or did not match the agreed checkpoint";
            early_polls => "early_polls", "Polls started before their tick because a pair download found the upstream's finalized checkpoint past the agreed one (so the agreement catches up without waiting a poll interval)";
            in_flight_total = series.in_flight_total.clone() => "upstream_requests_in_flight", "Requests to all upstreams in flight now; never more than the number of upstreams plus one state download";
        }
        let pair = PairMetrics::register(r);
        register! { r;
            http_requests => "http_requests", "Inbound HTTP requests by route template and status code";
            http_duration = http_histograms() => "http_request_duration" [Seconds], "Inbound HTTP request duration by route template, until the response head is sent";
            http_open_connections => "http_open_connections", "Inbound connections open now (capped by --max-connections)";
            http_connections => "http_connections", "Inbound connections accepted";
            http_connections_over_cap => "http_connections_over_cap", "Times the accept loop paused because --max-connections were open";
            http_sendfile_bytes => "http_sendfile" [Bytes], "Response bytes of the served State sent with sendfile from its file";
            fd_threshold_ratio => "fd_threshold_ratio", "Fraction of RLIMIT_NOFILE above which /healthz and /livez fail (--fd-threshold)";
            metrics_encodings => "metrics_encodings", "/metrics bodies encoded; scrapes arriving during an encoding share the next one, so /metrics requests (leanpoint_http_requests_total) over this is the sharing ratio";
            metrics_compressions => "metrics_compressions", "/metrics bodies gzipped, each shared by the gzip scrapes of that body";
        }
        let build = Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]);
        r.register("build", "leanpoint build information", build);

        let m = Metrics {
            upstreams: series.set(upstream_names),
            series,
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
            checkpoint_freshness,
            served_state_slot,
            served_state_bytes,
            served_state_sendfile,
            state_fetches,
            state_fetch_failures,
            early_polls,
            in_flight_total,
            pair,
            http_requests,
            http_duration,
            http_open_connections,
            http_connections,
            http_connections_over_cap,
            http_sendfile_bytes,
            fd_threshold_ratio,
            metrics_encodings,
            metrics_compressions,
            zig,
        };
        for s in Standing::ALL {
            m.upstreams_by_state
                .get_or_create(&StandingCountLabels { state: s })
                .set(0);
        }
        m.upstreams_configured.set(upstream_names.len() as i64);
        m.fd_threshold_ratio.set(fd_threshold);
        m
    }

    /// The same families for another upstream set (a reload): series of
    /// upstreams no longer configured are removed, new ones created at 0, and
    /// those of upstreams kept by name keep their values.
    pub fn for_upstreams(&self, upstream_names: &[String]) -> Metrics {
        let removed: Vec<&str> = self
            .upstreams
            .iter()
            .map(|old| old.name())
            .filter(|old| !upstream_names.iter().any(|n| n == old))
            .collect();
        self.pair.remove_upstreams(&removed);
        let mut next = self.clone();
        next.upstreams = self.series.set(upstream_names);
        next.upstreams_configured.set(upstream_names.len() as i64);
        next
    }

    /// Every upstream's series, written by the exposition after the registry.
    pub fn series(&self) -> &Arc<UpstreamSeries> {
        &self.series
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::encode;

    #[test]
    fn every_upstream_series_exists_at_start() {
        let mut reg = Registry::default();
        let m = Metrics::new(&mut reg, &["a".into(), "b".into()], 0.8);
        assert_eq!(m.upstreams.len(), 2);
        let text = encode(&reg, m.series(), false).expect("encode");
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
}
