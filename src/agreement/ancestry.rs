//! Ancestry evidence: what leanpoint knows about which blocks an upstream's
//! chain holds. Pure data and pure rules; the poller gathers it (fork-choice
//! nodes, the upstream's own earlier finalized checkpoints, entries of its
//! State's `historical_block_hashes` read as a bounded prefix) and
//! `decide` uses it to count an upstream for a checkpoint only with
//! evidence.

use crate::lean::api::Root;

/// Entries of `held` kept per upstream: enough for the candidates of a few
/// finality changes, bounded whatever the upstream sends.
pub const MAX_HELD: usize = 64;

/// Evidence about one upstream's chain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    /// Blocks its chain holds at or below its finalized slot, as (slot,
    /// root): its own earlier finalized checkpoints (a node's finality never
    /// reverts) and entries of its State's `historical_block_hashes` (the
    /// zero root where the slot was empty).
    pub held: Vec<(u64, Root)>,
    /// Its fork-choice nodes (slot, root). Every node descends from its
    /// finalized block, so a root found here is on a chain through it.
    pub tree: Vec<(u64, Root)>,
    /// Genesis time written in its State, when a prefix of it was read.
    pub genesis_time: Option<u64>,
}

impl Evidence {
    /// The root its chain holds at `slot`, if known (the newest entry wins).
    pub fn held_at(&self, slot: u64) -> Option<Root> {
        self.held
            .iter()
            .rev()
            .find(|(s, _)| *s == slot)
            .map(|(_, r)| *r)
    }

    pub fn in_tree(&self, slot: u64, root: Root) -> bool {
        self.tree.contains(&(slot, root))
    }

    /// Records that its chain holds `root` at `slot`, replacing what was
    /// known for that slot and keeping at most [`MAX_HELD`] entries (the
    /// lowest slots go first: candidates are recent).
    pub fn hold(&mut self, slot: u64, root: Root) {
        self.held.retain(|(s, _)| *s != slot);
        self.held.push((slot, root));
        if self.held.len() > MAX_HELD {
            self.held.sort_by_key(|(s, _)| *s);
            let cut = self.held.len() - MAX_HELD;
            self.held.drain(..cut);
        }
    }

    /// Forgets every held entry above `slot`: an upstream whose finality went
    /// backwards (restart, resync, another chain) vouches for nothing it said
    /// about those slots before.
    pub fn forget_above(&mut self, slot: u64) {
        self.held.retain(|(s, _)| *s <= slot);
    }
}

/// Bytes of a State prefix that hold entry `slot` of its
/// historical_block_hashes (the fixed part, then 32 bytes per slot).
pub fn history_prefix_len(slot: u64) -> usize {
    let entries = usize::try_from(slot.saturating_add(1)).unwrap_or(usize::MAX);
    crate::lean::api::STATE_FIXED_LEN.saturating_add(entries.saturating_mul(32))
}

pub use crate::lean::ssz::state_genesis_time;

/// Entry `slot` of a State's historical_block_hashes, read from a prefix of
/// it; None where the State or the prefix holds no such entry.
pub fn history_entry(state: &[u8], slot: u64) -> Option<Root> {
    match crate::lean::ssz::state_historical_block_hash(state, slot) {
        Ok(crate::lean::ssz::HistoricalHash::Root(r)) => Some(r),
        _ => None,
    }
}

/// How one upstream's chain stands to a checkpoint (slot s, root r).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    /// It reports exactly that checkpoint as finalized (or, slot-only, that slot).
    Exact,
    /// Finalized past s, with evidence that its chain holds r at s.
    Past,
    /// Finalized before s, with evidence that it is on the chain through r.
    Behind,
    /// Evidence that its chain does not hold r at s.
    Conflicting,
    /// No evidence either way.
    Unknown,
}

/// What one upstream's own evidence says about checkpoint (slot, root), and
/// what `chain` (the served checkpoint's verified history, where known) says.
/// Evidence that needs other upstreams (their trees) is added by the caller.
pub fn own_relation(
    finalized: (u64, Option<Root>),
    evidence: &Evidence,
    slot: u64,
    root: Root,
    chain: &dyn Fn(u64) -> Option<Root>,
) -> Relation {
    let (f_slot, f_root) = finalized;
    use std::cmp::Ordering::*;
    match f_slot.cmp(&slot) {
        Equal => match f_root {
            None => Relation::Exact,
            Some(r) if r == root => Relation::Exact,
            Some(_) => Relation::Conflicting,
        },
        Greater => match evidence.held_at(slot) {
            Some(r) if r == root => Relation::Past,
            Some(_) => Relation::Conflicting,
            None => Relation::Unknown,
        },
        Less => {
            if evidence.in_tree(slot, root) {
                return Relation::Behind;
            }
            match (f_root, chain(f_slot)) {
                (Some(mine), Some(theirs)) if mine == theirs => Relation::Behind,
                (Some(_), Some(_)) => Relation::Conflicting,
                _ => Relation::Unknown,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(b: u8) -> Root {
        Root([b; 32])
    }

    #[test]
    fn own_relation_table() {
        let none = |_: u64| None;
        let ev = Evidence {
            held: vec![(5, r(5)), (3, r(3))],
            tree: vec![(9, r(9)), (10, r(10))],
            genesis_time: None,
        };
        for (fin, slot, root, want) in [
            ((9, Some(r(9))), 9, r(9), Relation::Exact),
            ((9, None), 9, r(1), Relation::Exact),
            ((9, Some(r(9))), 9, r(8), Relation::Conflicting),
            ((9, Some(r(9))), 5, r(5), Relation::Past),
            ((9, Some(r(9))), 5, r(6), Relation::Conflicting),
            ((9, Some(r(9))), 4, r(4), Relation::Unknown),
            ((9, Some(r(9))), 10, r(10), Relation::Behind),
            ((9, Some(r(9))), 11, r(11), Relation::Unknown),
        ] {
            assert_eq!(
                own_relation(fin, &ev, slot, root, &none),
                want,
                "{fin:?} {slot}"
            );
        }
        let chain = |s: u64| (s == 9).then_some(r(9));
        let bare = Evidence::default();
        assert_eq!(
            own_relation((9, Some(r(9))), &bare, 12, r(12), &chain),
            Relation::Behind
        );
        assert_eq!(
            own_relation((9, Some(r(7))), &bare, 12, r(12), &chain),
            Relation::Conflicting
        );
    }

    fn fixture(folder: &str) -> Vec<u8> {
        crate::lean::api::tests::fixture(folder, "states_finalized.ssz")
    }

    #[test]
    fn history_entries_of_the_fixture_states() {
        let chains: serde_json::Value =
            serde_json::from_slice(&crate::lean::api::tests::fixture("", "chains.json"))
                .expect("chains.json");
        let root = |chain: &str, key: &str| {
            Root::from_hex(chains[chain][key].as_str().expect("root")).expect("hex")
        };
        let fork = fixture("fork");
        let adv = fixture("advanced");
        assert_eq!(history_entry(&fork, 5), Some(root("fork", "b5")));
        assert_eq!(history_entry(&fork, 5), Some(root("advanced", "b5")));
        assert_eq!(history_entry(&adv, 8), Some(root("advanced", "b8")));
        assert_eq!(history_entry(&fork, 8), Some(root("fork", "b8")));
        assert_eq!(history_entry(&adv, 0), Some(root("advanced", "genesis")));
        assert_eq!(history_entry(&adv, 9), None, "past the list");
        // A prefix exactly long enough, and one byte short.
        let n = history_prefix_len(5);
        assert_eq!(history_entry(&fork[..n], 5), Some(root("fork", "b5")));
        assert_eq!(history_entry(&fork[..n - 1], 5), None);
        assert_eq!(state_genesis_time(&fixture("genesis")), Some(1767225600));
        assert_eq!(history_entry(b"short", 0), None);
    }

    #[test]
    fn held_is_bounded_and_newest_wins() {
        let mut ev = Evidence::default();
        for s in 0..200u64 {
            ev.hold(s, r(1));
        }
        assert_eq!(ev.held.len(), MAX_HELD);
        assert_eq!(ev.held_at(199), Some(r(1)));
        assert_eq!(ev.held_at(0), None);
        ev.hold(199, r(2));
        assert_eq!(ev.held_at(199), Some(r(2)));
        ev.forget_above(150);
        assert_eq!(ev.held_at(199), None);
        assert_eq!(ev.held_at(150), Some(r(1)));
    }
}
