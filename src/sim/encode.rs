//! Byte encoders for the simulated node: the Lean API bodies exactly as the
//! reference node writes them (see tests/fixtures/lean-api/README.md).
//!
//! JSON keys come out in the reference node's order (serde writes struct
//! fields in declaration order, compact). The State and SignedBlock follow
//! the fixtures' SSZ layouts byte for byte; only the roots differ, because
//! they are derived hashes rather than hash tree roots.

use bytes::Bytes;
use serde::Serialize;

use super::chain::{finalized_slot, justified_slot, History};
use crate::lean_api::{Checkpoint, Root, STATE_FIXED_LEN};

pub const HEALTH_JSON: &[u8] = br#"{"status":"healthy","service":"lean-rpc-api"}"#;
pub const AGGREGATOR_JSON: &[u8] = br#"{"is_aggregator":false}"#;

const TAG_STATE_ROOT: u64 = 10;
const TAG_BODY_ROOT: u64 = 11;
const TAG_PUBKEY: u64 = 12;

const VALIDATOR_LEN: usize = 112;
const PUBKEY_LEN: usize = 52;

/// How many validators vote in each block: the smallest 2/3 supermajority.
pub fn voters(validators: u64) -> u64 {
    (validators * 2).div_ceil(3).max(1)
}

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

fn parent_root(h: &History, slot: u64) -> Root {
    match slot {
        0 => Root::ZERO,
        s => h.root(s - 1),
    }
}

fn proposer(h: &History, slot: u64) -> u64 {
    slot % h.params.validators.max(1)
}

/// `GET /lean/v0/fork_choice`: the blocks from finalized to head.
pub fn fork_choice_json(h: &History, head: u64) -> Bytes {
    let justified = h.checkpoint(justified_slot(head));
    let finalized = h.checkpoint(finalized_slot(head));
    let nodes = (finalized.slot..=head)
        .map(|slot| NodeJson {
            root: h.root(slot),
            slot,
            parent_root: parent_root(h, slot),
            proposer_index: proposer(h, slot),
            weight: if slot == justified.slot && slot > finalized.slot {
                voters(h.params.validators)
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
        validator_count: h.params.validators,
    };
    // Serialising plain structs of numbers and roots cannot fail.
    Bytes::from(serde_json::to_vec(&fc).unwrap_or_default())
}

/// `GET /lean/v0/checkpoints/justified`.
pub fn checkpoint_json(cp: Checkpoint) -> Bytes {
    Bytes::from(serde_json::to_vec(&cp).unwrap_or_default())
}

/// An SSZ bitlist of `len` bits with its delimiter bit.
fn bitlist(len: usize, set: impl Fn(usize) -> bool) -> Vec<u8> {
    let mut out = vec![0u8; len / 8 + 1];
    for i in (0..len).filter(|&i| set(i)) {
        out[i / 8] |= 1 << (i % 8);
    }
    out[len / 8] |= 1 << (len % 8);
    out
}

/// A checkpoint as the State holds it: genesis checkpoints carry a zero root.
fn state_checkpoint(h: &History, slot: u64) -> Checkpoint {
    let root = if slot == 0 { Root::ZERO } else { h.root(slot) };
    Checkpoint { slot, root }
}

fn put_checkpoint(out: &mut Vec<u8>, cp: Checkpoint) {
    out.extend_from_slice(&cp.root.0);
    out.extend_from_slice(&cp.slot.to_le_bytes());
}

fn put_u32(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&(v as u32).to_le_bytes());
}

/// `GET /lean/v0/states/finalized`: the post-state of the block at `slot`.
/// Its own checkpoints are those its head saw (two and three slots back).
pub fn state_ssz(h: &History, slot: u64) -> Bytes {
    let n = h.params.validators as usize;
    let s_justified = state_checkpoint(h, justified_slot(slot));
    let s_finalized = state_checkpoint(h, finalized_slot(slot));
    // justified_slots covers the slots after the state's finalized one, up
    // to the state's parent.
    let jbits = slot.saturating_sub(1 + s_finalized.slot) as usize;
    let jset = (s_justified.slot > s_finalized.slot)
        .then(|| (s_justified.slot - s_finalized.slot - 1) as usize);
    let justified_slots = bitlist(jbits, |i| Some(i) == jset);

    let hist_len = 32 * slot as usize;
    let mut off = [STATE_FIXED_LEN; 5];
    off[1] = off[0] + hist_len;
    off[2] = off[1] + justified_slots.len();
    off[3] = off[2] + VALIDATOR_LEN * n;
    off[4] = off[3]; // no pending justifications
    let mut out = Vec::with_capacity(off[4] + 1);

    out.extend_from_slice(&h.params.genesis_time.to_le_bytes());
    out.extend_from_slice(&slot.to_le_bytes());
    // latest_block_header; its state_root is zero until the next slot.
    out.extend_from_slice(&slot.to_le_bytes());
    out.extend_from_slice(&proposer(h, slot).to_le_bytes());
    out.extend_from_slice(&parent_root(h, slot).0);
    out.extend_from_slice(&Root::ZERO.0);
    out.extend_from_slice(&h.derived(TAG_BODY_ROOT, slot).0);
    put_checkpoint(&mut out, s_justified);
    put_checkpoint(&mut out, s_finalized);
    for o in off {
        put_u32(&mut out, o);
    }
    for s in 0..slot {
        out.extend_from_slice(&h.root(s).0);
    }
    out.extend_from_slice(&justified_slots);
    let mut key = [0u8; 2 * PUBKEY_LEN];
    for i in 0..n as u64 {
        super::chain::fill(&[h.params.chain_id, TAG_PUBKEY, i], &mut key);
        out.extend_from_slice(&key);
        out.extend_from_slice(&i.to_le_bytes());
    }
    out.extend_from_slice(&bitlist(0, |_| false));
    Bytes::from(out)
}

/// The block body at `slot`: from slot 3 on, one aggregated attestation by
/// a supermajority whose target is the block two slots back.
fn block_body(h: &History, slot: u64) -> Vec<u8> {
    let mut body = Vec::new();
    put_u32(&mut body, 4); // offset of the attestations list
    if slot < 3 {
        return body;
    }
    let target = h.checkpoint(justified_slot(slot));
    let source = h.checkpoint(finalized_slot(slot));
    let bits = bitlist(voters(h.params.validators) as usize, |_| true);
    put_u32(&mut body, 4); // the list's one element starts after its offset
    put_u32(&mut body, 4 + 8 + 3 * 40); // aggregation_bits after the data
    body.extend_from_slice(&slot.to_le_bytes());
    put_checkpoint(&mut body, target); // head
    put_checkpoint(&mut body, target);
    put_checkpoint(&mut body, source);
    body.extend_from_slice(&bits);
    body
}

/// `GET /lean/v0/blocks/finalized`: SignedBlock with an empty proof.
pub fn signed_block_ssz(h: &History, slot: u64) -> Bytes {
    let body = block_body(h, slot);
    let block_len = 84 + body.len();
    let mut out = Vec::with_capacity(8 + block_len + 4);
    put_u32(&mut out, 8);
    put_u32(&mut out, 8 + block_len);
    out.extend_from_slice(&slot.to_le_bytes());
    out.extend_from_slice(&proposer(h, slot).to_le_bytes());
    out.extend_from_slice(&parent_root(h, slot).0);
    out.extend_from_slice(&h.derived(TAG_STATE_ROOT, slot).0);
    put_u32(&mut out, 84);
    out.extend_from_slice(&body);
    put_u32(&mut out, 4); // proof: offset of its empty byte list
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::super::chain::{Branch, ChainParams};
    use super::*;
    use crate::lean_api;
    use crate::lean_api::tests::fixture;
    use std::time::Duration;

    fn params(validators: u64) -> ChainParams {
        ChainParams {
            chain_id: 1,
            validators,
            slot: Duration::from_secs(4),
            start_slot: 12,
            genesis_time: 0,
        }
    }

    fn offsets(b: &[u8]) -> Vec<u32> {
        (0..5)
            .map(|i| {
                let at = 208 + 4 * i;
                u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
            })
            .collect()
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
    fn state_matches_the_advanced_fixture_layout() {
        let p = params(4);
        let h = History {
            params: &p,
            branch: Branch::Main,
        };
        let ours = state_ssz(&h, 9);
        let theirs = fixture("advanced", "states_finalized.ssz");
        assert_eq!(ours.len(), theirs.len());
        assert_eq!(offsets(&ours), offsets(&theirs));
        assert_eq!(offsets(&ours), vec![228, 516, 517, 965, 965]);
        // The justified_slots and justifications bitlists are the same bits.
        assert_eq!(ours[516], theirs[516]);
        assert_eq!(ours[965], theirs[965]);
        let hd = lean_api::validate_state(&ours).expect("validates");
        assert_eq!(hd, lean_api::parse_state_header(&ours).expect("header"));
        assert_eq!((hd.slot, hd.latest_block_header_slot), (9, 9));
        assert_eq!(hd.latest_justified.slot, 7);
        assert_eq!(hd.latest_finalized.slot, 6);
        assert_eq!(&ours[64..96], &[0u8; 32], "header state_root is zero");
        assert_eq!(hd.latest_finalized.root, h.root(6));
    }

    #[test]
    fn state_sizes_grow_with_slot_and_validators() {
        let p = params(3);
        let h = History {
            params: &p,
            branch: Branch::Main,
        };
        let genesis = state_ssz(&h, 0);
        assert_eq!(
            genesis.len(),
            fixture("genesis", "states_finalized.ssz").len()
        );
        assert_eq!(offsets(&genesis), vec![228, 228, 229, 565, 565]);
        for slot in [1, 2, 3, 5, 100] {
            let s = state_ssz(&h, slot);
            lean_api::validate_state(&s).unwrap_or_else(|e| panic!("slot {slot}: {e}"));
        }
        let p = params(1000);
        let big = History {
            params: &p,
            branch: Branch::Main,
        };
        let s = state_ssz(&big, 500);
        assert_eq!(s.len(), 228 + 32 * 500 + 1 + 112 * 1000 + 1);
        lean_api::validate_state(&s).expect("big state validates");
    }

    #[test]
    fn block_matches_the_fixture_layout() {
        let p = params(4);
        let h = History {
            params: &p,
            branch: Branch::Main,
        };
        let ours = signed_block_ssz(&h, 9);
        let theirs = fixture("advanced", "blocks_finalized.ssz");
        assert_eq!(ours.len(), theirs.len());
        assert_eq!(&ours[..8], &theirs[..8], "offsets");
        assert_eq!(
            &ours[88..112],
            &theirs[88..112],
            "body offsets and data slot"
        );
        assert_eq!(ours[ours.len() - 5..], theirs[theirs.len() - 5..]);
        let p3 = params(3);
        let g = History {
            params: &p3,
            branch: Branch::Main,
        };
        assert_eq!(signed_block_ssz(&g, 0).len(), 100);
    }

    #[test]
    fn json_has_the_fixture_shapes() {
        let p = params(4);
        let h = History {
            params: &p,
            branch: Branch::Main,
        };
        let fc = fork_choice_json(&h, 12);
        assert_eq!(shape(&fc), shape(&fixture("advanced", "fork_choice.json")));
        let v = lean_api::parse_fork_choice(&fc).expect("parses");
        assert_eq!(
            (v.head_slot, v.justified.slot, v.finalized.slot),
            (12, 10, 9)
        );
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
}
