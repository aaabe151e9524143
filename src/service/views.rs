//! What the tasks write and the routes read: each upstream's view (written
//! by its poller, the decider and the fetcher) and the consensus view
//! (written by the decider). Readers copy a view out whole.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::lock;
use crate::agreement::ancestry::Evidence;
use crate::agreement::{Finalized, Standing};
use crate::config::Upstream;
use crate::lean::api::{Checkpoint, Root};
use crate::upstream::{ErrorKind, Observation, Prepared, Source, UpstreamError};

/// What leanpoint knows about one upstream. Copied out whole by readers.
#[derive(Clone, Debug)]
pub struct UpstreamView {
    pub(crate) observation: Option<Observation>,
    /// Monotonic time of the last successful poll (freshness).
    pub(crate) observed_at: Option<Instant>,
    pub(crate) last_success_ms: Option<u64>,
    pub(crate) last_attempt_ms: Option<u64>,
    pub(crate) last_latency_ms: Option<u64>,
    pub(crate) last_latency_us: Option<u64>,
    pub(crate) healthy: bool,
    pub(crate) consecutive_errors: u64,
    pub(crate) error_count: u64,
    pub(crate) errors_by_kind: [u64; ErrorKind::ALL.len()],
    pub(crate) last_error: Option<String>,
    pub(crate) last_error_kind: Option<ErrorKind>,
    pub(crate) source: Source,
    pub(crate) polls: u64,
    pub(crate) polls_skipped: u64,
    /// Fresh and voting for the agreed checkpoint at the last decision.
    pub(crate) agrees: bool,
    pub(crate) standing: Standing,
    /// Why the standing is what it is, where that is not obvious (an
    /// impossible finalized slot, a refused pair).
    pub(crate) standing_reason: Option<String>,
    /// What is known about which blocks its chain holds.
    pub(crate) evidence: Arc<Evidence>,
    /// Slots of its State's history the decider asked for.
    pub(crate) wanted: Vec<u64>,
    /// Its finalized checkpoint when its State's history was last read: read
    /// at most once per finalized change.
    pub(crate) history_read_at: Option<(u64, Option<Root>)>,
    /// The last (block, state) pair from it that was refused: the named
    /// reason and a message.
    pub(crate) pair_error: Option<(&'static str, String)>,
}

impl Default for UpstreamView {
    fn default() -> Self {
        UpstreamView {
            observation: None,
            observed_at: None,
            last_success_ms: None,
            last_attempt_ms: None,
            last_latency_ms: None,
            last_latency_us: None,
            healthy: false,
            consecutive_errors: 0,
            error_count: 0,
            errors_by_kind: [0; ErrorKind::ALL.len()],
            last_error: None,
            last_error_kind: None,
            source: Source::Unknown,
            polls: 0,
            polls_skipped: 0,
            agrees: false,
            standing: Standing::Failing,
            standing_reason: None,
            evidence: Arc::default(),
            wanted: Vec::new(),
            history_read_at: None,
            pair_error: None,
        }
    }
}

impl UpstreamView {
    /// A successful poll: the observation, and what it proves about its
    /// chain. Returns whether the observation differs from the last one. A
    /// poll that saw what the last one saw (most polls: heads move once a
    /// slot) only refreshes its age; its evidence would come out the same,
    /// so it is kept rather than rebuilt.
    pub(crate) fn observed(&mut self, obs: &Observation, now_ms: u64) -> bool {
        let changed = self.observation.as_ref() != Some(obs);
        if changed {
            let mut ev = (*self.evidence).clone();
            if self
                .observation
                .as_ref()
                .is_some_and(|prev| obs.finalized_slot < prev.finalized_slot)
            {
                ev.forget_above(obs.finalized_slot);
            }
            // Its finality never reverts: what it finalizes stays on its chain.
            if let Some(root) = obs.finalized_root {
                ev.hold(obs.finalized_slot, root);
            }
            ev.tree = obs.tree.to_vec();
            self.evidence = Arc::new(ev);
            self.observation = Some(obs.clone());
        }
        self.observed_at = Some(Instant::now());
        self.last_success_ms = Some(now_ms);
        self.healthy = true;
        self.consecutive_errors = 0;
        self.source = obs.source;
        changed
    }

    /// When this upstream's vote ages out of the `stale` window, if it votes
    /// at `now` (it has an observation no older than `stale`). The one
    /// statement of what a fresh vote is.
    pub(crate) fn fresh_until(&self, now: Instant, stale: Duration) -> Option<Instant> {
        let at = self.observed_at.filter(|_| self.observation.is_some())?;
        (now.saturating_duration_since(at) <= stale).then(|| at + stale)
    }

    /// A failed poll, counted by kind. The last observation stays until it
    /// ages out of the stale window.
    pub(crate) fn failed(&mut self, e: &UpstreamError) {
        self.healthy = false;
        self.consecutive_errors += 1;
        self.error_count += 1;
        if let Some(k) = ErrorKind::ALL.iter().position(|k| *k == e.kind) {
            self.errors_by_kind[k] += 1;
        }
        self.last_error = Some(e.to_string());
        self.last_error_kind = Some(e.kind);
    }
}

/// One configured upstream and what is known about it.
#[derive(Debug)]
pub struct UpstreamEntry {
    pub(crate) config: Upstream,
    /// Its endpoints' URLs and headers, built once for every request.
    pub(crate) prepared: Prepared,
    pub(crate) view: Mutex<UpstreamView>,
    /// Unix ms of the poller's last loop turn: /livez proves pollers tick.
    pub(crate) last_tick_ms: AtomicU64,
    /// Held for the whole of any request to this upstream. The poller and the
    /// fetcher both talk to upstreams; this lock is what keeps it to one
    /// request in flight per upstream between the two of them.
    pub(crate) request_lock: Arc<tokio::sync::Mutex<()>>,
    /// The upstream's kept connection; used only under `request_lock`.
    pub(crate) channel: crate::upstream::Channel,
    /// The fetcher rings this when the upstream's finalized checkpoint has
    /// moved past the agreed one: its next poll starts now, not a whole
    /// interval later, so the agreement (and the pair the fetcher already
    /// proved and kept) catches up at once.
    pub(crate) poll_soon: tokio::sync::Notify,
}

impl UpstreamEntry {
    pub fn view(&self) -> UpstreamView {
        lock(&self.view).clone()
    }
}

/// The decider's output, read by /status, /healthz and the checkpoint routes.
#[derive(Clone, Debug, Default)]
pub struct ConsensusView {
    /// Served finalized checkpoint; never moves backwards.
    pub(crate) finalized: Option<Finalized>,
    /// Served justified checkpoint (the last agreed one).
    pub(crate) justified: Option<Checkpoint>,
    /// Agreement holds at the last decision.
    pub(crate) agreement: bool,
    pub(crate) last_agreement: Option<Instant>,
    pub(crate) last_agreement_ms: u64,
    pub(crate) last_decision_ms: u64,
    pub(crate) finalized_advanced_ms: u64,
    /// When the poll that gave `finalized` its majority ended: where
    /// leanpoint_checkpoint_freshness_seconds starts.
    pub(crate) majority_at: Option<Instant>,
    pub(crate) responding: usize,
    pub(crate) required: usize,
    /// Upstreams in each standing, in `Standing::ALL` order.
    pub(crate) by_standing: [usize; Standing::ALL.len()],
    pub(crate) failing: usize,
    /// More than half the configured upstreams contradict the served checkpoint.
    pub(crate) served_contradicted: bool,
    /// Why there is no agreement, for /status `last_error`.
    pub(crate) last_error: Option<String>,
}

impl ConsensusView {
    /// Upstreams in the standings `which` selects, at the last decision.
    fn count(&self, which: impl Fn(Standing) -> bool) -> usize {
        Standing::ALL
            .iter()
            .zip(self.by_standing)
            .filter(|(s, _)| which(**s))
            .map(|(_, n)| n)
            .sum()
    }

    /// Upstreams counted as support of the agreed checkpoint.
    pub(crate) fn agreeing(&self) -> usize {
        self.count(Standing::supports)
    }

    /// Fresh upstreams not counted: behind, conflicting or unknown.
    pub(crate) fn disagreeing(&self) -> usize {
        self.count(|s| !s.supports() && s != Standing::Failing)
    }
}
