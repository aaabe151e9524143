//! Pairs downloaded ahead of the agreement: with polls spread over an
//! interval, an upstream reporting the agreed checkpoint has often finalized
//! the next by the time its pair is downloaded. Such a pair is kept only if
//! it proves itself, and served only once the agreement reaches it.

use bytes::Bytes;

use crate::agreement::Finalized;
use crate::served::verify::{verify_pair, VerifiedPair};

/// Proven pairs of checkpoints newer than the agreed one, kept for when the
/// agreement reaches them: with polls spread over an interval, an upstream
/// reporting the agreed checkpoint has often finalized the next by the
/// time its pair is downloaded.
const PENDING_PAIRS: usize = 4;

/// A proven pair of a newer checkpoint and the upstream that sent it.
pub(super) type Pending = Vec<(VerifiedPair, usize)>;

/// Keeps the pair of a newer checkpoint if it proves itself (its block's own
/// slot and root, then `verify_pair` against them).
pub(super) fn keep_newer(
    target: Finalized,
    block: &Bytes,
    state_bytes: Bytes,
    i: usize,
    pending: &mut Pending,
) -> bool {
    let Ok(signed) = crate::lean::ssz::decode_signed_block(block) else {
        return false;
    };
    let (slot, root) = (signed.block.slot, crate::lean::ssz::htr(&signed.block));
    if slot <= target.slot {
        return false;
    }
    let Ok(pair) = verify_pair(slot, root, block.clone(), state_bytes) else {
        return false;
    };
    pending.retain(|(p, _)| p.block_root != root);
    pending.push((pair, i));
    pending.sort_by_key(|(p, _)| std::cmp::Reverse(p.slot));
    pending.truncate(PENDING_PAIRS);
    true
}

/// Takes the kept pair of the agreed checkpoint, if there is one, and drops
/// the pairs the agreement has passed.
pub(super) fn take(target: Finalized, pending: &mut Pending) -> Option<(VerifiedPair, usize)> {
    pending.retain(|(p, _)| p.slot >= target.slot);
    let root = target.root?;
    let pos = pending
        .iter()
        .position(|(p, _)| p.slot == target.slot && p.block_root == root)?;
    Some(pending.swap_remove(pos))
}
