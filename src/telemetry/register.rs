//! How a family is registered: `register!` turns a table of rows (handle,
//! name, unit, HELP) into registered families with their handles, so the
//! families read as a table rather than as registration boilerplate.

use std::hash::Hash;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry, Unit};

/// Latency buckets, seconds: 1 ms (a local node) to 30 s (the largest total
/// deadline anyone should configure).
pub(super) const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

/// Inbound latency buckets, seconds: JSON is sub-millisecond, a large state to
/// a slow client can take a minute.
const HTTP_BUCKETS: [f64; 10] = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 10.0, 60.0];

/// Freshness buckets, seconds: from a decision batch after the poll (tens of
/// ms) to a large State's download over a slow link.
const FRESHNESS_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

pub type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;
/// Unix time in seconds.
pub(super) type UnixTime = Gauge<f64, AtomicU64>;

pub(super) fn http_histograms<L: Clone + Hash + Eq>() -> HistogramFamily<L> {
    Family::new_with_constructor(|| Histogram::new(HTTP_BUCKETS))
}

pub(super) fn freshness_histogram() -> Histogram {
    Histogram::new(FRESHNESS_BUCKETS)
}

/// Registers `metric` as `name` and returns it (clones share its values).
pub(super) fn family<M: Metric + Clone>(
    r: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    metric: M,
) -> M {
    match unit {
        Some(unit) => r.register_with_unit(name, help, unit, metric.clone()),
        None => r.register(name, help, metric.clone()),
    }
    metric
}

/// Registers a table of families, one a row, and binds each handle:
/// `handle [= initial] => "name" [Unit], "HELP";`. A handle's type is that
/// of the struct field it goes to; the initial value defaults to
/// `Default::default()`.
macro_rules! register {
    (@unit) => { None };
    (@unit $unit:ident) => { Some(prometheus_client::registry::Unit::$unit) };
    (@init) => { Default::default() };
    (@init $init:expr) => { $init };
    ($r:ident; $($var:ident $(= $init:expr)? => $name:literal $([$unit:ident])?, $help:literal;)*) => {
        $(let $var = $crate::telemetry::register::family($r, $name, $help, register!(@unit $($unit)?), register!(@init $($init)?));)*
    };
}

pub(super) use register;
