//! `leanpoint` without a subcommand: the service. Check the configuration,
//! raise the fd limit, bind, run every task until SIGINT/SIGTERM; SIGHUP
//! reloads the upstreams file.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::cli::ServeArgs;
use crate::config::Config;
use crate::http;
use crate::service::poll_thread::PollThread;
use crate::service::{self, reload, AppState};
use crate::shutdown::{self, Shutdown};
use crate::task::AbortOnDrop;
use crate::telemetry::process;

/// Exit 2 for a configuration that cannot work, 1 for a failure while running.
pub fn main(args: &ServeArgs) -> ExitCode {
    let config = match Config::load(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("leanpoint: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = crate::telemetry::logging::filter(&config.log_level) {
        eprintln!("leanpoint: invalid configuration: command line: --log-level: {e}");
        return ExitCode::from(2);
    }
    crate::telemetry::logging::init(&config.log_level, config.log_format);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("leanpoint: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve_until_signal(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("leanpoint: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs leanpoint on `listener` until `shutdown` fires: the pollers, the
/// decider, the fetcher and the public HTTP server. Returns when every
/// task has stopped.
pub async fn run(
    state: Arc<AppState>,
    listener: TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let polling = PollThread::start()?;
    run_with(state, listener, None, polling, shutdown, reload::none()).await
}

/// [`run`] with an optional admin listener (probes and /metrics only, see
/// `http::serve_admin`), the polling thread, and reload requests (SIGHUP,
/// see `reload`).
pub async fn run_with(
    state: Arc<AppState>,
    listener: TcpListener,
    admin: Option<TcpListener>,
    polling: PollThread,
    shutdown: Shutdown,
    reloads: reload::Requests,
) -> anyhow::Result<()> {
    let live = reload::Live::new(state);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(reload::supervise(
        live.clone(),
        polling.handle().clone(),
        shutdown.clone(),
        reloads,
    ));
    if let Some(admin) = admin {
        let (live, shutdown) = (live.clone(), shutdown.clone());
        tasks.spawn(async move {
            if let Err(e) = http::serve_admin(admin, live, shutdown).await {
                tracing::error!(error = %e, "admin listener failed");
            }
        });
    }
    // The accept loop runs as a task of its own on a worker thread, not on
    // the caller's thread (`block_on`'s, in `main`): a connection spawned
    // from a worker starts on that worker at once, where one spawned from
    // outside waits in the runtime's shared queue until another thread is
    // woken for it. In a burst of fresh connections that is a thread
    // wake-up per connection, and the connections' first bytes later.
    let server = AbortOnDrop::new(tokio::spawn(http::serve_live(
        listener,
        live,
        shutdown.clone(),
    )));
    let served = server.join().await;
    // The server returns on shutdown (or a fatal accept error): stop the rest.
    tasks.shutdown().await;
    polling.stop().await;
    match served {
        Ok(served) => served.context("HTTP server"),
        Err(e) => Err(anyhow::anyhow!("HTTP server task ended: {e}")),
    }
}

/// The main job: raise the fd limit, bind, run until SIGINT/SIGTERM; SIGHUP
/// reloads the upstreams file.
pub async fn serve_until_signal(config: Config) -> anyhow::Result<()> {
    // First, so a SIGHUP from here on reloads instead of killing.
    let reloads = reload::on_sighup().context("cannot listen for SIGHUP")?;
    process::raise_fd_limit(&config);
    let addr = std::net::SocketAddr::new(config.bind, config.port);
    let listener = http::bind(addr).with_context(|| format!("cannot bind {addr}"))?;
    let admin = match config.admin_port {
        Some(port) => {
            let admin_addr = std::net::SocketAddr::new(config.bind, port);
            let l = http::bind(admin_addr)
                .with_context(|| format!("cannot bind the admin port {admin_addr}"))?;
            let bound = l.local_addr().unwrap_or(admin_addr);
            tracing::info!(addr = %bound, "admin listener (probes, /metrics)");
            Some(l)
        }
        None => None,
    };
    // Before the line below: a supervisor (or a test) that reads it sees
    // every fd the process keeps for itself already open.
    let polling = PollThread::start()?;
    // The bound address, not the configured one: with --port 0 the kernel
    // picks the port, and this line is how a supervisor or test learns it.
    let addr = listener.local_addr().unwrap_or(addr);
    tracing::info!(%addr, upstreams = config.upstreams.len(), source = %config.upstreams_source, agreement = %config.agreement, "leanpoint listening");
    let state = service::build(config)?;
    let (trigger, shutdown) = shutdown::channel();
    tokio::spawn(async move {
        shutdown::signal().await;
        tracing::info!("shutdown signal received; stopping");
        trigger.fire();
    });
    run_with(state, listener, admin, polling, shutdown, reloads).await
}
