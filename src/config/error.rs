//! The one error a configuration gives: where the bad value came from, the
//! field, the reason.

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

pub(crate) fn err(
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
