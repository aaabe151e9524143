//! The one bounded request path to an upstream.
//!
//! Every request here has a connect deadline (the client's `connect_timeout`)
//! and a total deadline that covers headers *and* body: the whole request is
//! a future raced against `tokio::time::timeout_at`, and losing the race drops
//! it. hyper's connection task sees the request cancelled and closes the
//! socket as soon as it next runs (microseconds, not a deadline later; the
//! poller leaves an interval before the next request so the two never
//! overlap). That is the fix for the Zig leanpoint's incident, where a worker
//! blocked in recv() was detached at its deadline and kept its socket for ~15
//! minutes.
//! Bodies are streamed against a size cap, so a hostile upstream costs at most
//! the cap in memory, and every failure has a name (`ErrorKind`).

use std::error::Error as _;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;

pub mod redirect;

use crate::config::{Config, Upstream};
use crate::lean::api::{self, Checkpoint, Root};
use crate::redact::{self, Secrets};
use crate::telemetry::UpstreamMetrics;

/// The Lean API endpoints leanpoint polls (a fixed label set).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Endpoint {
    ForkChoice,
    Justified,
    StateFinalized,
    BlockFinalized,
}

impl Endpoint {
    pub const ALL: [Endpoint; 4] = [
        Endpoint::ForkChoice,
        Endpoint::Justified,
        Endpoint::StateFinalized,
        Endpoint::BlockFinalized,
    ];

    pub fn path(self) -> &'static str {
        match self {
            Endpoint::ForkChoice => api::paths::FORK_CHOICE,
            Endpoint::Justified => api::paths::JUSTIFIED,
            Endpoint::StateFinalized => api::paths::STATE_FINALIZED,
            Endpoint::BlockFinalized => api::paths::BLOCK_FINALIZED,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::ForkChoice => "fork_choice",
            Endpoint::Justified => "checkpoints_justified",
            Endpoint::StateFinalized => "states_finalized",
            Endpoint::BlockFinalized => "blocks_finalized",
        }
    }
}

/// Every way a request to an upstream can fail. A fixed set, so it can label
/// metrics; `as_str` is also the `last_error_kind` field of /api/upstreams.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ErrorKind {
    /// The TCP handshake did not complete within --connect-timeout-ms.
    ConnectTimeout,
    /// The request (headers and body) did not complete within the total deadline.
    Timeout,
    /// Connection refused: nothing listens there.
    Refused,
    /// Any other connect failure (DNS, unreachable, TLS).
    Connect,
    /// The peer reset the connection.
    Reset,
    /// The peer closed the connection before a complete response (half-close).
    Closed,
    /// A status other than 200 (after at most 3 same-origin redirects).
    HttpStatus,
    /// A redirect that is not followed: to another origin, or a fourth one.
    Redirect,
    /// A Content-Type that does not match the endpoint.
    ContentType,
    /// The body is not the Lean API format (garbage, HTML, truncated SSZ, absurd slots).
    Decode,
    /// The body exceeded the configured cap.
    BodyTooLarge,
    /// The upstream serves none of the endpoints leanpoint can use (404).
    Unsupported,
    /// The response head (status line and headers) exceeded hyper's limit.
    HeadTooLarge,
    /// The bytes are not an HTTP/1 response (bad status line or headers).
    Protocol,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 14] = [
        ErrorKind::ConnectTimeout,
        ErrorKind::Timeout,
        ErrorKind::Refused,
        ErrorKind::Connect,
        ErrorKind::Reset,
        ErrorKind::Closed,
        ErrorKind::HttpStatus,
        ErrorKind::Redirect,
        ErrorKind::ContentType,
        ErrorKind::Decode,
        ErrorKind::BodyTooLarge,
        ErrorKind::Unsupported,
        ErrorKind::HeadTooLarge,
        ErrorKind::Protocol,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Refused => "refused",
            ErrorKind::Connect => "connect",
            ErrorKind::Reset => "reset",
            ErrorKind::Closed => "closed",
            ErrorKind::HttpStatus => "http_status",
            ErrorKind::Redirect => "redirect",
            ErrorKind::ContentType => "content_type",
            ErrorKind::Decode => "decode",
            ErrorKind::BodyTooLarge => "body_too_large",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::HeadTooLarge => "head_too_large",
            ErrorKind::Protocol => "protocol",
        }
    }
}

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

/// A failed request: its kind, the endpoint, and a message that never holds
/// the URL (it may carry credentials) or more than a few bytes of the body.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{endpoint}: {message}", endpoint = .endpoint.as_str())]
pub struct UpstreamError {
    pub kind: ErrorKind,
    pub endpoint: Endpoint,
    pub message: String,
}

impl UpstreamError {
    fn new(kind: ErrorKind, endpoint: Endpoint, message: impl Into<String>) -> UpstreamError {
        UpstreamError {
            kind,
            endpoint,
            message: message.into(),
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
    pub tree: std::sync::Arc<[(u64, Root)]>,
}

/// Builds the one HTTP client all polls share. Redirects are followed only
/// within the upstream's origin (see [`crate::upstream::redirect`]), no proxy from the environment is
/// used (a devnet's nodes are addressed directly), and the idle pool is sized
/// so each upstream can keep its one keep-alive connection: with at most one
/// request in flight per upstream, the pool never holds more sockets than
/// there are upstreams.
pub fn build_client(config: &Config) -> reqwest::Result<reqwest::Client> {
    let mut per_host: std::collections::HashMap<(String, Option<u16>), usize> = Default::default();
    for u in &config.upstreams {
        let host = u.url.host_str().unwrap_or_default().to_string();
        *per_host
            .entry((host, u.url.port_or_known_default()))
            .or_default() += 1;
    }
    let max_idle = per_host.values().copied().max().unwrap_or(1);
    reqwest::Client::builder()
        .connect_timeout(config.connect_timeout)
        .timeout(config.timeout)
        .redirect(crate::upstream::redirect::policy())
        .no_proxy()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(max_idle)
        // Longer than a poll interval so keep-alive connections are reused,
        // bounded so a removed node's socket does not linger.
        .pool_idle_timeout(config.poll.saturating_mul(2).max(Duration::from_secs(5)))
        .user_agent(concat!("leanpoint/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// What a response body must look like.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Json,
    Ssz,
}

/// How much of the body to read.
#[derive(Clone, Copy)]
enum Read {
    /// The whole body, failing past `cap` bytes.
    All { cap: u64 },
    /// Only the first `n` bytes; the rest is never read and the connection
    /// is dropped (cheaper than reading a large state to learn its slot).
    Prefix { n: usize },
}

/// Keeps the in-flight gauges right even when the request future is dropped
/// at its deadline or at shutdown.
struct InFlight<'a> {
    mine: &'a prometheus_client::metrics::gauge::Gauge,
    total: &'a prometheus_client::metrics::gauge::Gauge,
}

impl<'a> InFlight<'a> {
    fn enter(
        mine: &'a prometheus_client::metrics::gauge::Gauge,
        total: &'a prometheus_client::metrics::gauge::Gauge,
    ) -> Self {
        mine.inc();
        total.inc();
        InFlight { mine, total }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.mine.dec();
        self.total.dec();
    }
}

/// Sends one GET and reads its body, all before `deadline`. Records the
/// request, its latency and any error on `um`.
pub struct Requester<'a> {
    pub client: &'a reqwest::Client,
    pub upstream: &'a Upstream,
    pub metrics: &'a UpstreamMetrics,
    pub in_flight_total: &'a prometheus_client::metrics::gauge::Gauge,
}

impl Requester<'_> {
    async fn get(
        &self,
        endpoint: Endpoint,
        expect: Expect,
        read: Read,
        deadline: Instant,
    ) -> Result<Bytes, UpstreamError> {
        let _guard = InFlight::enter(&self.metrics.in_flight, self.in_flight_total);
        let started = Instant::now();
        let result = match tokio::time::timeout_at(
            deadline,
            self.get_unbounded(endpoint, expect, read, deadline),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(UpstreamError::new(
                ErrorKind::Timeout,
                endpoint,
                format!(
                    "no complete response within the {} ms deadline",
                    deadline
                        .saturating_duration_since(started)
                        .as_millis()
                        .max(1)
                ),
            )),
        };
        self.metrics
            .observe_request(endpoint, started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            // A 404 on an optional endpoint is detection, not a failure; the
            // caller decides and records it.
            if !is_not_found(e) {
                self.metrics.observe_error(e.kind);
            }
        }
        result
    }

    /// What may be kept and shown of an error: bounded, and with this
    /// upstream's credentials scrubbed from whatever text it sent back.
    fn shown(&self, mut e: UpstreamError) -> UpstreamError {
        let u = self.upstream;
        let secrets = Secrets::of(&u.url, &u.headers, u.path_public);
        e.message = secrets.scrub(&redact::bound(&e.message, redact::MAX_MESSAGE));
        e
    }

    /// The request itself; only ever run inside `timeout_at`.
    async fn get_unbounded(
        &self,
        endpoint: Endpoint,
        expect: Expect,
        read: Read,
        deadline: Instant,
    ) -> Result<Bytes, UpstreamError> {
        let mut req = self
            .client
            .get(self.upstream.endpoint(endpoint.path()))
            .timeout(
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
            )
            .header(
                reqwest::header::ACCEPT,
                if expect == Expect::Json {
                    "application/json"
                } else {
                    "application/octet-stream"
                },
            );
        if let Read::Prefix { n } = read {
            // A server that honours it sends only the prefix (206); one that
            // does not sends the whole body, of which only the prefix is read.
            req = req.header(reqwest::header::RANGE, format!("bytes=0-{}", n.max(1) - 1));
        }
        let mut req = req
            .build()
            .map_err(|_| UpstreamError::new(ErrorKind::Connect, endpoint, "request not built"))?;
        // `insert`, not `append`: a configured header replaces one reqwest
        // set, so a URL's userinfo and `headers.Authorization` never send two
        // Authorization headers; the configured header wins (README).
        for (k, v) in &self.upstream.headers {
            if let (Ok(k), Ok(v)) = (
                reqwest::header::HeaderName::from_bytes(k.as_bytes()),
                reqwest::header::HeaderValue::from_str(v),
            ) {
                let mut v = v;
                v.set_sensitive(true);
                req.headers_mut().insert(k, v);
            }
        }
        let mut resp = self
            .client
            .execute(req)
            .await
            .map_err(|e| classify(endpoint, &e))?;
        let status = resp.status();
        let partial_ok =
            matches!(read, Read::Prefix { .. }) && status == reqwest::StatusCode::PARTIAL_CONTENT;
        if status != reqwest::StatusCode::OK && !partial_ok {
            return Err(UpstreamError::new(
                ErrorKind::HttpStatus,
                endpoint,
                format!("HTTP {}", status.as_u16()),
            ));
        }
        check_content_type(endpoint, expect, resp.headers())?;
        let (cap, prefix) = match read {
            Read::All { cap } => (cap, None),
            Read::Prefix { n } => (u64::MAX, Some(n)),
        };
        if let Some(len) = resp.content_length() {
            if len > cap {
                return Err(UpstreamError::new(
                    ErrorKind::BodyTooLarge,
                    endpoint,
                    format!("Content-Length {len} exceeds the {cap}-byte cap"),
                ));
            }
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| classify(endpoint, &e))? {
            if body.len() as u64 + chunk.len() as u64 > cap {
                return Err(UpstreamError::new(
                    ErrorKind::BodyTooLarge,
                    endpoint,
                    format!("body exceeds the {cap}-byte cap"),
                ));
            }
            body.extend_from_slice(&chunk);
            if let Some(n) = prefix {
                if body.len() >= n {
                    return Ok(body.freeze());
                }
            }
        }
        Ok(body.freeze())
    }
}

pub fn is_not_found(e: &UpstreamError) -> bool {
    e.kind == ErrorKind::HttpStatus && e.message == "HTTP 404"
}

/// An answer that says "not this endpoint here" rather than "the node is
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

fn check_content_type(
    endpoint: Endpoint,
    expect: Expect,
    headers: &reqwest::header::HeaderMap,
) -> Result<(), UpstreamError> {
    let Some(ct) = headers.get(reqwest::header::CONTENT_TYPE) else {
        return Ok(()); // absent: let the decoder judge the bytes
    };
    let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
    // The media type without parameters: zeam sends `application/json;
    // charset=utf-8`. The bytes are judged by the decoder either way.
    let media = ct.split(';').next().unwrap_or("").trim();
    let ok = match expect {
        Expect::Json => media == "application/json",
        Expect::Ssz => matches!(media, "application/octet-stream" | "application/x-ssz" | ""),
    };
    if ok {
        Ok(())
    } else {
        Err(UpstreamError::new(
            ErrorKind::ContentType,
            endpoint,
            format!(
                "Content-Type {} is not what the endpoint serves",
                redact::excerpt(&ct, redact::UPSTREAM_EXCERPT)
            ),
        ))
    }
}

/// Names a reqwest/hyper failure by walking its source chain.
fn classify(endpoint: Endpoint, e: &reqwest::Error) -> UpstreamError {
    let mut io_kind = None;
    let mut incomplete = false;
    let (mut too_large, mut parse) = (false, false);
    let mut src = e.source();
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            io_kind.get_or_insert(io.kind());
        }
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            incomplete |= h.is_incomplete_message();
            too_large |= h.is_parse_too_large();
            parse |= h.is_parse() || h.is_parse_status();
        }
        src = s.source();
    }
    use std::io::ErrorKind as Io;
    let kind = if e.is_redirect() {
        ErrorKind::Redirect
    } else if e.is_timeout() && e.is_connect() {
        ErrorKind::ConnectTimeout
    } else if e.is_timeout() {
        ErrorKind::Timeout
    } else if io_kind == Some(Io::ConnectionRefused) {
        ErrorKind::Refused
    } else if too_large {
        ErrorKind::HeadTooLarge
    } else if parse {
        ErrorKind::Protocol
    } else if e.is_connect() {
        ErrorKind::Connect
    } else if io_kind == Some(Io::ConnectionReset) {
        ErrorKind::Reset
    } else if incomplete
        || matches!(io_kind, Some(Io::UnexpectedEof | Io::BrokenPipe))
        || e.is_body()
        || e.is_decode()
    {
        // Whatever else broke a body mid-stream, the peer stopped sending.
        ErrorKind::Closed
    } else {
        ErrorKind::Connect
    };
    let message = match kind {
        ErrorKind::ConnectTimeout => {
            "TCP connect did not complete within the connect deadline".to_string()
        }
        ErrorKind::Refused => "connection refused".to_string(),
        ErrorKind::Reset => "connection reset by peer".to_string(),
        ErrorKind::Closed => "connection closed before a complete response".to_string(),
        ErrorKind::HeadTooLarge => "response head (status line and headers) too large".to_string(),
        ErrorKind::Protocol => "not a valid HTTP/1 response".to_string(),
        // reqwest's own text includes the URL; describe without it.
        _ => describe_without_url(e),
    };
    UpstreamError::new(kind, endpoint, message)
}

fn describe_without_url(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut src = e.source();
    while let Some(s) = src {
        parts.push(redact::bound(&s.to_string(), redact::MAX_MESSAGE));
        src = s.source();
    }
    if parts.is_empty() {
        "request failed".to_string()
    } else {
        parts.join(": ")
    }
}

fn decode_err(endpoint: Endpoint, e: api::DecodeError) -> UpstreamError {
    UpstreamError::new(ErrorKind::Decode, endpoint, e.to_string())
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
        self.poll_any(config, deadline, prefer_fallback)
            .await
            .map_err(|e| self.shown(e))
    }

    async fn poll_any(
        &self,
        config: &Config,
        deadline: Instant,
        prefer_fallback: bool,
    ) -> Result<Observation, UpstreamError> {
        if !prefer_fallback {
            match self
                .get(
                    Endpoint::ForkChoice,
                    Expect::Json,
                    Read::All {
                        cap: config.max_body_bytes,
                    },
                    deadline,
                )
                .await
            {
                Ok(body) => match self.record_decode(
                    api::parse_fork_choice(&body).map_err(|e| decode_err(Endpoint::ForkChoice, e)),
                ) {
                    Ok(v) => {
                        return Ok(Observation {
                            source: Source::ForkChoice,
                            head_slot: Some(v.head_slot),
                            justified: Some(v.justified),
                            finalized_slot: v.finalized.slot,
                            finalized_root: Some(v.finalized.root),
                            tree: v.nodes.into(),
                        })
                    }
                    Err(e) => {
                        tracing::debug!(upstream = %self.upstream.name, error = %self.shown(e), "fork_choice unusable; falling back")
                    }
                },
                Err(e) if falls_back(&e) => {
                    tracing::debug!(upstream = %self.upstream.name, error = %self.shown(e), "fork_choice unusable; falling back")
                }
                Err(e) => return Err(e),
            }
        }
        self.poll_fallback(config, deadline).await
    }

    fn record_decode<T>(&self, r: Result<T, UpstreamError>) -> Result<T, UpstreamError> {
        if let Err(e) = &r {
            self.metrics.observe_error(e.kind);
        }
        r
    }

    async fn poll_fallback(
        &self,
        config: &Config,
        deadline: Instant,
    ) -> Result<Observation, UpstreamError> {
        let justified = match self
            .get(
                Endpoint::Justified,
                Expect::Json,
                Read::All {
                    cap: config.max_body_bytes,
                },
                deadline,
            )
            .await
        {
            // Not served, or not in the reference shape: the Zig leanpoint
            // never asked for it, the State alone will do.
            Ok(body) => self
                .record_decode(
                    api::parse_checkpoint(&body).map_err(|e| decode_err(Endpoint::Justified, e)),
                )
                .ok(),
            Err(e) if falls_back(&e) => None,
            Err(e) => return Err(e),
        };
        let head = match self
            .get(
                Endpoint::StateFinalized,
                Expect::Ssz,
                Read::Prefix {
                    n: api::STATE_FIXED_LEN,
                },
                deadline,
            )
            .await
        {
            Ok(b) => self.record_decode(
                api::parse_state_header(&b).map_err(|e| decode_err(Endpoint::StateFinalized, e)),
            )?,
            Err(e) if is_not_found(&e) => {
                let e = UpstreamError::new(
                    ErrorKind::Unsupported,
                    Endpoint::StateFinalized,
                    "no usable fork_choice, and states/finalized is not served (404)",
                );
                self.metrics.observe_error(e.kind);
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if head.latest_block_header_slot != head.slot {
            let e = UpstreamError::new(
                ErrorKind::Decode,
                Endpoint::StateFinalized,
                format!(
                    "state slot {} differs from its block header slot {}",
                    head.slot, head.latest_block_header_slot
                ),
            );
            self.metrics.observe_error(e.kind);
            return Err(e);
        }
        Ok(Observation {
            source: Source::Fallback,
            head_slot: None,
            justified,
            finalized_slot: head.slot,
            finalized_root: None,
            tree: std::sync::Arc::from([]),
        })
    }

    /// Reads the first `n` bytes of the finalized State (a Range request,
    /// else a streamed read cut off there): its fixed part and the head of
    /// `historical_block_hashes`, for ancestry evidence.
    pub async fn fetch_state_prefix(
        &self,
        n: usize,
        deadline: Instant,
    ) -> Result<Bytes, UpstreamError> {
        self.get(
            Endpoint::StateFinalized,
            Expect::Ssz,
            Read::Prefix { n },
            deadline,
        )
        .await
        .map_err(|e| self.shown(e))
    }

    /// Downloads the finalized SignedBlock (whole, under `cap`).
    pub async fn fetch_block(&self, cap: u64, deadline: Instant) -> Result<Bytes, UpstreamError> {
        self.get(
            Endpoint::BlockFinalized,
            Expect::Ssz,
            Read::All { cap },
            deadline,
        )
        .await
        .map_err(|e| self.shown(e))
    }

    /// Downloads and validates the whole finalized State for the cache.
    pub async fn fetch_state(
        &self,
        cap: u64,
        deadline: Instant,
    ) -> Result<(Bytes, api::StateHeader), UpstreamError> {
        let body = self
            .get(
                Endpoint::StateFinalized,
                Expect::Ssz,
                Read::All { cap },
                deadline,
            )
            .await
            .map_err(|e| self.shown(e))?;
        let header = self
            .record_decode(
                api::validate_state(&body).map_err(|e| decode_err(Endpoint::StateFinalized, e)),
            )
            .map_err(|e| self.shown(e))?;
        Ok((body, header))
    }
}
