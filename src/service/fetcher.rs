//! The fetcher: the served finalized pair.
//!
//! When the agreed finalized checkpoint changes, its SignedBlock and State
//! are downloaded once, from one upstream that reports exactly that
//! checkpoint (the next on failure), and installed only if
//! `verify::verify_pair` proves them against the agreed root: the block's
//! hash tree root is the agreed root and the State's is the block's
//! state_root. A refused pair is named (metric, JSON, log) and nothing
//! unverified is served. Polls never download whole states; this task is
//! the only one that does, one download at a time, holding the upstream's
//! `request_lock`.
//!
//! The fetcher runs on the main runtime (proving a State is CPU-bound), but
//! its requests run on the polling thread, beside the connections they use
//! (see [`on_polling_thread`]).
//!
//! A checkpoint agreed by slot alone (every supporter a legacy upstream
//! without fork_choice, so no root is known) has nothing to verify against:
//! its State is served as the Zig leanpoint served it, marked unverified.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::time::Instant;

use crate::agreement::Finalized;
use crate::lean::api::{Root, StateHeader};
use crate::served::pair::ServedState;
use crate::served::verify::{verify_pair, VerifiedPair, VerifyError};
use crate::service::{lock, AppState};
use crate::shutdown::Shutdown;
use crate::task::AbortOnDrop;
use crate::upstream::{is_not_found, Endpoint, ErrorKind, UpstreamError};

mod pending;
use pending::{keep_newer, Pending};

/// The refusal kind of a download that did not complete (a timeout, a
/// reset, a cap): the one that sends a source to the back of the order.
const FETCH_FAILED: &str = "fetch_failed";

/// Pause after the first round over all sources that gave no usable pair;
/// doubled after each further round, up to the poll interval.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Fetches the pair of every new agreed checkpoint until shutdown; its
/// requests go to upstreams from `polling` (the polling thread's runtime).
pub async fn run(state: Arc<AppState>, polling: Handle, mut shutdown: Shutdown) {
    let mut target_rx = state.fetch_target.subscribe();
    let mut pending: Pending = Vec::new();
    loop {
        let target = *target_rx.borrow_and_update();
        if let Some(target) = target {
            let served = state.served_state();
            let have = served.is_some_and(|s| s.is_pair_of(target));
            if !have && !install_pending(&state, target, &mut pending) {
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = fetch_until_done(&state, &polling, target, &mut target_rx, &mut pending) => {}
                }
                // Done, or the target changed while it waited (and its
                // `changed()` marked the new target seen): look again
                // rather than wait for a change that already came.
                continue;
            }
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            changed = target_rx.changed() => if changed.is_err() { return },
        }
    }
}

/// Tries the sources in turn until one gives a verified pair for `target`,
/// or the target changes (a newer agreement makes this one moot).
async fn fetch_until_done(
    state: &Arc<AppState>,
    polling: &Handle,
    target: Finalized,
    target_rx: &mut tokio::sync::watch::Receiver<Option<Finalized>>,
    pending: &mut Pending,
) {
    let mut pause = RETRY_AFTER;
    // Kept over rounds: a block-less upstream's State is downloaded once per
    // target, not once per round.
    let mut spare = Spare::default();
    loop {
        for i in sources(state, target) {
            if target_rx.has_changed().unwrap_or(true) {
                return;
            }
            match try_one(state, polling, target, i, &mut spare, pending).await {
                Tried::Installed => return,
                // Its lock is released: its poll can start now. The pollers
                // would otherwise report the newer checkpoint only at their
                // next tick, a whole poll interval during which nothing
                // newer is served while the proven pair waits in `pending`.
                Tried::MovedOn => state.upstreams[i].poll_soon.notify_one(),
                Tried::Failed => {}
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = target_rx.changed() => return,
        }
        pause = pause
            .saturating_mul(2)
            .min(state.config.poll.max(RETRY_AFTER));
    }
}

/// Supporters of the agreement that report exactly the agreed checkpoint:
/// the finalized routes of one already past it serve a newer pair. Those
/// whose last download failed (a timeout, a reset, a cap) go last: a source
/// that stalls would otherwise cost every new checkpoint its whole download
/// budget before the next source is asked. It is tried again when the others
/// give no pair, and its failure is cleared when it sends one.
fn sources(state: &AppState, target: Finalized) -> Vec<usize> {
    let mut sources: Vec<(usize, bool)> = state
        .supporters()
        .into_iter()
        .filter_map(|i| {
            let v = lock(&state.upstreams[i].view);
            let reports = v.observation.as_ref().is_some_and(|o| {
                o.finalized_slot == target.slot
                    && (o.finalized_root.is_none() || o.finalized_root == target.root)
            });
            let failed = v
                .pair_error
                .as_ref()
                .is_some_and(|(k, _)| *k == FETCH_FAILED);
            reports.then_some((i, failed))
        })
        .collect();
    sources.sort_by_key(|&(_, failed)| failed);
    sources.into_iter().map(|(i, _)| i).collect()
}

/// Halves of a pair kept from one source for the next: a block whose root
/// matched when its upstream's State did not, and the State of a legacy
/// upstream without the block route. Either is served only as part of a
/// pair that `verify_pair` proves.
#[derive(Default)]
struct Spare {
    block: Option<Bytes>,
    state: Option<(Bytes, usize)>,
}

/// How one source's attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tried {
    Installed,
    /// The source's finalized checkpoint is past the agreed one (its newer
    /// pair may be kept in `pending`).
    MovedOn,
    Failed,
}

/// Downloads from upstream `i` and installs a pair if it is proven.
async fn try_one(
    state: &Arc<AppState>,
    polling: &Handle,
    target: Finalized,
    i: usize,
    spare: &mut Spare,
    pending: &mut Pending,
) -> Tried {
    // One request in flight per upstream: wait for its poll to end.
    let _request = state.upstreams[i].request_lock.lock().await;
    let block = match target.root {
        None => None,
        Some(root) => {
            let Some(block) = block_from(state, polling, i, spare).await else {
                return Tried::Failed;
            };
            if install_spare_state(state, target, root, &block, spare) {
                return Tried::Installed;
            }
            Some(block)
        }
    };
    let (bytes, header) = match download_state(state, polling, i).await {
        Ok(ok) => ok,
        Err(e) => {
            refuse(state, i, FETCH_FAILED, e.to_string());
            return Tried::Failed;
        }
    };
    match (target.root, block) {
        (Some(root), Some(block)) => prove(state, target, i, (root, block), bytes, spare, pending),
        _ => install_by_slot(state, target, i, header.slot, bytes),
    }
}

/// The finalized block from upstream `i`, or the one kept from another
/// source when `i` has no block route. None when this source is done: its
/// State (of a block-less upstream) is kept for a block from another.
async fn block_from(
    state: &Arc<AppState>,
    polling: &Handle,
    i: usize,
    spare: &mut Spare,
) -> Option<Bytes> {
    let cap = state.config.max_state_bytes;
    let deadline = Instant::now() + state.config.timeout;
    let download = on_polling_thread(
        polling,
        state,
        Endpoint::BlockFinalized,
        move |s| async move { s.requester(i).fetch_block(cap, deadline).await },
    );
    match download.await {
        Ok(b) => Some(b),
        Err(e) if is_not_found(&e) && spare.block.is_some() => spare.block.clone(),
        Err(e) if is_not_found(&e) => {
            // Its State may still be proven by another source's block.
            if spare.state.is_none() {
                match download_state(state, polling, i).await {
                    Ok((bytes, _)) => spare.state = Some((bytes, i)),
                    Err(e) => refuse(state, i, FETCH_FAILED, e.to_string()),
                }
            }
            refuse(state, i, "block_unavailable", "serves no /lean/v0/blocks/finalized (404); its State is served only with a block from another source".into());
            None
        }
        Err(e) => {
            refuse(state, i, FETCH_FAILED, e.to_string());
            None
        }
    }
}

/// Downloads upstream `i`'s finalized State (counted in
/// `leanpoint_state_fetches_total`). A State is larger than a poll's JSON:
/// it gets the total deadline several times over, still bounded, and within
/// half the stale window: this upstream's polls wait for the download, and
/// its vote must not go stale meanwhile.
async fn download_state(
    state: &Arc<AppState>,
    polling: &Handle,
    i: usize,
) -> Result<(Bytes, StateHeader), UpstreamError> {
    state.metrics.state_fetches.inc();
    let deadline = Instant::now() + download_budget(state.config.timeout, state.config.stale);
    let cap = state.config.max_state_bytes;
    on_polling_thread(
        polling,
        state,
        Endpoint::StateFinalized,
        move |s| async move { s.requester(i).fetch_state(cap, deadline).await },
    )
    .await
}

/// Runs one request to an upstream on the polling thread and waits for it.
///
/// A plain-HTTP upstream's kept connection is back in its channel before
/// the poll releases the lock, so the download finds it wherever it runs.
/// An https upstream's is reqwest's: made by the poller, so its connection
/// task runs on that thread, and so does the task hyper spawns to put a
/// finished request's connection back in the pool. A download sent from
/// this runtime the moment the poll released the upstream's lock could
/// check the pool before that task ran, find nothing idle and open a second
/// socket to the upstream. Spawned there, the download runs after what the
/// thread already has queued, the connection's return among it. Dropping
/// the returned future aborts the request, which closes its socket.
async fn on_polling_thread<T, F, Fut>(
    polling: &Handle,
    state: &Arc<AppState>,
    endpoint: Endpoint,
    request: F,
) -> Result<T, UpstreamError>
where
    T: Send + 'static,
    F: FnOnce(Arc<AppState>) -> Fut,
    Fut: std::future::Future<Output = Result<T, UpstreamError>> + Send + 'static,
{
    let task = AbortOnDrop::new(polling.spawn(request(state.clone())));
    task.join().await.unwrap_or_else(|e| {
        Err(UpstreamError {
            kind: ErrorKind::Closed,
            endpoint,
            message: format!("request cancelled: the polling thread stopped ({e})"),
            status: None,
        })
    })
}

/// Installs the kept State of a block-less upstream if `block` proves it.
fn install_spare_state(
    state: &AppState,
    target: Finalized,
    root: Root,
    block: &Bytes,
    spare: &Spare,
) -> bool {
    let Some((bytes, from)) = spare.state.clone() else {
        return false;
    };
    let Ok(pair) = verify_pair(target.slot, root, block.clone(), bytes) else {
        return false;
    };
    if descends_from_served(state, &pair.state, target.slot).is_err() {
        return false;
    }
    install_verified(state, from, target, pair);
    true
}

/// Installs the State of a checkpoint agreed by slot alone: there is no
/// root to prove it against, so its slot is all that is checked.
fn install_by_slot(
    state: &AppState,
    target: Finalized,
    i: usize,
    slot: u64,
    bytes: Bytes,
) -> Tried {
    if slot != target.slot {
        refuse(
            state,
            i,
            "state_slot_mismatch",
            format!(
                "state slot {slot} is not the agreed slot {} (upstream moved on)",
                target.slot
            ),
        );
        return if slot > target.slot {
            Tried::MovedOn
        } else {
            Tried::Failed
        };
    }
    let upstream = &state.upstreams[i].config;
    tracing::info!(upstream = %upstream.name, slot, bytes = bytes.len(), "finalized state cached by slot alone (unverified: no root agreed)");
    let etag = format!("\"slot-{slot}-{:016x}\"", fnv1a(&bytes));
    install(state, i, target, bytes, None, None, etag);
    Tried::Installed
}

/// Proves (block, State) from upstream `i` against the agreed root and
/// installs the pair; otherwise names why not, and keeps what a later
/// source may use (a newer proven pair, a block whose root matched).
fn prove(
    state: &AppState,
    target: Finalized,
    i: usize,
    (root, block): (Root, Bytes),
    bytes: Bytes,
    spare: &mut Spare,
    pending: &mut Pending,
) -> Tried {
    let pair = match verify_pair(target.slot, root, block.clone(), bytes.clone()) {
        Ok(p) => p,
        Err(VerifyError::BlockRootMismatch { .. })
            if keep_newer(target, &block, bytes, i, pending) =>
        {
            refuse(state, i, "moved_on", "its finalized checkpoint moved past the agreed one; its proven pair is kept for when the agreement reaches it, and it is polled again now".into());
            return Tried::MovedOn;
        }
        Err(e) => {
            if e.kind().starts_with("state")
                || matches!(e.kind(), "header_mismatch" | "validators_invalid")
            {
                spare.block = Some(block);
            }
            refuse(state, i, e.kind(), e.to_string());
            return Tried::Failed;
        }
    };
    if let Err(why) = descends_from_served(state, &pair.state, target.slot) {
        refuse(state, i, "not_descendant", why);
        return Tried::Failed;
    }
    let upstream = &state.upstreams[i].config;
    tracing::info!(upstream = %upstream.name, slot = pair.slot, block_root = %pair.block_root, state_root = %pair.state_root, state_bytes = pair.state.len(), block_bytes = pair.block.len(), "verified finalized pair cached");
    install_verified(state, i, target, pair);
    Tried::Installed
}

/// Installs a pair downloaded ahead of the agreement (`pending`) if it is
/// the agreed checkpoint's and descends from what is served.
fn install_pending(state: &AppState, target: Finalized, pending: &mut Pending) -> bool {
    let Some((pair, i)) = pending::take(target, pending) else {
        return false;
    };
    if descends_from_served(state, &pair.state, pair.slot).is_err() {
        return false;
    }
    tracing::info!(upstream = %state.upstreams[i].config.name, slot = pair.slot, block_root = %pair.block_root, "verified finalized pair cached (downloaded ahead of the agreement)");
    install_verified(state, i, target, pair);
    true
}

/// Honest progress descends from what is served: the new State's own
/// history holds the served root at the served slot.
fn descends_from_served(state: &AppState, new_state: &[u8], slot: u64) -> Result<(), String> {
    let Some(served) = state.served_state() else {
        return Ok(());
    };
    let Some(root) = served.root.filter(|_| served.slot < slot) else {
        return Ok(());
    };
    match crate::agreement::ancestry::history_entry(new_state, served.slot) {
        Some(r) if r == root => Ok(()),
        got => Err(format!(
            "its history holds {} at the served slot {}, not the served root {root}",
            got.map_or("nothing".to_string(), |r: Root| r.to_string()),
            served.slot
        )),
    }
}

/// Installs a verified pair for `target`. Its ETag is the block root (which
/// `verify_pair` proved to be the agreed root), so every replica serving this
/// checkpoint answers conditional and range requests alike.
fn install_verified(state: &AppState, i: usize, target: Finalized, pair: VerifiedPair) {
    let etag = format!("\"{}\"", pair.block_root);
    install(
        state,
        i,
        target,
        pair.state,
        Some(pair.block),
        Some(pair.state_root),
        etag,
    );
}

fn install(
    state: &AppState,
    i: usize,
    target: Finalized,
    bytes: Bytes,
    block: Option<Bytes>,
    state_root: Option<Root>,
    etag: String,
) {
    lock(&state.upstreams[i].view).pair_error = None;
    state.install_state(ServedState {
        slot: target.slot,
        root: target.root,
        genesis_time: crate::agreement::ancestry::state_genesis_time(&bytes).unwrap_or(0),
        bytes,
        etag,
        block,
        state_root,
        fetched_from: state.upstreams[i].config.name.clone(),
    });
}

/// Names a refused pair (or part of one) in the log, the metrics and the
/// upstream's JSON.
fn refuse(state: &AppState, i: usize, kind: &'static str, message: String) {
    let name = &state.upstreams[i].config.name;
    state.metrics.state_fetch_failures.inc();
    state.metrics.pair.failure(name, kind);
    tracing::warn!(upstream = %name, kind, error = %message, "finalized pair refused; trying the next source");
    lock(&state.upstreams[i].view).pair_error = Some((kind, message));
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

#[cfg(test)]
#[path = "fetcher_tests.rs"]
mod tests;
