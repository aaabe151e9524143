use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::lean::ssz::{decode_signed_block, decode_state, encode, htr, SignedBlock};
use crate::served::verify::verify_pair;

fn params(validators: u64) -> ChainParams {
    ChainParams {
        chain_id: 1,
        validators,
        slot: Duration::from_secs(4),
        start_slot: 12,
        genesis_time: 1_700_000_000,
        justification_roots: 0,
    }
}

/// What a node would serve for `slot`, through the bytes and back.
fn served(h: &History, slot: u64) -> (Bytes, Bytes) {
    let block = SignedBlock {
        block: h.block(slot),
        proof: Default::default(),
    };
    (
        Bytes::from(encode(&block)),
        Bytes::from(encode(&h.state(slot))),
    )
}

fn check_branch(ledger: &mut Ledger, branch: Branch, upto: u64) {
    let h = ledger.history(branch, upto);
    for slot in 0..=upto {
        let (block, state) = served(&h, slot);
        let decoded = decode_state(&state).expect("state decodes");
        assert_eq!(htr(&decoded), h.state_root(slot), "{branch:?} slot {slot}");
        let signed = decode_signed_block(&block).expect("block decodes");
        assert_eq!(htr(&signed.block), h.root(slot), "{branch:?} slot {slot}");
        for (s, root) in decoded.historical_block_hashes.iter().enumerate() {
            assert_eq!(Root(*root), h.root(s as u64), "history[{s}] at {slot}");
        }
        verify_pair(slot, h.root(slot), block, state)
            .unwrap_or_else(|e| panic!("{branch:?} slot {slot}: {e}"));
    }
}

#[test]
fn roots_are_hash_tree_roots_on_every_branch() {
    for validators in [1, 2, 4] {
        let mut ledger = Ledger::new(&params(validators));
        check_branch(&mut ledger, Branch::Main, 20);
        check_branch(&mut ledger, Branch::Fork { from: 6 }, 20);
        check_branch(&mut ledger, Branch::Fork { from: 1 }, 8);
    }
}

#[test]
fn pending_justifications_are_in_the_proven_state() {
    // 3 validators: bit counts that do not end on a byte (the delimiter's
    // shift), and 5 roots of 3 votes each.
    let mut ledger = Ledger::new(&ChainParams {
        justification_roots: 5,
        ..params(3)
    });
    check_branch(&mut ledger, Branch::Main, 6);
    let state = ledger.history(Branch::Main, 6).state(6);
    assert_eq!(state.justifications_roots.len(), 5);
    assert_eq!(state.justifications_validators.len(), 15);
}

#[test]
fn forks_branch_at_real_blocks() {
    let mut ledger = Ledger::new(&params(4));
    let main: Vec<Root> = {
        let h = ledger.history(Branch::Main, 12);
        (0..=12).map(|s| h.root(s)).collect()
    };
    let h = ledger.history(Branch::Fork { from: 6 }, 12);
    for (slot, want) in main.iter().enumerate() {
        if slot < 6 {
            assert_eq!(h.root(slot as u64), *want, "shared slot {slot}");
        } else {
            assert_ne!(h.root(slot as u64), *want, "forked slot {slot}");
        }
    }
    // The fork's first block is a child of the main chain's block 5.
    assert_eq!(h.parent_root(6), main[5]);
    for validators in [1, 2] {
        let mut small = Ledger::new(&params(validators));
        let m = small.history(Branch::Main, 4).root(4);
        assert_ne!(small.history(Branch::Fork { from: 4 }, 4).root(4), m);
    }
}

#[test]
fn a_fork_past_the_walked_part_is_the_main_chain() {
    let mut ledger = Ledger::new(&params(4));
    let m = ledger.history(Branch::Main, 5).root(5);
    assert_eq!(ledger.history(Branch::Fork { from: 9 }, 5).root(5), m);
}

#[test]
fn a_full_registry_at_thousands_of_slots() {
    let mut ledger = Ledger::new(&params(VALIDATOR_REGISTRY_LIMIT as u64));
    let h = ledger.history(Branch::Main, 3000);
    let (block, state) = served(&h, 3000);
    assert_eq!(state.len(), 228 + 32 * 3000 + 1 + 112 * 4096 + 1);
    verify_pair(3000, h.root(3000), block, state).expect("verifies");
    assert_eq!(Ledger::new(&params(10_000)).validator_count(), 4096);
}

#[test]
fn the_advanced_fixture_layout_is_kept() {
    // Same shapes as the reference node's capture at slot 9 (4 validators).
    use crate::lean::api::tests::fixture;
    let mut ledger = Ledger::new(&params(4));
    let h = ledger.history(Branch::Main, 9);
    let (block, state) = served(&h, 9);
    let theirs = fixture("advanced", "states_finalized.ssz");
    assert_eq!(state.len(), theirs.len());
    assert_eq!(state[208..228], theirs[208..228], "offsets");
    assert_eq!(state[516], theirs[516], "justified_slots");
    let theirs = fixture("advanced", "blocks_finalized.ssz");
    assert_eq!(block.len(), theirs.len());
    assert_eq!(block[..8], theirs[..8]);
    assert_eq!(block[block.len() - 5..], theirs[theirs.len() - 5..]);
}
