//! Logging set-up, shared by the service, the demo and the sim.

use crate::config::LogFormat;

/// Installs the tracing subscriber on stderr. Upstream URLs never reach a log
/// line (events carry upstream names), so the format needs no redaction.
pub fn init(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
