//! An append-only Merkle accumulator: the hash tree root of a growing
//! `List[Bytes32, LIMIT]` in O(log LIMIT) per append and per root.
//!
//! The simulated State's `historical_block_hashes` grows by one root a
//! slot; recomputing its root from all entries every slot would cost
//! O(slots²) over a 100000-slot chain. This keeps one node per level (the
//! left siblings still waiting for a right one), as the deposit contract
//! does. It is only ever compared against the library's `merkleize` (tests
//! below), which stays the definition.

use libssz_merkle::{hash_nodes, mix_in_length, Node, Sha2Hasher, ZERO_HASHES};

#[derive(Clone, Debug)]
pub struct Accumulator {
    depth: usize,
    /// `branch[h]`: the root of the last complete left subtree of height h.
    branch: Vec<Node>,
    count: usize,
}

impl Accumulator {
    /// An empty list of at most `limit` chunks (a power of two or not).
    pub fn new(limit: usize) -> Accumulator {
        let depth = limit.next_power_of_two().trailing_zeros() as usize;
        Accumulator {
            depth,
            branch: vec![[0u8; 32]; depth + 1],
            count: 0,
        }
    }

    /// Appends a leaf; false (and nothing changes) when the list is full.
    pub fn push(&mut self, leaf: Node) -> bool {
        if self.count >= 1 << self.depth {
            return false;
        }
        let mut node = leaf;
        let mut size = self.count;
        for h in 0..=self.depth {
            if size & 1 == 0 {
                self.branch[h] = node;
                break;
            }
            node = hash_nodes(&Sha2Hasher, &self.branch[h], &node);
            size >>= 1;
        }
        self.count += 1;
        true
    }

    /// `merkleize(leaves, limit)`, without the length.
    pub fn root(&self) -> Node {
        if self.count == 1 << self.depth {
            return self.branch[self.depth];
        }
        let mut node = ZERO_HASHES[0];
        let mut size = self.count;
        for (left, zero) in self.branch.iter().zip(ZERO_HASHES.iter()).take(self.depth) {
            node = if size & 1 == 1 {
                hash_nodes(&Sha2Hasher, left, &node)
            } else {
                hash_nodes(&Sha2Hasher, &node, zero)
            };
            size >>= 1;
        }
        node
    }

    /// The list's hash tree root: the tree's root mixed with the length.
    pub fn list_root(&self) -> Node {
        mix_in_length(&Sha2Hasher, &self.root(), self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libssz_merkle::merkleize;

    fn leaf(i: usize) -> Node {
        let mut n = [0u8; 32];
        n[..8].copy_from_slice(&(i as u64 * 0x9E37_79B9 + 1).to_le_bytes());
        n
    }

    #[test]
    fn agrees_with_the_library_at_every_length() {
        for limit in [1usize, 2, 5, 8, 1 << 18] {
            let mut acc = Accumulator::new(limit);
            let mut leaves = Vec::new();
            let most = limit.min(70);
            for i in 0..=most {
                let want = merkleize(&Sha2Hasher, &leaves, Some(limit));
                assert_eq!(acc.root(), want, "limit {limit}, {i} leaves");
                assert_eq!(
                    acc.list_root(),
                    mix_in_length(&Sha2Hasher, &want, leaves.len())
                );
                if i < most {
                    assert!(acc.push(leaf(i)));
                    leaves.push(leaf(i));
                }
            }
        }
        let mut full = Accumulator::new(2);
        assert!(full.push(leaf(0)) && full.push(leaf(1)));
        assert!(!full.push(leaf(2)), "a full list takes no more");
        assert_eq!(full.count, 2);
    }
}
