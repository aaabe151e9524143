//! The poll strategy: which endpoints one poll of an upstream asks, and what
//! it makes of their answers.
//!
//! fork_choice first: it gives head, justified and finalized with roots, and
//! the fork-choice tree as ancestry evidence. An upstream that does not serve
//! it usably is polled the way the Zig leanpoint did: the justified
//! checkpoint where served, and the finalized slot from the State's header
//! (a prefix read of the finalized State).

use std::sync::Arc;

use tokio::time::Instant;

use super::error::{is_not_found, Endpoint, ErrorKind, UpstreamError};
use super::request::{Expect, Read, Requester};
use crate::config::Config;
use crate::lean::api::{self, Checkpoint, Root};

/// Where an upstream's observation came from.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Source {
    /// `/lean/v0/fork_choice`: head, justified and finalized with roots.
    ForkChoice,
    /// No usable fork_choice (an error status, not JSON, not the reference
    /// shape): justified from `/checkpoints/justified` where served,
    /// finalized slot from the finalized State; no finalized root.
    Fallback,
    /// Not polled successfully yet.
    Unknown,
}

impl Source {
    pub const ALL: [Source; 3] = [Source::ForkChoice, Source::Fallback, Source::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::ForkChoice => "fork_choice",
            Source::Fallback => "fallback",
            Source::Unknown => "unknown",
        }
    }
}

/// One successful poll of one upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub source: Source,
    /// Unknown for the fallback source (no endpoint serves it).
    pub head_slot: Option<u64>,
    /// Unknown for a legacy upstream that serves only the state.
    pub justified: Option<Checkpoint>,
    pub finalized_slot: u64,
    /// Unknown for the fallback source: such upstreams agree by slot.
    pub finalized_root: Option<Root>,
    /// Fork-choice nodes (slot, root), all descending from the finalized
    /// block: ancestry evidence. Empty for the fallback source.
    pub tree: Arc<[(u64, Root)]>,
}

/// The last fork_choice body an upstream sent, and the observation it gave.
/// Most polls get the very same bytes back (heads move once a slot), and
/// those skip the JSON: the observation is a function of the body alone.
/// Owned by the upstream's poller and lent to each poll.
#[derive(Debug, Default)]
pub struct LastForkChoice {
    body: bytes::Bytes,
    observation: Option<Observation>,
}

impl LastForkChoice {
    /// The observation `body` gives: remembered if it is the last body,
    /// else parsed (and remembered when it parses).
    fn observe(&mut self, body: bytes::Bytes) -> Result<Observation, UpstreamError> {
        if let Some(o) = self.observation.as_ref().filter(|_| self.body == body) {
            return Ok(o.clone());
        }
        self.observation = None;
        let v = api::parse_fork_choice(&body)
            .map_err(|e| UpstreamError::decode(Endpoint::ForkChoice, e))?;
        let o = Observation {
            source: Source::ForkChoice,
            head_slot: Some(v.head_slot),
            justified: Some(v.justified),
            finalized_slot: v.finalized.slot,
            finalized_root: Some(v.finalized.root),
            tree: v.nodes.into(),
        };
        self.body = body;
        self.observation = Some(o.clone());
        Ok(o)
    }
}

/// An answer that says "not this endpoint here" rather than "the upstream is
/// unreachable": an error status, another content type, a body that is not
/// the reference shape (other clients' fork_choice differs). The upstream is
/// then polled the way the Zig leanpoint did, through the finalized State.
/// Transport failures and deadlines are not: the State would fail alike.
fn falls_back(e: &UpstreamError) -> bool {
    matches!(
        e.kind,
        ErrorKind::HttpStatus | ErrorKind::ContentType | ErrorKind::Decode
    )
}

impl Requester<'_> {
    /// Polls once: fork_choice when the upstream serves it, else the fallback
    /// the Zig leanpoint used. `prefer_fallback` skips the fork_choice probe
    /// for an upstream already known to lack it. `last` is this upstream's
    /// last fork_choice answer, kept from poll to poll.
    pub async fn poll(
        &self,
        config: &Config,
        deadline: Instant,
        prefer_fallback: bool,
        last: &mut LastForkChoice,
    ) -> Result<Observation, UpstreamError> {
        let json = Read::All {
            cap: config.max_body_bytes,
        };
        if !prefer_fallback {
            match self.fork_choice(json, deadline, last).await {
                Ok(o) => return Ok(o),
                Err(e) if falls_back(&e) => {
                    tracing::debug!(upstream = %self.upstream.name, error = %e, "fork_choice unusable; falling back")
                }
                Err(e) => return Err(e),
            }
        }
        self.fallback(json, deadline).await
    }

    async fn fork_choice(
        &self,
        json: Read,
        deadline: Instant,
        last: &mut LastForkChoice,
    ) -> Result<Observation, UpstreamError> {
        self.request(Endpoint::ForkChoice, Expect::Json, json, deadline, |r| {
            last.observe(r?)
        })
        .await
    }

    /// The Zig leanpoint's poll: justified where served, the finalized slot
    /// from the State's header.
    async fn fallback(&self, json: Read, deadline: Instant) -> Result<Observation, UpstreamError> {
        let justified = match self
            .request(Endpoint::Justified, Expect::Json, json, deadline, |r| {
                api::parse_checkpoint(&r?)
                    .map_err(|e| UpstreamError::decode(Endpoint::Justified, e))
            })
            .await
        {
            Ok(c) => Some(c),
            // Not served, or not in the reference shape: the Zig leanpoint
            // never asked for it, the State alone will do.
            Err(e) if falls_back(&e) => None,
            Err(e) => return Err(e),
        };
        let read = Read::Prefix {
            n: api::STATE_FIXED_LEN,
        };
        let slot = self
            .request(
                Endpoint::StateFinalized,
                Expect::Ssz,
                read,
                deadline,
                state_slot,
            )
            .await?;
        Ok(Observation {
            source: Source::Fallback,
            head_slot: None,
            justified,
            finalized_slot: slot,
            finalized_root: None,
            tree: Arc::from([]),
        })
    }
}

/// The finalized slot from the head of the finalized State.
fn state_slot(r: Result<bytes::Bytes, UpstreamError>) -> Result<u64, UpstreamError> {
    let endpoint = Endpoint::StateFinalized;
    let prefix = match r {
        Ok(b) => b,
        Err(e) if is_not_found(&e) => {
            return Err(UpstreamError::new(
                ErrorKind::Unsupported,
                endpoint,
                "no usable fork_choice, and states/finalized is not served (404)",
            ))
        }
        Err(e) => return Err(e),
    };
    let head = api::parse_state_header(&prefix).map_err(|e| UpstreamError::decode(endpoint, e))?;
    if head.latest_block_header_slot != head.slot {
        return Err(UpstreamError::new(
            ErrorKind::Decode,
            endpoint,
            format!(
                "state slot {} differs from its block header slot {}",
                head.slot, head.latest_block_header_slot
            ),
        ));
    }
    Ok(head.slot)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::LastForkChoice;
    use crate::lean::api::tests::fixture;
    use crate::upstream::ErrorKind;

    fn body(folder: &str) -> Bytes {
        Bytes::from(fixture(folder, "fork_choice.json"))
    }

    #[test]
    fn the_same_fork_choice_bytes_give_the_remembered_observation() {
        let mut last = LastForkChoice::default();
        let first = last.observe(body("advanced")).expect("parses");
        // Equal bytes in another buffer: remembered, not parsed again (a
        // parse would build a new tree).
        let again = last.observe(body("advanced")).expect("remembered");
        assert_eq!(again, first);
        assert!(Arc::ptr_eq(&again.tree, &first.tree));

        let fork = last.observe(body("fork")).expect("another body is parsed");
        assert_eq!(fork.finalized_slot, first.finalized_slot);
        assert_ne!(fork.finalized_root, first.finalized_root);

        // A body that does not parse is refused, never answered from memory,
        // and the next good body is parsed afresh.
        let e = last
            .observe(Bytes::from_static(b"{\"head\":"))
            .expect_err("garbage");
        assert_eq!(e.kind, ErrorKind::Decode);
        let fork_again = last.observe(body("fork")).expect("parses");
        assert_eq!(fork_again, fork);
        assert!(!Arc::ptr_eq(&fork_again.tree, &fork.tree));
    }
}
