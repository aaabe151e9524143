use super::*;
use crate::lean::api::parse_fork_choice;
use crate::lean::api::tests::fixture;

const CAPTURES: [&str; 4] = ["genesis", "advanced", "fork", "behind"];

#[test]
fn every_capture_roots_as_its_node_reported() {
    for folder in CAPTURES {
        let fc = parse_fork_choice(&fixture(folder, "fork_choice.json")).expect("fork choice");
        let signed = decode_signed_block(&fixture(folder, "blocks_finalized.ssz"))
            .unwrap_or_else(|e| panic!("{folder} block: {e}"));
        let state = decode_state(&fixture(folder, "states_finalized.ssz"))
            .unwrap_or_else(|e| panic!("{folder} state: {e}"));
        assert_eq!(
            htr(&signed.block),
            fc.finalized.root,
            "{folder}: htr(block)"
        );
        assert_eq!(signed.block.slot, fc.finalized.slot, "{folder}");
        assert_eq!(
            Root(signed.block.state_root),
            htr(&state),
            "{folder}: htr(state)"
        );
        assert_eq!(state.slot, signed.block.slot, "{folder}");
        assert_eq!(
            state.latest_block_header,
            signed.block.header([0; 32]),
            "{folder}: header"
        );
    }
}

#[test]
fn decoding_then_encoding_gives_the_same_bytes() {
    for folder in CAPTURES {
        for file in ["blocks_finalized.ssz", "states_finalized.ssz"] {
            let bytes = fixture(folder, file);
            let again = if file.starts_with("blocks") {
                encode(&decode_signed_block(&bytes).expect("block"))
            } else {
                encode(&decode_state(&bytes).expect("state"))
            };
            assert_eq!(again, bytes, "{folder}/{file}");
        }
    }
}

#[test]
fn advanced_fields_are_the_layout_values() {
    // Values from tests/fixtures/lean-api/advanced/ssz_layout.json.
    let state = decode_state(&fixture("advanced", "states_finalized.ssz")).expect("state");
    assert_eq!(state.config.genesis_time, 0);
    assert_eq!(
        (state.slot, state.latest_block_header.proposer_index),
        (9, 1)
    );
    assert_eq!(state.historical_block_hashes.len(), 9);
    assert_eq!(state.justified_slots.len(), 2);
    assert_eq!(state.validators.len(), 4);
    assert_eq!(state.justifications_roots.len(), 0);
    assert_eq!(state.justifications_validators.len(), 0);
    assert_eq!(
        (state.latest_justified.slot, state.latest_finalized.slot),
        (7, 6)
    );
    assert_eq!(
        htr(&state).to_string(),
        "0x4ca97e4da8b9df32297bdb6f383dfb83019d010957dd9ee9df15183d861d7071"
    );
    let signed = decode_signed_block(&fixture("advanced", "blocks_finalized.ssz")).expect("block");
    assert_eq!(signed.block.body.attestations.len(), 1);
    assert!(signed.proof.proof.is_empty());
}

#[test]
fn damaged_bytes_are_named_reasons() {
    let state = fixture("advanced", "states_finalized.ssz");
    assert_eq!(
        decode_state(&state[..100]),
        Err(SszReason::Truncated {
            expected: 228,
            got: 100
        })
    );
    // The last field is a bitlist: a zero byte after it leaves no delimiter.
    let mut trailing = state.clone();
    trailing.push(0);
    assert_eq!(decode_state(&trailing), Err(SszReason::BadBitlist));
    let mut offset = state.clone();
    offset[216..220].copy_from_slice(&5000u32.to_le_bytes());
    assert_eq!(decode_state(&offset), Err(SszReason::BadOffset));
    let mut first = state.clone();
    first[208..212].copy_from_slice(&232u32.to_le_bytes());
    assert_eq!(decode_state(&first), Err(SszReason::BadOffset));
    let block = fixture("advanced", "blocks_finalized.ssz");
    let mut bad = block.clone();
    bad[0..4].copy_from_slice(&9u32.to_le_bytes());
    assert_eq!(decode_signed_block(&bad), Err(SszReason::BadOffset));
    assert!(matches!(
        decode_signed_block(&block[..3]),
        Err(SszReason::Truncated { .. })
    ));
    // A fixed-size container takes no extra byte.
    let cp = encode(&Checkpoint::default());
    let mut long = cp.clone();
    long.push(1);
    assert_eq!(
        Checkpoint::from_ssz_bytes(&long).map_err(SszReason::from_decode),
        Err(SszReason::TrailingBytes { extra: 1 })
    );
}

#[test]
fn over_limit_lists_are_refused() {
    let mut state = decode_state(&fixture("advanced", "states_finalized.ssz")).expect("state");
    let v = state.validators[0];
    let many: Vec<Validator> = (0..=VALIDATOR_REGISTRY_LIMIT as u64)
        .map(|index| Validator { index, ..v })
        .collect();
    // The library will not build an over-limit list, so splice the bytes.
    state.validators = SszList::try_from(many[..VALIDATOR_REGISTRY_LIMIT].to_vec()).expect("4096");
    let mut bytes = encode(&state);
    let jroots_at = u32_at(&bytes, 220).expect("offset");
    bytes.splice(jroots_at..jroots_at, encode(&many[0]));
    for at in [220, 224] {
        let off = u32_at(&bytes, at).expect("offset") + 112;
        bytes[at..at + 4].copy_from_slice(&(off as u32).to_le_bytes());
    }
    assert_eq!(
        decode_state(&bytes),
        Err(SszReason::BadLength {
            expected: VALIDATOR_REGISTRY_LIMIT,
            got: VALIDATOR_REGISTRY_LIMIT + 1
        })
    );
}

#[test]
fn prefix_readers_follow_the_layout() {
    let state = fixture("advanced", "states_finalized.ssz");
    let chains: serde_json::Value =
        serde_json::from_slice(&fixture("", "chains.json")).expect("chains.json");
    assert_eq!(state_genesis_time(&state), Some(0));
    assert_eq!(
        state_genesis_time(&fixture("genesis", "states_finalized.ssz")),
        Some(1_767_225_600)
    );
    assert_eq!(state_genesis_time(&state[..7]), None);
    for slot in 0..9u64 {
        let key = match slot {
            0 => "genesis".to_string(),
            s => format!("b{s}"),
        };
        let want = chains["advanced"][key].as_str().expect("root");
        match state_historical_block_hash(&state, slot) {
            Ok(HistoricalHash::Root(r)) => assert_eq!(r.to_string(), want, "slot {slot}"),
            other => panic!("slot {slot}: {other:?}"),
        }
    }
    assert_eq!(
        state_historical_block_hash(&state, 9),
        Ok(HistoricalHash::Absent)
    );
    assert_eq!(
        state_historical_block_hash(&state[..300], 8),
        Ok(HistoricalHash::NeedMore { need: 228 + 32 * 9 })
    );
    assert_eq!(
        state_historical_block_hash(&state[..100], 0),
        Ok(HistoricalHash::NeedMore { need: 228 })
    );
    let mut bad = state.clone();
    bad[212..216].copy_from_slice(&230u32.to_le_bytes());
    // The list now ends 2 bytes after it starts: not a whole number of roots.
    assert_eq!(
        state_historical_block_hash(&bad, 0),
        Err(SszReason::BadLength {
            expected: 32,
            got: 2
        })
    );
}
