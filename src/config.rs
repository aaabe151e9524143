//! Configuration: command line, `LEANPOINT_*` environment, the upstreams file.
//!
//! Drop-in for the Zig leanpoint: its flags, env vars (flags win) and
//! `{"upstreams":[{"name","url","path"}]}` file load unchanged. Everything new
//! is an addition with a default. `Config::load` is the only place that turns
//! user input into a `Config`, and every rejection names where the bad value
//! came from (file or flag), the field and the reason.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use reqwest::Url;
use serde::Deserialize;

pub use crate::arg_sources::Sources;

/// Command line of the `leanpoint` binary. Without a subcommand it serves.
#[derive(Parser, Debug)]
#[command(
    name = "leanpoint",
    version,
    about = "Checkpoint-sync provider and Prometheus-native monitor for Lean Ethereum devnets",
    // A repeated flag takes its last value, as in the Zig leanpoint: wrapper
    // scripts append overrides to a base command line.
    args_override_self = true
)]
pub struct Cli {
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run leanpoint against an embedded simulated devnet (no external nodes needed).
    Demo(crate::sim::DemoArgs),
    /// Run only the simulated devnet (N lean nodes with fault injection).
    Sim(crate::sim::SimArgs),
    /// Turn lean-quickstart's validator-config.yaml into an upstreams.json (stdout or OUTPUT).
    ConvertValidatorConfig(crate::convert::ConvertArgs),
}

/// Agreement rule for the finalized checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgreementRule {
    /// Strictly more than half of the configured upstreams (default): two of
    /// two, two of three, three of four. A devnet where half the nodes are
    /// unreachable has no provable majority, so nothing is served.
    ConfiguredMajority,
    /// Strictly more than half of the upstreams that answered within the
    /// stale window, agreeing on slot and root. Close to the Zig leanpoint
    /// but stricter: Zig compared slots only and accepted ceil(n/2).
    RespondingMajority,
    /// At least this many upstreams.
    Count(usize),
}

impl std::str::FromStr for AgreementRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "majority" | "configured-majority" => Ok(AgreementRule::ConfiguredMajority),
            "responding-majority" => Ok(AgreementRule::RespondingMajority),
            other => match other.strip_prefix("count:").map(str::parse::<usize>) {
                Some(Ok(n)) if n > 0 => Ok(AgreementRule::Count(n)),
                _ => Err(format!(
                    "{other:?} is not majority, responding-majority or count:N with N > 0"
                )),
            },
        }
    }
}

impl fmt::Display for AgreementRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgreementRule::ConfiguredMajority => f.write_str("majority"),
            AgreementRule::RespondingMajority => f.write_str("responding-majority"),
            AgreementRule::Count(n) => write!(f, "count:{n}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Flags of the service itself. Names and env vars of the Zig leanpoint first.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Bind address.
    #[arg(long, env = "LEANPOINT_BIND_ADDR", default_value = "0.0.0.0")]
    pub bind: String,
    /// Bind port.
    #[arg(long, env = "LEANPOINT_BIND_PORT", default_value_t = 5555)]
    pub port: u16,
    /// JSON file with the upstreams: {"upstreams":[{"name","url","path","headers"?}]}.
    #[arg(long, env = "LEANPOINT_UPSTREAMS_CONFIG")]
    pub upstreams_config: Option<PathBuf>,
    /// Poll interval per upstream, milliseconds (unset with --stale-ms set: at most half of it).
    #[arg(long, env = "LEANPOINT_POLL_MS", default_value_t = DEFAULT_POLL_MS)]
    pub poll_ms: u64,
    /// Total deadline of one poll (connect, headers and body), milliseconds.
    #[arg(long, env = "LEANPOINT_TIMEOUT_MS", default_value_t = 5_000)]
    pub timeout_ms: u64,
    /// Data older than this is stale: not counted for agreement, not served (unset: max(30000, 2 × poll + timeout)).
    #[arg(long, env = "LEANPOINT_STALE_MS", default_value_t = DEFAULT_STALE_MS)]
    pub stale_ms: u64,
    /// Slot duration of the devnet, milliseconds: with a State's genesis
    /// time it bounds the finalized slot an upstream can possibly report.
    #[arg(long, env = "LEANPOINT_SLOT_MS", default_value_t = 4_000)]
    pub slot_ms: u64,
    /// Single-upstream mode: base URL of one lean node (used without --upstreams-config).
    #[arg(
        long,
        env = "LEANPOINT_LEAN_URL",
        default_value = "http://127.0.0.1:5052"
    )]
    pub lean_url: String,
    /// Single-upstream mode: the Zig leanpoint's status path (kept and shown; polling uses the Lean API paths).
    #[arg(long, env = "LEANPOINT_LEAN_PATH", default_value = "/status")]
    pub lean_path: String,
    /// Serve a custom UI from this directory instead of the embedded status page.
    #[arg(long, env = "LEANPOINT_STATIC_DIR")]
    pub static_dir: Option<PathBuf>,

    // --- additions ---
    /// TCP connect deadline per request, milliseconds (must not exceed --timeout-ms; unset: min(1000, --timeout-ms)).
    #[arg(long, env = "LEANPOINT_CONNECT_TIMEOUT_MS", default_value_t = DEFAULT_CONNECT_TIMEOUT_MS)]
    pub connect_timeout_ms: u64,
    /// Largest JSON body accepted from an upstream, bytes.
    #[arg(long, env = "LEANPOINT_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: u64,
    /// Largest finalized State accepted from an upstream, bytes.
    #[arg(long, env = "LEANPOINT_MAX_STATE_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_state_bytes: u64,
    /// Agreement rule: majority (of configured), responding-majority (> half of responding) or count:N.
    #[arg(long, env = "LEANPOINT_AGREEMENT", default_value = "majority")]
    pub agreement: AgreementRule,
    /// Log filter (error, warn, info, debug, trace, or a tracing directive).
    #[arg(long, env = "LEANPOINT_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format.
    #[arg(long, env = "LEANPOINT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Most inbound connections served at once; more wait in the kernel backlog.
    #[arg(long, env = "LEANPOINT_MAX_CONNECTIONS", default_value_t = 512)]
    pub max_connections: usize,
    /// Inbound: a connection must send a request's headers within this, milliseconds (also the keep-alive idle limit).
    #[arg(long, env = "LEANPOINT_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_timeout_ms: u64,
    /// /healthz and /livez fail when open fds exceed this fraction of RLIMIT_NOFILE.
    #[arg(long, env = "LEANPOINT_FD_THRESHOLD", default_value_t = 0.8)]
    pub fd_threshold: f64,

    /// Where each value came from (filled by `Cli::try_parse_with_sources`).
    #[arg(skip)]
    pub sources: Sources,
}

pub const DEFAULT_POLL_MS: u64 = 10_000;
pub const DEFAULT_STALE_MS: u64 = 30_000;
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 1_000;

/// One upstream lean node, as configured.
#[derive(Clone, Debug)]
pub struct Upstream {
    pub name: String,
    /// Full base URL, credentials included. Used for requests only; anything
    /// shown to a person goes through `display_url`.
    pub url: Url,
    /// The Zig leanpoint's `path` field, kept for /api/upstreams.
    pub path: String,
    /// Sent on every request; never logged or shown.
    pub headers: Vec<(String, String)>,
    /// `url` without credentials, query or fragment.
    pub display_url: String,
}

impl Upstream {
    /// The base URL joined with a Lean API path (`/lean/v0/...`). Keeps any
    /// path prefix of the base (a proxy or the simulator's `/node/3`).
    pub fn endpoint(&self, api_path: &str) -> Url {
        let mut url = self.url.clone();
        let base = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base}{api_path}"));
        url
    }
}

/// Validated configuration of a running leanpoint.
#[derive(Clone, Debug)]
pub struct Config {
    pub bind: IpAddr,
    pub port: u16,
    pub upstreams: Vec<Upstream>,
    /// Where the upstreams came from, for messages.
    pub upstreams_source: String,
    pub poll: Duration,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub stale: Duration,
    /// Slot duration (bounds possible finalized slots).
    pub slot: Duration,
    pub static_dir: Option<PathBuf>,
    pub max_body_bytes: u64,
    pub max_state_bytes: u64,
    pub agreement: AgreementRule,
    pub log_level: String,
    pub log_format: LogFormat,
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub fd_threshold: f64,
    /// Accepted but worth telling: unknown fields in the upstreams file.
    /// Logged once logging is set up.
    pub warnings: Vec<String>,
}

/// A configuration that cannot run. Displays as one line:
/// `<source>: <field>: <reason>`.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {field}: {reason}")]
pub struct ConfigError {
    /// The file, "command line" or "environment".
    pub origin: String,
    pub field: String,
    pub reason: String,
}

fn err(
    origin: impl Into<String>,
    field: impl Into<String>,
    reason: impl Into<String>,
) -> ConfigError {
    ConfigError {
        origin: origin.into(),
        field: field.into(),
        reason: reason.into(),
    }
}

// Unknown fields are collected, not refused: the Zig leanpoint ignored them
// (`"enabled": false`, notes, keys of other tools), so files it loaded load.
#[derive(Deserialize)]
struct UpstreamsFile {
    upstreams: Vec<UpstreamEntry>,
    #[serde(flatten)]
    unknown: BTreeMap<String, serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct UpstreamEntry {
    name: String,
    url: String,
    #[serde(default = "default_path")]
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(flatten)]
    unknown: BTreeMap<String, serde::de::IgnoredAny>,
}

fn default_path() -> String {
    "/status".to_string()
}

/// The warning for an unknown field `field` (shown escaped and cut: it is
/// the user's own file, but a line of log is no place for a whole key).
fn unknown_field(source: &str, field: &str) -> String {
    let shown: String = field.escape_debug().take(64).collect();
    format!("{source}: {shown}: unknown field, ignored (as the Zig leanpoint did)")
}

impl Config {
    /// Validates the flags and loads the upstreams they point at.
    pub fn load(args: &ServeArgs) -> Result<Config, ConfigError> {
        Config::build(args, || match &args.upstreams_config {
            Some(path) => {
                let (ups, warnings) = read_upstreams_file(path)?;
                Ok((ups, path.display().to_string(), warnings))
            }
            None => {
                let single = UpstreamEntry {
                    name: "default".to_string(),
                    url: args.lean_url.clone(),
                    path: args.lean_path.clone(),
                    headers: BTreeMap::new(),
                    unknown: BTreeMap::new(),
                };
                let (origin, field) = args.sources.name("lean_url");
                let ups = validate_entries(origin, vec![single], &field)?;
                Ok((ups, field, Vec::new()))
            }
        })
    }

    /// Validates the flags and takes the upstreams, `(name, url)` with path
    /// "/status", from the caller instead of a file: the demo's simulated
    /// nodes exist only in memory. `source` names them in errors.
    pub fn with_upstreams(
        args: &ServeArgs,
        source: &str,
        upstreams: Vec<(String, String)>,
    ) -> Result<Config, ConfigError> {
        Config::build(args, || {
            let entries = upstreams
                .into_iter()
                .map(|(name, url)| UpstreamEntry {
                    name,
                    url,
                    path: default_path(),
                    headers: BTreeMap::new(),
                    unknown: BTreeMap::new(),
                })
                .collect();
            Ok((
                validate_entries(source, entries, "upstreams")?,
                source.to_string(),
                Vec::new(),
            ))
        })
    }

    fn build(
        args: &ServeArgs,
        upstreams: impl FnOnce() -> Result<(Vec<Upstream>, String, Vec<String>), ConfigError>,
    ) -> Result<Config, ConfigError> {
        let src = &args.sources;
        let fail = |id: &str, reason: String| refuse(src, id, reason);
        let bind: IpAddr = args
            .bind
            .parse()
            .map_err(|_| fail("bind", format!("{:?} is not an IP address", args.bind)))?;
        let t = Timings::resolve(args)?;
        let header_timeout = nonzero(src, "header_timeout_ms", args.header_timeout_ms)?;
        let slot = nonzero(src, "slot_ms", args.slot_ms)?;
        if args.max_body_bytes < 1024 {
            return Err(fail("max_body_bytes", "must be at least 1024".into()));
        }
        if args.max_state_bytes < crate::lean_api::STATE_FIXED_LEN as u64 {
            return Err(fail(
                "max_state_bytes",
                "must hold at least a State's 228-byte fixed part".into(),
            ));
        }
        if args.max_connections == 0 {
            return Err(fail("max_connections", "must be greater than 0".into()));
        }
        if !(args.fd_threshold > 0.0 && args.fd_threshold <= 1.0) {
            return Err(fail("fd_threshold", "must be in (0, 1]".into()));
        }
        let (upstreams, upstreams_source, warnings) = upstreams()?;
        if let Some(dir) = &args.static_dir {
            if !dir.is_dir() {
                return Err(fail(
                    "static_dir",
                    format!("{} is not a directory", dir.display()),
                ));
            }
        }
        if let AgreementRule::Count(n) = args.agreement {
            if n > upstreams.len() {
                return Err(fail(
                    "agreement",
                    format!(
                        "count:{n} exceeds the {} configured upstreams",
                        upstreams.len()
                    ),
                ));
            }
        }
        Ok(Config {
            bind,
            port: args.port,
            upstreams,
            upstreams_source,
            poll: t.poll,
            timeout: t.timeout,
            connect_timeout: t.connect,
            stale: t.stale,
            slot,
            static_dir: args.static_dir.clone(),
            max_body_bytes: args.max_body_bytes,
            max_state_bytes: args.max_state_bytes,
            agreement: args.agreement,
            log_level: args.log_level.clone(),
            log_format: args.log_format,
            max_connections: args.max_connections,
            header_timeout,
            fd_threshold: args.fd_threshold,
            warnings,
        })
    }
}

/// The error for argument `id`, named as the user gave it.
fn refuse(src: &Sources, id: &str, reason: impl Into<String>) -> ConfigError {
    let (origin, field) = src.name(id);
    err(origin, field, reason)
}

/// A duration flag in milliseconds that must be positive.
fn nonzero(src: &Sources, id: &str, v: u64) -> Result<Duration, ConfigError> {
    if v == 0 {
        return Err(refuse(src, id, "must be greater than 0"));
    }
    Ok(Duration::from_millis(v))
}

/// The poll interval, deadlines and stale window, after the defaults the
/// user did not set have followed the ones they did set. Only a value the
/// user set explicitly is ever refused.
struct Timings {
    poll: Duration,
    timeout: Duration,
    connect: Duration,
    stale: Duration,
}

impl Timings {
    fn resolve(args: &ServeArgs) -> Result<Timings, ConfigError> {
        let src = &args.sources;
        // Still the built-in default, from no user source. The value check
        // keeps a caller's own adjustment (the demo picks its timings).
        let follows = |id: &str, v: u64, default: u64| !src.explicit(id) && v == default;
        let poll_follows = follows("poll_ms", args.poll_ms, DEFAULT_POLL_MS);
        let stale_follows = follows("stale_ms", args.stale_ms, DEFAULT_STALE_MS);
        let connect_follows = follows(
            "connect_timeout_ms",
            args.connect_timeout_ms,
            DEFAULT_CONNECT_TIMEOUT_MS,
        );
        // Zero is refused in the flags' order, before any default follows.
        let ms = |id: &str, v: u64| nonzero(src, id, v).map(|d| d.as_millis() as u64);
        let poll_given = ms("poll_ms", args.poll_ms)?;
        let timeout_ms = ms("timeout_ms", args.timeout_ms)?;
        let stale_given = ms("stale_ms", args.stale_ms)?;
        let connect_given = ms("connect_timeout_ms", args.connect_timeout_ms)?;
        let poll_ms = if poll_follows && !stale_follows {
            // A short stale window alone: poll often enough to stay fresh.
            DEFAULT_POLL_MS.min(stale_given / 2).max(1)
        } else {
            poll_given
        };
        let stale_ms = if stale_follows {
            // Room for one missed poll and a whole deadline, as the defaults have.
            DEFAULT_STALE_MS.max(poll_ms.saturating_mul(2).saturating_add(timeout_ms))
        } else {
            stale_given
        };
        let connect_ms = if connect_follows {
            DEFAULT_CONNECT_TIMEOUT_MS.min(timeout_ms)
        } else {
            connect_given
        };
        if connect_ms > timeout_ms {
            return Err(refuse(
                src,
                "connect_timeout_ms",
                format!(
                    "{connect_ms} ms exceeds {} {timeout_ms} ms (the connect deadline is part of the total)",
                    src.field("timeout_ms")
                ),
            ));
        }
        if stale_ms < poll_ms {
            return Err(refuse(
                src,
                "stale_ms",
                format!(
                    "{stale_ms} ms is shorter than {} {poll_ms} ms: every observation would be stale before the next poll",
                    src.field("poll_ms")
                ),
            ));
        }
        Ok(Timings {
            poll: Duration::from_millis(poll_ms),
            timeout: Duration::from_millis(timeout_ms),
            connect: Duration::from_millis(connect_ms),
            stale: Duration::from_millis(stale_ms),
        })
    }
}

/// Reads and validates an upstreams file in the Zig leanpoint's format.
pub fn load_upstreams_file(path: &Path) -> Result<Vec<Upstream>, ConfigError> {
    read_upstreams_file(path).map(|(ups, _)| ups)
}

/// Like [`load_upstreams_file`], with a warning for each unknown field.
fn read_upstreams_file(path: &Path) -> Result<(Vec<Upstream>, Vec<String>), ConfigError> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(&source, "file", format!("cannot read: {e}")))?;
    let file: UpstreamsFile = serde_json::from_str(&text).map_err(|e| {
        err(
            &source,
            "upstreams",
            format!(
                "invalid JSON at line {} column {}: {e}",
                e.line(),
                e.column()
            ),
        )
    })?;
    let mut warnings: Vec<String> = file
        .unknown
        .keys()
        .map(|k| unknown_field(&source, k))
        .collect();
    for (i, e) in file.upstreams.iter().enumerate() {
        warnings.extend(
            e.unknown
                .keys()
                .map(|k| unknown_field(&source, &format!("upstreams[{i}].{k}"))),
        );
    }
    let ups = validate_entries(&source, file.upstreams, "upstreams")?;
    Ok((ups, warnings))
}

fn validate_entries(
    source: &str,
    entries: Vec<UpstreamEntry>,
    list_field: &str,
) -> Result<Vec<Upstream>, ConfigError> {
    if entries.is_empty() {
        return Err(err(source, list_field, "no upstreams configured"));
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.into_iter().enumerate() {
        let field = |f: &str| format!("{list_field}[{i}].{f}");
        let name = e.name.trim().to_string();
        if name.is_empty() {
            return Err(err(source, field("name"), "is empty"));
        }
        if name.len() > 128 || name.chars().any(|c| c.is_control()) {
            return Err(err(
                source,
                field("name"),
                "must be at most 128 printable characters",
            ));
        }
        if let Some(first) = seen.insert(name.clone(), i) {
            return Err(err(
                source,
                field("name"),
                format!("{name:?} duplicates {list_field}[{first}].name"),
            ));
        }
        // Never echo the URL: it may carry credentials.
        let url = Url::parse(&e.url)
            .map_err(|pe| err(source, field("url"), format!("not a URL ({pe})")))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(err(
                source,
                field("url"),
                format!("scheme {:?} is not http or https", url.scheme()),
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(err(source, field("url"), "has no host"));
        }
        let mut headers = Vec::with_capacity(e.headers.len());
        for (k, v) in e.headers {
            if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
                return Err(err(
                    source,
                    field(&format!("headers.{k}")),
                    "is not a valid header name",
                ));
            }
            if http::HeaderValue::from_str(&v).is_err() {
                // The value is a secret: say what is wrong, not what it is.
                return Err(err(
                    source,
                    field(&format!("headers.{k}")),
                    "value is not a valid header value",
                ));
            }
            headers.push((k, v));
        }
        out.push(Upstream {
            display_url: redact_url(&url),
            name,
            url,
            path: e.path,
            headers,
        });
    }
    Ok(out)
}

/// The URL without user, password, query or fragment: what may be shown.
pub fn redact_url(url: &Url) -> String {
    let mut shown = url.clone();
    // Setting these cannot fail for http(s) URLs with a host.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string().trim_end_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> ServeArgs {
        let mut argv = vec!["leanpoint"];
        argv.extend_from_slice(extra);
        Cli::try_parse_with_sources(argv).expect("parse").serve
    }

    #[test]
    fn zig_example_loads() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/lean-quickstart/upstreams.zig-example.json");
        let ups = load_upstreams_file(&p).expect("zig example");
        assert_eq!(ups.len(), 6);
        assert_eq!(ups[0].name, "zeam_0");
        assert_eq!(
            ups[4].path,
            "/eth/v1/beacon/states/finalized/finality_checkpoints"
        );
    }

    #[test]
    fn redaction_strips_secrets() {
        let u =
            Url::parse("https://user:pw@node.example:8443/base?apikey=s3cret#frag").expect("url");
        assert_eq!(redact_url(&u), "https://node.example:8443/base");
    }

    #[test]
    fn endpoint_keeps_prefix() {
        let u = Upstream {
            name: "a".into(),
            url: Url::parse("http://127.0.0.1:9/node/3/").expect("url"),
            path: "/status".into(),
            headers: vec![],
            display_url: String::new(),
        };
        assert_eq!(
            u.endpoint("/lean/v0/fork_choice").as_str(),
            "http://127.0.0.1:9/node/3/lean/v0/fork_choice"
        );
    }

    #[test]
    fn flag_errors_name_the_field() {
        let cases: &[(&[&str], &str)] = &[
            (&["--poll-ms", "0"], "--poll-ms"),
            (
                &["--timeout-ms", "100", "--connect-timeout-ms", "200"],
                "--connect-timeout-ms",
            ),
            (&["--bind", "nope"], "--bind"),
            (&["--lean-url", "ftp://x"], "--lean-url[0].url"),
            (&["--fd-threshold", "1.5"], "--fd-threshold"),
        ];
        for (argv, field) in cases {
            let e = Config::load(&args(argv)).expect_err("must fail");
            assert_eq!(e.field, *field, "{argv:?}: {e}");
        }
    }

    #[test]
    fn unset_timings_follow_the_set_ones() {
        let c = Config::load(&args(&["--timeout-ms", "200"])).expect("timeout alone");
        assert_eq!(c.connect_timeout, Duration::from_millis(200));
        let c = Config::load(&args(&["--poll-ms", "60000"])).expect("poll alone");
        assert_eq!(c.stale, Duration::from_millis(125_000));
        let c = Config::load(&args(&["--stale-ms", "5000"])).expect("stale alone");
        assert_eq!(c.poll, Duration::from_millis(2_500));
        let c = Config::load(&args(&[])).expect("defaults");
        assert_eq!(
            (c.poll, c.timeout, c.connect_timeout, c.stale),
            (
                Duration::from_millis(10_000),
                Duration::from_millis(5_000),
                Duration::from_millis(1_000),
                Duration::from_millis(30_000)
            )
        );
        let e = Config::load(&args(&["--poll-ms", "60000", "--stale-ms", "5000"]))
            .expect_err("both set and inconsistent");
        assert_eq!(
            (e.origin.as_str(), e.field.as_str()),
            ("command line", "--stale-ms")
        );
        assert!(e.reason.contains("--poll-ms"), "{e}");
    }

    #[test]
    fn unknown_fields_are_warnings() {
        let dir = std::env::temp_dir().join(format!("leanpoint-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let p = dir.join("extra.json");
        std::fs::write(
            &p,
            r#"{"version":2,"upstreams":[{"name":"a","url":"http://127.0.0.1:9","enabled":false}]}"#,
        )
        .expect("write");
        let (ups, warnings) = read_upstreams_file(&p).expect("loads");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(ups.len(), 1);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].contains(": version: unknown field"),
            "{warnings:?}"
        );
        assert!(
            warnings[1].contains("upstreams[0].enabled: unknown field"),
            "{warnings:?}"
        );
    }

    #[test]
    fn agreement_rule_parses() {
        assert_eq!(
            "count:3".parse::<AgreementRule>(),
            Ok(AgreementRule::Count(3))
        );
        assert!("count:0".parse::<AgreementRule>().is_err());
        assert_eq!(
            "responding-majority".parse::<AgreementRule>(),
            Ok(AgreementRule::RespondingMajority)
        );
    }
}
