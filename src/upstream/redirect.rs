//! Which redirects an upstream request follows.
//!
//! The Zig leanpoint followed redirects; an upstream behind a proxy that moves
//! `/lean/v0/...` (a trailing slash, a path prefix) still works here. Only
//! within the upstream's own origin (scheme, host and port), and at most
//! [`MAX_REDIRECTS`] of them: the configured headers and URL credentials are
//! meant for that upstream alone, and a redirect elsewhere is refused before
//! anything is sent there. Every hop runs inside the request's one total
//! deadline (the whole `send()` is raced against it in `upstream`).

use reqwest::redirect::{Attempt, Policy};
use reqwest::Url;

/// Most redirects followed for one request.
pub const MAX_REDIRECTS: usize = 3;

/// Why a redirect was not followed. The text never holds a URL: the
/// `Location` came from the upstream and may point anywhere.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("redirect to another origin refused (scheme, host or port differ; headers and credentials stay with the configured upstream)")]
    CrossOrigin,
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooMany,
}

/// The client's redirect policy.
pub fn policy() -> Policy {
    Policy::custom(decide)
}

fn decide(attempt: Attempt<'_>) -> reqwest::redirect::Action {
    // `previous` holds the original URL and every URL redirected from.
    let previous = attempt.previous();
    let Some(first) = previous.first() else {
        return attempt.error(Refused::CrossOrigin);
    };
    match check(first, attempt.url(), previous.len() - 1) {
        Ok(()) => attempt.follow(),
        Err(refused) => attempt.error(refused),
    }
}

/// Whether a request first sent to `first` may go on to `next`, after
/// `followed` redirects before this one (the rule both request paths keep).
pub(super) fn check(first: &Url, next: &Url, followed: usize) -> Result<(), Refused> {
    if next.origin() != first.origin() {
        return Err(Refused::CrossOrigin);
    }
    if followed >= MAX_REDIRECTS {
        return Err(Refused::TooMany);
    }
    Ok(())
}
