//! The served finalized pair: the State and (when verified) its
//! SignedBlock, shared by every download without copying and installed as
//! one `Arc`, so the two change together.

use bytes::Bytes;

use crate::agreement::ancestry;
use crate::agreement::Finalized;
use crate::lean::api::Root;

#[derive(Debug)]
pub struct ServedState {
    pub slot: u64,
    pub root: Option<Root>,
    pub bytes: Bytes,
    pub etag: String,
    /// The finalized SignedBlock; None only for a State served by slot alone.
    pub block: Option<Bytes>,
    /// Hash tree root of the State (the block's state_root), when verified.
    pub state_root: Option<Root>,
    /// Genesis time written in the State.
    pub genesis_time: u64,
    /// The upstream it was downloaded from (its name: /status `served_from`).
    pub fetched_from: String,
}

impl ServedState {
    /// The served chain's block root at `slot` (below the served slot), from
    /// the State's own historical_block_hashes.
    pub fn history_at(&self, slot: u64) -> Option<Root> {
        if slot >= self.slot {
            return None;
        }
        ancestry::history_entry(&self.bytes, slot)
    }

    /// This is the pair of checkpoint `f`: its slot, and its root where `f`
    /// has one (a checkpoint agreed by slot alone has none to match).
    pub fn is_pair_of(&self, f: Finalized) -> bool {
        self.slot == f.slot && (f.root.is_none() || self.root == f.root)
    }
}
