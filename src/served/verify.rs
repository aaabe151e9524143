//! Proves a finalized (block, state) pair against the agreed checkpoint
//! before anything of it is served. Pure: bytes and the checkpoint in, the
//! pair or a named reason out.
//!
//! The chain of proof: the agreed root is `htr(block)`, the block commits to
//! `htr(state)` in its `state_root`, and the state's own header must be that
//! block's. So a pair that passes is byte for byte what the agreeing
//! upstreams finalized, whichever upstream sent it. Signatures are not
//! checked (the agreement of upstreams stands for them), and the block's
//! proof bytes, which no root covers, are never served.

use bytes::Bytes;

use crate::lean::api::Root;
use crate::lean::ssz::{
    decode_signed_block, decode_state, encode, htr, BlockProof, SignedBlock, SszReason,
    VALIDATOR_REGISTRY_LIMIT,
};

/// A pair that passed every check of [`verify_pair`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedPair {
    pub slot: u64,
    pub block_root: Root,
    pub state_root: Root,
    /// The SignedBlock to serve: the verified block with an empty proof,
    /// as the reference node serves it.
    pub block: Bytes,
    /// The State to serve, as received (a strict decode has one encoding).
    pub state: Bytes,
}

/// Why a pair is refused. Display never echoes upstream bytes: only
/// lengths, slots and roots.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("block SSZ: {0}")]
    BlockDecode(SszReason),
    #[error("state SSZ: {0}")]
    StateDecode(SszReason),
    #[error("block root {got} is not the agreed root {expected}")]
    BlockRootMismatch { expected: Root, got: Root },
    #[error("block slot {got} is not the agreed slot {expected}")]
    BlockSlotMismatch { expected: u64, got: u64 },
    #[error("state slot {got} is not the block's slot {expected}")]
    StateSlotMismatch { expected: u64, got: u64 },
    #[error("state root {got} is not the block's state_root {expected}")]
    StateRootMismatch { expected: Root, got: Root },
    #[error("state's latest_block_header differs from the block in {field}")]
    HeaderMismatch { field: &'static str },
    #[error("state validators: {0}")]
    ValidatorsInvalid(ValidatorsProblem),
}

/// What is wrong with a State's validator registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidatorsProblem {
    #[error("the registry is empty")]
    Empty,
    #[error("validator at position {position} has index {index}")]
    IndexNotPosition { position: usize, index: u64 },
}

impl VerifyError {
    /// A stable snake_case label for metrics and JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            VerifyError::BlockDecode(_) => "block_decode",
            VerifyError::StateDecode(_) => "state_decode",
            VerifyError::BlockRootMismatch { .. } => "block_root_mismatch",
            VerifyError::BlockSlotMismatch { .. } => "block_slot_mismatch",
            VerifyError::StateSlotMismatch { .. } => "state_slot_mismatch",
            VerifyError::StateRootMismatch { .. } => "state_root_mismatch",
            VerifyError::HeaderMismatch { .. } => "header_mismatch",
            VerifyError::ValidatorsInvalid(_) => "validators_invalid",
        }
    }
}

/// Serves the pair only if all hold: `htr(block)` is the agreed root and the
/// block is at the agreed slot; the state is at the block's slot and its
/// root is the block's `state_root`; the state's latest header is the
/// block's header (`body_root = htr(body)`, `state_root` zero); and the
/// registry holds 1..=4096 validators whose indices are their positions.
/// The cheap checks run before each hash tree root.
pub fn verify_pair(
    agreed_slot: u64,
    agreed_root: Root,
    block: Bytes,
    state: Bytes,
) -> Result<VerifiedPair, VerifyError> {
    let signed = decode_signed_block(&block).map_err(VerifyError::BlockDecode)?;
    let block_root = htr(&signed.block);
    if block_root != agreed_root {
        return Err(VerifyError::BlockRootMismatch {
            expected: agreed_root,
            got: block_root,
        });
    }
    if signed.block.slot != agreed_slot {
        return Err(VerifyError::BlockSlotMismatch {
            expected: agreed_slot,
            got: signed.block.slot,
        });
    }
    let decoded = decode_state(&state).map_err(VerifyError::StateDecode)?;
    if decoded.slot != signed.block.slot {
        return Err(VerifyError::StateSlotMismatch {
            expected: signed.block.slot,
            got: decoded.slot,
        });
    }
    check_validators(&decoded.validators)?;
    let state_root = htr(&decoded);
    if state_root.0 != signed.block.state_root {
        return Err(VerifyError::StateRootMismatch {
            expected: Root(signed.block.state_root),
            got: state_root,
        });
    }
    check_header(&decoded.latest_block_header, &signed.block.header([0; 32]))?;
    Ok(VerifiedPair {
        slot: agreed_slot,
        block_root,
        state_root,
        block: canonical_block(signed, block),
        state,
    })
}

/// The block with an empty proof; the received bytes when that is what they
/// already are (the reference node's case), so nothing is copied.
fn canonical_block(signed: SignedBlock, received: Bytes) -> Bytes {
    if signed.proof.proof.is_empty() {
        return received;
    }
    let bare = SignedBlock {
        block: signed.block,
        proof: BlockProof::default(),
    };
    Bytes::from(encode(&bare))
}

fn check_validators(validators: &[crate::lean::ssz::Validator]) -> Result<(), VerifyError> {
    if validators.is_empty() {
        return Err(VerifyError::ValidatorsInvalid(ValidatorsProblem::Empty));
    }
    // The decoder already refused more than the registry limit.
    debug_assert!(validators.len() <= VALIDATOR_REGISTRY_LIMIT);
    match validators
        .iter()
        .enumerate()
        .find(|(position, v)| v.index != *position as u64)
    {
        Some((position, v)) => Err(VerifyError::ValidatorsInvalid(
            ValidatorsProblem::IndexNotPosition {
                position,
                index: v.index,
            },
        )),
        None => Ok(()),
    }
}

fn check_header(
    held: &crate::lean::ssz::BlockHeader,
    want: &crate::lean::ssz::BlockHeader,
) -> Result<(), VerifyError> {
    let field = if held.slot != want.slot {
        "slot"
    } else if held.proposer_index != want.proposer_index {
        "proposer_index"
    } else if held.parent_root != want.parent_root {
        "parent_root"
    } else if held.state_root != want.state_root {
        "state_root"
    } else if held.body_root != want.body_root {
        "body_root"
    } else {
        return Ok(());
    };
    Err(VerifyError::HeaderMismatch { field })
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
