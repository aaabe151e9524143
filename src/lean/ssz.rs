//! The Lean consensus containers as SSZ types, from leanSpec at the fixtures'
//! commit (see tests/fixtures/lean-api/README.md): strict decoding, encoding
//! and hash tree roots, all done by the `libssz` crates.
//!
//! Only the field order, the types and the list limits are written here; the
//! serialisation and merkleisation rules live in the library, which is tested
//! against the consensus spec vectors. The fixtures pin the result: every
//! capture's `htr(block)` is the finalized root its node reported and its
//! block's `state_root` is `htr(state)` (tests below).
//!
//! Besides the containers, two bounded readers of a State *prefix*
//! ([`state_genesis_time`], [`state_historical_block_hash`]) read single
//! fields from the byte layout without decoding the whole State.

use std::fmt;

use libssz::{SszDecode, SszEncode};
use libssz_derive::{HashTreeRoot, SszDecode, SszEncode};
use libssz_merkle::{HashTreeRoot, Sha2Hasher};
/// The list types of the containers, for code that builds them.
pub use libssz_types::{SszBitlist, SszList};

use crate::lean::api::{Root, STATE_FIXED_LEN};

pub type Bytes32 = [u8; 32];
pub type Bytes52 = [u8; 52];

/// `HISTORICAL_ROOTS_LIMIT`: historical_block_hashes, justified_slots,
/// justifications_roots.
pub const HISTORICAL_ROOTS_LIMIT: usize = 1 << 18;
/// `VALIDATOR_REGISTRY_LIMIT`: validators, aggregation bits, attestations.
pub const VALIDATOR_REGISTRY_LIMIT: usize = 1 << 12;
/// justifications_validators: one bit per (justification root, validator).
pub const JUSTIFICATION_VOTES_LIMIT: usize = 1 << 30;
/// The block proof's byte list.
pub const PROOF_BYTES_LIMIT: usize = 1 << 19;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, SszEncode, SszDecode, HashTreeRoot)]
pub struct Checkpoint {
    pub root: Bytes32,
    pub slot: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, SszEncode, SszDecode, HashTreeRoot)]
pub struct BlockHeader {
    pub slot: u64,
    pub proposer_index: u64,
    pub parent_root: Bytes32,
    pub state_root: Bytes32,
    pub body_root: Bytes32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, SszEncode, SszDecode, HashTreeRoot)]
pub struct Validator {
    pub attestation_public_key: Bytes52,
    pub proposal_public_key: Bytes52,
    pub index: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, SszEncode, SszDecode, HashTreeRoot)]
pub struct Config {
    pub genesis_time: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, SszEncode, SszDecode, HashTreeRoot)]
pub struct State {
    pub config: Config,
    pub slot: u64,
    pub latest_block_header: BlockHeader,
    pub latest_justified: Checkpoint,
    pub latest_finalized: Checkpoint,
    pub historical_block_hashes: SszList<Bytes32, HISTORICAL_ROOTS_LIMIT>,
    pub justified_slots: SszBitlist<HISTORICAL_ROOTS_LIMIT>,
    pub validators: SszList<Validator, VALIDATOR_REGISTRY_LIMIT>,
    pub justifications_roots: SszList<Bytes32, HISTORICAL_ROOTS_LIMIT>,
    pub justifications_validators: SszBitlist<JUSTIFICATION_VOTES_LIMIT>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, SszEncode, SszDecode, HashTreeRoot)]
pub struct AttestationData {
    pub slot: u64,
    pub head: Checkpoint,
    pub target: Checkpoint,
    pub source: Checkpoint,
}

#[derive(Clone, Debug, PartialEq, Eq, SszEncode, SszDecode, HashTreeRoot)]
pub struct AggregatedAttestation {
    pub aggregation_bits: SszBitlist<VALIDATOR_REGISTRY_LIMIT>,
    pub data: AttestationData,
}

#[derive(Clone, Debug, PartialEq, Eq, Default, SszEncode, SszDecode, HashTreeRoot)]
pub struct BlockBody {
    pub attestations: SszList<AggregatedAttestation, VALIDATOR_REGISTRY_LIMIT>,
}

#[derive(Clone, Debug, PartialEq, Eq, SszEncode, SszDecode, HashTreeRoot)]
pub struct Block {
    pub slot: u64,
    pub proposer_index: u64,
    pub parent_root: Bytes32,
    pub state_root: Bytes32,
    pub body: BlockBody,
}

/// The proof wrapper of a signed block. Its bytes are opaque to leanpoint:
/// signatures are not checked, and the reference node serves it empty.
#[derive(Clone, Debug, PartialEq, Eq, Default, SszEncode, SszDecode, HashTreeRoot)]
pub struct BlockProof {
    pub proof: SszList<u8, PROOF_BYTES_LIMIT>,
}

#[derive(Clone, Debug, PartialEq, Eq, SszEncode, SszDecode, HashTreeRoot)]
pub struct SignedBlock {
    pub block: Block,
    pub proof: BlockProof,
}

impl Block {
    /// The header a State holds for this block: `body_root = htr(body)`, and
    /// `state_root` as given (zero in the block's own post-state).
    pub fn header(&self, state_root: Bytes32) -> BlockHeader {
        BlockHeader {
            slot: self.slot,
            proposer_index: self.proposer_index,
            parent_root: self.parent_root,
            state_root,
            body_root: self.body.hash_tree_root(&Sha2Hasher),
        }
    }
}

/// The hash tree root of any container here.
pub fn htr<T: HashTreeRoot>(value: &T) -> Root {
    Root(value.hash_tree_root(&Sha2Hasher))
}

/// Why bytes are not a valid SSZ value. Coarse on purpose: each kind is one
/// thing an upstream can get wrong, with the numbers that show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SszReason {
    /// Shorter than the container's fixed part, or a fixed field cut short.
    Truncated { expected: usize, got: usize },
    /// Bytes left after a fixed-size value.
    TrailingBytes { extra: usize },
    /// An offset outside the body, decreasing, or not where the fixed part ends.
    BadOffset,
    /// A list over its limit (`expected` is the limit, `got` the count) or a
    /// span that is not whole elements (`expected` is the element size).
    BadLength { expected: usize, got: usize },
    /// A bitlist without its delimiter bit, or with bits above it.
    BadBitlist,
    /// Anything else the decoder refused (a boolean byte, an empty input).
    Invalid,
}

impl SszReason {
    /// A stable snake_case label.
    pub fn kind(&self) -> &'static str {
        match self {
            SszReason::Truncated { .. } => "truncated",
            SszReason::TrailingBytes { .. } => "trailing_bytes",
            SszReason::BadOffset => "bad_offset",
            SszReason::BadLength { .. } => "bad_length",
            SszReason::BadBitlist => "bad_bitlist",
            SszReason::Invalid => "invalid",
        }
    }

    fn from_decode(e: libssz::DecodeError) -> SszReason {
        use libssz::DecodeError as E;
        match e {
            E::InvalidFixedLength { expected, got } if got < expected => {
                SszReason::Truncated { expected, got }
            }
            E::InvalidFixedLength { expected, got } => SszReason::TrailingBytes {
                extra: got - expected,
            },
            E::AdditionalBytes { expected, got } => SszReason::TrailingBytes {
                extra: got.saturating_sub(expected),
            },
            E::ExtraBytesRemaining(extra) => SszReason::TrailingBytes { extra },
            E::OffsetOutOfBounds { .. }
            | E::OffsetsAreNotMonotonicallyIncreasing
            | E::InvalidFirstOffset { .. } => SszReason::BadOffset,
            E::InvalidByteLength { expected, got } => SszReason::BadLength { expected, got },
            E::MissingDelimiterBit | E::ExcessBitsNotZero => SszReason::BadBitlist,
            E::InvalidBooleanByte(_) | E::EmptyInput | E::InvalidUnionSelector(_) => {
                SszReason::Invalid
            }
        }
    }
}

impl fmt::Display for SszReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SszReason::Truncated { expected, got } => {
                write!(f, "truncated: {got} bytes where {expected} are needed")
            }
            SszReason::TrailingBytes { extra } => write!(f, "{extra} trailing bytes"),
            SszReason::BadOffset => f.write_str("an offset is out of order or past the body"),
            SszReason::BadLength { expected, got } => write!(
                f,
                "a list is over its limit or not whole elements ({got} against {expected})"
            ),
            SszReason::BadBitlist => f.write_str("a bitlist lacks its delimiter bit"),
            SszReason::Invalid => f.write_str("not a valid encoding"),
        }
    }
}

/// Strictly decodes a value whose encoding starts with a fixed part of
/// `fixed_len` bytes (a shorter body is `Truncated`, whatever the library
/// would call it).
fn decode<T: SszDecode>(bytes: &[u8], fixed_len: usize) -> Result<T, SszReason> {
    if bytes.len() < fixed_len {
        return Err(SszReason::Truncated {
            expected: fixed_len,
            got: bytes.len(),
        });
    }
    T::from_ssz_bytes(bytes).map_err(SszReason::from_decode)
}

/// Fixed part of a SignedBlock: two offsets.
pub const SIGNED_BLOCK_FIXED_LEN: usize = 8;

pub fn decode_signed_block(bytes: &[u8]) -> Result<SignedBlock, SszReason> {
    decode(bytes, SIGNED_BLOCK_FIXED_LEN)
}

pub fn decode_state(bytes: &[u8]) -> Result<State, SszReason> {
    decode(bytes, STATE_FIXED_LEN)
}

pub fn encode<T: SszEncode>(value: &T) -> Vec<u8> {
    value.to_ssz()
}

/// Where historical_block_hashes' offset sits in the State's fixed part.
const HISTORICAL_OFFSET_AT: usize = 208;
/// Where justified_slots' offset sits: the end of historical_block_hashes.
const JUSTIFIED_SLOTS_OFFSET_AT: usize = 212;

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    let raw: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(raw) as usize)
}

/// `config.genesis_time` from the first 8 bytes of a State (or any prefix
/// of it); `None` if the prefix is shorter.
pub fn state_genesis_time(prefix: &[u8]) -> Option<u64> {
    let raw: [u8; 8] = prefix.get(0..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(raw))
}

/// What a State prefix says about `historical_block_hashes[slot]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoricalHash {
    /// The root of the block at that slot (zero for a skipped slot).
    Root(Root),
    /// The State holds no entry for that slot (it is at or past the State's slot).
    Absent,
    /// The prefix ends before the entry (read a longer prefix: `need` bytes).
    NeedMore { need: usize },
}

/// `historical_block_hashes[slot]` read from the byte layout: the fixed
/// part's offsets bound the list, then 32 bytes at `offset + 32 * slot`.
/// Needs only the bytes up to that entry, so a caller can stop a download
/// there. An offset pair that is out of order or not whole roots is an error.
pub fn state_historical_block_hash(prefix: &[u8], slot: u64) -> Result<HistoricalHash, SszReason> {
    let (Some(start), Some(end)) = (
        u32_at(prefix, HISTORICAL_OFFSET_AT),
        u32_at(prefix, JUSTIFIED_SLOTS_OFFSET_AT),
    ) else {
        return Ok(HistoricalHash::NeedMore {
            need: STATE_FIXED_LEN,
        });
    };
    if start != STATE_FIXED_LEN || end < start {
        return Err(SszReason::BadOffset);
    }
    if (end - start) % 32 != 0 {
        return Err(SszReason::BadLength {
            expected: 32,
            got: end - start,
        });
    }
    let count = (end - start) / 32;
    let Ok(index) = usize::try_from(slot) else {
        return Ok(HistoricalHash::Absent);
    };
    if index >= count {
        return Ok(HistoricalHash::Absent);
    }
    let at = start + 32 * index;
    match prefix.get(at..at + 32).and_then(Root::from_slice) {
        Some(root) => Ok(HistoricalHash::Root(root)),
        None => Ok(HistoricalHash::NeedMore { need: at + 32 }),
    }
}

#[cfg(test)]
#[path = "ssz_tests.rs"]
mod tests;
