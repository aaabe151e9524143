//! What leanpoint serves for checkpoint sync, and the proof it needs first.
//!
//! - `verify`: `verify_pair`, the pure check that a (block, State) pair is
//!   the agreed checkpoint: `htr(block)` is the agreed root and
//!   `block.state_root` is `htr(state)`. Nothing unproven is ever served.
//! - `pair`: `ServedState`, the served pair as the routes read it.
//! - `sendable`: the served State's bytes in a file nobody can change (an
//!   unnamed tmpfile, or a sealed memfd), and which buffers of it the
//!   listener may send with sendfile.

pub mod pair;
pub mod sendable;
pub mod verify;
