//! Standings: how each upstream stands to the agreed (else the served)
//! checkpoint, and how many contradict the served one. Pure, like the rest
//! of `agreement`.

use super::support::{other_genesis, served_chain_at, support, Context, Owners, Vote};
use crate::agreement::ancestry::{own_relation, Relation};
use crate::lean::api::Root;

/// How an upstream stands to the agreed checkpoint (to the served one while
/// nothing is agreed).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Standing {
    /// Reports the agreed checkpoint itself.
    Agreeing,
    /// Finalized past it, with evidence its chain holds it: counted as support.
    Ahead,
    /// Finalized before it, with evidence it is on the agreed chain.
    Behind,
    /// Evidence that its chain does not hold it (or an impossible slot): never counted.
    Conflicting,
    /// Fresh, but no evidence either way (or nothing agreed or served yet).
    Unknown,
    /// No fresh observation: the last polls failed.
    Failing,
}

impl Standing {
    pub const ALL: [Standing; 6] = [
        Standing::Agreeing,
        Standing::Ahead,
        Standing::Behind,
        Standing::Conflicting,
        Standing::Unknown,
        Standing::Failing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Agreeing => "agreeing",
            Standing::Ahead => "ahead",
            Standing::Behind => "behind",
            Standing::Conflicting => "conflicting",
            Standing::Unknown => "unknown",
            Standing::Failing => "failing",
        }
    }

    /// Counted as support of the agreed checkpoint.
    pub fn supports(self) -> bool {
        matches!(self, Standing::Agreeing | Standing::Ahead)
    }
}

/// Every vote's standing to `reference` (the agreed, else the served checkpoint).
pub(super) fn standings(
    votes: &[Option<Vote>],
    fresh: &[(usize, &Vote)],
    owners: &Owners,
    reference: Option<(u64, Option<Root>)>,
    ctx: &Context,
    impossible: &[usize],
) -> Vec<Standing> {
    let n = votes.len();
    let mut out: Vec<Standing> = votes
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            None => Standing::Failing,
            Some(_) if impossible.contains(&i) => Standing::Conflicting,
            Some(_) => Standing::Unknown,
        })
        .collect();
    let Some((slot, root)) = reference else {
        return out;
    };
    let s = support(fresh, n, owners, slot, root, ctx);
    let mut mask = vec![false; n];
    for &i in &s.supporters {
        mask[i] = true;
    }
    for &(i, v) in fresh {
        out[i] = if mask[i] && v.finalized_slot == slot {
            Standing::Agreeing
        } else if mask[i] {
            Standing::Ahead
        } else if other_genesis(ctx, v) {
            Standing::Conflicting
        } else if let Some(r) = root {
            let rel = own_relation(
                (v.finalized_slot, v.finalized_root),
                &v.evidence,
                slot,
                r,
                &|x| served_chain_at(ctx, x, slot, r),
            );
            match rel {
                Relation::Behind => Standing::Behind,
                Relation::Conflicting => Standing::Conflicting,
                _ if v.finalized_slot < slot => behind_by_supporters(fresh, &mask, v),
                _ => Standing::Unknown,
            }
        } else {
            Standing::Unknown
        };
    }
    out
}

/// An upstream behind the reference, judged by what the supporters' chains
/// hold at its finalized slot.
fn behind_by_supporters(fresh: &[(usize, &Vote)], mask: &[bool], v: &Vote) -> Standing {
    let Some(mine) = v.finalized_root else {
        return Standing::Unknown;
    };
    let seen = fresh
        .iter()
        .filter(|(w, _)| mask[*w])
        .find_map(|(_, w)| w.evidence.held_at(v.finalized_slot));
    match seen {
        Some(r) if r == mine => Standing::Behind,
        Some(_) => Standing::Conflicting,
        None => Standing::Unknown,
    }
}

/// Fresh upstreams with evidence that their chain does not hold the served
/// checkpoint (same slot, other root; a history entry that differs; or a
/// finalized block the served State's history does not have).
pub(super) fn served_against(fresh: &[(usize, &Vote)], ctx: &Context, slot: u64) -> usize {
    let Some((_, Some(root))) = ctx.served else {
        return 0;
    };
    fresh
        .iter()
        .filter(|(_, v)| {
            own_relation(
                (v.finalized_slot, v.finalized_root),
                &v.evidence,
                slot,
                root,
                &|x| served_chain_at(ctx, x, slot, root),
            ) == Relation::Conflicting
        })
        .count()
}
