//! The agreement decision: a pure function of the upstreams' fresh votes and
//! the rule. No IO, no clock, no metrics: the caller decides which votes are
//! fresh and what to do with the decision (see `state::AppState::apply`).

use std::collections::HashMap;

use crate::config::AgreementRule;
use crate::lean_api::{Checkpoint, Root};

/// One upstream's fresh observation, as far as agreement is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vote {
    pub finalized_slot: u64,
    /// None for the fallback source, which agrees by slot alone.
    pub finalized_root: Option<Root>,
    pub justified: Option<Checkpoint>,
}

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
    /// Upstreams with a fresh vote.
    pub responding: usize,
    /// Votes the rule required.
    pub required: usize,
    /// True when two different roots at one slot both met the rule (only
    /// possible with count:N or with slot-only votes counted for both): a
    /// safety fault, so nothing is agreed.
    pub conflict: bool,
}

/// Votes needed under `rule` with `configured` upstreams, `responding` fresh.
pub fn required_votes(rule: AgreementRule, configured: usize, responding: usize) -> usize {
    match rule {
        AgreementRule::ConfiguredMajority => configured / 2 + 1,
        AgreementRule::RespondingMajority => responding / 2 + 1,
        AgreementRule::Count(n) => n,
    }
}

/// Decides agreement over `votes` (one entry per configured upstream, None
/// where the upstream has no fresh observation).
///
/// A candidate is a finalized (slot, root) reported by some upstream. Its
/// support is every upstream reporting it exactly (slot-only upstreams at its
/// slot included) plus every upstream already finalized past its slot:
/// finality advances upstream by upstream, and polls spread over an interval
/// see several finalized slots of one chain at once (with a 10 s poll and 4 s
/// slots, always), so counting exact matches alone would rarely find a
/// majority. Slot-only candidates exist only where no upstream reported a
/// root at that slot. The highest qualifying candidate wins; two roots at one
/// slot each reported by enough upstreams are a conflict; two at one slot
/// with equal exact votes are ambiguous; in both cases nothing is agreed.
///
/// An upstream past a candidate is counted whatever its own root: the Lean
/// API's fork choice lists no ancestors of the finalized block, so whether
/// it went through the candidate cannot be checked (see ARCHITECTURE.md).
pub fn decide(votes: &[Option<Vote>], rule: AgreementRule) -> Decision {
    decide_preferring(votes, rule, None)
}

/// [`decide`], breaking a tie of exact votes between roots at the top slot
/// in favour of `served` (the checkpoint already served): a healthy
/// upstream and a forked one at the served slot, with the rest past it, are
/// one vote each, and the served one is the one the majority agreed on before.
pub fn decide_preferring(
    votes: &[Option<Vote>],
    rule: AgreementRule,
    served: Option<(u64, Option<Root>)>,
) -> Decision {
    let fresh: Vec<(usize, &Vote)> = votes
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.as_ref().map(|v| (i, v)))
        .collect();
    let required = required_votes(rule, votes.len(), fresh.len()).max(1);

    let mut candidates: Vec<(u64, Option<Root>)> = Vec::new();
    for (_, v) in &fresh {
        let key = (v.finalized_slot, v.finalized_root);
        let shadowed = v.finalized_root.is_none()
            && fresh
                .iter()
                .any(|(_, w)| w.finalized_slot == v.finalized_slot && w.finalized_root.is_some());
        if !shadowed && !candidates.contains(&key) {
            candidates.push(key);
        }
    }
    // Exact voters report the candidate itself (slot-only voters at its
    // slot count for every root there).
    let exact = |slot: u64, root: Option<Root>| -> Vec<usize> {
        fresh
            .iter()
            .filter(|(_, v)| {
                v.finalized_slot == slot && (v.finalized_root.is_none() || v.finalized_root == root)
            })
            .map(|(i, _)| *i)
            .collect()
    };
    let mut qualifying: Vec<Qualifying> = candidates
        .into_iter()
        .map(|(slot, root)| {
            let exact = exact(slot, root);
            let mut supporters: Vec<usize> = fresh
                .iter()
                .filter(|(i, v)| v.finalized_slot > slot || exact.contains(i))
                .map(|(i, _)| *i)
                .collect();
            supporters.sort_unstable();
            Qualifying {
                slot,
                root,
                exact: exact.len(),
                supporters,
            }
        })
        .filter(|q| q.supporters.len() >= required)
        .collect();
    qualifying.sort_by(|a, b| b.slot.cmp(&a.slot).then(b.exact.cmp(&a.exact)));

    let mut decision = Decision {
        agreed: None,
        responding: fresh.len(),
        required,
        conflict: false,
    };
    if let Some(pos) = served.and_then(|(slot, root)| {
        let best = qualifying.first()?;
        qualifying.iter().position(|q| {
            q.slot == slot && q.root == root && q.slot == best.slot && q.exact == best.exact
        })
    }) {
        qualifying.swap(0, pos);
    }
    let Some(top) = qualifying.first() else {
        return decision;
    };
    let rivals: Vec<&Qualifying> = qualifying
        .iter()
        .skip(1)
        .filter(|q| q.slot == top.slot && q.root != top.root)
        .collect();
    if top.exact >= required && rivals.iter().any(|q| q.exact >= required) {
        // Two roots at one slot, each reported by enough upstreams themselves.
        decision.conflict = true;
        return decision;
    }
    let preferred = served == Some((top.slot, top.root));
    if !preferred && rivals.iter().any(|q| q.exact == top.exact) {
        // Which root at this slot the upstreams past it went through is
        // unknowable here; claim neither.
        return decision;
    }
    decision.agreed = Some(Agreement {
        finalized_slot: top.slot,
        finalized_root: top.root,
        justified: agreed_justified(&fresh, required, top.slot),
        supporters: top.supporters.clone(),
    });
    decision
}

/// A candidate that meets the rule.
struct Qualifying {
    slot: u64,
    root: Option<Root>,
    /// Upstreams reporting exactly this checkpoint.
    exact: usize,
    /// Those plus every upstream already finalized past its slot.
    supporters: Vec<usize>,
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
mod tests {
    use super::*;

    fn root(b: u8) -> Root {
        Root([b; 32])
    }

    fn full(slot: u64, r: u8) -> Option<Vote> {
        Some(Vote {
            finalized_slot: slot,
            finalized_root: Some(root(r)),
            justified: Some(Checkpoint {
                slot: slot + 1,
                root: root(r + 100),
            }),
        })
    }

    fn slot_only(slot: u64) -> Option<Vote> {
        Some(Vote {
            finalized_slot: slot,
            finalized_root: None,
            justified: None,
        })
    }

    use AgreementRule::*;

    /// (name, votes, rule, expected agreed (slot, first root byte)).
    type Case = (
        &'static str,
        Vec<Option<Vote>>,
        AgreementRule,
        Option<(u64, Option<u8>)>,
    );

    #[test]
    fn table() {
        // (votes, rule, expected agreed (slot, root byte) or None)
        let cases: Vec<Case> = vec![
            (
                "3 of 3",
                vec![full(9, 1), full(9, 1), full(9, 1)],
                ConfiguredMajority,
                Some((9, Some(1))),
            ),
            (
                "2 of 3",
                vec![full(9, 1), full(9, 1), None],
                ConfiguredMajority,
                Some((9, Some(1))),
            ),
            (
                "2 of 4 is no majority",
                vec![full(9, 1), full(9, 1), full(9, 2), full(9, 2)],
                ConfiguredMajority,
                None,
            ),
            (
                "1 of 2 is no majority",
                vec![full(9, 1), None],
                ConfiguredMajority,
                None,
            ),
            (
                "responding: 1 of 1 fresh",
                vec![full(9, 1), None],
                RespondingMajority,
                Some((9, Some(1))),
            ),
            (
                "fork at the same slot is not counted",
                vec![full(9, 1), full(9, 1), full(9, 2)],
                ConfiguredMajority,
                Some((9, Some(1))),
            ),
            (
                "disagreement on roots",
                vec![full(9, 1), full(9, 2), full(9, 3)],
                ConfiguredMajority,
                None,
            ),
            (
                "slots alone are not agreement",
                vec![full(9, 1), full(9, 2), None],
                ConfiguredMajority,
                None,
            ),
            (
                "fallback agrees by slot",
                vec![full(9, 1), slot_only(9), None],
                ConfiguredMajority,
                Some((9, Some(1))),
            ),
            (
                "fallback only",
                vec![slot_only(9), slot_only(9), slot_only(5)],
                ConfiguredMajority,
                Some((9, None)),
            ),
            (
                "an upstream past a slot-only candidate supports it",
                vec![full(9, 1), slot_only(8), None],
                ConfiguredMajority,
                Some((8, None)),
            ),
            (
                "an upstream behind does not help",
                vec![full(9, 1), slot_only(10), None],
                ConfiguredMajority,
                Some((9, Some(1))),
            ),
            (
                "spread over three slots of one chain",
                vec![full(9, 1), full(10, 2), full(11, 3), None, None],
                ConfiguredMajority,
                Some((9, Some(1))),
            ),
            (
                "ambiguous root below upstreams past it",
                vec![full(9, 1), full(9, 2), full(10, 3), full(10, 4)],
                ConfiguredMajority,
                None,
            ),
            (
                "4 of 16",
                [vec![full(9, 1); 4], vec![None; 12]].concat(),
                ConfiguredMajority,
                None,
            ),
            (
                "count:1 takes the highest",
                vec![full(5, 1), full(9, 2)],
                Count(1),
                Some((9, Some(2))),
            ),
            (
                "count:1 conflict at one slot",
                vec![full(9, 1), full(9, 2)],
                Count(1),
                None,
            ),
            (
                "nothing fresh",
                vec![None, None, None],
                RespondingMajority,
                None,
            ),
        ];
        for (name, votes, rule, want) in cases {
            let d = decide(&votes, rule);
            let got = d
                .agreed
                .as_ref()
                .map(|a| (a.finalized_slot, a.finalized_root.map(|r| r.0[0])));
            assert_eq!(got, want, "{name}: {d:?}");
        }
    }

    #[test]
    fn slot_only_voter_for_two_roots_is_a_conflict() {
        let d = decide(&[full(9, 1), full(9, 2), slot_only(9)], Count(2));
        assert!(d.conflict);
        assert!(d.agreed.is_none());
    }

    #[test]
    fn justified_needs_the_rule_too() {
        let d = decide(&[full(9, 1), full(9, 1), full(9, 1)], ConfiguredMajority);
        let a = d.agreed.expect("agreed");
        assert_eq!(a.justified.map(|j| j.slot), Some(10));
        assert_eq!(a.supporters, vec![0, 1, 2]);
        let mut votes = vec![full(9, 1), full(9, 1), full(9, 1)];
        for (i, v) in votes.iter_mut().enumerate() {
            if let Some(v) = v {
                v.justified = Some(Checkpoint {
                    slot: 10 + i as u64,
                    root: root(7),
                });
            }
        }
        let a = decide(&votes, ConfiguredMajority).agreed.expect("agreed");
        assert_eq!(a.justified, None);
    }

    #[test]
    fn agreement_survives_finality_advancing() {
        // 5 configured: 2 still at 9, 2 already at 10, 1 down. Neither has 3
        // exact votes, but 4 upstreams are at or past 9.
        let votes = vec![full(9, 1), full(9, 1), full(10, 2), full(10, 2), None];
        let a = decide(&votes, ConfiguredMajority).agreed.expect("agreed");
        assert_eq!(
            (a.finalized_slot, a.supporters.clone()),
            (9, vec![0, 1, 2, 3])
        );
        // A fork at that slot is neither a supporter nor a conflict.
        let votes = vec![full(9, 1), full(9, 1), full(9, 3), full(10, 2), None];
        let a = decide(&votes, ConfiguredMajority).agreed.expect("agreed");
        assert_eq!((a.finalized_slot, a.supporters), (9, vec![0, 1, 3]));
    }

    #[test]
    fn a_tie_at_the_served_slot_keeps_the_served_root() {
        // Healthy and fork at 17, two healthy past it: 1-1 exact votes.
        let votes = vec![full(17, 1), full(17, 9), full(18, 2), full(18, 2)];
        assert!(decide(&votes, ConfiguredMajority).agreed.is_none());
        let a = decide_preferring(&votes, ConfiguredMajority, Some((17, Some(root(1)))))
            .agreed
            .expect("agreed");
        assert_eq!(
            (a.finalized_slot, a.finalized_root, a.supporters),
            (17, Some(root(1)), vec![0, 2, 3])
        );
        // The preference never overrides a real majority for another root.
        let votes = vec![full(17, 9), full(17, 9), full(17, 9), full(17, 1)];
        let a = decide_preferring(&votes, ConfiguredMajority, Some((17, Some(root(1)))))
            .agreed
            .expect("agreed");
        assert_eq!(a.finalized_root, Some(root(9)));
    }

    #[test]
    fn required_votes_by_rule() {
        assert_eq!(required_votes(ConfiguredMajority, 2, 0), 2);
        assert_eq!(required_votes(ConfiguredMajority, 3, 0), 2);
        assert_eq!(required_votes(ConfiguredMajority, 16, 16), 9);
        assert_eq!(required_votes(RespondingMajority, 16, 4), 3);
        assert_eq!(required_votes(Count(3), 16, 0), 3);
    }
}
