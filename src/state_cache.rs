//! The finalized-State cache.
//!
//! When the agreed finalized checkpoint changes, the State is downloaded once,
//! from one agreeing upstream (the next on failure), checked structurally
//! against the agreed slot, and installed as shared `Bytes` that every
//! download of /lean/v0/states/finalized serves without a copy. Polls never
//! download whole states; this task is the only one that does, and only one
//! download runs at a time.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::shutdown::Shutdown;
use crate::state::{unix_ms, AppState, ServedState, StateTarget};

/// Pause between rounds over all supporters when none gave a usable State.
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub async fn run(state: Arc<AppState>, mut shutdown: Shutdown) {
    let mut target_rx = state.state_target.subscribe();
    loop {
        let target = *target_rx.borrow_and_update();
        if let Some(target) = target {
            let served = state.served_state();
            let have = served.is_some_and(|s| {
                s.slot == target.finalized.slot
                    && (target.finalized.root.is_none() || s.root == target.finalized.root)
            });
            if !have {
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = fetch_until_done(&state, target, &mut target_rx) => {}
                }
            }
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            changed = target_rx.changed() => if changed.is_err() { return },
        }
    }
}

/// Tries the supporters in turn until one gives a State for `target`, or the
/// target changes (a newer agreement makes this one moot).
async fn fetch_until_done(
    state: &AppState,
    target: StateTarget,
    target_rx: &mut tokio::sync::watch::Receiver<Option<StateTarget>>,
) {
    loop {
        for i in state.supporters() {
            if target_rx.has_changed().unwrap_or(true) {
                return;
            }
            if try_one(state, target, i).await {
                return;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY_AFTER) => {}
            _ = target_rx.changed() => return,
        }
    }
}

async fn try_one(state: &AppState, target: StateTarget, i: usize) -> bool {
    let upstream = &state.upstreams[i].config;
    // One request in flight per upstream: wait for its poll to end.
    let _turn = state.upstreams[i].turn.lock().await;
    let requester = state.requester(i);
    state.metrics.state_fetches.inc();
    // A state is larger than a poll's JSON: allow it the total deadline
    // several times over, still bounded, and within half the stale window:
    // this upstream's polls wait for the download, and its vote must not go
    // stale meanwhile.
    let deadline = Instant::now() + download_budget(state.config.timeout, state.config.stale);
    let result = requester
        .fetch_state(state.config.max_state_bytes, deadline)
        .await;
    let (bytes, header) = match result {
        Ok(ok) => ok,
        Err(e) => {
            state.metrics.state_fetch_failures.inc();
            tracing::warn!(upstream = %upstream.name, error = %e, "finalized state download failed");
            return false;
        }
    };
    if header.slot != target.finalized.slot {
        state.metrics.state_fetch_failures.inc();
        tracing::info!(upstream = %upstream.name, state_slot = header.slot, agreed_slot = target.finalized.slot, "state does not match the agreed checkpoint (upstream moved on); trying the next");
        return false;
    }
    let etag = match target.finalized.root {
        Some(root) => format!("\"{root}\""),
        None => format!("\"slot-{}-{:016x}\"", header.slot, fnv1a(&bytes)),
    };
    tracing::info!(upstream = %upstream.name, slot = header.slot, bytes = bytes.len(), "finalized state cached");
    state.install_state(ServedState {
        slot: header.slot,
        root: target.finalized.root,
        bytes,
        etag,
        fetched_from: upstream.name.clone(),
        fetched_at_ms: unix_ms(),
    });
    true
}

fn download_budget(timeout: Duration, stale: Duration) -> Duration {
    timeout.saturating_mul(4).min(stale / 2).max(timeout)
}

/// FNV-1a: a stable ETag for a State served by slot alone (no agreed root).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}
