//! Logging set-up, shared by the service, the demo and the sim.

use std::io::IsTerminal as _;

use crate::cli::LogFormat;

/// A `--log-level` that is not a filter. The parser's reason echoes the
/// input, so only a bounded excerpt of it is shown.
#[derive(Debug, thiserror::Error)]
#[error("not a log level or tracing filter directive ({})", crate::redact::bound(&.0.to_string(), 120))]
pub struct BadFilter(tracing_subscriber::filter::ParseError);

/// The filter `--log-level` asks for, or why it is not one. A typo must not
/// silently become `info`.
pub fn filter(level: &str) -> Result<tracing_subscriber::EnvFilter, BadFilter> {
    tracing_subscriber::EnvFilter::try_new(level).map_err(BadFilter)
}

/// Colour only for a person at a terminal: a log file or a pipe (journald,
/// `docker logs`, `| grep`) gets no ANSI escapes. `NO_COLOR` turns it off
/// everywhere.
fn use_colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs the tracing subscriber on stderr. Upstream URLs never reach a log
/// line (events carry upstream names), so the format needs no redaction.
/// A bad `level` falls back to info (the demo and sim); the service checks
/// it first with [`filter`].
pub fn init(level: &str, format: LogFormat) {
    let filter = filter(level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(use_colour());
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
