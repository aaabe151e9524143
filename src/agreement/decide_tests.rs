//! The decision table and the standings it names.

use std::sync::Arc;

use super::*;
use crate::agreement::ancestry::Evidence;
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
