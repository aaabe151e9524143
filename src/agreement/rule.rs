//! The agreement rule: how many upstreams must support a finalized
//! checkpoint before it is agreed. A value type only (parsed from
//! `--agreement`), so configuration can hold it without depending on the
//! decision itself.

use std::fmt;

/// Agreement rule for the finalized checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgreementRule {
    /// Strictly more than half of the configured upstreams (default): two of
    /// two, two of three, three of four. A devnet where half the upstreams are
    /// unreachable has no provable majority, so nothing is served.
    ConfiguredMajority,
    /// Strictly more than half of the upstreams that answered within the
    /// stale window, agreeing on slot and root. Close to the Zig leanpoint
    /// but stricter: Zig compared slots only and accepted ceil(n/2).
    RespondingMajority,
    /// At least this many upstreams.
    Count(usize),
}

impl std::str::FromStr for AgreementRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "majority" | "configured-majority" => Ok(AgreementRule::ConfiguredMajority),
            "responding-majority" => Ok(AgreementRule::RespondingMajority),
            other => match other.strip_prefix("count:").map(str::parse::<usize>) {
                Some(Ok(n)) if n > 0 => Ok(AgreementRule::Count(n)),
                _ => Err(format!(
                    "{other:?} is not majority, responding-majority or count:N with N > 0"
                )),
            },
        }
    }
}

impl fmt::Display for AgreementRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgreementRule::ConfiguredMajority => f.write_str("majority"),
            AgreementRule::RespondingMajority => f.write_str("responding-majority"),
            AgreementRule::Count(n) => write!(f, "count:{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_rule_parses() {
        assert_eq!(
            "count:3".parse::<AgreementRule>(),
            Ok(AgreementRule::Count(3))
        );
        let e = "count:0".parse::<AgreementRule>().expect_err("zero");
        assert!(e.contains("count:N with N > 0"), "{e}");
        assert_eq!(
            "responding-majority".parse::<AgreementRule>(),
            Ok(AgreementRule::RespondingMajority)
        );
    }
}
