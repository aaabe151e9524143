//! The served-checkpoint rule: what a decision does to the checkpoint
//! leanpoint serves and to what the fetcher should hold. Pure, like
//! `decide`: the caller records the outcome (metrics, views, history) and
//! signals the fetcher (see `service::AppState::apply`).
//!
//! The served finalized checkpoint only moves forward. An agreement on an
//! older slot, or on another root at the served slot, is refused, except by
//! the recovery rule: when more than half of all configured upstreams prove
//! the served checkpoint is not on their chain (`served_contradicted`) and
//! more than half support the new agreement, it replaces the served one
//! (ARCHITECTURE.md, recovery rule).

use super::decide::Decision;
use crate::lean::api::{Checkpoint, Root};

/// The agreed finalized checkpoint as served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finalized {
    pub slot: u64,
    /// None only for a checkpoint agreed by slot alone.
    pub root: Option<Root>,
}

/// The checkpoints served when a decision arrives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Served {
    pub finalized: Option<Finalized>,
    pub justified: Option<Checkpoint>,
}

/// What to do with one decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advance {
    /// Nothing agreed: keep serving what is served.
    Hold,
    /// The agreement is older than the served checkpoint, or another root at
    /// its slot, and the recovery rule does not hold: keep serving.
    Refuse { agreed_slot: u64, served_slot: u64 },
    /// The agreement stands: serve this.
    Serve(Step),
}

/// An accepted agreement: the checkpoints served after it and what changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub served: Finalized,
    pub justified: Option<Checkpoint>,
    /// The served finalized slot changed.
    pub advanced: bool,
    /// The served checkpoint was adopted anew (not the same one again).
    pub moved: bool,
    /// Some(served slot) when the recovery rule replaced a contradicted
    /// served checkpoint.
    pub recovered_from: Option<u64>,
    /// The served pair is not the new checkpoint's (it is at or above the
    /// new slot): stop serving it, and its justified checkpoint with it.
    pub drop_pair: bool,
    /// The agreed justified checkpoint became the served one.
    pub justified_moved: bool,
    /// The fetcher's new target, when it is not already `served`.
    pub fetch: Option<Finalized>,
}

/// Applies the served-checkpoint rule to `decision` with `configured`
/// upstreams, given what is `served` and what the fetcher is `fetching`.
pub fn advance(
    decision: &Decision,
    configured: usize,
    served: Served,
    fetching: Option<Finalized>,
) -> Advance {
    let Some(agreed) = &decision.agreed else {
        return Advance::Hold;
    };
    let candidate = Finalized {
        slot: agreed.finalized_slot,
        root: agreed.finalized_root,
    };
    let mut recovered_from = None;
    let moved = match served.finalized {
        Some(cur) if older_or_other(candidate, cur) => {
            let majority = agreed.supporters.len() > configured / 2;
            if !(decision.served_contradicted && majority) {
                return Advance::Refuse {
                    agreed_slot: candidate.slot,
                    served_slot: cur.slot,
                };
            }
            recovered_from = Some(cur.slot);
            true
        }
        // The same checkpoint, or its slot agreed without a root: nothing
        // new to serve.
        Some(cur)
            if cur == candidate || (cur.slot == candidate.slot && candidate.root.is_none()) =>
        {
            false
        }
        _ => true,
    };
    let (finalized, advanced, drop_pair) = match served.finalized {
        Some(cur) if moved => (
            candidate,
            cur.slot != candidate.slot,
            candidate.slot <= cur.slot,
        ),
        Some(cur) => (cur, false, false),
        None => (candidate, true, false),
    };
    let mut justified = served.justified.filter(|_| !drop_pair);
    let mut justified_moved = false;
    if let Some(j) = agreed.justified {
        if justified.is_none_or(|cur| j.slot >= cur.slot) {
            justified = Some(j);
            justified_moved = true;
        }
    }
    Advance::Serve(Step {
        served: finalized,
        justified,
        advanced,
        moved,
        recovered_from,
        drop_pair,
        justified_moved,
        fetch: (fetching != Some(finalized)).then_some(finalized),
    })
}

/// `candidate` is below `cur`, or another root at its slot (both known).
fn older_or_other(candidate: Finalized, cur: Finalized) -> bool {
    candidate.slot < cur.slot
        || (candidate.slot == cur.slot
            && candidate.root != cur.root
            && cur.root.is_some()
            && candidate.root.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agreement::Agreement;

    fn root(b: u8) -> Root {
        Root([b; 32])
    }

    fn fin(slot: u64, r: Option<u8>) -> Finalized {
        Finalized {
            slot,
            root: r.map(root),
        }
    }

    fn cp(slot: u64) -> Checkpoint {
        Checkpoint {
            slot,
            root: root(slot as u8),
        }
    }

    /// A decision agreeing on `agreed` (justified at `justified`) with
    /// `supporters` of the configured upstreams behind it.
    fn decision(
        agreed: Option<(Finalized, Option<u64>)>,
        supporters: usize,
        contradicted: bool,
    ) -> Decision {
        Decision {
            agreed: agreed.map(|(f, j)| Agreement {
                finalized_slot: f.slot,
                finalized_root: f.root,
                justified: j.map(cp),
                supporters: (0..supporters).collect(),
            }),
            responding: supporters,
            required: 1,
            conflict: false,
            standings: Vec::new(),
            wanted: Vec::new(),
            impossible: Vec::new(),
            served_contradicted: contradicted,
        }
    }

    fn refused(agreed_slot: u64, served_slot: u64) -> Advance {
        Advance::Refuse {
            agreed_slot,
            served_slot,
        }
    }

    fn serve(
        served: Finalized,
        justified: Option<u64>,
        advanced: bool,
        drop_pair: bool,
        fetch: bool,
    ) -> Advance {
        Advance::Serve(Step {
            served,
            justified: justified.map(cp),
            advanced,
            moved: advanced || drop_pair,
            recovered_from: None,
            drop_pair,
            justified_moved: justified.is_some(),
            fetch: fetch.then_some(served),
        })
    }

    /// (name, decision, served (finalized, justified), fetching, expected).
    type Case = (
        &'static str,
        Decision,
        (Option<Finalized>, Option<u64>),
        Option<Finalized>,
        Advance,
    );

    #[test]
    fn table() {
        let a9 = fin(9, Some(1));
        let cases: Vec<Case> = vec![
            (
                "nothing agreed holds",
                decision(None, 0, false),
                (Some(a9), Some(10)),
                Some(a9),
                Advance::Hold,
            ),
            (
                "first agreement is served and fetched",
                decision(Some((a9, Some(10))), 3, false),
                (None, None),
                None,
                serve(a9, Some(10), true, false, true),
            ),
            (
                "the same again: nothing new, already fetched",
                decision(Some((a9, None)), 3, false),
                (Some(a9), None),
                Some(a9),
                serve(a9, None, false, false, false),
            ),
            (
                "forward moves and retargets the fetcher",
                decision(Some((fin(12, Some(2)), Some(13))), 3, false),
                (Some(a9), Some(10)),
                Some(a9),
                serve(fin(12, Some(2)), Some(13), true, false, true),
            ),
            (
                "older is refused",
                decision(Some((fin(5, Some(1)), None)), 3, false),
                (Some(a9), None),
                Some(a9),
                refused(5, 9),
            ),
            (
                "another root at the served slot is refused",
                decision(Some((fin(9, Some(7)), None)), 3, false),
                (Some(a9), None),
                Some(a9),
                refused(9, 9),
            ),
            (
                "contradicted but no majority of all configured: refused",
                decision(Some((fin(5, Some(7)), None)), 2, true),
                (Some(a9), None),
                Some(a9),
                refused(5, 9),
            ),
            (
                "slot-only agreement at the served slot keeps its root",
                decision(Some((fin(9, None), None)), 3, false),
                (Some(a9), None),
                Some(a9),
                serve(a9, None, false, false, false),
            ),
            (
                "a root learned for a slot-only served slot drops the pair",
                decision(Some((a9, Some(10))), 3, false),
                (Some(fin(9, None)), Some(10)),
                Some(fin(9, None)),
                serve(a9, Some(10), false, true, true),
            ),
        ];
        for (name, d, (finalized, justified), fetching, want) in cases {
            let served = Served {
                finalized,
                justified: justified.map(cp),
            };
            assert_eq!(advance(&d, 4, served, fetching), want, "{name}");
        }
    }

    #[test]
    fn the_recovery_rule_replaces_a_contradicted_checkpoint() {
        let served = Served {
            finalized: Some(fin(9, Some(1))),
            justified: Some(cp(10)),
        };
        let d = decision(Some((fin(8, Some(2)), Some(9))), 3, true);
        let Advance::Serve(step) = advance(&d, 4, served, served.finalized) else {
            panic!("3 of 4 contradicting and supporting: replaced");
        };
        assert_eq!(step.served, fin(8, Some(2)));
        assert_eq!(step.recovered_from, Some(9));
        assert!(step.advanced && step.drop_pair, "{step:?}");
        // The old justified goes with the old pair; the agreed one is served.
        assert_eq!(step.justified, Some(cp(9)));
        assert_eq!(step.fetch, Some(fin(8, Some(2))));
    }

    #[test]
    fn justified_never_moves_back_unless_the_pair_is_dropped() {
        let served = Served {
            finalized: Some(fin(9, Some(1))),
            justified: Some(cp(12)),
        };
        let d = decision(Some((fin(9, Some(1)), Some(10))), 3, false);
        let Advance::Serve(step) = advance(&d, 4, served, None) else {
            panic!("agreed");
        };
        assert_eq!(step.justified, Some(cp(12)));
        assert!(!step.justified_moved);
        assert_eq!(step.fetch, Some(fin(9, Some(1))), "the fetcher had none");
    }
}
