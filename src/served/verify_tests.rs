use super::*;
use crate::lean::api::parse_fork_choice;
use crate::lean::api::tests::fixture;
use crate::lean::ssz::{Block, State, Validator};
use libssz_types::SszList;

fn bytes(folder: &str, file: &str) -> Bytes {
    Bytes::from(fixture(folder, file))
}

fn agreed(folder: &str) -> (u64, Root) {
    let fc = parse_fork_choice(&fixture(folder, "fork_choice.json")).expect("fork choice");
    (fc.finalized.slot, fc.finalized.root)
}

fn verify_fixture(folder: &str, block: Bytes, state: Bytes) -> Result<VerifiedPair, VerifyError> {
    let (slot, root) = agreed(folder);
    verify_pair(slot, root, block, state)
}

#[test]
fn every_capture_verifies_and_is_served_unchanged() {
    for folder in ["genesis", "advanced", "fork", "behind"] {
        let block = bytes(folder, "blocks_finalized.ssz");
        let state = bytes(folder, "states_finalized.ssz");
        let pair = verify_fixture(folder, block.clone(), state.clone())
            .unwrap_or_else(|e| panic!("{folder}: {e}"));
        let (slot, root) = agreed(folder);
        assert_eq!((pair.slot, pair.block_root), (slot, root), "{folder}");
        assert_eq!(pair.block, block, "{folder}");
        assert_eq!(pair.state, state, "{folder}");
    }
    let adv = verify_fixture(
        "advanced",
        bytes("advanced", "blocks_finalized.ssz"),
        bytes("advanced", "states_finalized.ssz"),
    )
    .expect("advanced");
    assert_eq!(
        adv.state_root.to_string(),
        "0x4ca97e4da8b9df32297bdb6f383dfb83019d010957dd9ee9df15183d861d7071"
    );
}

#[test]
fn advanced_state_with_fork_block_is_refused() {
    // Same slot (9), different branches: the fork's block commits to another state.
    let err = verify_fixture(
        "fork",
        bytes("fork", "blocks_finalized.ssz"),
        bytes("advanced", "states_finalized.ssz"),
    )
    .expect_err("mismatched pair");
    assert_eq!(err.kind(), "state_root_mismatch", "{err}");
    // And the advanced block is not the fork's agreed root.
    let err = verify_fixture(
        "fork",
        bytes("advanced", "blocks_finalized.ssz"),
        bytes("advanced", "states_finalized.ssz"),
    )
    .expect_err("wrong block");
    assert_eq!(err.kind(), "block_root_mismatch");
    assert!(err.to_string().contains("0x399fbbbe"), "{err}");
}

#[test]
fn a_state_for_another_slot_is_refused() {
    let err = verify_fixture(
        "advanced",
        bytes("advanced", "blocks_finalized.ssz"),
        bytes("behind", "states_finalized.ssz"),
    )
    .expect_err("slot 5 state");
    assert_eq!(
        err,
        VerifyError::StateSlotMismatch {
            expected: 9,
            got: 5
        }
    );
    let (_, root) = agreed("advanced");
    let err = verify_pair(
        10,
        root,
        bytes("advanced", "blocks_finalized.ssz"),
        bytes("advanced", "states_finalized.ssz"),
    )
    .expect_err("agreed slot 10");
    assert_eq!(err.kind(), "block_slot_mismatch");
}

#[test]
fn damaged_bytes_are_named_errors() {
    let block = fixture("advanced", "blocks_finalized.ssz");
    let state = fixture("advanced", "states_finalized.ssz");
    let run = |b: Vec<u8>, s: Vec<u8>| {
        verify_fixture("advanced", Bytes::from(b), Bytes::from(s)).map(|_| ())
    };
    let mut zero_tail = state.clone();
    zero_tail.extend_from_slice(&[0, 0]);
    assert_eq!(
        run(block.clone(), zero_tail),
        Err(VerifyError::StateDecode(SszReason::BadBitlist))
    );
    // A tail that happens to extend the last bitlist decodes, and changes the root.
    let mut bit_tail = state.clone();
    bit_tail.push(1);
    assert_eq!(
        run(block.clone(), bit_tail).unwrap_err().kind(),
        "state_root_mismatch"
    );
    let mut offset = state.clone();
    offset[212..216].copy_from_slice(&4000u32.to_le_bytes());
    assert_eq!(
        run(block.clone(), offset),
        Err(VerifyError::StateDecode(SszReason::BadOffset))
    );
    let mut block_offset = block.clone();
    block_offset[4..8].copy_from_slice(&300u32.to_le_bytes());
    assert_eq!(
        run(block_offset, state.clone()),
        Err(VerifyError::BlockDecode(SszReason::BadOffset))
    );
    assert_eq!(
        run(block.clone(), state[..200].to_vec())
            .unwrap_err()
            .kind(),
        "state_decode"
    );
    let html = b"<html><body>502 Bad Gateway</body></html>".repeat(10);
    let err = run(html.clone(), state.clone()).unwrap_err();
    assert_eq!(err.kind(), "block_decode");
    assert!(!err.to_string().contains("html"), "{err}");
}

#[test]
fn trailing_bytes_on_the_block_are_proof_bytes_and_never_served() {
    // SSZ gives the last field the rest of the body, so bytes after a
    // SignedBlock are its proof's; no root covers them, so they are dropped.
    let block = fixture("advanced", "blocks_finalized.ssz");
    let mut long = block.clone();
    long.extend_from_slice(b"junk");
    let pair = verify_fixture(
        "advanced",
        Bytes::from(long),
        bytes("advanced", "states_finalized.ssz"),
    )
    .expect("block root still proven");
    assert_eq!(pair.block, block);
}

/// A pair whose roots are consistent but whose state breaks one rule, so
/// only that rule can refuse it.
fn consistent_pair(damage: impl FnOnce(&mut State)) -> Result<VerifiedPair, VerifyError> {
    let mut state = decode_state(&fixture("advanced", "states_finalized.ssz")).expect("state");
    let mut signed =
        decode_signed_block(&fixture("advanced", "blocks_finalized.ssz")).expect("block");
    damage(&mut state);
    signed.block.state_root = htr(&state).0;
    let root = htr(&signed.block);
    verify_pair(
        signed.block.slot,
        root,
        Bytes::from(encode(&signed)),
        Bytes::from(encode(&state)),
    )
}

#[test]
fn a_state_for_another_block_is_a_header_mismatch() {
    assert!(consistent_pair(|_| {}).is_ok());
    let err = consistent_pair(|s| s.latest_block_header.proposer_index = 2).unwrap_err();
    assert_eq!(
        err,
        VerifyError::HeaderMismatch {
            field: "proposer_index"
        }
    );
    let err = consistent_pair(|s| s.latest_block_header.body_root = [7; 32]).unwrap_err();
    assert_eq!(err, VerifyError::HeaderMismatch { field: "body_root" });
    let err = consistent_pair(|s| s.latest_block_header.state_root = [1; 32]).unwrap_err();
    assert_eq!(err.kind(), "header_mismatch");
}

#[test]
fn validators_must_be_indexed_by_position() {
    let err = consistent_pair(|s| s.validators = SszList::new()).unwrap_err();
    assert_eq!(
        err,
        VerifyError::ValidatorsInvalid(ValidatorsProblem::Empty)
    );
    let err = consistent_pair(|s| {
        let v: Vec<Validator> = s.validators.iter().rev().copied().collect();
        s.validators = SszList::try_from(v).expect("4");
    })
    .unwrap_err();
    assert_eq!(
        err,
        VerifyError::ValidatorsInvalid(ValidatorsProblem::IndexNotPosition {
            position: 0,
            index: 3
        })
    );
    assert_eq!(err.kind(), "validators_invalid");
}

#[test]
fn a_block_with_another_body_is_not_the_agreed_block() {
    let mut signed =
        decode_signed_block(&fixture("advanced", "blocks_finalized.ssz")).expect("block");
    signed.block = Block {
        body: Default::default(),
        ..signed.block
    };
    let err = verify_fixture(
        "advanced",
        Bytes::from(encode(&signed)),
        bytes("advanced", "states_finalized.ssz"),
    )
    .unwrap_err();
    assert_eq!(err.kind(), "block_root_mismatch");
}
