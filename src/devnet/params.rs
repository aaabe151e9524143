//! The simulated chain's fixed shape: its parameters, its branches, the
//! justified and finalized slots of a head, and the deterministic bytes
//! roots are derived from. A leaf: the chain, its ledger and the encoders
//! all build on it.

use std::time::Duration;

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
    /// Pending justifications in every State (a root and a vote bit per
    /// validator each): how a benchmark makes a State of tens of MiB.
    pub justification_roots: u64,
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
            justification_roots: 0,
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
