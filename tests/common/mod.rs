//! Shared support for leanpoint's integration tests (`mod common;` in each
//! `tests/*.rs`).
//!
//! - [`leanpoint`]: the real binary as a child process ([`Leanpoint`], built
//!   with [`Leanpoint::builder`]), killed on drop, stderr shown on failure;
//!   optional RLIMIT_NOFILE; its fds; `run_to_exit` for runs that must end
//!   by themselves (bad configuration).
//! - [`fake`]: fake Lean API upstreams on 127.0.0.1:0 ([`FakeUpstream`]) that
//!   serve fixtures or exact faults ([`Mode`]), switchable at run time, and
//!   count leanpoint's connections to them.
//! - [`fixtures`]: the captured Lean API bytes, paths, content types, and
//!   [`Routes`] / [`Reply`] to build hostile variants from.
//! - [`client`]: a GET on a new connection with a hard timeout, Prometheus
//!   text parsing ([`metric`]) and [`wait_until`].
//! - [`sys`]: temp dirs, free and dead ports, fds and TCP sockets of a
//!   process from /proc.
//!
//! Everything waits on conditions with deadlines, never on bare sleeps, so
//! the tests hold on two busy cores.

// Each test file uses a different part of this module.
#![allow(dead_code, unused_imports)]

pub mod client;
pub mod fake;
pub mod fixtures;
pub mod leanpoint;
pub mod sys;

pub use client::{client, get_with, metric, wait_until, Response};
pub use fake::{ConnRecord, FakeUpstream, Mode};
pub use fixtures::{fixture, fixture_finalized, Reply, Routes};
pub use leanpoint::{find_upstream, run_to_exit, run_to_exit_env, Exit, Leanpoint, FAST};
pub use sys::{dead_port, TempDir};

/// Starts one fake upstream per `(name, mode)` and a leanpoint polling them
/// with `args`.
pub async fn start(upstreams: &[(&str, Mode)], args: &[&str]) -> (Vec<FakeUpstream>, Leanpoint) {
    start_with(upstreams, |b| b.args(args)).await
}

/// Like [`start`], with the builder customised by `customise` (args, fd limit).
pub async fn start_with(
    upstreams: &[(&str, Mode)],
    customise: impl FnOnce(leanpoint::Builder) -> leanpoint::Builder,
) -> (Vec<FakeUpstream>, Leanpoint) {
    let mut fakes = Vec::with_capacity(upstreams.len());
    let mut builder = Leanpoint::builder();
    for (name, mode) in upstreams {
        let fake = FakeUpstream::start(mode.clone()).await;
        builder = builder.upstream(name, &fake.url());
        fakes.push(fake);
    }
    (fakes, customise(builder).spawn().await)
}
