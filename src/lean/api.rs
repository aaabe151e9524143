//! Lean API wire formats: what upstreams speak and what leanpoint serves.
//!
//! Everything here is pure: bytes in, typed values or a named error out. The
//! shapes follow the captures of the reference node in
//! `tests/fixtures/lean-api` exactly (slots are JSON numbers, roots are
//! `0x`-prefixed lowercase hex, the State is SSZ with a 228-byte fixed part).
//! Nothing else in the crate parses upstream bytes, so a hostile upstream can
//! only reach the rest of the program through the types below.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Lean API paths, relative to an upstream's base URL.
pub mod paths {
    pub const HEALTH: &str = "/lean/v0/health";
    pub const JUSTIFIED: &str = "/lean/v0/checkpoints/justified";
    pub const FORK_CHOICE: &str = "/lean/v0/fork_choice";
    pub const STATE_FINALIZED: &str = "/lean/v0/states/finalized";
    pub const BLOCK_FINALIZED: &str = "/lean/v0/blocks/finalized";
}

/// Slots above this are treated as garbage rather than a real chain: at a
/// 4 s slot time it is more than a century of slots, and it keeps a value
/// read from misinterpreted text (8 ASCII bytes as a u64) out of consensus.
pub const MAX_PLAUSIBLE_SLOT: u64 = 1_000_000_000;

/// A 32-byte block root.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Root(pub [u8; 32]);

impl Root {
    pub const ZERO: Root = Root([0; 32]);

    /// Parses `0x` + 64 hex digits. Upper-case digits are accepted (some
    /// clients may emit them); the canonical output is lower-case.
    pub fn from_hex(s: &str) -> Result<Root, DecodeError> {
        // The string itself is never shown: it is upstream text, and an
        // upstream that reflects its request would put credentials here.
        let hex = s.strip_prefix("0x").ok_or_else(|| {
            DecodeError::new(format!("root lacks the 0x prefix ({} bytes)", s.len()))
        })?;
        if hex.len() != 64 {
            return Err(DecodeError::new(format!(
                "root has {} hex digits, expected 64",
                hex.len()
            )));
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.as_bytes().chunks_exact(2).enumerate() {
            let hi = hex_digit(pair[0]);
            let lo = hex_digit(pair[1]);
            match (hi, lo) {
                (Some(hi), Some(lo)) => out[i] = hi << 4 | lo,
                _ => return Err(DecodeError::new("root contains a non-hex character")),
            }
        }
        Ok(Root(out))
    }

    /// Reads a root from exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Root> {
        bytes.try_into().ok().map(Root)
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("0x")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Root {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Root {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Root::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// A checkpoint as the Lean API writes it: `{"slot": N, "root": "0x…"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Checkpoint {
    pub slot: u64,
    pub root: Root,
}

/// A Lean API body could not be understood. The text says what and where, so
/// it can go into `last_error` as is; it never echoes more than a few bytes of
/// the upstream's body (serde's messages go through [`json_error`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(String);

impl DecodeError {
    pub fn new(msg: impl Into<String>) -> DecodeError {
        DecodeError(msg.into())
    }
}

/// serde's message for a body, with every quoted upstream value cut to an
/// excerpt and the whole bounded (`redact`).
fn json_error(what: &str, e: &serde_json::Error) -> DecodeError {
    let msg = crate::redact::quoted_values(&e.to_string(), crate::redact::UPSTREAM_EXCERPT);
    DecodeError::new(format!("{what} JSON: {msg}"))
}

fn check_slot(what: &str, slot: u64) -> Result<u64, DecodeError> {
    if slot > MAX_PLAUSIBLE_SLOT {
        return Err(DecodeError::new(format!(
            "{what} slot {slot} is implausible (limit {MAX_PLAUSIBLE_SLOT})"
        )));
    }
    Ok(slot)
}

/// `GET /lean/v0/checkpoints/justified`.
pub fn parse_checkpoint(body: &[u8]) -> Result<Checkpoint, DecodeError> {
    let cp: Checkpoint = serde_json::from_slice(body).map_err(|e| json_error("checkpoint", &e))?;
    check_slot("justified", cp.slot)?;
    Ok(cp)
}

/// What leanpoint needs from `GET /lean/v0/fork_choice`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForkChoiceView {
    pub head_slot: u64,
    pub head_root: Root,
    pub justified: Checkpoint,
    pub finalized: Checkpoint,
    /// Every node (slot, root): the finalized block and its descendants
    /// (ancestry evidence, see `ancestry`). At most `MAX_TREE_NODES`.
    pub nodes: Vec<(u64, Root)>,
}

/// Fork-choice nodes kept from one response, whatever the upstream sends.
pub const MAX_TREE_NODES: usize = 256;

#[derive(Deserialize)]
struct ForkChoiceWire {
    nodes: Vec<NodeWire>,
    head: Root,
    justified: Checkpoint,
    finalized: Checkpoint,
}

#[derive(Deserialize)]
struct NodeWire {
    root: Root,
    slot: u64,
}

/// Parses the fork-choice JSON. The head slot is the slot of the node whose
/// root is `head`; a head missing from `nodes` is an error, not slot 0,
/// because a wrong head slot would look like a lagging node.
pub fn parse_fork_choice(body: &[u8]) -> Result<ForkChoiceView, DecodeError> {
    let wire: ForkChoiceWire =
        serde_json::from_slice(body).map_err(|e| json_error("fork_choice", &e))?;
    let head_slot = wire
        .nodes
        .iter()
        .find(|n| n.root == wire.head)
        .map(|n| n.slot)
        .ok_or_else(|| {
            DecodeError::new(format!(
                "fork_choice head {} is not among its nodes",
                wire.head
            ))
        })?;
    check_slot("head", head_slot)?;
    check_slot("justified", wire.justified.slot)?;
    check_slot("finalized", wire.finalized.slot)?;
    if wire.finalized.slot > wire.justified.slot || wire.justified.slot > head_slot {
        return Err(DecodeError::new(format!(
            "fork_choice slots out of order: finalized {} justified {} head {}",
            wire.finalized.slot, wire.justified.slot, head_slot
        )));
    }
    // Only nodes at or past the finalized slot can descend from it; the
    // highest are kept when a hostile tree is cut.
    let mut nodes: Vec<(u64, Root)> = wire
        .nodes
        .iter()
        .filter(|n| n.slot >= wire.finalized.slot)
        .map(|n| (n.slot, n.root))
        .collect();
    if nodes.len() > MAX_TREE_NODES {
        nodes.sort_unstable_by_key(|n| std::cmp::Reverse(n.0));
        nodes.truncate(MAX_TREE_NODES);
    }
    Ok(ForkChoiceView {
        head_slot,
        head_root: wire.head,
        justified: wire.justified,
        finalized: wire.finalized,
        nodes,
    })
}

/// Size of the State's fixed part: everything up to and including the five
/// offsets of its variable-size fields.
pub const STATE_FIXED_LEN: usize = 228;

/// The fixed-part fields of an SSZ `State` that leanpoint reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateHeader {
    pub genesis_time: u64,
    pub slot: u64,
    pub latest_block_header_slot: u64,
    pub latest_justified: Checkpoint,
    pub latest_finalized: Checkpoint,
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    v.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(v)
}

fn checkpoint_at(b: &[u8], at: usize) -> Checkpoint {
    let mut root = [0u8; 32];
    root.copy_from_slice(&b[at..at + 32]);
    Checkpoint {
        root: Root(root),
        slot: u64_at(b, at + 32),
    }
}

/// Reads the fixed part of a State. Needs only the first 228 bytes, so a
/// poller can read a legacy upstream's slot without holding the whole state.
pub fn parse_state_header(bytes: &[u8]) -> Result<StateHeader, DecodeError> {
    if bytes.len() < STATE_FIXED_LEN {
        return Err(DecodeError::new(format!(
            "state SSZ truncated: {} bytes, the fixed part alone is {STATE_FIXED_LEN}",
            bytes.len()
        )));
    }
    let header = StateHeader {
        genesis_time: u64_at(bytes, 0),
        slot: check_slot("state", u64_at(bytes, 8))?,
        latest_block_header_slot: u64_at(bytes, 16),
        latest_justified: checkpoint_at(bytes, 128),
        latest_finalized: checkpoint_at(bytes, 168),
    };
    Ok(header)
}

/// Checks a whole State body structurally: the fixed part parses, the five
/// offsets start at the end of the fixed part, never decrease and stay inside
/// the body, the fixed-size lists have whole elements, and the state is the
/// post-state of a block at its own slot. Hash-tree-root verification is not
/// done (see ARCHITECTURE.md); these checks catch truncation, HTML and
/// wrong-endpoint bodies, which is what upstreams actually send.
pub fn validate_state(bytes: &[u8]) -> Result<StateHeader, DecodeError> {
    let header = parse_state_header(bytes)?;
    let len = bytes.len();
    let offsets: Vec<usize> = (0..5)
        .map(|i| u32_at(bytes, 208 + 4 * i) as usize)
        .collect();
    if offsets[0] != STATE_FIXED_LEN {
        return Err(DecodeError::new(format!(
            "state SSZ first offset is {}, expected {STATE_FIXED_LEN}",
            offsets[0]
        )));
    }
    let mut prev = STATE_FIXED_LEN;
    for (i, &off) in offsets.iter().enumerate() {
        if off < prev || off > len {
            return Err(DecodeError::new(format!(
                "state SSZ offset {i} = {off} is out of order or past the body ({len} bytes)"
            )));
        }
        prev = off;
    }
    // historical_block_hashes: whole 32-byte roots.
    if !(offsets[1] - offsets[0]).is_multiple_of(32) {
        return Err(DecodeError::new(
            "state SSZ historical_block_hashes is not whole roots",
        ));
    }
    // validators: whole 112-byte records.
    if !(offsets[3] - offsets[2]).is_multiple_of(112) {
        return Err(DecodeError::new(
            "state SSZ validators is not whole records",
        ));
    }
    // justifications_roots: whole 32-byte roots.
    if !(offsets[4] - offsets[3]).is_multiple_of(32) {
        return Err(DecodeError::new(
            "state SSZ justifications_roots is not whole roots",
        ));
    }
    // Bitlists always carry their length bit, so they are never empty.
    if offsets[2] == offsets[1] || len == offsets[4] {
        return Err(DecodeError::new(
            "state SSZ bitlist is empty (truncated body?)",
        ));
    }
    if header.latest_block_header_slot != header.slot {
        return Err(DecodeError::new(format!(
            "state slot {} differs from its latest block header slot {}",
            header.slot, header.latest_block_header_slot
        )));
    }
    Ok(header)
}

/// `GET /lean/v0/health` as leanpoint serves it (the reference node's shape).
#[derive(Serialize)]
pub struct Health {
    pub status: &'static str,
    pub service: &'static str,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The message of a refusal: each test names the error it expects.
    fn refused<T: std::fmt::Debug>(r: Result<T, DecodeError>) -> String {
        r.expect_err("refused").to_string()
    }
    use std::path::PathBuf;

    /// A file of `tests/fixtures/lean-api/<folder>`; also used by the
    /// simulator's encoder tests, which compare their bytes with these.
    pub(crate) fn fixture(folder: &str, file: &str) -> Vec<u8> {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/lean-api")
            .join(folder)
            .join(file);
        std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
    }

    #[test]
    fn fork_choice_fixtures_parse() {
        let v = parse_fork_choice(&fixture("advanced", "fork_choice.json")).expect("advanced");
        assert_eq!(v.head_slot, 12);
        assert_eq!(v.justified.slot, 10);
        assert_eq!(v.finalized.slot, 9);
        assert_eq!(
            v.finalized.root.to_string(),
            "0x910fbdd40c1da21c7dd93fc14d3de1bd5e0093ce3eab1472b8f6096da0760a21"
        );
        let g = parse_fork_choice(&fixture("genesis", "fork_choice.json")).expect("genesis");
        assert_eq!((g.head_slot, g.finalized.slot), (0, 0));
        let f = parse_fork_choice(&fixture("fork", "fork_choice.json")).expect("fork");
        assert_eq!(f.finalized.slot, v.finalized.slot);
        assert_ne!(f.finalized.root, v.finalized.root);
        let b = parse_fork_choice(&fixture("behind", "fork_choice.json")).expect("behind");
        assert_eq!((b.head_slot, b.justified.slot, b.finalized.slot), (8, 6, 5));
    }

    #[test]
    fn justified_fixture_parses() {
        let cp = parse_checkpoint(&fixture("advanced", "checkpoints_justified.json")).expect("cp");
        assert_eq!(cp.slot, 10);
        let e = parse_checkpoint(&fixture("nostore", "checkpoints_justified.503.txt"));
        assert!(refused(e).starts_with("checkpoint JSON: "));
    }

    #[test]
    fn state_fixtures_validate() {
        for (folder, slot, len) in [
            ("genesis", 0, 566),
            ("advanced", 9, 966),
            ("fork", 9, 966),
            ("behind", 5, 838),
        ] {
            let bytes = fixture(folder, "states_finalized.ssz");
            assert_eq!(bytes.len(), len);
            let h = validate_state(&bytes).unwrap_or_else(|e| panic!("{folder}: {e}"));
            assert_eq!(h.slot, slot, "{folder}");
            assert_eq!(h.latest_block_header_slot, slot, "{folder}");
        }
        let adv = parse_state_header(&fixture("advanced", "states_finalized.ssz")).expect("adv");
        assert_eq!(adv.latest_justified.slot, 7);
        assert_eq!(adv.latest_finalized.slot, 6);
    }

    #[test]
    fn damaged_states_are_named_errors() {
        let good = fixture("advanced", "states_finalized.ssz");
        for (cut, says) in [
            (0, "truncated: 0 bytes"),
            (15, "truncated: 15 bytes"),
            (227, "truncated: 227 bytes"),
            (500, "offset 1 = 516 is out of order or past the body"),
            (965, "bitlist is empty"),
        ] {
            let e = refused(validate_state(&good[..cut]));
            assert!(e.contains(says), "truncated at {cut}: {e}");
        }
        let mut bad_offset = good.clone();
        bad_offset[212..216].copy_from_slice(&5000u32.to_le_bytes());
        assert!(refused(validate_state(&bad_offset)).contains("offset 1 = 5000"));
        let mut bad_slot = good.clone();
        bad_slot[16..24].copy_from_slice(&3u64.to_le_bytes());
        let e = refused(validate_state(&bad_slot));
        assert!(
            e.contains("differs from its latest block header slot 3"),
            "{e}"
        );
        let html = b"<html><body>502 Bad Gateway</body></html>".repeat(10);
        assert!(refused(validate_state(&html)).contains("is implausible"));
    }

    #[test]
    fn garbage_json_is_named_errors() {
        for body in [
            &b"<html>"[..],
            b"{}",
            b"{\"nodes\":[],\"head\":\"0x00\"}",
            b"\xff\xfe",
        ] {
            let e = refused(parse_fork_choice(body));
            assert!(e.starts_with("fork_choice JSON: "), "{e}");
        }
        let absurd = br#"{"nodes":[{"root":"0x0000000000000000000000000000000000000000000000000000000000000001","slot":18446744073709551615}],"head":"0x0000000000000000000000000000000000000000000000000000000000000001","justified":{"slot":1,"root":"0x0000000000000000000000000000000000000000000000000000000000000001"},"finalized":{"slot":1,"root":"0x0000000000000000000000000000000000000000000000000000000000000001"}}"#;
        assert!(refused(parse_fork_choice(absurd))
            .starts_with("head slot 18446744073709551615 is implausible"));
    }

    #[test]
    fn root_roundtrip() {
        let s = "0x66a8389725c97ca54a83ffc1c1362587630c1e4a794054ba44c74379f4478d03";
        assert_eq!(Root::from_hex(s).expect("hex").to_string(), s);
        assert!(refused(Root::from_hex("66a8")).contains("lacks the 0x prefix"));
        assert!(refused(Root::from_hex(&format!("0x{}", "zz".repeat(32)))).contains("non-hex"));
    }
}
