//! Configuration: the service's parsed flags (`cli::ServeArgs`) and the
//! upstreams file, checked and turned into one `Config`.
//!
//! Drop-in for the Zig leanpoint: its flags, env vars (flags win) and
//! `{"upstreams":[{"name","url","path"}]}` file load unchanged. Everything new
//! is an addition with a default. `Config::load` is the only place that turns
//! user input into a `Config`, and every rejection names where the bad value
//! came from (file or flag), the field and the reason.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use crate::agreement::AgreementRule;
use crate::cli::serve::{DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_POLL_MS, DEFAULT_STALE_MS};
use crate::cli::{LogFormat, ServeArgs, Sources};

pub mod convert;
pub mod input;

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
    /// The operator marked the URL's path as public: it is shown, and not
    /// treated as a secret (by default it is neither; see `redact`).
    pub path_public: bool,
    /// `url` as shown: scheme, host, port (and the path if public).
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
    pub admin_port: Option<u16>,
    pub upstreams: Vec<Upstream>,
    /// Where the upstreams came from, for messages.
    pub upstreams_source: String,
    /// The upstreams file, if any: what SIGHUP reloads.
    pub upstreams_file: Option<PathBuf>,
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
    upstreams: Vec<UpstreamRow>,
    #[serde(flatten)]
    unknown: BTreeMap<String, serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct UpstreamRow {
    name: String,
    url: String,
    #[serde(default = "default_path")]
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// The URL's path may be shown (by default it is treated as a secret:
    /// node providers put API keys there).
    #[serde(default)]
    url_path_public: bool,
    #[serde(flatten)]
    unknown: BTreeMap<String, serde::de::IgnoredAny>,
}

fn default_path() -> String {
    "/status".to_string()
}

/// The warning for an unknown field `key` under `at` (`upstreams[2]`).
/// A key is shown only when it looks like a field name: a misplaced
/// `"apikey=..."` or a pasted token must not reach the log.
fn unknown_field(source: &str, at: &str, key: &str) -> String {
    let name_like = key.len() <= 32
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let shown = if name_like {
        key.to_string()
    } else {
        format!("(a key of {} bytes)", key.len())
    };
    let dot = if at.is_empty() { "" } else { "." };
    format!("{source}: {at}{dot}{shown}: unknown field, ignored (as the Zig leanpoint did)")
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
                let single = UpstreamRow {
                    name: "default".to_string(),
                    url: args.lean_url.clone(),
                    path: args.lean_path.clone(),
                    headers: BTreeMap::new(),
                    url_path_public: false,
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
                .map(|(name, url)| UpstreamRow {
                    name,
                    url,
                    path: default_path(),
                    headers: BTreeMap::new(),
                    url_path_public: false,
                    unknown: BTreeMap::new(),
                })
                .collect();
            Ok((
                validate_entries(source, entries, "upstreams")?,
                source.to_string(),
                Vec::new(),
            ))
        })
        .map(|c| Config {
            upstreams_file: None,
            ..c
        })
    }

    fn build(
        args: &ServeArgs,
        upstreams: impl FnOnce() -> Result<(Vec<Upstream>, String, Vec<String>), ConfigError>,
    ) -> Result<Config, ConfigError> {
        let src = &args.sources;
        let fail = |id: &str, reason: String| refuse(src, id, reason);
        let bind: IpAddr = args.bind.parse().map_err(|_| {
            let shown = crate::redact::excerpt(&args.bind, 40);
            fail("bind", format!("{shown} is not an IP address"))
        })?;
        let t = Timings::resolve(args)?;
        let header_timeout = nonzero(src, "header_timeout_ms", args.header_timeout_ms)?;
        let slot = nonzero(src, "slot_ms", args.slot_ms)?;
        if args.max_body_bytes < 1024 {
            return Err(fail("max_body_bytes", "must be at least 1024".into()));
        }
        if args.max_state_bytes < crate::lean::api::STATE_FIXED_LEN as u64 {
            return Err(fail(
                "max_state_bytes",
                "must hold at least a State's 228-byte fixed part".into(),
            ));
        }
        if args.max_connections == 0 {
            return Err(fail("max_connections", "must be greater than 0".into()));
        }
        at_most(
            src,
            "max_body_bytes",
            args.max_body_bytes,
            MAX_BODY_BYTES,
            "1 GiB",
        )?;
        at_most(
            src,
            "max_state_bytes",
            args.max_state_bytes,
            MAX_STATE_BYTES,
            "4 GiB, the SSZ offset limit",
        )?;
        at_most(
            src,
            "max_connections",
            args.max_connections as u64,
            MAX_CONNECTIONS,
            "2^20",
        )?;
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
            admin_port: args.admin_port,
            upstreams,
            upstreams_source,
            upstreams_file: args.upstreams_config.clone(),
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

/// Longest configured header value: servers refuse request heads far
/// smaller than an unbounded value.
pub const MAX_HEADER_VALUE: usize = 8192;

/// Longest duration flag, milliseconds (a day). Deadlines are added to
/// clock readings, which must not overflow; no real setting comes near it.
pub const MAX_MS: u64 = 86_400_000;
/// Most inbound connections (`--max-connections`): far above any fd limit,
/// far below tokio's semaphore maximum (which panicked).
pub const MAX_CONNECTIONS: u64 = 1 << 20;
/// Largest `--max-body-bytes`: the body is held in memory per poll.
pub const MAX_BODY_BYTES: u64 = 1 << 30;
/// Largest `--max-state-bytes`: SSZ offsets are u32, so no valid State is
/// larger than 4 GiB.
pub const MAX_STATE_BYTES: u64 = 1 << 32;

/// The error for argument `id`, named as the user gave it.
fn refuse(src: &Sources, id: &str, reason: impl Into<String>) -> ConfigError {
    let (origin, field) = src.name(id);
    err(origin, field, reason)
}

/// A duration flag in milliseconds that must be positive and at most
/// [`MAX_MS`].
fn nonzero(src: &Sources, id: &str, v: u64) -> Result<Duration, ConfigError> {
    if v == 0 {
        return Err(refuse(src, id, "must be greater than 0"));
    }
    at_most(src, id, v, MAX_MS, "one day")?;
    Ok(Duration::from_millis(v))
}

/// Refuses `v` above `max` (`what` says what the limit is, for people).
fn at_most(src: &Sources, id: &str, v: u64, max: u64, what: &str) -> Result<(), ConfigError> {
    if v > max {
        let (origin, field) = src.name(id);
        return Err(err(
            origin,
            field,
            format!("{v} is above the limit of {max} ({what})"),
        ));
    }
    Ok(())
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
    let text = crate::config::input::read_regular(path, crate::config::input::MAX_CONFIG_FILE)
        .map_err(|e| err(&source, "file", e))?;
    let file: UpstreamsFile = serde_json::from_str(&text).map_err(|e| {
        // serde quotes the offending value, which may be a credential; it
        // does not name the field, the text before the error does.
        let near = match e.classify() {
            // A missing field is reported at the end of its object.
            serde_json::error::Category::Data if !e.to_string().starts_with("missing field") => {
                key_before(&text, e.line(), e.column())
                    .map_or(String::new(), |k| format!(" (in \"{k}\")"))
            }
            _ => String::new(),
        };
        err(
            &source,
            "upstreams",
            format!(
                "invalid JSON at line {} column {}{near}: {}",
                e.line(),
                e.column(),
                crate::redact::values_hidden(&e.to_string())
            ),
        )
    })?;
    let mut warnings: Vec<String> = file
        .unknown
        .keys()
        .map(|k| unknown_field(&source, "", k))
        .collect();
    for (i, e) in file.upstreams.iter().enumerate() {
        warnings.extend(
            e.unknown
                .keys()
                .map(|k| unknown_field(&source, &format!("upstreams[{i}]"), k)),
        );
    }
    let ups = validate_entries(&source, file.upstreams, "upstreams")?;
    Ok((ups, warnings))
}

/// The last field name before line `line`, column `column` of `text`, if it
/// is one of the file's own (never a user's key: it may be anything).
fn key_before(text: &str, line: usize, column: usize) -> Option<&'static str> {
    const KEYS: [&str; 6] = [
        "upstreams",
        "name",
        "url",
        "path",
        "headers",
        "url_path_public",
    ];
    let offset: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum::<usize>()
        + column;
    let before = text.get(..offset.min(text.len()))?;
    KEYS.iter()
        .filter_map(|k| before.rfind(&format!("\"{k}\"")).map(|at| (at, *k)))
        .max()
        .map(|(_, k)| k)
}

fn validate_entries(
    source: &str,
    entries: Vec<UpstreamRow>,
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
        if e.path.len() > 256 || e.path.chars().any(|c| c.is_control()) {
            // Shown in /api/upstreams: bounded like the name.
            return Err(err(
                source,
                field("path"),
                "must be at most 256 printable characters",
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
            // A pasted `token:...` parses as a URL whose scheme is the
            // token: only a short word of letters is shown.
            let scheme = url.scheme();
            let reason = if scheme.len() <= 8 && scheme.chars().all(|c| c.is_ascii_alphabetic()) {
                format!("scheme {scheme:?} is not http or https")
            } else {
                "scheme is not http or https".to_string()
            };
            return Err(err(source, field("url"), reason));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(err(source, field("url"), "has no host"));
        }
        let mut headers: Vec<(String, String)> = Vec::with_capacity(e.headers.len());
        for (k, v) in e.headers {
            if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
                // Never echoed: the usual typo is the whole header as its
                // name, `"Authorization: Bearer <token>"`.
                return Err(err(
                    source,
                    field("headers"),
                    format!(
                        "a key of {} bytes is not a valid header name (a name has no ':' or spaces; the value goes after it)",
                        k.len()
                    ),
                ));
            }
            if headers
                .iter()
                .any(|(seen, _)| seen.eq_ignore_ascii_case(&k))
            {
                return Err(err(
                    source,
                    field(&format!("headers.{k}")),
                    "is given twice (header names ignore case)",
                ));
            }
            if v.len() > MAX_HEADER_VALUE {
                return Err(err(
                    source,
                    field(&format!("headers.{k}")),
                    format!("value is over {MAX_HEADER_VALUE} bytes"),
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
            display_url: crate::redact::display_url(&url, e.url_path_public),
            name,
            url,
            path: e.path,
            headers,
            path_public: e.url_path_public,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;

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
        assert_eq!(
            crate::redact::display_url(&u, false),
            "https://node.example:8443"
        );
    }

    #[test]
    fn endpoint_keeps_prefix() {
        let u = Upstream {
            name: "a".into(),
            url: Url::parse("http://127.0.0.1:9/node/3/").expect("url"),
            path: "/status".into(),
            headers: vec![],
            path_public: false,
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
