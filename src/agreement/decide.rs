//! The agreement decision: a pure function of the upstreams' fresh votes,
//! their ancestry evidence and the rule. No IO, no clock, no metrics: the
//! caller decides which votes are fresh and what to do with the decision
//! (see `service::AppState::apply`).

use std::collections::HashMap;
use std::sync::Arc;

use crate::agreement::ancestry::{own_relation, Evidence, Relation};
use crate::agreement::AgreementRule;
use crate::lean::api::{Checkpoint, Root};

mod standing;
use standing::{served_against, standings};

/// One upstream's fresh observation, as far as agreement is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    pub finalized_slot: u64,
    /// None for the fallback source, which agrees by slot alone.
    pub finalized_root: Option<Root>,
    pub justified: Option<Checkpoint>,
    pub evidence: Arc<Evidence>,
}

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
    let mut impossible = Vec::new();
    let fresh: Vec<(usize, &Vote)> = votes
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.as_ref().map(|v| (i, v)))
        .filter(|(i, v)| {
            let ok = v.finalized_slot <= ctx.max_slot;
            if !ok {
                impossible.push(*i);
            }
            ok
        })
        .collect();
    let required = required_votes(rule, votes.len(), fresh.len()).max(1);
    let owners = tree_owners(&fresh);
    let mut wanted = Vec::new();

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
    let served_slot = ctx.served.map(|(s, _)| s);
    let mut qualifying: Vec<Qualifying> = Vec::new();
    for (slot, root) in candidates {
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

/// Fork-choice nodes -> the upstreams whose tree holds them.
type Owners = HashMap<(u64, Root), Vec<usize>>;

fn tree_owners(fresh: &[(usize, &Vote)]) -> Owners {
    let mut owners: Owners = HashMap::new();
    for (i, v) in fresh {
        for node in &v.evidence.tree {
            owners.entry(*node).or_default().push(*i);
        }
    }
    owners
}

/// Who supports one candidate, and who is past it without evidence.
struct Support {
    exact: usize,
    supporters: Vec<usize>,
    unknown_past: Vec<usize>,
}

fn support(
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
fn served_chain_at(ctx: &Context, s: u64, slot: u64, root: Root) -> Option<Root> {
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
fn other_genesis(ctx: &Context, v: &Vote) -> bool {
    matches!((ctx.genesis_time, v.evidence.genesis_time), (Some(a), Some(b)) if a != b)
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
mod tests {
    use super::*;
    use AgreementRule::*;

    /// The block of `chain` at `slot` (chain 0 is a common genesis).
    fn b(chain: u8, slot: u64) -> Root {
        let mut r = [0u8; 32];
        r[0] = chain;
        r[1..9].copy_from_slice(&slot.to_le_bytes());
        Root(r)
    }

    /// Finalized at `f` on `chain`, fork-choice nodes `f..=head`, and what
    /// its State's history said about `held` slots.
    fn on(chain: u8, f: u64, head: u64, held: &[u64]) -> Option<Vote> {
        Some(Vote {
            finalized_slot: f,
            finalized_root: Some(b(chain, f)),
            justified: Some(Checkpoint {
                slot: f + 1,
                root: b(chain, f + 1),
            }),
            evidence: Arc::new(Evidence {
                held: held.iter().map(|&s| (s, b(chain, s))).collect(),
                tree: (f..=head).map(|s| (s, b(chain, s))).collect(),
                genesis_time: None,
            }),
        })
    }

    /// Finalized only, no evidence at all.
    fn bare(chain: u8, f: u64) -> Option<Vote> {
        on(chain, f, f, &[]).map(|mut v| {
            v.evidence = Arc::new(Evidence::default());
            v
        })
    }

    fn slot_only(slot: u64) -> Option<Vote> {
        Some(Vote {
            finalized_slot: slot,
            finalized_root: None,
            justified: None,
            evidence: Arc::default(),
        })
    }

    /// (name, votes, rule, expected agreed (slot, chain byte)).
    type Case = (
        &'static str,
        Vec<Option<Vote>>,
        AgreementRule,
        Option<(u64, Option<u8>)>,
    );

    #[test]
    fn table() {
        let cases: Vec<Case> = vec![
            (
                "3 of 3",
                vec![bare(1, 9), bare(1, 9), bare(1, 9)],
                ConfiguredMajority,
                Some((9, Some(1))),
            ),
            (
                "2 of 3",
                vec![bare(1, 9), bare(1, 9), None],
                ConfiguredMajority,
                Some((9, Some(1))),
            ),
            (
                "2 of 4 is no majority",
                vec![bare(1, 9), bare(1, 9), bare(2, 9), bare(2, 9)],
                ConfiguredMajority,
                None,
            ),
            (
                "1 of 2 is no majority",
                vec![bare(1, 9), None],
                ConfiguredMajority,
                None,
            ),
            (
                "responding: 1 of 1 fresh",
                vec![bare(1, 9), None],
                RespondingMajority,
                Some((9, Some(1))),
            ),
            (
                "fork at the same slot is not counted",
                vec![bare(1, 9), bare(1, 9), bare(2, 9)],
                ConfiguredMajority,
                Some((9, Some(1))),
            ),
            (
                "disagreement on roots",
                vec![bare(1, 9), bare(2, 9), bare(3, 9)],
                ConfiguredMajority,
                None,
            ),
            (
                "fallback agrees by slot",
                vec![bare(1, 9), slot_only(9), None],
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
                vec![bare(1, 9), slot_only(8), None],
                ConfiguredMajority,
                Some((8, None)),
            ),
            (
                "a slot-only upstream past a root needs evidence",
                vec![bare(1, 9), slot_only(10), None],
                ConfiguredMajority,
                None,
            ),
            (
                "a slot-only upstream past a root, history read",
                vec![
                    bare(1, 9),
                    slot_only(10).map(|mut v| {
                        v.evidence = Arc::new(Evidence {
                            held: vec![(9, b(1, 9))],
                            ..Evidence::default()
                        });
                        v
                    }),
                    None,
                ],
                ConfiguredMajority,
                Some((9, Some(1))),
            ),
            (
                "past without evidence does not count",
                vec![bare(1, 9), bare(1, 10), bare(1, 11), None, None],
                ConfiguredMajority,
                None,
            ),
            (
                "spread over three slots, trees reach",
                vec![
                    on(1, 9, 12, &[]),
                    on(1, 10, 12, &[]),
                    on(1, 11, 13, &[]),
                    None,
                    None,
                ],
                ConfiguredMajority,
                Some((9, Some(1))),
            ),
            (
                "spread, own earlier finalized",
                vec![
                    on(1, 9, 9, &[]),
                    on(1, 10, 10, &[9]),
                    on(1, 11, 11, &[9, 10]),
                    None,
                    None,
                ],
                ConfiguredMajority,
                Some((9, Some(1))),
            ),
            (
                "ambiguous root below upstreams past it",
                vec![bare(1, 9), bare(2, 9), bare(3, 10), bare(4, 10)],
                ConfiguredMajority,
                None,
            ),
            (
                "4 of 16",
                [vec![bare(1, 9); 4], vec![None; 12]].concat(),
                ConfiguredMajority,
                None,
            ),
            (
                "count:1 takes the highest",
                vec![bare(1, 5), bare(2, 9)],
                Count(1),
                Some((9, Some(2))),
            ),
            (
                "count:1 conflict at one slot",
                vec![bare(1, 9), bare(2, 9)],
                Count(1),
                None,
            ),
            (
                "nothing fresh",
                vec![None, None, None],
                RespondingMajority,
                None,
            ),
            // The fixtures' cases: behind (5, b5) and fork (9) whose State holds b5 at 5.
            (
                "behind + fork agree on their common block",
                vec![on(1, 5, 8, &[]), on(2, 9, 12, &[])]
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| {
                        v.map(|mut v| {
                            if i == 1 {
                                v.evidence = Arc::new(Evidence {
                                    held: vec![(5, b(1, 5))],
                                    ..(*v.evidence).clone()
                                });
                            }
                            v
                        })
                    })
                    .collect(),
                ConfiguredMajority,
                Some((5, Some(1))),
            ),
            (
                "another chain past genesis of one does not count",
                vec![on(3, 0, 0, &[]), on(1, 9, 12, &[0])],
                ConfiguredMajority,
                None,
            ),
            (
                "a branch past a forked node does not count for it",
                vec![on(2, 9, 12, &[]), on(1, 12, 14, &[9])],
                Count(2),
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
    fn standings_name_every_relation() {
        use Standing::*;
        // 0 agreeing, 1 ahead (tree), 2 behind (tree), 3 conflicting (same
        // slot), 4 conflicting (history), 5 unknown (past, no evidence),
        // 6 failing.
        let votes = vec![
            on(1, 9, 12, &[]),
            on(1, 11, 12, &[]),
            on(1, 5, 10, &[]),
            on(4, 9, 12, &[]),
            on(2, 12, 12, &[9]),
            bare(3, 12),
            None,
        ];
        let d = decide(&votes, Count(2));
        let a = d.agreed.clone().expect("agreed");
        assert_eq!((a.finalized_slot, a.supporters.clone()), (9, vec![0, 1]));
        assert_eq!(
            d.standings,
            vec![
                Agreeing,
                Ahead,
                Behind,
                Conflicting,
                Conflicting,
                Unknown,
                Failing
            ]
        );
        // Unknown-but-past upstreams are asked for their history at slot 9.
        assert!(d.wanted.contains(&(5, 9)), "{:?}", d.wanted);
        assert!(
            !d.wanted.contains(&(4, 9)),
            "settled already: {:?}",
            d.wanted
        );
    }

    #[test]
    fn behind_is_judged_by_the_served_chain() {
        use Standing::*;
        let history = |s: u64| (s < 9).then(|| b(1, s));
        let ctx = Context {
            served: Some((9, Some(b(1, 9)))),
            chain: &history,
            max_slot: u64::MAX,
            genesis_time: None,
        };
        let votes = vec![bare(1, 9), bare(1, 9), bare(1, 5), bare(2, 5)];
        let d = decide_with(&votes, ConfiguredMajority, &ctx);
        assert_eq!(d.standings, vec![Agreeing, Agreeing, Behind, Conflicting]);
        assert!(!d.served_contradicted);
    }

    #[test]
    fn another_genesis_is_conflicting() {
        let ctx = Context {
            served: Some((9, Some(b(1, 9)))),
            chain: &|_| None,
            max_slot: u64::MAX,
            genesis_time: Some(100),
        };
        let mut other = on(1, 12, 12, &[9]).expect("vote");
        other.evidence = Arc::new(Evidence {
            genesis_time: Some(5),
            ..(*other.evidence).clone()
        });
        let d = decide_with(
            &[bare(1, 9), bare(1, 9), Some(other)],
            ConfiguredMajority,
            &ctx,
        );
        assert_eq!(d.agreed.map(|a| a.supporters), Some(vec![0, 1]));
        assert_eq!(d.standings[2], Standing::Conflicting);
    }

    #[test]
    fn an_impossible_slot_never_counts() {
        let ctx = Context {
            served: None,
            chain: &|_| None,
            max_slot: 1000,
            genesis_time: None,
        };
        for rule in [ConfiguredMajority, RespondingMajority, Count(1)] {
            let votes = vec![bare(7, 1_000_000_000), None, None];
            let d = decide_with(&votes, rule, &ctx);
            assert_eq!(d.agreed, None, "{rule:?}");
            assert_eq!(d.impossible, vec![0]);
            assert_eq!(d.standings[0], Standing::Conflicting);
            let votes = vec![bare(7, 1_000_000_000), bare(1, 9), bare(1, 9)];
            let a = decide_with(&votes, rule, &ctx)
                .agreed
                .expect("honest agreement");
            assert_eq!(
                (a.finalized_slot, a.supporters),
                (9, vec![1, 2]),
                "{rule:?}"
            );
        }
    }

    #[test]
    fn a_served_checkpoint_contradicted_by_a_majority_is_flagged() {
        let ctx = Context {
            served: Some((9, Some(b(2, 9)))),
            chain: &|_| None,
            max_slot: u64::MAX,
            genesis_time: None,
        };
        let d = decide_with(
            &[bare(1, 9), bare(1, 9), bare(2, 9)],
            RespondingMajority,
            &ctx,
        );
        assert!(d.served_contradicted);
        assert_eq!(d.agreed.map(|a| a.finalized_root), Some(Some(b(1, 9))));
        let d = decide_with(&[bare(1, 9), None, bare(2, 9)], RespondingMajority, &ctx);
        assert!(!d.served_contradicted, "1 of 3 is no majority");
    }

    #[test]
    fn slot_only_voter_for_two_roots_is_a_conflict() {
        let d = decide(&[bare(1, 9), bare(2, 9), slot_only(9)], Count(2));
        assert!(d.conflict);
        assert!(d.agreed.is_none());
    }

    #[test]
    fn justified_needs_the_rule_too() {
        let d = decide(&[bare(1, 9), bare(1, 9), bare(1, 9)], ConfiguredMajority);
        let a = d.agreed.expect("agreed");
        assert_eq!(a.justified.map(|j| j.slot), Some(10));
        assert_eq!(a.supporters, vec![0, 1, 2]);
        let mut votes = vec![bare(1, 9), bare(1, 9), bare(1, 9)];
        for (i, v) in votes.iter_mut().enumerate() {
            if let Some(v) = v {
                v.justified = Some(Checkpoint {
                    slot: 10 + i as u64,
                    root: b(7, 0),
                });
            }
        }
        let a = decide(&votes, ConfiguredMajority).agreed.expect("agreed");
        assert_eq!(a.justified, None);
    }

    #[test]
    fn agreement_survives_finality_advancing() {
        // 5 configured: 2 still at 9 (heads at 12), 2 already at 10, 1 down.
        let votes = vec![
            on(1, 9, 12, &[]),
            on(1, 9, 11, &[]),
            on(1, 10, 12, &[]),
            on(1, 10, 12, &[]),
            None,
        ];
        let a = decide(&votes, ConfiguredMajority).agreed.expect("agreed");
        assert_eq!(
            (a.finalized_slot, a.supporters.clone()),
            (9, vec![0, 1, 2, 3])
        );
        // A fork at that slot is neither a supporter nor a conflict.
        let votes = vec![
            on(1, 9, 12, &[]),
            on(1, 9, 12, &[]),
            on(3, 9, 12, &[]),
            on(1, 10, 12, &[]),
            None,
        ];
        let a = decide(&votes, ConfiguredMajority).agreed.expect("agreed");
        assert_eq!((a.finalized_slot, a.supporters), (9, vec![0, 1, 3]));
    }

    #[test]
    fn a_tie_at_the_served_slot_keeps_the_served_root() {
        // Healthy and fork at 17, two healthy past it (their State history
        // holds the healthy 17): 1-1 exact votes.
        let votes = vec![
            bare(1, 17),
            bare(9, 17),
            on(1, 18, 18, &[17]),
            on(1, 18, 18, &[17]),
        ];
        let served = Context {
            served: Some((17, Some(b(1, 17)))),
            chain: &|_| None,
            max_slot: u64::MAX,
            genesis_time: None,
        };
        let a = decide_with(&votes, ConfiguredMajority, &served)
            .agreed
            .expect("agreed");
        assert_eq!(
            (a.finalized_slot, a.finalized_root, a.supporters),
            (17, Some(b(1, 17)), vec![0, 2, 3])
        );
        // The preference never overrides a real majority for another root.
        let votes = vec![bare(9, 17), bare(9, 17), bare(9, 17), bare(1, 17)];
        let a = decide_with(&votes, ConfiguredMajority, &served)
            .agreed
            .expect("agreed");
        assert_eq!(a.finalized_root, Some(b(9, 17)));
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
