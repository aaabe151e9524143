//! The binary's entry points, one per subcommand: `serve` (no subcommand),
//! `demo`, `sim`, `convert`. Each returns the process's exit code: 2 for
//! input that cannot work (the message names the flag or file), 1 for a
//! failure while running.

pub mod convert;
pub mod demo;
pub mod serve;
pub mod sim;

/// Raises the soft fd limit to the hard one: a sim of many nodes on their
/// own ports, each with a connection or two, needs more than 1024.
fn raise_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        let raised = Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, "sim: cannot raise RLIMIT_NOFILE");
        }
    }
}

/// The multi-threaded runtime every subcommand runs on.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
