//! Byte encoders for the simulated node: the Lean API bodies exactly as the
//! reference node writes them (see tests/fixtures/lean-api/README.md).
//!
//! JSON keys come out in the reference node's order (serde writes struct
//! fields in declaration order, compact). The State and SignedBlock are the
//! ledger's containers encoded by the SSZ library, so their roots are the
//! hash tree roots the fork choice reports.

use bytes::Bytes;
use serde::Serialize;

use super::ledger::{voters, History};
use super::params::{finalized_slot, justified_slot};
use crate::lean::api::{Checkpoint, Root};
use crate::lean::ssz::{encode, BlockBody, SignedBlock};

pub const HEALTH_JSON: &[u8] = br#"{"status":"healthy","service":"lean-rpc-api"}"#;
pub const AGGREGATOR_JSON: &[u8] = br#"{"is_aggregator":false}"#;

#[derive(Serialize)]
struct NodeJson {
    root: Root,
    slot: u64,
    parent_root: Root,
    proposer_index: u64,
    weight: u64,
}

#[derive(Serialize)]
struct ForkChoiceJson {
    nodes: Vec<NodeJson>,
    head: Root,
    justified: Checkpoint,
    finalized: Checkpoint,
    safe_target: Root,
    validator_count: u64,
}

/// `GET /lean/v0/fork_choice`: the blocks from finalized to head.
pub fn fork_choice_json(h: &History, head: u64) -> Bytes {
    let justified = h.checkpoint(justified_slot(head));
    let finalized = h.checkpoint(finalized_slot(head));
    let nodes = (finalized.slot..=head)
        .map(|slot| NodeJson {
            root: h.root(slot),
            slot,
            parent_root: h.parent_root(slot),
            proposer_index: h.proposer(slot),
            weight: if slot == justified.slot && slot > finalized.slot {
                voters(h.validator_count())
            } else {
                0
            },
        })
        .collect();
    let fc = ForkChoiceJson {
        nodes,
        head: h.root(head),
        justified,
        finalized,
        safe_target: finalized.root,
        validator_count: h.validator_count(),
    };
    // Serialising plain structs of numbers and roots cannot fail.
    Bytes::from(serde_json::to_vec(&fc).unwrap_or_default())
}

/// `GET /lean/v0/checkpoints/justified`.
pub fn checkpoint_json(cp: Checkpoint) -> Bytes {
    Bytes::from(serde_json::to_vec(&cp).unwrap_or_default())
}

/// `GET /lean/v0/states/finalized`: the post-state of the block at `slot`.
pub fn state_ssz(h: &History, slot: u64) -> Bytes {
    Bytes::from(encode(&h.state(slot)))
}

/// `GET /lean/v0/blocks/finalized`: SignedBlock with an empty proof, as the
/// reference node serves it.
pub fn signed_block_ssz(h: &History, slot: u64) -> Bytes {
    let signed = SignedBlock {
        block: h.block(slot),
        proof: Default::default(),
    };
    Bytes::from(encode(&signed))
}

/// The block at `slot` with an empty body: a well-formed block whose root
/// is not the one the fork choice reports.
pub fn mismatched_block_ssz(h: &History, slot: u64) -> Bytes {
    let mut block = h.block(slot);
    if block.body.attestations.is_empty() {
        // Genesis-like blocks have nothing to drop: change the proposer.
        block.proposer_index = block.proposer_index.wrapping_add(1);
    }
    block.body = BlockBody::default();
    let signed = SignedBlock {
        block,
        proof: Default::default(),
    };
    Bytes::from(encode(&signed))
}

#[cfg(test)]
mod tests {
    use super::super::chain::{Branch, ChainParams};
    use super::super::ledger::Ledger;
    use super::*;
    use crate::lean::api;
    use crate::lean::api::tests::fixture;
    use std::time::Duration;

    fn ledger(validators: u64) -> Ledger {
        Ledger::new(&ChainParams {
            chain_id: 1,
            validators,
            slot: Duration::from_secs(4),
            start_slot: 12,
            genesis_time: 0,
            justification_roots: 0,
        })
    }

    /// Replaces roots and numbers so only shape and key order remain.
    fn shape(json: &[u8]) -> String {
        let s = String::from_utf8(json.to_vec()).expect("utf-8");
        let mut out = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '0' && chars.peek() == Some(&'x') {
                chars.next();
                while chars.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                    chars.next();
                }
                out.push('R');
            } else if c.is_ascii_digit() {
                while chars.peek().is_some_and(|c| c.is_ascii_digit()) {
                    chars.next();
                }
                out.push('N');
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn states_pass_the_structural_checks_and_grow_as_expected() {
        let mut l = ledger(3);
        let h = l.history(Branch::Main, 100);
        let genesis = state_ssz(&h, 0);
        assert_eq!(
            genesis.len(),
            fixture("genesis", "states_finalized.ssz").len()
        );
        assert_eq!(signed_block_ssz(&h, 0).len(), 100);
        for slot in [1, 2, 3, 5, 100] {
            let s = state_ssz(&h, slot);
            let hd = api::validate_state(&s).unwrap_or_else(|e| panic!("slot {slot}: {e}"));
            let f = finalized_slot(slot);
            let want = if f == 0 { Root::ZERO } else { h.root(f) };
            assert_eq!(hd.latest_finalized.root, want, "slot {slot}");
        }
        let mut big = ledger(1000);
        let s = state_ssz(&big.history(Branch::Main, 500), 500);
        assert_eq!(s.len(), 228 + 32 * 500 + 1 + 112 * 1000 + 1);
        api::validate_state(&s).expect("big state validates");
    }

    #[test]
    fn json_has_the_fixture_shapes() {
        let mut l = ledger(4);
        let h = l.history(Branch::Main, 12);
        let fc = fork_choice_json(&h, 12);
        assert_eq!(shape(&fc), shape(&fixture("advanced", "fork_choice.json")));
        let v = api::parse_fork_choice(&fc).expect("parses");
        assert_eq!(
            (v.head_slot, v.justified.slot, v.finalized.slot),
            (12, 10, 9)
        );
        assert_eq!(v.finalized.root, h.root(9));
        let cp = checkpoint_json(h.checkpoint(10));
        assert_eq!(
            shape(&cp),
            shape(&fixture("advanced", "checkpoints_justified.json"))
        );
        assert_eq!(HEALTH_JSON, &fixture("advanced", "health.json")[..]);
        assert_eq!(
            AGGREGATOR_JSON,
            &fixture("advanced", "admin_aggregator.json")[..]
        );
        let genesis = fork_choice_json(&h, 0);
        assert_eq!(
            shape(&genesis),
            shape(&fixture("genesis", "fork_choice.json"))
        );
    }

    #[test]
    fn the_mismatched_block_is_well_formed_and_not_the_block() {
        use crate::lean::ssz::{decode_signed_block, htr};
        let mut l = ledger(4);
        let h = l.history(Branch::Main, 12);
        for slot in [0, 9] {
            let other = decode_signed_block(&mismatched_block_ssz(&h, slot)).expect("decodes");
            assert_eq!(other.block.slot, slot);
            assert_eq!(Root(other.block.state_root), h.state_root(slot));
            assert_ne!(htr(&other.block), h.root(slot));
        }
    }
}
