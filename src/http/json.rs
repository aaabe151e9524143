//! JSON shapes of /status and /api/upstreams.
//!
//! Every field of the Zig leanpoint keeps its name and JSON type (its web UI
//! and scripts read them); the new fields are additions. URLs shown here are
//! always `display_url` (no credentials, no query).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::service::{AppState, ConsensusView, UpstreamView};
use crate::telemetry::Standing;
use crate::upstream::ErrorKind;

/// The Zig leanpoint's /api/upstreams `consensus_threshold`: a percentage it
/// printed but never configured. Kept as the number it always was; the rule
/// actually applied is `rule` / `required_votes`.
const ZIG_CONSENSUS_THRESHOLD: u64 = 50;

/// `GET /status`.
#[derive(Serialize)]
pub struct Status {
    // The Zig leanpoint's fields.
    pub justified_slot: u64,
    pub finalized_slot: u64,
    /// Unix ms of the last decision.
    pub last_updated_ms: u64,
    /// Unix ms of the last agreement; 0 = never.
    pub last_success_ms: u64,
    /// No agreement within the stale window.
    pub stale: bool,
    /// Failed polls over all upstreams since start.
    pub error_count: u64,
    /// Why there is no agreement (null while there is).
    pub last_error: Option<String>,
    // Additions.
    pub finalized_root: Option<String>,
    pub justified_root: Option<String>,
    pub agreement: bool,
    pub agreeing: usize,
    /// Fresh but not counted: behind, conflicting or unknown.
    pub disagreeing: usize,
    pub failing: usize,
    /// Upstreams in each standing (agreeing, ahead, behind, conflicting, unknown, failing).
    pub standings: BTreeMap<&'static str, usize>,
    pub responding: usize,
    pub required: usize,
    pub rule: String,
    pub served_state_slot: Option<u64>,
    pub served_state_bytes: u64,
    /// The served pair: block root (the agreed root), the State's hash tree
    /// root, the block's size; null while nothing or a slot-only State is served.
    pub served_block_root: Option<String>,
    pub served_state_root: Option<String>,
    pub served_block_bytes: u64,
    /// True when the served State is proven against the agreed root by hash
    /// tree roots; false for a State served by slot alone (legacy upstreams).
    pub served_pair_verified: bool,
    pub served_from: Option<String>,
    /// More than half the configured upstreams contradict the served checkpoint.
    pub served_contradicted: bool,
    // For the status page's header (issue 14).
    /// The checkpoint-sync route would serve the State now.
    pub serving: bool,
    /// Unix ms when the served finalized slot last advanced; 0 = never.
    pub finalized_advanced_ms: u64,
    /// The server's clock when this was read, so ages need no client clock.
    pub now_ms: u64,
    /// Open fds and the soft RLIMIT_NOFILE (null without procfs).
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
}

impl Status {
    pub fn read(state: &AppState) -> Status {
        let c = state.consensus();
        let served = state.served_state();
        let error_count = state.upstreams.iter().map(|u| u.view().error_count).sum();
        let fds = crate::telemetry::process::fd_usage();
        let serving = served.is_some() && super::health::agreement_problem(state).is_none();
        Status {
            justified_slot: c.justified.map_or(0, |j| j.slot),
            finalized_slot: c.finalized.map_or(0, |f| f.slot),
            last_updated_ms: c.last_decision_ms,
            last_success_ms: c.last_agreement_ms,
            stale: !state.agreement_fresh(),
            error_count,
            last_error: c.last_error.clone(),
            finalized_root: c.finalized.and_then(|f| f.root).map(|r| r.to_string()),
            justified_root: c.justified.map(|j| j.root.to_string()),
            agreement: c.agreement,
            agreeing: c.agreeing(),
            disagreeing: c.disagreeing(),
            failing: c.failing,
            standings: Standing::ALL
                .iter()
                .zip(c.by_standing)
                .map(|(s, n)| (s.as_str(), n))
                .collect(),
            responding: c.responding,
            required: c.required,
            rule: state.config.agreement.to_string(),
            served_state_slot: served.as_ref().map(|s| s.slot),
            served_state_bytes: served.as_ref().map_or(0, |s| s.bytes.len() as u64),
            served_block_root: served
                .as_ref()
                .filter(|s| s.block.is_some())
                .and_then(|s| s.root)
                .map(|r| r.to_string()),
            served_state_root: served
                .as_ref()
                .and_then(|s| s.state_root)
                .map(|r| r.to_string()),
            served_block_bytes: served
                .as_ref()
                .and_then(|s| s.block.as_ref())
                .map_or(0, |b| b.len() as u64),
            served_pair_verified: served.as_ref().is_some_and(|s| s.state_root.is_some()),
            served_from: served.as_ref().map(|s| s.fetched_from.clone()),
            served_contradicted: c.served_contradicted,
            serving,
            finalized_advanced_ms: c.finalized_advanced_ms,
            now_ms: crate::service::unix_ms(),
            open_fds: fds.map(|f| f.0),
            max_fds: fds.map(|f| f.1),
        }
    }
}

/// `GET /api/upstreams`.
#[derive(Serialize)]
pub struct Upstreams {
    pub upstreams: Vec<UpstreamRow>,
    pub consensus: ConsensusSummary,
}

#[derive(Serialize)]
pub struct UpstreamRow {
    // The Zig leanpoint's fields.
    pub name: String,
    /// Without credentials, query or fragment.
    pub url: String,
    pub path: String,
    pub healthy: bool,
    pub last_success_ms: Option<u64>,
    pub error_count: u64,
    pub last_error: Option<String>,
    pub last_justified_slot: Option<u64>,
    pub last_finalized_slot: Option<u64>,
    // Additions.
    pub head_slot: Option<u64>,
    pub justified_root: Option<String>,
    pub finalized_root: Option<String>,
    pub source: &'static str,
    pub agrees: bool,
    pub standing: &'static str,
    /// Why, where the standing needs explaining (e.g. `impossible_slot: ...`).
    pub standing_reason: Option<String>,
    /// The named reason its last (block, state) pair was refused, if one was.
    pub pair_error_kind: Option<&'static str>,
    pub pair_error: Option<String>,
    pub last_error_kind: Option<&'static str>,
    /// Every kind, 0 included, so clients need no list of kinds.
    pub errors_by_kind: BTreeMap<&'static str, u64>,
    pub consecutive_errors: u64,
    pub last_latency_ms: Option<u64>,
    /// The same, in microseconds: local nodes answer in well under 1 ms.
    pub last_latency_us: Option<u64>,
    pub last_attempt_ms: Option<u64>,
    pub polls: u64,
    pub polls_skipped: u64,
}

#[derive(Serialize)]
pub struct ConsensusSummary {
    // The Zig leanpoint's fields.
    pub total_upstreams: usize,
    pub responding_upstreams: usize,
    pub consensus_threshold: u64,
    pub has_consensus: bool,
    // Additions.
    pub required_votes: usize,
    pub rule: String,
    pub agreeing: usize,
    pub finalized_slot: Option<u64>,
    pub finalized_root: Option<String>,
}

impl Upstreams {
    pub fn read(state: &AppState) -> Upstreams {
        let upstreams = state
            .upstreams
            .iter()
            .map(|u| UpstreamRow::new(&u.config, &u.view()))
            .collect();
        let c = state.consensus();
        Upstreams {
            upstreams,
            consensus: ConsensusSummary::new(state, &c),
        }
    }
}

impl UpstreamRow {
    fn new(config: &crate::config::Upstream, v: &UpstreamView) -> UpstreamRow {
        let obs = v.observation.as_ref();
        UpstreamRow {
            name: config.name.clone(),
            url: config.display_url.clone(),
            path: config.path.clone(),
            healthy: v.healthy,
            last_success_ms: v.last_success_ms,
            error_count: v.error_count,
            last_error: v.last_error.clone(),
            last_justified_slot: obs.and_then(|o| o.justified).map(|j| j.slot),
            last_finalized_slot: obs.map(|o| o.finalized_slot),
            head_slot: obs.and_then(|o| o.head_slot),
            justified_root: obs.and_then(|o| o.justified).map(|j| j.root.to_string()),
            finalized_root: obs.and_then(|o| o.finalized_root).map(|r| r.to_string()),
            source: v.source.as_str(),
            agrees: v.agrees,
            standing: v.standing.as_str(),
            standing_reason: v.standing_reason.clone(),
            pair_error_kind: v.pair_error.as_ref().map(|e| e.0),
            pair_error: v.pair_error.as_ref().map(|e| e.1.clone()),
            last_error_kind: v.last_error_kind.map(ErrorKind::as_str),
            errors_by_kind: ErrorKind::ALL
                .iter()
                .zip(v.errors_by_kind)
                .map(|(k, n)| (k.as_str(), n))
                .collect(),
            consecutive_errors: v.consecutive_errors,
            last_latency_ms: v.last_latency_ms,
            last_latency_us: v.last_latency_us,
            last_attempt_ms: v.last_attempt_ms,
            polls: v.polls,
            polls_skipped: v.polls_skipped,
        }
    }
}

impl ConsensusSummary {
    fn new(state: &AppState, c: &ConsensusView) -> ConsensusSummary {
        ConsensusSummary {
            total_upstreams: state.upstreams.len(),
            responding_upstreams: c.responding,
            consensus_threshold: ZIG_CONSENSUS_THRESHOLD,
            has_consensus: c.agreement,
            required_votes: c.required,
            rule: state.config.agreement.to_string(),
            agreeing: c.agreeing(),
            finalized_slot: c.finalized.map(|f| f.slot),
            finalized_root: c.finalized.and_then(|f| f.root).map(|r| r.to_string()),
        }
    }
}
