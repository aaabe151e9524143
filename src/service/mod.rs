//! `AppState`: everything the tasks share, built once in `service::build` and
//! passed down behind an `Arc`.
//!
//! Writers are few and fixed: each poller writes its own upstream's view, the
//! decider writes the consensus view, the state cache writes the served
//! state. HTTP handlers only read. Locks are `std` locks held for a copy or a
//! small update and never across an `.await`, so no handler can wait on an
//! upstream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prometheus_client::registry::Registry;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::agreement::ancestry::Evidence;
use crate::agreement::Vote;
use crate::config::{Config, Upstream};
use crate::lean::api::{Checkpoint, Root};
use crate::service::history::{History, PollOutcome};
use crate::telemetry::{Metrics, Standing, StateLabels};
use crate::upstream::{ErrorKind, Observation, Source, UpstreamError};

mod apply;
pub mod fetcher;
pub mod history;
pub mod poller;
pub mod reload;

/// Unix time in milliseconds.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What leanpoint knows about one upstream. Copied out whole by readers.
#[derive(Clone, Debug)]
pub struct UpstreamView {
    pub observation: Option<Observation>,
    /// Monotonic time of the last successful poll (freshness).
    pub observed_at: Option<Instant>,
    pub last_success_ms: Option<u64>,
    pub last_attempt_ms: Option<u64>,
    pub last_latency_ms: Option<u64>,
    pub last_latency_us: Option<u64>,
    pub healthy: bool,
    pub consecutive_errors: u64,
    pub error_count: u64,
    pub errors_by_kind: [u64; ErrorKind::ALL.len()],
    pub last_error: Option<String>,
    pub last_error_kind: Option<ErrorKind>,
    pub source: Source,
    pub polls: u64,
    pub polls_skipped: u64,
    /// Fresh and voting for the agreed checkpoint at the last decision.
    pub agrees: bool,
    pub standing: Standing,
    /// Why the standing is what it is, where that is not obvious (an
    /// impossible finalized slot, a refused pair).
    pub standing_reason: Option<String>,
    /// What is known about which blocks its chain holds.
    pub evidence: Arc<Evidence>,
    /// Slots of its State's history the decider asked for.
    pub wanted: Vec<u64>,
    /// Its finalized checkpoint when its State's history was last read: read
    /// at most once per finalized change.
    pub history_read_at: Option<(u64, Option<Root>)>,
    /// The last (block, state) pair from it that was refused: the named
    /// reason and a message.
    pub pair_error: Option<(&'static str, String)>,
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

/// One configured upstream and what is known about it.
#[derive(Debug)]
pub struct UpstreamEntry {
    pub config: Upstream,
    pub(crate) view: Mutex<UpstreamView>,
    /// Unix ms of the poller's last loop turn: /livez proves pollers tick.
    pub last_tick_ms: AtomicU64,
    /// Held for the whole of any request to this upstream. The poller and the
    /// state cache both talk to upstreams; this lock is what keeps it to one
    /// request in flight per upstream between the two of them.
    pub request_lock: Arc<tokio::sync::Mutex<()>>,
}

impl UpstreamEntry {
    pub fn view(&self) -> UpstreamView {
        lock(&self.view).clone()
    }
}

/// The agreed finalized checkpoint as served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finalized {
    pub slot: u64,
    pub root: Option<Root>,
}

/// The decider's output, read by /status, /healthz and the checkpoint routes.
#[derive(Clone, Debug, Default)]
pub struct ConsensusView {
    /// Served finalized checkpoint; never moves backwards.
    pub finalized: Option<Finalized>,
    /// Served justified checkpoint (the last agreed one).
    pub justified: Option<Checkpoint>,
    /// Agreement holds at the last decision.
    pub agreement: bool,
    pub last_agreement: Option<Instant>,
    pub last_agreement_ms: u64,
    pub last_decision_ms: u64,
    pub finalized_advanced_ms: u64,
    /// When the poll that gave `finalized` its majority ended: where
    /// leanpoint_checkpoint_freshness_seconds starts.
    pub majority_at: Option<Instant>,
    pub responding: usize,
    pub required: usize,
    pub agreeing: usize,
    /// Upstreams in each standing, in `Standing::ALL` order.
    pub by_standing: [usize; Standing::ALL.len()],
    pub failing: usize,
    pub conflict: bool,
    /// More than half the configured upstreams contradict the served checkpoint.
    pub served_contradicted: bool,
    /// Why there is no agreement, for /status `last_error`.
    pub last_error: Option<String>,
}

/// The served finalized pair: the State and (when verified) its SignedBlock,
/// shared by every download without copying, installed as one `Arc` so the
/// two change together.
#[derive(Debug)]
pub struct ServedState {
    pub slot: u64,
    pub root: Option<Root>,
    pub bytes: Bytes,
    pub etag: String,
    /// The finalized SignedBlock; None only for a State served by slot alone.
    pub block: Option<Bytes>,
    /// Hash tree root of the State (the block's state_root), when verified.
    pub state_root: Option<Root>,
    /// Genesis time written in the State.
    pub genesis_time: u64,
    pub fetched_from: String,
    pub fetched_at_ms: u64,
}

/// The checkpoint the state cache should hold; sent by the decider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateTarget {
    pub finalized: Finalized,
    /// Bumped on every agreement change so a failed fetch is retried when
    /// the supporters change.
    pub generation: u64,
}

pub struct AppState {
    pub config: Config,
    pub metrics: Metrics,
    /// Encoded at scrape time; registration happened in `service::build`.
    /// Shared with the state a reload builds (same families, same series).
    pub registry: Arc<Registry>,
    pub client: reqwest::Client,
    pub upstreams: Vec<UpstreamEntry>,
    pub(crate) consensus: RwLock<ConsensusView>,
    pub(crate) served: RwLock<Option<Arc<ServedState>>>,
    /// Pollers ring this after each poll; the decider waits on it.
    pub poll_finished: Notify,
    /// Decider -> state cache.
    pub state_target: watch::Sender<Option<StateTarget>>,
    pub started_ms: u64,
    /// Supporters of the agreed checkpoint, in preference order, for the cache.
    pub(crate) supporters: Mutex<Vec<usize>>,
    /// What the status page draws: bounded, written by the hooks below.
    pub history: History,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("upstreams", &self.upstreams.len())
            .finish_non_exhaustive()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the data
    // half-updated in a way readers could not tolerate; keep serving.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AppState {
    pub fn new(
        config: Config,
        registry: Arc<Registry>,
        metrics: Metrics,
        client: reqwest::Client,
    ) -> AppState {
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| UpstreamEntry {
                config: u.clone(),
                view: Mutex::new(UpstreamView::default()),
                last_tick_ms: AtomicU64::new(unix_ms()),
                request_lock: Arc::new(tokio::sync::Mutex::new(())),
            })
            .collect();
        let failing = config.upstreams.len();
        let history = History::new(failing);
        metrics
            .upstreams_by_state
            .get_or_create(&StateLabels {
                state: Standing::Failing,
            })
            .set(failing as i64);
        AppState {
            config,
            metrics,
            registry,
            client,
            upstreams,
            consensus: RwLock::new(ConsensusView {
                failing,
                ..Default::default()
            }),
            served: RwLock::new(None),
            poll_finished: Notify::new(),
            state_target: watch::channel(None).0,
            started_ms: unix_ms(),
            supporters: Mutex::new(Vec::new()),
            history,
        }
    }

    pub fn consensus(&self) -> ConsensusView {
        self.consensus
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn served_state(&self) -> Option<Arc<ServedState>> {
        self.served
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Agreement reached within the stale window: what /healthz, /readyz and
    /// the checkpoint-sync routes require.
    pub fn agreement_fresh(&self) -> bool {
        self.consensus()
            .last_agreement
            .is_some_and(|t| t.elapsed() <= self.config.stale)
    }

    /// Records the outcome of one poll of upstream `i`.
    pub fn record_poll(
        &self,
        i: usize,
        result: &Result<Observation, UpstreamError>,
        latency: Duration,
    ) {
        let slot = &self.upstreams[i];
        let um = &self.metrics.upstreams[i];
        let now_ms = unix_ms();
        let mut v = lock(&slot.view);
        v.last_attempt_ms = Some(now_ms);
        v.last_latency_ms = Some(latency.as_millis() as u64);
        v.last_latency_us = Some(latency.as_micros() as u64);
        self.history
            .record_poll(i, now_ms, PollOutcome::of(result, latency));
        match result {
            Ok(obs) => {
                let mut ev = (*v.evidence).clone();
                if v.observation
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
                v.evidence = Arc::new(ev);
                v.observation = Some(obs.clone());
                v.observed_at = Some(Instant::now());
                v.last_success_ms = Some(now_ms);
                v.healthy = true;
                v.consecutive_errors = 0;
                v.source = obs.source;
                um.up.set(1);
                um.last_success.set(now_ms as f64 / 1000.0);
                um.set_source(obs.source);
                um.finalized_slot.set(obs.finalized_slot as i64);
                if let Some(h) = obs.head_slot {
                    um.head_slot.set(h as i64);
                }
                if let Some(j) = obs.justified {
                    um.justified_slot.set(j.slot as i64);
                }
            }
            Err(e) => {
                v.healthy = false;
                v.consecutive_errors += 1;
                v.error_count += 1;
                if let Some(k) = ErrorKind::ALL.iter().position(|k| *k == e.kind) {
                    v.errors_by_kind[k] += 1;
                }
                v.last_error = Some(e.to_string());
                v.last_error_kind = Some(e.kind);
                um.up.set(0);
            }
        }
        um.consecutive_errors.set(v.consecutive_errors as i64);
        self.metrics
            .zig
            .poll_finished(latency.as_millis() as u64, result.is_err());
    }

    pub fn record_tick(&self, i: usize, skipped: bool) {
        self.upstreams[i]
            .last_tick_ms
            .store(unix_ms(), Ordering::Relaxed);
        let mut v = lock(&self.upstreams[i].view);
        if skipped {
            v.polls_skipped += 1;
            self.metrics.upstreams[i].polls_skipped.inc();
        } else {
            v.polls += 1;
            self.metrics.upstreams[i].polls.inc();
        }
    }

    /// Upstreams whose first poll has ended, successfully or not.
    pub fn polled_once(&self) -> usize {
        self.upstreams
            .iter()
            .filter(|u| lock(&u.view).last_attempt_ms.is_some())
            .count()
    }

    /// Says why there is no decision yet: not every upstream was polled once.
    pub fn note_first_round(&self, polled: usize) {
        let mut c = self.consensus.write().unwrap_or_else(|p| p.into_inner());
        c.last_error = Some(format!(
            "waiting for the first poll of every upstream ({polled} of {} done)",
            self.upstreams.len()
        ));
    }

    /// One vote per upstream, None where its last success is older than the
    /// stale window.
    pub fn fresh_votes(&self) -> Vec<Option<Vote>> {
        let stale = self.config.stale;
        // One clock read for all upstreams, not one `elapsed()` each.
        let now = Instant::now();
        self.upstreams
            .iter()
            .map(|u| {
                let v = lock(&u.view);
                match (&v.observation, v.observed_at) {
                    (Some(o), Some(at)) if now.saturating_duration_since(at) <= stale => {
                        Some(Vote {
                            finalized_slot: o.finalized_slot,
                            finalized_root: o.finalized_root,
                            justified: o.justified,
                            evidence: v.evidence.clone(),
                        })
                    }
                    _ => None,
                }
            })
            .collect()
    }

    /// The bounded request path to upstream `i`. Callers hold
    /// `upstreams[i].request_lock` while they use it.
    pub fn requester(&self, i: usize) -> crate::upstream::Requester<'_> {
        crate::upstream::Requester {
            client: &self.client,
            upstream: &self.upstreams[i].config,
            metrics: &self.metrics.upstreams[i],
            in_flight_total: &self.metrics.in_flight_total,
        }
    }

    /// Takes over what `prev` (the state before a reload) knew: the served
    /// checkpoint, justified checkpoint and State, the agreement and its
    /// time, and the views of upstreams kept by name, so serving goes on and
    /// kept upstreams vote without waiting for a new poll. Call before any
    /// task runs on `self`, after every task on `prev` has stopped.
    pub fn adopt(&self, prev: &AppState) {
        let old = prev.consensus();
        {
            let mut c = self.consensus.write().unwrap_or_else(|p| p.into_inner());
            let failing = c.failing;
            *c = old;
            c.failing = failing;
        }
        *self.served.write().unwrap_or_else(|p| p.into_inner()) = prev.served_state();
        self.state_target.send_replace(*prev.state_target.borrow());
        let index = |name: &str| self.upstreams.iter().position(|u| u.config.name == name);
        for (slot, m) in self.upstreams.iter().zip(&self.metrics.upstreams) {
            if let Some(p) = prev
                .upstreams
                .iter()
                .find(|p| p.config.name == slot.config.name)
            {
                let view = p.view();
                m.up.set(i64::from(view.healthy));
                *lock(&slot.view) = view;
            }
        }
        self.history.adopt(&prev.history, |i| {
            prev.upstreams.get(i).and_then(|u| index(&u.config.name))
        });
        *lock(&self.supporters) = prev
            .supporters()
            .into_iter()
            .filter_map(|i| prev.upstreams.get(i))
            .filter_map(|u| index(&u.config.name))
            .collect();
    }

    /// Supporters of the current agreement, for the state cache to try in order.
    pub fn supporters(&self) -> Vec<usize> {
        lock(&self.supporters).clone()
    }
}

/// Builds the shared state: registry, metric families, the HTTP client.
/// The one place an `AppState` is made.
pub fn build(config: Config) -> anyhow::Result<Arc<AppState>> {
    let mut registry = Registry::default();
    let names: Vec<String> = config.upstreams.iter().map(|u| u.name.clone()).collect();
    let metrics = Metrics::new(&mut registry, &names, config.fd_threshold);
    crate::telemetry::process::register(&mut registry);
    let client = crate::upstream::build_client(&config)
        .map_err(|e| anyhow::anyhow!("building the HTTP client: {e}"))?;
    Ok(Arc::new(AppState::new(
        config,
        Arc::new(registry),
        metrics,
        client,
    )))
}
