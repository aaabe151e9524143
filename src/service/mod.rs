//! `AppState`: everything the tasks share, built once in `service::build` and
//! passed down behind an `Arc`.
//!
//! Writers are few and fixed: each poller writes its own upstream's view
//! (`observe`), the decider writes the consensus view (`apply`), the fetcher
//! installs the served pair. HTTP handlers only read (`views`). Locks are
//! `std` locks held for a copy or a small update and never across an
//! `.await`, so no handler can wait on an upstream.
//!
//! The tasks: `poller` (one per upstream), `decider`, `fetcher` (the
//! finalized pair), `reload` (SIGHUP); `history` keeps what the status page
//! draws. The pollers, the decider and every request to an upstream (the
//! fetcher's too) run on `poll_thread`'s runtime.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use prometheus_client::registry::Registry;
use tokio::sync::{watch, Notify};

use crate::agreement::Finalized;
use crate::config::Config;
use crate::served::pair::ServedState;
use crate::served::sendable::SendableBodies;
use crate::service::history::History;
use crate::telemetry::{Metrics, Scrapes, Standing, StandingCountLabels};

mod apply;
pub mod decider;
pub mod fetcher;
pub mod history;
mod observe;
pub mod poll_thread;
pub mod poller;
pub mod reload;
#[cfg(test)]
mod testing;
mod views;

pub use views::{ConsensusView, UpstreamEntry, UpstreamView};

/// Unix time in milliseconds.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub struct AppState {
    pub config: Config,
    pub metrics: Metrics,
    /// The registry, encoded at scrape time (registration happened in
    /// `service::build`), with the encodings concurrent scrapes share.
    /// Shared with the state a reload builds (same families, same series,
    /// same in-flight encodings).
    pub(crate) scrapes: Arc<Scrapes>,
    pub(crate) client: reqwest::Client,
    pub upstreams: Vec<UpstreamEntry>,
    pub(crate) consensus: RwLock<ConsensusView>,
    pub(crate) served: RwLock<Option<Arc<ServedState>>>,
    /// The served State's file, for the listener's sendfile; one for the
    /// process (a reload's new state shares it, as it keeps the State).
    pub sendable: Arc<SendableBodies>,
    /// Rung when an input of the decision changed: a poll that changed its
    /// upstream's vote, new ancestry evidence, a newly served pair. The
    /// decider waits on it (and on its own tick, for votes that age out).
    pub(crate) decide_soon: Notify,
    /// Decider -> fetcher: the checkpoint whose pair to fetch.
    pub(crate) fetch_target: watch::Sender<Option<Finalized>>,
    pub(crate) started_ms: u64,
    /// Supporters of the agreed checkpoint, in preference order, for the fetcher.
    pub(crate) supporters: Mutex<Vec<usize>>,
    /// What the status page draws: bounded, written by the hooks below.
    pub(crate) history: History,
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
    pub(crate) fn new(
        config: Config,
        scrapes: Arc<Scrapes>,
        sendable: Arc<SendableBodies>,
        metrics: Metrics,
        client: reqwest::Client,
    ) -> AppState {
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| UpstreamEntry {
                config: u.clone(),
                prepared: crate::upstream::Prepared::new(u, config.connect_timeout),
                channel: crate::upstream::Channel::default(),
                view: Mutex::new(UpstreamView::default()),
                last_tick_ms: AtomicU64::new(unix_ms()),
                request_lock: Arc::new(tokio::sync::Mutex::new(())),
                poll_soon: Notify::new(),
            })
            .collect();
        let failing = config.upstreams.len();
        let history = History::new(failing);
        metrics
            .upstreams_by_state
            .get_or_create(&StandingCountLabels {
                state: Standing::Failing,
            })
            .set(failing as i64);
        AppState {
            config,
            metrics,
            scrapes,
            client,
            upstreams,
            consensus: RwLock::new(ConsensusView {
                failing,
                ..Default::default()
            }),
            served: RwLock::new(None),
            sendable,
            decide_soon: Notify::new(),
            fetch_target: watch::channel(None).0,
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

    /// The bounded request path to upstream `i`. Callers hold
    /// `upstreams[i].request_lock` while they use it.
    pub(crate) fn requester(&self, i: usize) -> crate::upstream::Requester<'_> {
        crate::upstream::Requester {
            client: &self.client,
            upstream: &self.upstreams[i].config,
            prepared: &self.upstreams[i].prepared,
            channel: &self.upstreams[i].channel,
            report: &self.metrics.upstreams[i],
        }
    }

    /// Takes over what `prev` (the state before a reload) knew: the served
    /// checkpoint, justified checkpoint and State, the agreement and its
    /// time, and the views of upstreams kept by name, so serving goes on and
    /// kept upstreams vote without waiting for a new poll. Call before any
    /// task runs on `self`, after every task on `prev` has stopped.
    pub(crate) fn adopt(&self, prev: &AppState) {
        let old = prev.consensus();
        {
            let mut c = self.consensus.write().unwrap_or_else(|p| p.into_inner());
            let failing = c.failing;
            *c = old;
            c.failing = failing;
        }
        *self.served.write().unwrap_or_else(|p| p.into_inner()) = prev.served_state();
        self.fetch_target.send_replace(*prev.fetch_target.borrow());
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

    /// Supporters of the current agreement, for the fetcher to try in order.
    pub(crate) fn supporters(&self) -> Vec<usize> {
        lock(&self.supporters).clone()
    }
}

/// Builds the shared state: registry, metric families and the scrapes'
/// shared encodings, the HTTP client.
/// The one place an `AppState` is made.
pub fn build(config: Config) -> anyhow::Result<Arc<AppState>> {
    let mut registry = Registry::default();
    let names: Vec<String> = config.upstreams.iter().map(|u| u.name.clone()).collect();
    let metrics = Metrics::new(&mut registry, &names, config.fd_threshold);
    crate::telemetry::process::register(&mut registry);
    let client = crate::upstream::build_client(&config).context("building the HTTP client")?;
    let scrapes = Arc::new(Scrapes::new(Arc::new(registry), &metrics));
    let sendable = Arc::new(SendableBodies::in_temp_dir());
    Ok(Arc::new(AppState::new(
        config, scrapes, sendable, metrics, client,
    )))
}
