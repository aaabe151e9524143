//! The Zig leanpoint's four process-wide families that have successors
//! here, kept under their exact names, types and units so its dashboards
//! and scripts keep working. Each HELP says "Deprecated" and names the
//! successor. (Its other two, `leanpoint_finalized_slot` and
//! `leanpoint_justified_slot`, are still this service's own families.)

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Handles of the Zig families.
#[derive(Clone, Debug, Default)]
pub struct ZigFamilies {
    last_success_ms: Gauge,
    last_updated_ms: Gauge,
    last_latency_ms: Gauge,
    errors: Counter,
}

impl ZigFamilies {
    /// Registers the families into `r` (already prefixed `leanpoint`).
    pub fn register(r: &mut Registry) -> ZigFamilies {
        let z = ZigFamilies::default();
        for (name, help, gauge) in [
            ("last_success_timestamp_ms", "Deprecated (Zig leanpoint name): Unix time in ms agreement was last reached, 0 = never; use leanpoint_last_agreement_timestamp_seconds", &z.last_success_ms),
            ("last_updated_timestamp_ms", "Deprecated (Zig leanpoint name): Unix time in ms of the last agreement decision, reached or not; use leanpoint_last_decision_timestamp_seconds", &z.last_updated_ms),
            ("last_latency_ms", "Deprecated (Zig leanpoint name): duration in ms of the poll that finished last, any upstream; use leanpoint_upstream_request_duration_seconds", &z.last_latency_ms),
        ] {
            r.register(name, help, gauge.clone());
        }
        // A counter named `error` is exposed as `leanpoint_error_total`.
        r.register(
            "error",
            "Deprecated (Zig leanpoint name): failed polls over all upstreams (the /status error_count); use leanpoint_upstream_errors_total",
            z.errors.clone(),
        );
        z
    }

    /// One poll of any upstream finished after `latency_ms`.
    pub fn poll_finished(&self, latency_ms: u64, failed: bool) {
        self.last_latency_ms.set(ms(latency_ms));
        if failed {
            self.errors.inc();
        }
    }

    /// A decision was made at `now_ms`, agreement or not.
    pub fn decided(&self, now_ms: u64) {
        self.last_updated_ms.set(ms(now_ms));
    }

    /// Agreement was reached (and taken) at `now_ms`.
    pub fn agreed(&self, now_ms: u64) {
        self.last_success_ms.set(ms(now_ms));
    }
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
