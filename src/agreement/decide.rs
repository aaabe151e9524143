//! The agreement decision: a pure function of the upstreams' fresh votes,
//! their ancestry evidence and the rule. No IO, no clock, no metrics: the
//! caller decides which votes are fresh, and `advance` what the decision
//! does to the served checkpoint (recorded by `service::AppState::apply`).

use std::collections::HashMap;

use super::rule::AgreementRule;
use crate::lean::api::{Checkpoint, Root};

mod standing;
mod support;
pub use standing::Standing;
use standing::{served_against, standings};
use support::{support, tree_owners};
pub use support::{Context, Vote};

/// The finalized checkpoint enough upstreams agree on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agreement {
    pub finalized_slot: u64,
    /// None only when every supporter is a fallback (slot-only) upstream.
    pub finalized_root: Option<Root>,
    /// The justified checkpoint that also meets the rule, if one does.
    pub justified: Option<Checkpoint>,
    /// Indices (into the vote slice) of the upstreams that support it.
    pub supporters: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub agreed: Option<Agreement>,
    /// Upstreams with a fresh, possible vote.
    pub responding: usize,
    /// Votes the rule required.
    pub required: usize,
    /// True when two different roots at one slot both met the rule (only
    /// possible with count:N or with slot-only votes counted for both): a
    /// safety fault, so nothing is agreed.
    pub conflict: bool,
    /// One per vote: its standing to the agreed (else the served) checkpoint.
    pub standings: Vec<Standing>,
    /// (upstream, slot): finalized past a candidate's slot without evidence;
    /// entry `slot` of its State's historical_block_hashes would settle it.
    pub wanted: Vec<(usize, u64)>,
    /// Upstreams whose finalized slot is past the chain's current slot.
    pub impossible: Vec<usize>,
    /// The served checkpoint is contradicted: more than half of all
    /// configured upstreams have evidence that their chains do not hold it.
    pub served_contradicted: bool,
}

/// Votes needed under `rule` with `configured` upstreams, `responding` fresh.
pub fn required_votes(rule: AgreementRule, configured: usize, responding: usize) -> usize {
    match rule {
        AgreementRule::ConfiguredMajority => configured / 2 + 1,
        AgreementRule::RespondingMajority => responding / 2 + 1,
        AgreementRule::Count(n) => n,
    }
}

/// Wanted history reads kept per upstream per decision.
const MAX_WANTED_PER_UPSTREAM: usize = 4;

/// [`decide_with`] with nothing served and no chain known.
pub fn decide(votes: &[Option<Vote>], rule: AgreementRule) -> Decision {
    decide_with(votes, rule, &Context::bare())
}

/// Decides agreement over `votes` (one entry per configured upstream, None
/// where the upstream has no fresh observation).
///
/// A candidate is a finalized (slot, root) reported by some upstream. Its
/// support is every upstream reporting it exactly (slot-only upstreams at its
/// slot included) plus every upstream finalized past its slot *with evidence*
/// that its chain holds the candidate: its own earlier finalized checkpoints
/// or its State's `historical_block_hashes` say so, or its finalized block is
/// in the fork-choice tree of a supporter (every node of that tree descends
/// from the supporter's finalized block, hence from the candidate). Finality
/// moves upstream by upstream, and polls spread over an interval see several
/// finalized slots of one chain at once, so counting exact matches alone
/// would rarely find a majority; the trees of upstreams still at the
/// candidate reach the ones just past it. An upstream with evidence against
/// the candidate is conflicting and never counts. Slot-only candidates (no
/// upstream reported a root at that slot) keep the fallback rule: anything
/// at or past the slot. The highest qualifying candidate wins; two roots at
/// one slot each reported by enough upstreams are a conflict; two at one
/// slot with equal exact votes are ambiguous unless one is served.
pub fn decide_with(votes: &[Option<Vote>], rule: AgreementRule, ctx: &Context) -> Decision {
    let (fresh, impossible) = possible(votes, ctx.max_slot);
    let required = required_votes(rule, votes.len(), fresh.len()).max(1);
    let owners = tree_owners(&fresh);
    let mut wanted = Vec::new();

    let served_slot = ctx.served.map(|(s, _)| s);
    let mut qualifying: Vec<Qualifying> = Vec::new();
    for (slot, root) in candidates(&fresh) {
        let support = support(&fresh, votes.len(), &owners, slot, root, ctx);
        // History reads matter only for what could still be served.
        if served_slot.is_none_or(|s| slot >= s) {
            wanted.extend(support.unknown_past.iter().map(|&i| (i, slot)));
        }
        if support.supporters.len() >= required {
            qualifying.push(Qualifying {
                slot,
                root,
                exact: support.exact,
                supporters: support.supporters,
            });
        }
    }
    qualifying.sort_by(|a, b| b.slot.cmp(&a.slot).then(b.exact.cmp(&a.exact)));

    let mut decision = Decision {
        agreed: None,
        responding: fresh.len(),
        required,
        conflict: false,
        standings: Vec::new(),
        wanted: Vec::new(),
        impossible,
        served_contradicted: false,
    };
    decision.agreed = pick(
        &mut qualifying,
        ctx.served,
        required,
        &mut decision.conflict,
    )
    .map(|top| Agreement {
        finalized_slot: top.slot,
        finalized_root: top.root,
        justified: agreed_justified(&fresh, required, top.slot),
        supporters: top.supporters.clone(),
    });
    let reference = decision
        .agreed
        .as_ref()
        .map(|a| (a.finalized_slot, a.finalized_root))
        .or(ctx.served);
    decision.standings = standings(votes, &fresh, &owners, reference, ctx, &decision.impossible);
    if let Some((slot, Some(_))) = ctx.served {
        let against = served_against(&fresh, ctx, slot);
        decision.served_contradicted = against > votes.len() / 2;
    }
    decision.wanted = bound_wanted(wanted);
    decision
}

/// The fresh votes whose finalized slot is possible (index, vote), and the
/// indices of those past `max_slot`.
fn possible(votes: &[Option<Vote>], max_slot: u64) -> (Vec<(usize, &Vote)>, Vec<usize>) {
    let mut impossible = Vec::new();
    let fresh = votes
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.as_ref().map(|v| (i, v)))
        .filter(|(i, v)| {
            let ok = v.finalized_slot <= max_slot;
            if !ok {
                impossible.push(*i);
            }
            ok
        })
        .collect();
    (fresh, impossible)
}

/// Every finalized (slot, root) reported, once; a slot-only report where
/// another reports a root at that slot is no candidate of its own.
fn candidates(fresh: &[(usize, &Vote)]) -> Vec<(u64, Option<Root>)> {
    let mut candidates: Vec<(u64, Option<Root>)> = Vec::new();
    for (_, v) in fresh {
        let key = (v.finalized_slot, v.finalized_root);
        let shadowed = v.finalized_root.is_none()
            && fresh
                .iter()
                .any(|(_, w)| w.finalized_slot == v.finalized_slot && w.finalized_root.is_some());
        if !shadowed && !candidates.contains(&key) {
            candidates.push(key);
        }
    }
    candidates
}

/// A candidate that meets the rule.
#[derive(Clone)]
struct Qualifying {
    slot: u64,
    root: Option<Root>,
    /// Upstreams reporting exactly this checkpoint.
    exact: usize,
    /// Those plus every upstream past its slot with evidence it holds it.
    supporters: Vec<usize>,
}

/// The winner among the qualifying candidates, if one is unambiguous. A tie
/// of exact votes between roots at the top slot goes to `served` (the
/// checkpoint the majority agreed on before), never against more exact votes.
fn pick(
    qualifying: &mut [Qualifying],
    served: Option<(u64, Option<Root>)>,
    required: usize,
    conflict: &mut bool,
) -> Option<Qualifying> {
    if let Some(pos) = served.and_then(|(slot, root)| {
        let best = qualifying.first()?;
        qualifying.iter().position(|q| {
            q.slot == slot && q.root == root && q.slot == best.slot && q.exact == best.exact
        })
    }) {
        qualifying.swap(0, pos);
    }
    let top = qualifying.first()?;
    let rivals: Vec<&Qualifying> = qualifying
        .iter()
        .skip(1)
        .filter(|q| q.slot == top.slot && q.root != top.root)
        .collect();
    if top.exact >= required && rivals.iter().any(|q| q.exact >= required) {
        // Two roots at one slot, each reported by enough upstreams themselves.
        *conflict = true;
        return None;
    }
    let preferred = served == Some((top.slot, top.root));
    if !preferred && rivals.iter().any(|q| q.exact == top.exact) {
        return None;
    }
    Some(top.clone())
}

/// At most a few wanted slots per upstream, the highest first.
fn bound_wanted(mut wanted: Vec<(usize, u64)>) -> Vec<(usize, u64)> {
    wanted.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    wanted.dedup();
    let mut out = Vec::new();
    let mut run = (usize::MAX, 0);
    for (i, s) in wanted {
        if run.0 != i {
            run = (i, 0);
        }
        if run.1 < MAX_WANTED_PER_UPSTREAM {
            out.push((i, s));
            run.1 += 1;
        }
    }
    out
}

/// The highest justified checkpoint (at or after the finalized slot) that
/// `required` fresh upstreams report, unless two roots tie at its slot.
fn agreed_justified(
    fresh: &[(usize, &Vote)],
    required: usize,
    finalized_slot: u64,
) -> Option<Checkpoint> {
    let mut counts: HashMap<Checkpoint, usize> = HashMap::new();
    for (_, v) in fresh {
        if let Some(j) = v.justified {
            *counts.entry(j).or_default() += 1;
        }
    }
    let mut ok: Vec<Checkpoint> = counts
        .into_iter()
        .filter(|(cp, n)| *n >= required && cp.slot >= finalized_slot)
        .map(|(cp, _)| cp)
        .collect();
    ok.sort_by_key(|cp| std::cmp::Reverse(cp.slot));
    match ok.as_slice() {
        [first, second, ..] if first.slot == second.slot => None,
        [first, ..] => Some(*first),
        [] => None,
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
