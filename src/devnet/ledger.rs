//! The simulated chain's blocks and states, with real roots: every block
//! root is the block's hash tree root, every block's `state_root` is the
//! hash tree root of its post-state, and each State's
//! `historical_block_hashes` holds the roots of the blocks before it.
//!
//! Roots chain: block t needs the root of block t-1 and of state t, which
//! holds every root before t. So the ledger walks each branch forward once,
//! slot by slot, keeping per slot only the two roots (64 bytes) and, per
//! branch, an [`Accumulator`] of the block roots, so a slot costs about a
//! hundred hashes whatever the chain's length. Bodies are rebuilt from the
//! roots when a node serves them (see `chain::Snapshot`).

use std::collections::HashMap;

use libssz_derive::HashTreeRoot;
use libssz_merkle::{HashTreeRoot, Node, Sha256Hasher, Sha2Hasher};
use libssz_types::{SszBitlist, SszList};

use super::accumulator::Accumulator;
use super::params::{fill, finalized_slot, justified_slot, Branch, ChainParams};
use crate::lean::api::{Checkpoint, Root};
use crate::lean::ssz::{
    self, AggregatedAttestation, AttestationData, Block, BlockBody, BlockHeader, Bytes32, Config,
    State, Validator, HISTORICAL_ROOTS_LIMIT, JUSTIFICATION_VOTES_LIMIT, VALIDATOR_REGISTRY_LIMIT,
};

const TAG_PUBKEY: u64 = 12;
const TAG_JUSTIFICATION: u64 = 13;

/// The last slot a chain can reach: its State's history list is full then.
pub const LAST_SLOT: u64 = HISTORICAL_ROOTS_LIMIT as u64 - 1;

/// How many validators vote in each block: the smallest 2/3 supermajority.
pub fn voters(validators: u64) -> u64 {
    (validators * 2).div_ceil(3).max(1)
}

/// The two roots of one slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotRoots {
    pub block: Root,
    pub state: Root,
}

/// One branch's slots from `first` on (slots before are the main branch's).
struct Lineage {
    first: u64,
    slots: Vec<SlotRoots>,
    /// Block roots of slots 0..next(), the branch's history so far.
    history: Accumulator,
}

impl Lineage {
    fn next(&self) -> u64 {
        self.first + self.slots.len() as u64
    }
}

/// Every branch of one chain, walked as far as anyone asked.
pub struct Ledger {
    params: ChainParams,
    validators: SszList<Validator, VALIDATOR_REGISTRY_LIMIT>,
    validators_root: Node,
    pending: Pending,
    lineages: HashMap<Branch, Lineage>,
}

/// Justifications still collecting votes, the same in every State: they
/// only make the State large (a root each, plus a vote bit per validator
/// each), as on a chain that has not justified for a long time. Hashed once.
struct Pending {
    roots: SszList<Bytes32, HISTORICAL_ROOTS_LIMIT>,
    votes: SszBitlist<JUSTIFICATION_VOTES_LIMIT>,
    roots_root: Node,
    votes_root: Node,
}

impl Pending {
    /// `n` roots (clamped to the list's limit) of `validators` bits each.
    fn new(chain_id: u64, n: u64, validators: u64) -> Pending {
        let n = n.min(HISTORICAL_ROOTS_LIMIT as u64);
        let roots: Vec<Bytes32> = (0..n)
            .map(|i| {
                let mut r = [0u8; 32];
                fill(&[chain_id, TAG_JUSTIFICATION, i], &mut r);
                r
            })
            .collect();
        let roots = SszList::try_from(roots).unwrap_or_default();
        // SSZ bitlist bytes: the bits, then the delimiter bit; built from
        // bytes, as setting half a billion bits one by one would take long.
        let bits = (n * validators).min(JUSTIFICATION_VOTES_LIMIT as u64) as usize;
        let mut bytes = vec![0u8; bits / 8 + 1];
        fill(
            &[chain_id, TAG_JUSTIFICATION, u64::MAX],
            &mut bytes[..bits / 8],
        );
        let last = bits / 8;
        let keep = (1u8 << (bits % 8)) - 1;
        bytes[last] = (bytes[last] & keep) | (1 << (bits % 8));
        let votes: SszBitlist<JUSTIFICATION_VOTES_LIMIT> =
            libssz::SszDecode::from_ssz_bytes(&bytes).unwrap_or_default();
        Pending {
            roots_root: roots.hash_tree_root(&Sha2Hasher),
            votes_root: votes.hash_tree_root(&Sha2Hasher),
            roots,
            votes,
        }
    }
}

/// A root the caller already has, standing in for a field in a container
/// whose hash tree root is wanted.
struct Known(Node);

impl HashTreeRoot for Known {
    fn hash_tree_root(&self, _: &impl Sha256Hasher) -> Node {
        self.0
    }
}

struct StateFields {
    config: Config,
    latest_block_header: BlockHeader,
    latest_justified: ssz::Checkpoint,
    latest_finalized: ssz::Checkpoint,
    justified_slots: SszBitlist<HISTORICAL_ROOTS_LIMIT>,
}

/// `ssz::State`'s fields in its order, with the two big lists given by
/// their roots. A test checks it roots as the real State does.
#[derive(HashTreeRoot)]
struct StateByRoots {
    config: Config,
    slot: u64,
    latest_block_header: BlockHeader,
    latest_justified: ssz::Checkpoint,
    latest_finalized: ssz::Checkpoint,
    historical_block_hashes: Known,
    justified_slots: SszBitlist<HISTORICAL_ROOTS_LIMIT>,
    validators: Known,
    justifications_roots: Known,
    justifications_validators: Known,
}

impl Ledger {
    /// A ledger of `params` (validators clamped to the registry limit).
    pub fn new(params: &ChainParams) -> Ledger {
        let n = params.validators.clamp(1, VALIDATOR_REGISTRY_LIMIT as u64);
        let validators: Vec<Validator> = (0..n)
            .map(|index| {
                let mut keys = [0u8; 104];
                fill(&[params.chain_id, TAG_PUBKEY, index], &mut keys);
                let mut attestation_public_key = [0u8; 52];
                let mut proposal_public_key = [0u8; 52];
                attestation_public_key.copy_from_slice(&keys[..52]);
                proposal_public_key.copy_from_slice(&keys[52..]);
                Validator {
                    attestation_public_key,
                    proposal_public_key,
                    index,
                }
            })
            .collect();
        // At most VALIDATOR_REGISTRY_LIMIT by the clamp above.
        let validators = SszList::try_from(validators).unwrap_or_default();
        let validators_root = validators.hash_tree_root(&Sha2Hasher);
        let mut lineages = HashMap::new();
        lineages.insert(
            Branch::Main,
            Lineage {
                first: 0,
                slots: Vec::new(),
                history: Accumulator::new(HISTORICAL_ROOTS_LIMIT),
            },
        );
        Ledger {
            params: params.clone(),
            validators,
            validators_root,
            pending: Pending::new(params.chain_id, params.justification_roots, n),
            lineages,
        }
    }

    pub fn params(&self) -> &ChainParams {
        &self.params
    }

    pub fn validator_count(&self) -> u64 {
        self.validators.len() as u64
    }

    /// Walks `branch` up to `upto` (at most [`LAST_SLOT`]) and returns a view
    /// of it in which every slot up to there has its roots.
    pub fn history(&mut self, branch: Branch, upto: u64) -> History<'_> {
        let upto = upto.min(LAST_SLOT);
        let branch = match branch {
            Branch::Fork { from } => Branch::Fork { from: from.max(1) },
            b => b,
        };
        if let Branch::Fork { from } = branch {
            self.walk(Branch::Main, upto.min(from - 1));
            if upto >= from && !self.lineages.contains_key(&branch) {
                let mut history = Accumulator::new(HISTORICAL_ROOTS_LIMIT);
                for s in 0..from {
                    history.push(self.root(Branch::Main, s).0);
                }
                let fork = Lineage {
                    first: from,
                    slots: Vec::new(),
                    history,
                };
                self.lineages.insert(branch, fork);
            }
        }
        self.walk(branch, upto);
        History {
            ledger: self,
            branch,
            upto,
        }
    }

    fn walk(&mut self, branch: Branch, upto: u64) {
        loop {
            let Some(lineage) = self.lineages.get(&branch) else {
                return;
            };
            let t = lineage.next();
            if t > upto {
                return;
            }
            let history_root = lineage.history.list_root();
            let view = History {
                ledger: self,
                branch,
                upto: t,
            };
            let roots = view.compute(t, history_root);
            if let Some(lineage) = self.lineages.get_mut(&branch) {
                lineage.slots.push(roots);
                lineage.history.push(roots.block.0);
            }
        }
    }

    fn roots(&self, branch: Branch, slot: u64) -> Option<SlotRoots> {
        let lineage = match branch {
            Branch::Fork { from } if slot >= from => self.lineages.get(&branch)?,
            _ => self.lineages.get(&Branch::Main)?,
        };
        let at = slot.checked_sub(lineage.first)?;
        lineage.slots.get(usize::try_from(at).ok()?).copied()
    }

    fn root(&self, branch: Branch, slot: u64) -> Root {
        self.roots(branch, slot)
            .map(|r| r.block)
            .unwrap_or_default()
    }
}

/// One branch of the ledger, walked up to `upto`: blocks and states of any
/// slot up to there, with their roots.
#[derive(Clone, Copy)]
pub struct History<'a> {
    ledger: &'a Ledger,
    branch: Branch,
    upto: u64,
}

impl History<'_> {
    pub fn params(&self) -> &ChainParams {
        &self.ledger.params
    }

    pub fn validator_count(&self) -> u64 {
        self.ledger.validator_count()
    }

    /// The block root at `slot` (zero past the walked part, which callers
    /// never ask for: a view only exists once its branch is walked).
    pub fn root(&self, slot: u64) -> Root {
        debug_assert!(slot <= self.upto, "slot {slot} past {}", self.upto);
        self.ledger.root(self.branch, slot)
    }

    pub fn state_root(&self, slot: u64) -> Root {
        self.ledger
            .roots(self.branch, slot)
            .map(|r| r.state)
            .unwrap_or_default()
    }

    pub fn checkpoint(&self, slot: u64) -> Checkpoint {
        Checkpoint {
            slot,
            root: self.root(slot),
        }
    }

    pub fn parent_root(&self, slot: u64) -> Root {
        match slot {
            0 => Root::ZERO,
            s => self.root(s - 1),
        }
    }

    pub fn proposer(&self, slot: u64) -> u64 {
        slot % self.validator_count()
    }

    fn ssz_checkpoint(&self, slot: u64) -> ssz::Checkpoint {
        ssz::Checkpoint {
            root: self.root(slot).0,
            slot,
        }
    }

    /// A checkpoint as a State holds it: the genesis one carries a zero root.
    fn state_checkpoint(&self, slot: u64) -> ssz::Checkpoint {
        match slot {
            0 => ssz::Checkpoint::default(),
            s => self.ssz_checkpoint(s),
        }
    }

    fn on_fork(&self, slot: u64) -> bool {
        matches!(self.branch, Branch::Fork { from } if slot >= from)
    }

    /// From slot 3 on, one aggregated attestation by a supermajority whose
    /// target is the block two slots back. A fork's blocks always carry one,
    /// by the last validators instead of the first and with the parent as
    /// head, so a fork differs from its first block on.
    pub fn body(&self, slot: u64) -> BlockBody {
        let mut body = BlockBody::default();
        if slot < 3 && !self.on_fork(slot) {
            return body;
        }
        let n = self.validator_count() as usize;
        let v = voters(n as u64) as usize;
        let (len, first) = if self.on_fork(slot) {
            (n, n - v)
        } else {
            (v, 0)
        };
        let mut bits = SszBitlist::with_length(len).unwrap_or_default();
        for i in first..len {
            let _ = bits.set(i, true);
        }
        let target = self.ssz_checkpoint(justified_slot(slot));
        let head = if self.on_fork(slot) {
            self.ssz_checkpoint(slot - 1)
        } else {
            target
        };
        let data = AttestationData {
            slot,
            head,
            target,
            source: self.ssz_checkpoint(finalized_slot(slot)),
        };
        // One attestation is within any list limit.
        let _ = body.attestations.push(AggregatedAttestation {
            aggregation_bits: bits,
            data,
        });
        body
    }

    fn header(&self, slot: u64, body: &BlockBody) -> BlockHeader {
        BlockHeader {
            slot,
            proposer_index: self.proposer(slot),
            parent_root: self.parent_root(slot).0,
            state_root: [0; 32],
            body_root: ssz::htr(body).0,
        }
    }

    /// The slots after the state's finalized one up to its parent, with the
    /// justified one set.
    fn justified_slots(&self, slot: u64) -> SszBitlist<HISTORICAL_ROOTS_LIMIT> {
        let (j, f) = (justified_slot(slot), finalized_slot(slot));
        let len = slot.saturating_sub(1 + f) as usize;
        let mut bits = SszBitlist::with_length(len).unwrap_or_default();
        if j > f {
            let _ = bits.set((j - f - 1) as usize, true);
        }
        bits
    }

    /// The block at `slot`, committing to its post-state.
    pub fn block(&self, slot: u64) -> Block {
        self.block_with(slot, self.body(slot), self.state_root(slot))
    }

    fn block_with(&self, slot: u64, body: BlockBody, state_root: Root) -> Block {
        Block {
            slot,
            proposer_index: self.proposer(slot),
            parent_root: self.parent_root(slot).0,
            state_root: state_root.0,
            body,
        }
    }

    /// The State's fields other than its two big lists.
    fn state_fields(&self, slot: u64, body: &BlockBody) -> StateFields {
        StateFields {
            config: Config {
                genesis_time: self.params().genesis_time,
            },
            latest_block_header: self.header(slot, body),
            latest_justified: self.state_checkpoint(justified_slot(slot)),
            latest_finalized: self.state_checkpoint(finalized_slot(slot)),
            justified_slots: self.justified_slots(slot),
        }
    }

    /// The post-state of the block at `slot`: its header's state_root is
    /// zero until the next slot, its checkpoints are those its head saw.
    pub fn state(&self, slot: u64) -> State {
        let f = self.state_fields(slot, &self.body(slot));
        let hashes: Vec<Bytes32> = (0..slot).map(|s| self.root(s).0).collect();
        State {
            config: f.config,
            slot,
            latest_block_header: f.latest_block_header,
            latest_justified: f.latest_justified,
            latest_finalized: f.latest_finalized,
            // slot <= LAST_SLOT, so within the limit.
            historical_block_hashes: SszList::try_from(hashes).unwrap_or_default(),
            justified_slots: f.justified_slots,
            validators: self.ledger.validators.clone(),
            justifications_roots: self.ledger.pending.roots.clone(),
            justifications_validators: self.ledger.pending.votes.clone(),
        }
    }

    /// Both roots of `slot`, given the root of the history before it.
    fn compute(&self, slot: u64, history_root: Node) -> SlotRoots {
        let body = self.body(slot);
        let f = self.state_fields(slot, &body);
        let shape = StateByRoots {
            config: f.config,
            slot,
            latest_block_header: f.latest_block_header,
            latest_justified: f.latest_justified,
            latest_finalized: f.latest_finalized,
            historical_block_hashes: Known(history_root),
            justified_slots: f.justified_slots,
            validators: Known(self.ledger.validators_root),
            justifications_roots: Known(self.ledger.pending.roots_root),
            justifications_validators: Known(self.ledger.pending.votes_root),
        };
        let state = Root(shape.hash_tree_root(&Sha2Hasher));
        SlotRoots {
            block: ssz::htr(&self.block_with(slot, body, state)),
            state,
        }
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
