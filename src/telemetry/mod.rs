//! What leanpoint tells about itself: metric label sets (`labels`), the
//! families and their handles (`families`, `per_upstream`, `pair`, `zig`,
//! registered through `register`; the per-upstream ones written by
//! `upstream_text`), the exposition (`exposition`) and its
//! encodings shared among concurrent scrapes (`scrape`), the
//! process and TCP socket collectors, and logging.
//!
//! Metric names, HELP texts, label names and types are fixed: dashboards,
//! alert rules and the Zig leanpoint's scripts read them.

mod exposition;
mod families;
pub mod labels;
mod latency;
pub mod logging;
pub mod pair;
mod per_upstream;
pub mod process;
mod register;
pub mod scrape;
pub mod sockdiag;
pub mod tcp_sockets;
mod upstream_text;
mod zig;

pub use exposition::{
    encode, openmetrics_to_text, ClassicText, OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE,
};
pub use families::Metrics;
pub use labels::{HttpLabels, Phase, RouteLabels, StandingCountLabels};
pub use pair::PairMetrics;
pub use per_upstream::{UpstreamMetrics, UpstreamSeries};
pub use register::HistogramFamily;
pub use scrape::{Format, Scrapes};
pub use zig::ZigFamilies;

/// How an upstream stands to the agreed checkpoint (the pure rule lives in
/// `agreement`); the `state` label of `leanpoint_consensus_upstreams`.
pub use crate::agreement::Standing;
