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
//! - `sim`: the simulated devnet with fault injection (`leanpoint sim`, `leanpoint demo`).
//! - `convert`: lean-quickstart validator-config.yaml to upstreams.json.

pub mod ancestry;
pub mod arg_sources;
pub mod config;
pub mod consensus;
pub mod convert;
pub mod history;
pub mod http;
pub mod lean_api;
pub mod lean_ssz;
pub mod logging;
pub mod metrics;
pub mod poller;
pub mod process;
pub mod redirect;
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
    Ok(Arc::new(AppState::new(config, registry, metrics, client)))
}

/// Runs leanpoint on `listener` until `shutdown` fires: the pollers, the
/// decider, the state cache and the public HTTP server. Returns when every
/// task has stopped.
pub async fn run(
    state: Arc<AppState>,
    listener: TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..state.upstreams.len() {
        tasks.spawn(poller::run_upstream(state.clone(), i, shutdown.clone()));
    }
    tasks.spawn(poller::run_decider(state.clone(), shutdown.clone()));
    tasks.spawn(state_cache::run(state.clone(), shutdown.clone()));
    let served = http::serve(listener, state.clone(), shutdown.clone()).await;
    // The server returns on shutdown (or a fatal accept error): stop the rest.
    tasks.shutdown().await;
    served.map_err(|e| anyhow::anyhow!("HTTP server: {e}"))
}

/// The main job: raise the fd limit, bind, run until SIGINT/SIGTERM.
pub async fn serve_until_signal(config: Config) -> anyhow::Result<()> {
    process::raise_fd_limit(&config);
    let addr = std::net::SocketAddr::new(config.bind, config.port);
    let listener = http::bind(addr).map_err(|e| anyhow::anyhow!("cannot bind {addr}: {e}"))?;
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
    run(state, listener, shutdown).await
}
