//! SIGHUP: reload the upstreams file without a restart.
//!
//! The state in service is an `Arc<AppState>` behind [`Live`]; handlers take
//! the current one per request (`FromRef`). A reload validates the file
//! first; if it cannot run (unreadable, invalid, or `--agreement count:N`
//! above the new upstream count) the running configuration stays and the
//! reason is logged. Otherwise the workers of the old state (pollers,
//! decider, fetcher) are stopped, which cancels their requests and
//! closes their sockets; a new `AppState` for the new upstream set takes
//! over what the old one knew (`AppState::adopt`: served checkpoint and
//! State, agreement, views of upstreams kept by name), its workers start,
//! and it replaces the old one in `Live`. The listener never stops, and the
//! served checkpoint is never dropped. Metric series of removed upstreams are
//! removed, new ones start at 0, kept ones keep counting.

use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use axum::extract::FromRef;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::agreement::AgreementRule;
use crate::config::Config;
use crate::service::AppState;
use crate::shutdown::{self, Shutdown};

/// The `AppState` in service now. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Live(Arc<RwLock<Arc<AppState>>>);

impl Live {
    pub fn new(state: Arc<AppState>) -> Live {
        Live(Arc::new(RwLock::new(state)))
    }

    pub fn current(&self) -> Arc<AppState> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn replace(&self, state: Arc<AppState>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = state;
    }
}

impl FromRef<Live> for Arc<AppState> {
    fn from_ref(live: &Live) -> Arc<AppState> {
        live.current()
    }
}

/// Reload requests (one per SIGHUP). `none()` for runs without signals.
pub type Requests = mpsc::Receiver<()>;

/// A sender that never sends: no reloads (tests, the demo).
pub fn none() -> Requests {
    mpsc::channel(1).1
}

/// Forwards SIGHUP as reload requests. Installed before anything else, so a
/// SIGHUP never kills the process (its default action).
pub fn on_sighup() -> std::io::Result<Requests> {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            // A full channel means a reload is already pending: it reads
            // the file as it is by then.
            let _ = tx.try_send(());
        }
    });
    Ok(rx)
}

/// Runs the workers of the state in `live` until `shutdown`, restarting
/// them on the new state at each successful reload. The pollers and the
/// decider run on `polling` (see `poll_thread`); the fetcher runs here and
/// sends its requests there.
pub async fn supervise(
    live: Live,
    polling: Handle,
    mut shutdown: Shutdown,
    mut requests: Requests,
) {
    loop {
        let state = live.current();
        let (trigger, stop) = shutdown::channel();
        let mut workers = spawn_workers(&state, &stop, &polling);
        let config = loop {
            tokio::select! {
                _ = shutdown.wait() => {
                    trigger.fire();
                    workers.shutdown().await;
                    return;
                }
                r = requests.recv() => match r {
                    Some(()) => match validate(&state.config) {
                        Ok(c) => break c,
                        Err(e) => tracing::warn!(error = %e, "reload refused; the running upstreams stay"),
                    },
                    // No more reloads can come: wait for shutdown only.
                    None => requests = none(),
                },
            }
        };
        trigger.fire();
        while workers.join_next().await.is_some() {}
        match rebuild(&state, config) {
            Ok(next) => {
                let (upstreams, source) =
                    (next.upstreams.len(), next.config.upstreams_source.clone());
                // Logged once the new state is in service: a supervisor (or a
                // test) that sees this line sees the new upstreams.
                live.replace(next);
                tracing::info!(upstreams, %source, "upstreams reloaded");
            }
            // Only building the HTTP client can fail here; the old
            // state's workers restart as they were.
            Err(e) => tracing::warn!(error = %e, "reload failed; the running upstreams stay"),
        }
    }
}

fn spawn_workers(state: &Arc<AppState>, stop: &Shutdown, polling: &Handle) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    for i in 0..state.upstreams.len() {
        tasks.spawn_on(
            crate::service::poller::run_upstream(state.clone(), i, stop.clone()),
            polling,
        );
    }
    tasks.spawn_on(
        crate::service::decider::run(state.clone(), stop.clone()),
        polling,
    );
    tasks.spawn(crate::service::fetcher::run(
        state.clone(),
        polling.clone(),
        stop.clone(),
    ));
    tasks
}

/// The running configuration with the upstreams file read again.
pub fn validate(running: &Config) -> anyhow::Result<Config> {
    let Some(path) = &running.upstreams_file else {
        anyhow::bail!("no --upstreams-config to reload (single-upstream mode)");
    };
    let upstreams = crate::config::load_upstreams_file(path)?;
    if let AgreementRule::Count(n) = running.agreement {
        if n > upstreams.len() {
            anyhow::bail!(
                "{}: upstreams: {} upstreams, fewer than --agreement count:{n}",
                path.display(),
                upstreams.len()
            );
        }
    }
    Ok(Config {
        upstreams,
        ..running.clone()
    })
}

/// A new state for `config` that shares `old`'s registry, metric families
/// and scrape encodings, and takes over what it knew.
fn rebuild(old: &AppState, config: Config) -> anyhow::Result<Arc<AppState>> {
    let names: Vec<String> = config.upstreams.iter().map(|u| u.name.clone()).collect();
    let client = crate::upstream::build_client(&config).context("building the HTTP client")?;
    let metrics = old.metrics.for_upstreams(&names);
    let mut next = AppState::new(
        config,
        old.scrapes.clone(),
        old.sendable.clone(),
        metrics,
        client,
    );
    // Still the same process: its uptime goes on.
    next.started_ms = old.started_ms;
    next.adopt(old);
    Ok(Arc::new(next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Format;

    /// The scrapes' shared encodings live beside the registry, so a reload
    /// keeps both: the new state scrapes the same registry through the same
    /// slots, and the encodings counter goes on counting.
    #[tokio::test]
    async fn a_reload_keeps_the_registry_and_its_shared_encodings() {
        let old = super::super::testing::closed(2);
        let _ = old.scrapes.body(Format::Text, false).await.expect("scrape");
        let next = rebuild(&old, old.config.clone()).expect("rebuild");
        assert!(Arc::ptr_eq(&old.scrapes, &next.scrapes));
        let b = next
            .scrapes
            .body(Format::Text, false)
            .await
            .expect("scrape");
        let text = String::from_utf8(b.bytes.to_vec()).expect("UTF-8");
        assert!(
            text.contains("leanpoint_metrics_encodings_total 2\n"),
            "{text}"
        );
    }
}
