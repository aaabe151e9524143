//! leanpoint: a checkpoint-sync provider and Prometheus-native monitor for
//! Lean Ethereum devnets that its own upstreams cannot take down.
//!
//! # Layout
//!
//! - `config`: flags, `LEANPOINT_*` env, upstreams.json; validation with exact errors;
//!   `arg_sources`: where each flag value came from (default, env, command line).
//! - `lean_api`: Lean API wire formats (fork choice JSON, checkpoint JSON, State SSZ).
//! - `lean_ssz`: the Lean consensus containers as SSZ types (decode, encode, hash tree root).
//! - `verify`: proves a finalized (block, state) pair against the agreed checkpoint.
//! - `upstream`: the one bounded request path to an upstream; error kinds;
//!   `redirect`: the redirects it follows (same origin, at most 3).
//! - `poller`: one task per upstream (at most one poll in flight), and the decider.
//! - `consensus`: the pure agreement decision.
//! - `state`: `AppState`, shared by every task, built once in [`build`].
//! - `state_cache`: downloads and holds the agreed finalized State.
//! - `metrics`: every metric family; `process`: the procfs collector and fd limits;
//!   `tcp_sockets`: this process's TCP sockets by state (TCP_INFO on its own fds);
//!   `sockdiag`: the same from netlink (inet_diag), a fallback.
//! - `http`: the public listener (bounded connections) and its routes.
//! - `shutdown`: the one shutdown signal.
//! - `logging`: the tracing subscriber (service, demo, sim).
//! - `input`: operator input files, read only if regular and bounded.
//! - `reload`: SIGHUP reloads the upstreams file ([`reload::Live`] holds the state in service).
//! - `redact`: what may be shown of upstream and secret text (excerpts, URLs, scrubbing).
//! - `sim`: the simulated devnet with fault injection (`leanpoint sim`, `leanpoint demo`).
//! - `convert`: lean-quickstart validator-config.yaml to upstreams.json.

pub mod ancestry;
pub mod arg_sources;
pub mod config;
pub mod consensus;
pub mod convert;
pub mod history;
pub mod http;
pub mod input;
pub mod lean_api;
pub mod lean_ssz;
pub mod logging;
pub mod metrics;
pub mod poller;
pub mod process;
pub mod redact;
pub mod redirect;
pub mod reload;
pub mod shutdown;
pub mod sim;
pub mod sockdiag;
pub mod state;
pub mod state_cache;
pub mod tcp_sockets;
pub mod upstream;
pub mod verify;

use std::sync::Arc;

use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::state::AppState;

/// Builds the shared state: registry, metric families, the HTTP client.
/// The one place an `AppState` is made.
pub fn build(config: Config) -> anyhow::Result<Arc<AppState>> {
    let mut registry = Registry::default();
    let names: Vec<String> = config.upstreams.iter().map(|u| u.name.clone()).collect();
    let metrics = Metrics::new(&mut registry, &names, config.fd_threshold);
    process::register(&mut registry);
    let client = upstream::build_client(&config)
        .map_err(|e| anyhow::anyhow!("building the HTTP client: {e}"))?;
    Ok(Arc::new(AppState::new(
        config,
        Arc::new(registry),
        metrics,
        client,
    )))
}

/// Runs leanpoint on `listener` until `shutdown` fires: the pollers, the
/// decider, the state cache and the public HTTP server. Returns when every
/// task has stopped.
pub async fn run(
    state: Arc<AppState>,
    listener: TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    run_with(state, listener, None, shutdown, reload::none()).await
}

/// [`run`] with an optional admin listener (probes and /metrics only, see
/// `http::serve_admin`) and reload requests (SIGHUP, see `reload`).
pub async fn run_with(
    state: Arc<AppState>,
    listener: TcpListener,
    admin: Option<TcpListener>,
    shutdown: Shutdown,
    reloads: reload::Requests,
) -> anyhow::Result<()> {
    let live = reload::Live::new(state);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(reload::supervise(live.clone(), shutdown.clone(), reloads));
    if let Some(admin) = admin {
        let (live, shutdown) = (live.clone(), shutdown.clone());
        tasks.spawn(async move {
            if let Err(e) = http::serve_admin(admin, live, shutdown).await {
                tracing::error!(error = %e, "admin listener failed");
            }
        });
    }
    let served = http::serve_live(listener, live, shutdown.clone()).await;
    // The server returns on shutdown (or a fatal accept error): stop the rest.
    tasks.shutdown().await;
    served.map_err(|e| anyhow::anyhow!("HTTP server: {e}"))
}

/// The main job: raise the fd limit, bind, run until SIGINT/SIGTERM; SIGHUP
/// reloads the upstreams file.
pub async fn serve_until_signal(config: Config) -> anyhow::Result<()> {
    // First, so a SIGHUP from here on reloads instead of killing.
    let reloads =
        reload::on_sighup().map_err(|e| anyhow::anyhow!("cannot listen for SIGHUP: {e}"))?;
    process::raise_fd_limit(&config);
    let addr = std::net::SocketAddr::new(config.bind, config.port);
    let listener = http::bind(addr).map_err(|e| anyhow::anyhow!("cannot bind {addr}: {e}"))?;
    let admin = match config.admin_port {
        Some(port) => {
            let admin_addr = std::net::SocketAddr::new(config.bind, port);
            let l = http::bind(admin_addr)
                .map_err(|e| anyhow::anyhow!("cannot bind the admin port {admin_addr}: {e}"))?;
            let bound = l.local_addr().unwrap_or(admin_addr);
            tracing::info!(addr = %bound, "admin listener (probes, /metrics)");
            Some(l)
        }
        None => None,
    };
    // The bound address, not the configured one: with --port 0 the kernel
    // picks the port, and this line is how a supervisor or test learns it.
    let addr = listener.local_addr().unwrap_or(addr);
    tracing::info!(%addr, upstreams = config.upstreams.len(), source = %config.upstreams_source, agreement = %config.agreement, "leanpoint listening");
    let state = build(config)?;
    let (trigger, shutdown) = shutdown::channel();
    tokio::spawn(async move {
        shutdown::signal().await;
        tracing::info!("shutdown signal received; stopping");
        trigger.fire();
    });
    run_with(state, listener, admin, shutdown, reloads).await
}
