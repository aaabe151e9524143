//! leanpoint: a checkpoint-sync provider and Prometheus-native monitor for
//! Lean Ethereum devnets that its own upstreams cannot take down.
//!
//! # Layout
//!
//! Lower layers never import higher ones (ARCHITECTURE.md has the map):
//!
//! - `cli`: every clap struct; where each value came from.
//! - `config`: the checked `Config`: flags, `LEANPOINT_*`, upstreams.json;
//!   operator input files; validator-config.yaml conversion.
//! - `lean`: the Lean API's bytes: JSON views, SSZ containers, hash tree roots.
//! - `upstream`: where requests are made: the one bounded request path, its
//!   error kinds, redirects, the poll strategy.
//! - `agreement`: who decides agreement: the rule, ancestry evidence and the
//!   pure decision with every upstream's standing.
//! - `served`: what is served for checkpoint sync and its proof (`verify`).
//! - `telemetry`: where metrics are defined: every family, the exposition,
//!   the process collector, TCP socket accounting; logging.
//! - `service`: `AppState` (built once by `service::build`) and the tasks
//!   that write it: pollers, the decider, the fetcher; reload; history.
//! - `http`: the public listener and its routes (never calls an upstream).
//! - `devnet`: where the fake nodes are: the simulated devnet with faults.
//! - `commands`: the binary's entry points (serve, demo, sim, convert).
//! - `shutdown`: the one shutdown signal; `redact`: what may be shown of
//!   upstream and secret text; `task`: spawned tasks that end with their
//!   owner.

pub mod agreement;
pub mod cli;
pub mod commands;
pub mod config;
pub mod devnet;
pub mod http;
pub mod lean;
pub mod redact;
pub mod served;
pub mod service;
pub mod shutdown;
pub mod task;
pub mod telemetry;
pub mod upstream;
