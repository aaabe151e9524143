//! Process metrics read from procfs at scrape time, and fd limits. (Being written.)

use prometheus_client::registry::Registry;

/// Registers the process collector.
pub fn register(_registry: &mut Registry) {}

/// Raises the soft RLIMIT_NOFILE to the hard limit. (Being written.)
pub fn raise_fd_limit(_config: &crate::config::Config) {}
