//! What one decision knows (the votes, the context) and the relation at its
//! core: who supports a candidate checkpoint, exactly or with evidence.
//! Shared by the decision and by the standings, so neither imports the
//! other.

use std::collections::HashMap;
use std::sync::Arc;

use crate::agreement::ancestry::{own_relation, Evidence, Relation};
use crate::lean::api::{Checkpoint, Root};

/// One upstream's fresh observation, as far as agreement is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    pub finalized_slot: u64,
    /// None for the fallback source, which agrees by slot alone.
    pub finalized_root: Option<Root>,
    pub justified: Option<Checkpoint>,
    pub evidence: Arc<Evidence>,
}

/// What the decision may know besides the votes.
pub struct Context<'a> {
    /// The checkpoint already served, if any.
    pub served: Option<(u64, Option<Root>)>,
    /// The served chain's block at a slot at or below the served slot (from
    /// the served, verified State's `historical_block_hashes`).
    pub chain: &'a dyn Fn(u64) -> Option<Root>,
    /// Finalized slots above this are past the chain's current slot: impossible.
    pub max_slot: u64,
    /// Genesis time of the served (verified) State: an upstream whose own
    /// State has another one is on another chain.
    pub genesis_time: Option<u64>,
}

impl Context<'_> {
    /// Nothing served, no chain known, no slot impossible.
    pub fn bare() -> Context<'static> {
        Context {
            served: None,
            chain: &|_| None,
            max_slot: u64::MAX,
            genesis_time: None,
        }
    }
}

/// Fork-choice nodes -> the upstreams whose tree holds them.
pub(super) type Owners = HashMap<(u64, Root), Vec<usize>>;

/// The owners of every node that is some fresh vote's finalized checkpoint:
/// the only nodes `support` looks up (is an upstream's finalized block in a
/// supporter's tree?). Indexing every node of every tree instead cost the
/// decider a hash insert per node (about ten thousand at 1000 upstreams, 20
/// decisions a second); upstreams share a handful of finalized checkpoints,
/// so a node is first compared by slot and hashed only on a slot match.
pub(super) fn tree_owners(fresh: &[(usize, &Vote)]) -> Owners {
    let mut owners: Owners = fresh
        .iter()
        .filter_map(|(_, v)| {
            v.finalized_root
                .map(|r| ((v.finalized_slot, r), Vec::new()))
        })
        .collect();
    let mut slots: Vec<u64> = owners.keys().map(|(slot, _)| *slot).collect();
    slots.sort_unstable();
    slots.dedup();
    for (i, v) in fresh {
        for node in v.evidence.tree.iter() {
            if slots.binary_search(&node.0).is_ok() {
                if let Some(holders) = owners.get_mut(node) {
                    holders.push(*i);
                }
            }
        }
    }
    owners
}

/// Who supports one candidate, and who is past it without evidence.
pub(super) struct Support {
    pub(super) exact: usize,
    pub(super) supporters: Vec<usize>,
    pub(super) unknown_past: Vec<usize>,
}

pub(super) fn support(
    fresh: &[(usize, &Vote)],
    n: usize,
    owners: &Owners,
    slot: u64,
    root: Option<Root>,
    ctx: &Context,
) -> Support {
    let mut mask = vec![false; n];
    let mut exact = 0;
    let mut pending: Vec<(usize, &Vote)> = Vec::new();
    for &(i, v) in fresh {
        let rel = match root {
            _ if other_genesis(ctx, v) => Relation::Conflicting,
            // Slot-only candidate: the fallback rule, by slot alone.
            None if v.finalized_slot == slot && v.finalized_root.is_none() => Relation::Exact,
            None if v.finalized_slot > slot => Relation::Past,
            None => Relation::Unknown,
            Some(r) => own_relation(
                (v.finalized_slot, v.finalized_root),
                &v.evidence,
                slot,
                r,
                &|s| served_chain_at(ctx, s, slot, r),
            ),
        };
        match rel {
            Relation::Exact => {
                exact += 1;
                mask[i] = true;
            }
            Relation::Past => mask[i] = true,
            Relation::Unknown if v.finalized_slot > slot => pending.push((i, v)),
            _ => {}
        }
    }
    // An upstream whose finalized block is in a supporter's tree descends
    // from the candidate; it may in turn vouch for others through its tree.
    let mut progress = true;
    while progress && root.is_some() {
        progress = false;
        pending.retain(|(i, v)| {
            let vouched = v.finalized_root.is_some_and(|r| {
                owners
                    .get(&(v.finalized_slot, r))
                    .is_some_and(|ws| ws.iter().any(|w| mask[*w]))
            });
            if vouched {
                mask[*i] = true;
                progress = true;
            }
            !vouched
        });
    }
    Support {
        exact,
        supporters: (0..n).filter(|i| mask[*i]).collect(),
        unknown_past: pending.into_iter().map(|(i, _)| i).collect(),
    }
}

/// The served chain's root at `s`, usable as evidence about candidate
/// (slot, root) only when the candidate is itself on that chain.
pub(super) fn served_chain_at(ctx: &Context, s: u64, slot: u64, root: Root) -> Option<Root> {
    let (served_slot, served_root) = ctx.served?;
    let on_chain = (slot == served_slot && served_root == Some(root))
        || (slot < served_slot && (ctx.chain)(slot) == Some(root));
    if on_chain && s <= slot {
        (ctx.chain)(s).or((s == served_slot).then_some(served_root).flatten())
    } else {
        None
    }
}

/// Its own State names another genesis time than the served one.
pub(super) fn other_genesis(ctx: &Context, v: &Vote) -> bool {
    matches!((ctx.genesis_time, v.evidence.genesis_time), (Some(a), Some(b)) if a != b)
}
