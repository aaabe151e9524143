//! Process metrics read from procfs at scrape time, and fd limits.
//!
//! The collector registers at the top level (no `leanpoint_` prefix), so the
//! standard `process_*` names that dashboards and alert rules already know
//! appear as they do for every other exporter. It also reports this
//! process's TCP sockets by state: the Zig leanpoint's failure was sockets
//! piling up in CLOSE_WAIT/ESTABLISHED until RLIMIT_NOFILE, and this is the
//! series that shows such a pile-up forming (counted by `tcp_sockets`).
//!
//! Nothing is cached: every value is read when /metrics is scraped. A value
//! that cannot be read (no procfs) is left out of that scrape rather than
//! failing the whole scrape.

use procfs::process::Process;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

use crate::config::Config;

/// Fds kept free beyond upstream sockets and inbound connections: the
/// listener, both runtimes' epoll/eventfd (main and polling), the state
/// download, log files.
const FD_RESERVE: u64 = 64;

/// Registers the process collector at the top level of `registry`.
pub fn register(registry: &mut Registry) {
    registry.register_collector(Box::new(ProcessCollector {
        // Boot time does not change while we run; read it once.
        boot_time_secs: procfs::boot_time_secs().ok(),
    }));
}

#[derive(Debug)]
struct ProcessCollector {
    boot_time_secs: Option<u64>,
}

/// Writes one unlabelled gauge.
fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: i64,
) -> Result<(), std::fmt::Error> {
    sample(encoder, name, help, unit, ConstGauge::new(value))
}

/// Encodes one family of one sample.
fn sample(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric: impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some((open, limit)) = fd_usage() {
            fds(&mut encoder, open, limit)?;
        }
        if let Ok(stat) = Process::myself().and_then(|p| p.stat()) {
            self.stat(&mut encoder, &stat)?;
        }
        if let Some(counts) = crate::telemetry::tcp_sockets::count() {
            sockets(&mut encoder, counts)?;
        }
        Ok(())
    }
}

/// Open fds and their limit.
fn fds(encoder: &mut DescriptorEncoder, open: u64, limit: u64) -> Result<(), std::fmt::Error> {
    gauge(
        encoder,
        "process_open_fds",
        "Number of open file descriptors (read from /proc at scrape time)",
        None,
        open as i64,
    )?;
    gauge(
        encoder,
        "process_max_fds",
        "Maximum number of open file descriptors: the soft RLIMIT_NOFILE (read at scrape time)",
        None,
        limit as i64,
    )?;
    Ok(())
}

impl ProcessCollector {
    /// Memory, threads, CPU time and start time, from /proc/self/stat.
    fn stat(
        &self,
        encoder: &mut DescriptorEncoder,
        stat: &procfs::process::Stat,
    ) -> Result<(), std::fmt::Error> {
        let ticks = procfs::ticks_per_second().max(1) as f64;
        gauge(
            encoder,
            "process_resident_memory",
            "Resident memory size (read from /proc at scrape time)",
            Some(&Unit::Bytes),
            (stat.rss * procfs::page_size()) as i64,
        )?;
        gauge(
            encoder,
            "process_virtual_memory",
            "Virtual memory size (read from /proc at scrape time)",
            Some(&Unit::Bytes),
            stat.vsize as i64,
        )?;
        gauge(
            encoder,
            "process_threads",
            "Number of OS threads in the process (read at scrape time)",
            None,
            stat.num_threads,
        )?;
        sample(
            encoder,
            "process_cpu",
            "Total user and system CPU time spent (read from /proc at scrape time)",
            Some(&Unit::Seconds),
            ConstCounter::new((stat.utime + stat.stime) as f64 / ticks),
        )?;
        if let Some(boot) = self.boot_time_secs {
            sample(
                encoder,
                "process_start_time",
                "Start time of the process since the Unix epoch",
                Some(&Unit::Seconds),
                ConstGauge::new(boot as f64 + stat.starttime as f64 / ticks),
            )?;
        }
        Ok(())
    }
}

/// This process's TCP sockets by state.
fn sockets(
    encoder: &mut DescriptorEncoder,
    counts: crate::telemetry::tcp_sockets::Counts,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        "leanpoint_process_tcp_sockets",
        "TCP sockets held by this process, by state: inbound, outbound and listening (TCP_INFO on its own fds at scrape time)",
        None,
        MetricType::Gauge,
    )?;
    for (state, n) in crate::telemetry::tcp_sockets::STATES.iter().zip(counts) {
        let labels = [("state", *state)];
        ConstGauge::new(n).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Open fds of this process and its soft RLIMIT_NOFILE; None without procfs.
pub fn fd_usage() -> Option<(u64, u64)> {
    let limit = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    match std::fs::read_dir("/proc/self/fd") {
        // The directory handle being read is itself one of the listed fds.
        Ok(entries) => Some(((entries.count() as u64).saturating_sub(1), limit)),
        // Out of fds is exactly when the count matters most: report the
        // limit as reached rather than "unknown".
        Err(e) if is_out_of_fds(&e) => Some((limit, limit)),
        Err(_) => None,
    }
}

fn is_out_of_fds(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    let code = e.raw_os_error();
    code == Some(Errno::MFILE.raw_os_error()) || code == Some(Errno::NFILE.raw_os_error())
}

/// Raises the soft RLIMIT_NOFILE to the hard limit, so the configured
/// connection cap, not a distribution default of 1024, bounds fds, and warns
/// when even the hard limit is too small for the configuration.
pub fn raise_fd_limit(config: &Config) {
    let before = getrlimit(Resource::Nofile);
    let target = before.maximum.or_else(nr_open);
    if let Some(target) = target.filter(|t| before.current.is_some_and(|c| c < *t)) {
        let raised = Rlimit {
            current: Some(target),
            maximum: before.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, soft = ?before.current, hard = ?before.maximum, "cannot raise the soft RLIMIT_NOFILE");
        }
    }
    let after = getrlimit(Resource::Nofile);
    tracing::info!(soft_before = ?before.current, soft = ?after.current, hard = ?after.maximum, "RLIMIT_NOFILE");
    let needed = config.upstreams.len() as u64 + 1 + config.max_connections as u64 + FD_RESERVE;
    if let Some(soft) = after.current.filter(|s| *s < needed) {
        tracing::warn!(
            limit = soft,
            needed,
            upstreams = config.upstreams.len(),
            max_connections = config.max_connections,
            "RLIMIT_NOFILE is below upstreams + --max-connections + {FD_RESERVE} reserved; lower --max-connections or raise the limit (ulimit -n, LimitNOFILE=)"
        );
    }
}

/// The kernel's ceiling for RLIMIT_NOFILE when the hard limit is unlimited.
fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}
