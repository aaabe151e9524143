//! Who decides agreement: which finalized checkpoint enough upstreams
//! support, how every upstream stands to it, and what is served after it.
//!
//! - `rule`: the `--agreement` rule (a value type).
//! - `ancestry`: the evidence one upstream gives that its chain holds a block.
//! - `decide`: `decide_with(votes, rule, ctx)`, the pure decision, with the
//!   `Standing` of each upstream (`decide/standing.rs`).
//! - `advance`: `advance(decision, configured, served, fetching)`, the pure
//!   served-checkpoint rule (forward only, except by the recovery rule).
//!
//! Pure: no IO, no clock, no metrics. The service layer decides which votes
//! are fresh and records what a decision changes.

pub mod advance;
pub mod ancestry;
mod decide;
pub mod rule;

pub use advance::{advance, Advance, Finalized, Served, Step};
pub use decide::*;
pub use rule::AgreementRule;
