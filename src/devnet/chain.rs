//! The one advancing chain every simulated node serves from.
//!
//! A slot passes every `slot` of wall time; the head is the current slot,
//! justified trails it by 2 and finalized by 3, the steady state of 3SF-mini
//! with every block justifying its grandparent. Blocks, states and their
//! hash tree roots come from the [`Ledger`], so nodes on the same branch
//! serve the very same bytes, and a fork branch differs from its first
//! block on.
//!
//! Bodies are encoded once per (branch, head slot) and shared as `Bytes`:
//! a thousand nodes polled every second cost a hash-map lookup each, not an
//! encoding each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;

use super::encode;
use super::ledger::{History, Ledger, LAST_SLOT};
pub use super::params::{finalized_slot, justified_slot, Branch, ChainParams};
use crate::lean::api::Checkpoint;

/// Everything a healthy node on one branch serves while its head is `head`.
#[derive(Debug)]
pub struct Snapshot {
    pub head: u64,
    pub justified: Checkpoint,
    pub finalized: Checkpoint,
    pub fork_choice: Bytes,
    pub justified_json: Bytes,
    /// The post-state of the finalized block.
    pub state: Bytes,
    /// The finalized block (SignedBlock, empty proof).
    pub block: Bytes,
    /// The finalized block without its attestations: same slot, parent and
    /// state_root, another root (the `block-mismatch` fault).
    pub other_block: Bytes,
}

struct Cached {
    snapshot: Arc<Snapshot>,
    /// The chain slot at the last lookup: entries unused for two slots go.
    last_used: u64,
}

/// The shared chain. Cheap to read from many tasks at once.
pub struct Chain {
    params: ChainParams,
    started: Instant,
    /// Never held together with `cache`.
    ledger: Mutex<Ledger>,
    cache: Mutex<HashMap<(Branch, u64), Cached>>,
}

/// A poisoned lock only means another request panicked mid-update; the
/// ledger and the cache only ever grow by whole entries, so they stay valid.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Chain {
    pub fn new(params: ChainParams) -> Chain {
        Chain {
            ledger: Mutex::new(Ledger::new(&params)),
            params,
            started: Instant::now(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The head slot of the chain now. The chain stops at [`LAST_SLOT`],
    /// where its State's history list is full.
    pub fn current_slot(&self) -> u64 {
        let slot_ns = self.params.slot.as_nanos().max(1);
        let passed = self.started.elapsed().as_nanos() / slot_ns;
        self.params
            .start_slot
            .saturating_add(passed.min(u64::MAX as u128) as u64)
            .min(LAST_SLOT)
    }

    /// Walks `branch` up to the current slot, so that requests after it
    /// cost a slot's roots at most. Seconds for 100000 slots: call it from a
    /// blocking thread.
    pub fn walk(&self, branch: Branch) {
        lock(&self.ledger).history(branch, self.current_slot());
    }

    /// The bodies of `branch` at head `head`, encoded once while in use
    /// (twice at worst, by two first requests racing). The cache lock is
    /// not held while encoding, so requests for bodies already encoded never
    /// wait for a walk or an encoding.
    pub fn snapshot(&self, branch: Branch, head: u64) -> Arc<Snapshot> {
        let now = self.current_slot();
        let head = head.min(now);
        if let Some(c) = lock(&self.cache).get_mut(&(branch, head)) {
            c.last_used = now;
            return c.snapshot.clone();
        }
        let snapshot = {
            let mut ledger = lock(&self.ledger);
            Arc::new(encode_snapshot(&ledger.history(branch, head), head))
        };
        let mut cache = lock(&self.cache);
        cache.retain(|_, c| c.last_used.saturating_add(2) >= now);
        let kept = cache.entry((branch, head)).or_insert(Cached {
            snapshot,
            last_used: now,
        });
        kept.snapshot.clone()
    }
}

/// Encodes every body of one (branch, head).
pub fn encode_snapshot(h: &History, head: u64) -> Snapshot {
    let justified = h.checkpoint(justified_slot(head));
    let finalized = h.checkpoint(finalized_slot(head));
    Snapshot {
        head,
        justified,
        finalized,
        fork_choice: encode::fork_choice_json(h, head),
        justified_json: encode::checkpoint_json(justified),
        state: encode::state_ssz(h, finalized.slot),
        block: encode::signed_block_ssz(h, finalized.slot),
        other_block: encode::mismatched_block_ssz(h, finalized.slot),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn params() -> ChainParams {
        ChainParams {
            chain_id: 7,
            validators: 4,
            slot: Duration::from_secs(3600),
            start_slot: 12,
            genesis_time: 0,
            justification_roots: 0,
        }
    }

    #[test]
    fn trailing_checkpoints() {
        assert_eq!((justified_slot(12), finalized_slot(12)), (10, 9));
        assert_eq!((justified_slot(1), finalized_slot(1)), (0, 0));
    }

    #[test]
    fn snapshots_are_shared_and_identical() {
        let chain = Chain::new(params());
        assert_eq!(chain.current_slot(), 12);
        let a = chain.snapshot(Branch::Main, 12);
        let b = chain.snapshot(Branch::Main, 12);
        assert!(Arc::ptr_eq(&a, &b));
        let mut ledger = Ledger::new(&params());
        let fresh = encode_snapshot(&ledger.history(Branch::Main, 12), 12);
        assert_eq!(a.state, fresh.state);
        assert_eq!(a.fork_choice, fresh.fork_choice);
        assert_eq!(a.finalized.slot, 9);
        assert_ne!(a.block, a.other_block);
    }

    #[test]
    fn the_chain_stops_where_its_history_is_full() {
        let chain = Chain::new(ChainParams {
            start_slot: u64::MAX,
            ..params()
        });
        assert_eq!(chain.current_slot(), LAST_SLOT);
    }
}
