//! What /healthz, /livez and /readyz check, as lists of reasons (empty = OK).
//!
//! - /healthz (the Zig leanpoint's probe, same meaning plus one condition):
//!   agreement reached within the stale window, and open fds at or below
//!   `--fd-threshold` of RLIMIT_NOFILE. The agreement reason starts with the
//!   Zig body's word (`stale`, `no_upstreams`, `no_consensus`), so scripts
//!   matching it keep working.
//! - /livez: the process can do its job: fds under the threshold and every
//!   poller ticked recently. No upstream needs to answer.
//! - /readyz: there is something to serve: fresh agreement and a cached State.

use crate::service::{unix_ms, AppState};

/// Why the agreed data may not be served now, or None when it may: the
/// Zig leanpoint's word for it, then the details. `no_upstreams`: no
/// upstream answered within the stale window; `no_consensus`: some did, but
/// not enough agree; `stale`: anything else (no decision yet, an agreement
/// that aged out). Scripts that matched the Zig bodies keep matching.
pub fn agreement_problem(state: &AppState) -> Option<String> {
    let (word, detail) = agreement_detail(state)?;
    Some(format!("{word}: {detail}"))
}

/// The same reason in the words of the Zig leanpoint's State and checkpoint
/// routes, which said only `stale`.
pub fn stale_problem(state: &AppState) -> Option<String> {
    let (_, detail) = agreement_detail(state)?;
    Some(format!("stale: {detail}"))
}

fn agreement_detail(state: &AppState) -> Option<(&'static str, String)> {
    if state.agreement_fresh() {
        return None;
    }
    let c = state.consensus();
    let why = c.last_error.as_deref().unwrap_or("no decision yet");
    let word = if c.last_decision_ms == 0 {
        "stale"
    } else if c.responding == 0 {
        "no_upstreams"
    } else if !c.agreement {
        "no_consensus"
    } else {
        "stale"
    };
    Some((
        word,
        if c.last_agreement_ms == 0 {
            format!("no agreement since start: {why}")
        } else {
            format!(
                "last agreement {} ms ago, over the {} ms stale window: {why}",
                unix_ms().saturating_sub(c.last_agreement_ms),
                state.config.stale.as_millis()
            )
        },
    ))
}

/// Open fds above `--fd-threshold` of the soft limit. Unknown usage (no
/// procfs) is not a failure: the check cannot be made, the rest still can.
pub fn fd_problem(state: &AppState) -> Option<String> {
    let (open, limit) = crate::telemetry::process::fd_usage()?;
    let threshold = state.config.fd_threshold;
    let allowed = threshold * limit as f64;
    (open as f64 > allowed).then(|| {
        format!(
            "fd: {open} file descriptors open of a {limit} limit, above the --fd-threshold {threshold} ({} fds)",
            allowed.floor() as u64
        )
    })
}

/// Longest a poller may go without ticking before /livez fails: three
/// intervals, or one interval plus a whole poll and a margin when the
/// deadline is long compared to the interval.
pub fn tick_limit_ms(state: &AppState) -> u64 {
    let poll = state.config.poll.as_millis() as u64;
    let timeout = state.config.timeout.as_millis() as u64;
    (3 * poll).max(poll + timeout + 2_000)
}

/// Pollers that have not ticked within [`tick_limit_ms`].
pub fn stuck_pollers(state: &AppState) -> Vec<String> {
    let limit = tick_limit_ms(state);
    let now = unix_ms();
    state
        .upstreams
        .iter()
        .filter_map(|u| {
            let last = u.last_tick_ms.load(std::sync::atomic::Ordering::Relaxed);
            let age = now.saturating_sub(last);
            (age > limit).then(|| {
                format!(
                    "poller: upstream {} last ticked {age} ms ago (limit {limit} ms)",
                    u.config.name
                )
            })
        })
        .collect()
}

pub fn healthz(state: &AppState) -> Vec<String> {
    agreement_problem(state)
        .into_iter()
        .chain(fd_problem(state))
        .collect()
}

pub fn livez(state: &AppState) -> Vec<String> {
    fd_problem(state)
        .into_iter()
        .chain(stuck_pollers(state))
        .collect()
}

pub fn readyz(state: &AppState) -> Vec<String> {
    let mut reasons: Vec<String> = agreement_problem(state).into_iter().collect();
    if state.served_state().is_none() {
        reasons.push(no_state_reason(state));
    }
    reasons
}

/// Why no State is served yet.
pub fn no_state_reason(state: &AppState) -> String {
    match state.consensus().finalized {
        Some(f) => format!(
            "state: the agreed finalized State (slot {}) is not downloaded yet",
            f.slot
        ),
        None => "state: no finalized checkpoint agreed yet, so no State to serve".to_string(),
    }
}

/// [`no_state_reason`] as the State route says it: the Zig leanpoint's
/// `no_finalized_state` first.
pub fn no_finalized_state(state: &AppState) -> String {
    let reason = no_state_reason(state);
    let detail = reason.strip_prefix("state: ").unwrap_or(&reason);
    format!("no_finalized_state: {detail}")
}
