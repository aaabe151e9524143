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
    /// for an upstream already known to lack it.
    pub async fn poll(
        &self,
        config: &Config,
        deadline: Instant,
        prefer_fallback: bool,
    ) -> Result<Observation, UpstreamError> {
        let json = Read::All {
            cap: config.max_body_bytes,
        };
        if !prefer_fallback {
            match self.fork_choice(json, deadline).await {
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
    ) -> Result<Observation, UpstreamError> {
        let v = self
            .request(Endpoint::ForkChoice, Expect::Json, json, deadline, |r| {
                api::parse_fork_choice(&r?)
                    .map_err(|e| UpstreamError::decode(Endpoint::ForkChoice, e))
            })
            .await?;
        Ok(Observation {
            source: Source::ForkChoice,
            head_slot: Some(v.head_slot),
            justified: Some(v.justified),
            finalized_slot: v.finalized.slot,
            finalized_root: Some(v.finalized.root),
            tree: v.nodes.into(),
        })
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
