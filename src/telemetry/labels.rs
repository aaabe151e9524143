//! The label sets of every family. No label takes a value from input or
//! time: `upstream` is the configured name, `route` a route template, and
//! every other label one of the fixed enums.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};

use crate::agreement::Standing;
use crate::upstream::{Endpoint, ErrorKind, Source};

/// A label value from a fixed set, as the exposition writes it: no escaping
/// needed (snake_case).
pub trait LabelText {
    fn label_text(&self) -> &'static str;
}

/// Label enums encode as their `as_str` (snake_case), the same text the
/// JSON endpoints use, so a dashboard and /api/upstreams name a failure alike.
macro_rules! label_value {
    ($($t:ty),*) => {$(
        impl EncodeLabelValue for $t {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
                std::fmt::Write::write_str(encoder, self.as_str())
            }
        }
        impl LabelText for $t {
            fn label_text(&self) -> &'static str {
                self.as_str()
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

/// An upstream's configured name as a label value. Names are printable (the
/// config refuses control characters) but may hold `"` or `\`, which
/// prometheus-client writes as they are: escaped here, as both text formats
/// require, so one odd name cannot break the whole exposition.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct UpstreamName(pub String);

impl EncodeLabelValue for UpstreamName {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        write_escaped(encoder, &self.0)
    }
}

/// Writes `value` escaped as a label value: `\`, `\"` and `\n`.
pub fn write_escaped<W: std::fmt::Write + ?Sized>(w: &mut W, value: &str) -> std::fmt::Result {
    let mut rest = value;
    while let Some(i) = rest.find(['\\', '"', '\n']) {
        w.write_str(&rest[..i])?;
        w.write_str(match rest.as_bytes()[i] {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            _ => "\\n",
        })?;
        rest = &rest[i + 1..];
    }
    w.write_str(rest)
}

/// Upstreams counted by standing: `leanpoint_consensus_upstreams`, whose
/// label is named `state` as in the Zig leanpoint (its value is a standing).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StandingCountLabels {
    pub state: Standing,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub upstream: UpstreamName,
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

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::registry::Registry;

    use super::{ReasonLabels, UpstreamName};

    #[test]
    fn an_upstream_name_is_escaped_in_a_label() {
        let mut reg = Registry::default();
        let f = Family::<ReasonLabels, Counter>::default();
        reg.register("f", "F", f.clone());
        f.get_or_create(&ReasonLabels {
            upstream: UpstreamName("a\"b\\c\nd".into()),
            reason: "moved_on",
        })
        .inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &reg).expect("encode");
        assert!(
            text.contains("f_total{upstream=\"a\\\"b\\\\c\\nd\",reason=\"moved_on\"} 1\n"),
            "{text}"
        );
    }
}
