//! The label sets of every family. No label takes a value from input or
//! time: `upstream` is the configured name, `route` a route template, and
//! every other label one of the fixed enums.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};

use crate::agreement::Standing;
use crate::upstream::{Endpoint, ErrorKind, Source};

/// Label enums encode as their `as_str` (snake_case), the same text the
/// JSON endpoints use, so a dashboard and /api/upstreams name a failure alike.
macro_rules! label_value {
    ($($t:ty),*) => {$(
        impl EncodeLabelValue for $t {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
                std::fmt::Write::write_str(encoder, self.as_str())
            }
        }
    )*};
}
label_value!(Endpoint, ErrorKind, Source, Phase, Standing);

/// Which deadline a timed-out request hit.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Phase {
    Connect,
    Total,
}

impl Phase {
    pub const ALL: [Phase; 2] = [Phase::Connect, Phase::Total];

    /// The deadline an error of `kind` hit, if it is a timeout.
    pub fn of(kind: ErrorKind) -> Option<Phase> {
        match kind {
            ErrorKind::ConnectTimeout => Some(Phase::Connect),
            ErrorKind::Timeout => Some(Phase::Total),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Total => "total",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    pub upstream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub upstream: String,
    pub endpoint: Endpoint,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub upstream: String,
    pub phase: Phase,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub upstream: String,
    pub kind: ErrorKind,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub upstream: String,
    pub source: Source,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StandingLabels {
    pub upstream: String,
    pub standing: Standing,
}

/// The per-upstream label sets with one more label from a fixed set: built
/// from the upstream's name and that label's value.
pub trait Keyed<K> {
    fn of(upstream: &str, key: K) -> Self;
}

macro_rules! keyed {
    ($($labels:ident { $field:ident: $k:ty }),*) => {$(
        impl Keyed<$k> for $labels {
            fn of(upstream: &str, $field: $k) -> Self {
                $labels { upstream: upstream.to_string(), $field }
            }
        }
    )*};
}
keyed!(
    EndpointLabels { endpoint: Endpoint },
    PhaseLabels { phase: Phase },
    KindLabels { kind: ErrorKind },
    SourceLabels { source: Source },
    StandingLabels { standing: Standing }
);

/// Upstreams counted by standing: `leanpoint_consensus_upstreams`, whose
/// label is named `state` as in the Zig leanpoint (its value is a standing).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StandingCountLabels {
    pub state: Standing,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub upstream: String,
    /// A fixed set: verify_pair's kinds, `block_unavailable`, `fetch_failed`,
    /// `moved_on`, `impossible_slot`, `not_descendant`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PairLabels {
    pub block_root: String,
    pub state_root: String,
}

/// Inbound request labels. `route` is the matched route template (a fixed
/// set; anything unmatched is "unmatched"), `code` the numeric status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: &'static str,
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
}
