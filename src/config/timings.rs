//! The poll interval, deadlines and stale window: defaults the user did not
//! set follow the values they did set.

use std::time::Duration;

use super::error::ConfigError;
use super::limits::{nonzero, refuse};
use crate::cli::serve::{DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_POLL_MS, DEFAULT_STALE_MS};
use crate::cli::ServeArgs;

/// The poll interval, deadlines and stale window, after the defaults the
/// user did not set have followed the ones they did set. Only a value the
/// user set explicitly is ever refused.
pub(super) struct Timings {
    pub(super) poll: Duration,
    pub(super) timeout: Duration,
    pub(super) connect: Duration,
    pub(super) stale: Duration,
}

impl Timings {
    pub(super) fn resolve(args: &ServeArgs) -> Result<Timings, ConfigError> {
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
