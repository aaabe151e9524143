//! The Lean API as bytes: what upstreams speak and what leanpoint serves.
//!
//! - `api`: the JSON views (fork choice, checkpoints), the State header and
//!   the paths; the only code that parses upstream bytes.
//! - `ssz`: the leanSpec containers (State, SignedBlock) as SSZ types with
//!   hash tree roots, and bounded readers of a State prefix.
//!
//! Pure: no IO, no clock. Everything above this layer sees upstream bytes
//! only through these types.

pub mod api;
pub mod ssz;
