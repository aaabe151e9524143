//! Configuration: the service's parsed flags (`cli::ServeArgs`) and the
//! upstreams file, checked and turned into one `Config`.
//!
//! Drop-in for the Zig leanpoint: its flags, env vars (flags win) and
//! `{"upstreams":[{"name","url","path"}]}` file load unchanged. Everything new
//! is an addition with a default. `Config::load` is the only place that turns
//! user input into a `Config`, and every rejection names where the bad value
//! came from (file or flag), the field and the reason.
//!
//! - `file`: the upstreams file; `upstream`: one configured upstream;
//! - `timings`: poll, deadlines and stale window, defaults following values;
//! - `limits`: bounds of the numeric flags; `error`: `ConfigError`;
//! - `input`: operator input files, read only if regular and bounded;
//! - `convert`: lean-quickstart's validator-config.yaml to upstreams.json.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::agreement::AgreementRule;
use crate::cli::{LogFormat, ServeArgs};

pub mod convert;
mod error;
mod file;
pub mod input;
mod limits;
mod timings;
mod upstream;

pub use error::ConfigError;
pub use file::load_upstreams_file;
pub use limits::{MAX_BODY_BYTES, MAX_CONNECTIONS, MAX_HEADER_VALUE, MAX_MS, MAX_STATE_BYTES};
pub use upstream::Upstream;

use file::{read_upstreams_file, validate_entries, UpstreamRow};
use limits::{nonzero, refuse};
use timings::Timings;

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

impl Config {
    /// Validates the flags and loads the upstreams they point at.
    pub fn load(args: &ServeArgs) -> Result<Config, ConfigError> {
        Config::build(args, || match &args.upstreams_config {
            Some(path) => {
                let (ups, warnings) = read_upstreams_file(path)?;
                Ok((ups, path.display().to_string(), warnings))
            }
            None => {
                let single = UpstreamRow::new(
                    "default".to_string(),
                    args.lean_url.clone(),
                    Some(args.lean_path.clone()),
                );
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
                .map(|(name, url)| UpstreamRow::new(name, url, None))
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
        limits::check_sizes(args)?;
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use reqwest::Url;

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
}
