//! The one advancing chain every simulated node serves from.
//!
//! A slot passes every `slot` of wall time; the head is the current slot,
//! justified trails it by 2 and finalized by 3, the steady state of 3SF-mini
//! with every block justifying its grandparent. Roots are a deterministic
//! hash of (chain id, branch, slot), so nodes on the same branch serve the
//! very same bytes, and a fork branch differs from its first slot on.
//!
//! Bodies are encoded once per (branch, head slot) and shared as `Bytes`:
//! a thousand nodes polled every second cost a hash-map lookup each, not an
//! encoding each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::encode;
use crate::lean_api::{Checkpoint, Root};

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

/// Roots of one branch of one chain.
#[derive(Clone, Copy, Debug)]
pub struct History<'a> {
    pub params: &'a ChainParams,
    pub branch: Branch,
}

const TAG_BLOCK: u64 = 1;
const TAG_FORK: u64 = 2;

impl History<'_> {
    /// The block root at `slot`. Slot 0 (genesis) is shared by every branch.
    pub fn root(&self, slot: u64) -> Root {
        match self.branch {
            Branch::Fork { from } if slot >= from && slot > 0 => {
                Root(hash32(&[self.params.chain_id, TAG_FORK, from, slot]))
            }
            _ => Root(hash32(&[self.params.chain_id, TAG_BLOCK, slot])),
        }
    }

    /// The checkpoint at `slot` on this branch.
    pub fn checkpoint(&self, slot: u64) -> Checkpoint {
        Checkpoint {
            slot,
            root: self.root(slot),
        }
    }

    /// A root derived from this branch's block at `slot` for `what` (state
    /// root, body root): distinct per branch because the block is.
    pub fn derived(&self, what: u64, slot: u64) -> Root {
        let block = self.root(slot);
        let mut seed = [0u64; 4];
        for (i, w) in block.0.chunks_exact(8).enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            seed[i] = u64::from_le_bytes(b);
        }
        Root(hash32(&[what, seed[0], seed[1], seed[2], seed[3]]))
    }
}

/// Everything a healthy node on one branch serves while its head is `head`.
#[derive(Debug)]
pub struct Snapshot {
    pub head: u64,
    pub justified: Checkpoint,
    pub finalized: Checkpoint,
    pub fork_choice: Bytes,
    pub justified_json: Bytes,
    pub state: Bytes,
    pub block: Bytes,
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
    cache: Mutex<HashMap<(Branch, u64), Cached>>,
}

impl Chain {
    pub fn new(params: ChainParams) -> Chain {
        Chain {
            params,
            started: Instant::now(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    /// The head slot of the chain now.
    pub fn current_slot(&self) -> u64 {
        let slot_ns = self.params.slot.as_nanos().max(1);
        let passed = self.started.elapsed().as_nanos() / slot_ns;
        self.params
            .start_slot
            .saturating_add(passed.min(u64::MAX as u128) as u64)
    }

    pub fn history(&self, branch: Branch) -> History<'_> {
        History {
            params: &self.params,
            branch,
        }
    }

    /// The bodies of `branch` at head `head`, encoded at most once while in use.
    pub fn snapshot(&self, branch: Branch, head: u64) -> Arc<Snapshot> {
        let now = self.current_slot();
        // A poisoned lock only means another request panicked mid-insert;
        // the map itself is still a valid cache.
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.get_mut(&(branch, head)) {
            c.last_used = now;
            return c.snapshot.clone();
        }
        cache.retain(|_, c| c.last_used.saturating_add(2) >= now);
        let snapshot = Arc::new(encode_snapshot(&self.history(branch), head));
        cache.insert(
            (branch, head),
            Cached {
                snapshot: snapshot.clone(),
                last_used: now,
            },
        );
        snapshot
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
    }
}

/// SplitMix64's finaliser: a cheap, well-mixed 64-bit permutation.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A 256-bit value from a list of words: FNV-style absorption through
/// SplitMix64, then four SplitMix64 lanes. Not cryptographic; it only has to
/// be deterministic and collision-free in practice for a test chain.
pub fn hash32(parts: &[u64]) -> [u8; 32] {
    let mut out = [0u8; 32];
    fill(parts, &mut out);
    out
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
    fn branches_share_history_before_the_fork_only() {
        let p = params();
        let main = History {
            params: &p,
            branch: Branch::Main,
        };
        let fork = History {
            params: &p,
            branch: Branch::Fork { from: 6 },
        };
        assert_eq!(main.root(5), fork.root(5));
        assert_ne!(main.root(6), fork.root(6));
        assert_eq!(main.root(0), fork.root(0));
        assert_ne!(main.root(1), main.root(2));
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
        let fresh = encode_snapshot(&chain.history(Branch::Main), 12);
        assert_eq!(a.state, fresh.state);
        assert_eq!(a.fork_choice, fresh.fork_choice);
        assert_eq!(a.finalized.slot, 9);
    }
}
