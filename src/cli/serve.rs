//! The service's flags: the Zig leanpoint's names and `LEANPOINT_*`
//! variables first, then the additions, each with its default.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::sources::Sources;
use crate::agreement::AgreementRule;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Flags of the service itself. Names and env vars of the Zig leanpoint first.
/// `hide_env_values` everywhere: `--help` would otherwise print each set
/// `LEANPOINT_*` value, credentials in `LEANPOINT_LEAN_URL` included.
/// Numeric values are bounded in `Config::build` (see `LIMITS`).
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Bind address.
    #[arg(
        long,
        hide_env_values = true,
        env = "LEANPOINT_BIND_ADDR",
        default_value = "0.0.0.0"
    )]
    pub bind: String,
    /// Bind port.
    #[arg(
        long,
        hide_env_values = true,
        env = "LEANPOINT_BIND_PORT",
        default_value_t = 5555
    )]
    pub port: u16,
    /// JSON file with the upstreams: {"upstreams":[{"name","url","path","headers"?}]}.
    #[arg(long, hide_env_values = true, env = "LEANPOINT_UPSTREAMS_CONFIG")]
    pub upstreams_config: Option<PathBuf>,
    /// Poll interval per upstream, milliseconds (unset with --stale-ms set: at most half of it).
    #[arg(long, hide_env_values = true, env = "LEANPOINT_POLL_MS", default_value_t = DEFAULT_POLL_MS)]
    pub poll_ms: u64,
    /// Total deadline of one poll (connect, headers and body), milliseconds.
    #[arg(
        long,
        hide_env_values = true,
        env = "LEANPOINT_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub timeout_ms: u64,
    /// Data older than this is stale: not counted for agreement, not served (unset: max(30000, 2 × poll + timeout)).
    #[arg(long, hide_env_values = true, env = "LEANPOINT_STALE_MS", default_value_t = DEFAULT_STALE_MS)]
    pub stale_ms: u64,
    /// Slot duration of the devnet, milliseconds: with a State's genesis
    /// time it bounds the finalized slot an upstream can possibly report.
    #[arg(
        long,
        hide_env_values = true,
        env = "LEANPOINT_SLOT_MS",
        default_value_t = 4_000
    )]
    pub slot_ms: u64,
    /// Single-upstream mode: base URL of one lean node (used without --upstreams-config).
    #[arg(
        long,
        hide_env_values = true,
        env = "LEANPOINT_LEAN_URL",
        default_value = "http://127.0.0.1:5052"
    )]
    pub lean_url: String,
    /// Single-upstream mode: the Zig leanpoint's status path (kept and shown; polling uses the Lean API paths).
    #[arg(
        long,
        hide_env_values = true,
        env = "LEANPOINT_LEAN_PATH",
        default_value = "/status"
    )]
    pub lean_path: String,
    /// Serve a custom UI from this directory instead of the embedded status page.
    #[arg(long, hide_env_values = true, env = "LEANPOINT_STATIC_DIR")]
    pub static_dir: Option<PathBuf>,

    // --- additions ---
    /// TCP connect deadline per request, milliseconds (must not exceed --timeout-ms; unset: min(1000, --timeout-ms)).
    #[arg(long, hide_env_values = true, env = "LEANPOINT_CONNECT_TIMEOUT_MS", default_value_t = DEFAULT_CONNECT_TIMEOUT_MS)]
    pub connect_timeout_ms: u64,
    /// Largest JSON body accepted from an upstream, bytes.
    #[arg(long, hide_env_values = true, env = "LEANPOINT_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: u64,
    /// Largest finalized State accepted from an upstream, bytes.
    #[arg(long, hide_env_values = true, env = "LEANPOINT_MAX_STATE_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_state_bytes: u64,
    /// Agreement rule: majority (of configured), responding-majority (> half of responding) or count:N.
    #[arg(
        long,
        hide_env_values = true,
        env = "LEANPOINT_AGREEMENT",
        default_value = "majority"
    )]
    pub agreement: AgreementRule,
    /// Log filter (error, warn, info, debug, trace, or a tracing directive).
    #[arg(
        long,
        hide_env_values = true,
        env = "LEANPOINT_LOG_LEVEL",
        default_value = "info"
    )]
    pub log_level: String,
    /// Log format.
    #[arg(long, hide_env_values = true, env = "LEANPOINT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Most inbound connections served at once; more wait in the kernel backlog.
    #[arg(
        long,
        hide_env_values = true,
        env = "LEANPOINT_MAX_CONNECTIONS",
        default_value_t = 512
    )]
    pub max_connections: usize,
    /// Inbound: a connection must send a request's headers within this, milliseconds (also the keep-alive idle limit).
    #[arg(
        long,
        hide_env_values = true,
        env = "LEANPOINT_HEADER_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub header_timeout_ms: u64,
    /// Also serve /livez, /healthz, /readyz and /metrics on this port, with its
    /// own connection limit: probes and scrapes answer whatever public
    /// clients hold on --port.
    #[arg(long, hide_env_values = true, env = "LEANPOINT_ADMIN_PORT")]
    pub admin_port: Option<u16>,
    /// /healthz and /livez fail when open fds exceed this fraction of RLIMIT_NOFILE.
    #[arg(
        long,
        hide_env_values = true,
        env = "LEANPOINT_FD_THRESHOLD",
        default_value_t = 0.8
    )]
    pub fd_threshold: f64,

    /// Where each value came from (filled by `Cli::try_parse_with_sources`).
    #[arg(skip)]
    pub sources: Sources,
}

pub const DEFAULT_POLL_MS: u64 = 10_000;
pub const DEFAULT_STALE_MS: u64 = 30_000;
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 1_000;
