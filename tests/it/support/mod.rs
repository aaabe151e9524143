//! The one test harness of leanpoint's integration tests (`tests/it`, and
//! the `prometheus_e2e` and `browser_page` binaries by `#[path]`).
//!
//! - [`process`]: the one process guard ([`Proc`]): own process group,
//!   output read line by line, the group killed on drop; `run_to_exit`.
//! - [`binary`]: the real binary on `--port 0`, its address from its
//!   listening line ([`Leanpoint::builder`]).
//! - [`upstream`]: simulated upstreams in this process, the simulator's
//!   nodes serving fixtures, exact hostile replies or faults ([`Mode`]),
//!   with its connection ledger. [`raw_upstream`]: replies built from the
//!   request (reflection).
//! - [`sim`]: `leanpoint sim` as a process, its nodes and upstreams.json.
//! - [`http`]: the one HTTP client (blocking, new connection, deadline) and
//!   the one raw-socket probe. [`metrics`]: the one Prometheus text parser.
//! - [`wait`]: the one `wait_until` and the named timing presets.
//! - [`fs`]: the temp dir and the upstreams.json writer. [`sys`]: /proc.
//! - [`fixtures`]: the captured Lean API bytes and canned replies.
//! - [`served`]: an `AppState` in this process, its router by `oneshot`.
//!
//! Everything waits on conditions with deadlines, never on bare sleeps, so
//! the tests hold on two busy cores.

// Each suite (and each binary using this module) uses a different part.
#![allow(dead_code, unused_imports)]

pub mod binary;
pub mod fixtures;
pub mod fs;
pub mod http;
pub mod metrics;
pub mod process;
pub mod raw_upstream;
pub mod served;
pub mod sim;
pub mod sys;
pub mod upstream;
pub mod wait;

pub use self::binary::{find_upstream, run_to_exit, run_to_exit_env, Leanpoint};
pub use self::fixtures::{fixture, fixture_finalized, FixtureRoutes, Reply, Routes};
pub use self::fs::{upstreams_json, TempDir};
pub use self::http::{
    get_url, get_url_within, idle_connections, must_get, must_post, probe, raw_get, request, Resp,
};
pub use self::metrics::{metric, metric_exact};
pub use self::process::{Exit, Proc, BIN};
pub use self::sim::{Sim, SimNode};
pub use self::sys::dead_port;
pub use self::upstream::{Mode, SimUpstream};
pub use self::wait::{wait_until, Timing, ANSWER_WITHIN, EXIT_WITHIN, WAIT};
pub use leanpoint::devnet::conns::ConnRecord;

/// `(name, fixture folder)` pairs as upstreams serving those fixtures.
pub fn fixtures<'a>(list: &[(&'a str, &'static str)]) -> Vec<(&'a str, Mode)> {
    list.iter()
        .map(|(name, folder)| (*name, Mode::Fixture(folder)))
        .collect()
}

/// Starts one simulated upstream per `(name, mode)` and a leanpoint polling
/// them with `args`.
pub fn start<S: AsRef<str>>(
    upstreams: &[(&str, Mode)],
    args: &[S],
) -> (Vec<SimUpstream>, Leanpoint) {
    start_with(upstreams, |b| b.args(args))
}

/// Like [`start`], with the builder customised by `customise` (args, fd limit).
pub fn start_with(
    upstreams: &[(&str, Mode)],
    customise: impl FnOnce(binary::Builder) -> binary::Builder,
) -> (Vec<SimUpstream>, Leanpoint) {
    let sims = upstream::start(upstreams.iter().map(|(_, m)| m.clone()).collect());
    let mut builder = Leanpoint::builder();
    for ((name, _), sim) in upstreams.iter().zip(&sims) {
        builder = builder.upstream(name, &sim.url());
    }
    (sims, customise(builder).spawn())
}
