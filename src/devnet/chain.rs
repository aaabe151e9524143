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
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::encode;
use super::ledger::{History, Ledger, LAST_SLOT};
use crate::lean::api::Checkpoint;

/// Which history a node follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Branch {
    Main,
    /// Same blocks as `Main` before slot `from`, different roots from it on.
    Fork {
        from: u64,
    },
}

/// Fixed parameters of a simulated chain.
#[derive(Clone, Debug)]
pub struct ChainParams {
    /// Seeds every root: two sims with different ids never agree.
    pub chain_id: u64,
    pub validators: u64,
    pub slot: Duration,
    /// The head slot when the sim starts (a devnet that has been running).
    pub start_slot: u64,
    /// Unix seconds of slot 0, written into the State's config.
    pub genesis_time: u64,
}

impl ChainParams {
    /// Parameters whose genesis lies `start_slot` slots before now.
    pub fn starting_now(chain_id: u64, validators: u64, slot: Duration, start_slot: u64) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let behind = slot.saturating_mul(start_slot.min(u32::MAX as u64) as u32);
        ChainParams {
            chain_id,
            validators,
            slot,
            start_slot,
            genesis_time: now.saturating_sub(behind.as_secs()),
        }
    }
}

/// The justified slot when `head` is the head: 3SF-mini justifies the
/// grandparent of each block in the steady state.
pub fn justified_slot(head: u64) -> u64 {
    head.saturating_sub(2)
}

/// The finalized slot when `head` is the head: the justified slot's parent,
/// finalized once its child is justified.
pub fn finalized_slot(head: u64) -> u64 {
    head.saturating_sub(3)
}

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

/// SplitMix64's finaliser: a cheap, well-mixed 64-bit permutation.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `out` with bytes derived from `parts` (any length).
pub fn fill(parts: &[u64], out: &mut [u8]) {
    let mut s = 0xcbf2_9ce4_8422_2325u64 ^ parts.len() as u64;
    for &p in parts {
        s = splitmix(s ^ p);
    }
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let lane = splitmix(s.wrapping_add((i as u64).wrapping_mul(0x632B_E59B_D9B4_E019)));
        chunk.copy_from_slice(&lane.to_le_bytes()[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ChainParams {
        ChainParams {
            chain_id: 7,
            validators: 4,
            slot: Duration::from_secs(3600),
            start_slot: 12,
            genesis_time: 0,
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
