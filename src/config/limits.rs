//! Bounds of the numeric flags, and the errors that name a refused flag the
//! way the user gave it (flag or `LEANPOINT_*` variable).

use std::time::Duration;

use super::error::{err, ConfigError};
use crate::cli::{ServeArgs, Sources};

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
pub(crate) fn refuse(src: &Sources, id: &str, reason: impl Into<String>) -> ConfigError {
    let (origin, field) = src.name(id);
    err(origin, field, reason)
}

/// A duration flag in milliseconds that must be positive and at most
/// [`MAX_MS`].
pub(crate) fn nonzero(src: &Sources, id: &str, v: u64) -> Result<Duration, ConfigError> {
    if v == 0 {
        return Err(refuse(src, id, "must be greater than 0"));
    }
    at_most(src, id, v, MAX_MS, "one day")?;
    Ok(Duration::from_millis(v))
}

/// Refuses `v` above `max` (`what` says what the limit is, for people).
pub(crate) fn at_most(
    src: &Sources,
    id: &str,
    v: u64,
    max: u64,
    what: &str,
) -> Result<(), ConfigError> {
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

/// The size, connection and fd-pressure flags: each within its bounds.
pub(super) fn check_sizes(args: &ServeArgs) -> Result<(), ConfigError> {
    let src = &args.sources;
    if args.max_body_bytes < 1024 {
        return Err(refuse(src, "max_body_bytes", "must be at least 1024"));
    }
    if args.max_state_bytes < crate::lean::api::STATE_FIXED_LEN as u64 {
        return Err(refuse(
            src,
            "max_state_bytes",
            "must hold at least a State's 228-byte fixed part",
        ));
    }
    if args.max_connections == 0 {
        return Err(refuse(src, "max_connections", "must be greater than 0"));
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
        return Err(refuse(src, "fd_threshold", "must be in (0, 1]"));
    }
    Ok(())
}
