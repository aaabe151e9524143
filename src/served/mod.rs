//! What leanpoint serves for checkpoint sync, and the proof it needs first.
//!
//! - `verify`: `verify_pair`, the pure check that a (block, State) pair is
//!   the agreed checkpoint: `htr(block)` is the agreed root and
//!   `block.state_root` is `htr(state)`. Nothing unproven is ever served.
//! - `pair`: `ServedState`, the served pair as the routes read it.

pub mod pair;
pub mod verify;
