//! Who decides agreement: which finalized checkpoint enough upstreams
//! support, and how every upstream stands to it.
//!
//! - `rule`: the `--agreement` rule (a value type).
//! - `ancestry`: the evidence one upstream gives that its chain holds a block.
//! - `decide`: `decide_with(votes, rule, ctx)`, the pure decision, with the
//!   standings of each upstream.
//!
//! Pure: no IO, no clock, no metrics. The service layer decides which votes
//! are fresh and what to do with a decision.

pub mod ancestry;
mod decide;
pub mod rule;

pub use decide::*;
pub use rule::AgreementRule;
