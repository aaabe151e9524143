//! What a request to an upstream asks for and how it can fail: the fixed
//! sets of endpoints and error kinds (both label metrics), and the error a
//! failed request returns.
//!
//! Every failure has a name, so an operator reads "timeout" or "redirect"
//! where reqwest would say "error sending request", and the dashboards and
//! /api/upstreams name a failure alike.

use std::error::Error as _;

use crate::lean::api;
use crate::redact;

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
    /// A status other than 200 (after at most 3 same-origin redirects); the
    /// code is [`UpstreamError::status`].
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

/// A failed request: its kind, the endpoint, and a message that never holds
/// the URL (it may carry credentials) or more than a few bytes of the body.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{endpoint}: {message}", endpoint = .endpoint.as_str())]
pub struct UpstreamError {
    pub kind: ErrorKind,
    pub endpoint: Endpoint,
    pub message: String,
    /// The response status, for [`ErrorKind::HttpStatus`]: callers decide by
    /// the code (a 404 is detection), never by the message.
    pub status: Option<u16>,
}

impl UpstreamError {
    pub fn new(kind: ErrorKind, endpoint: Endpoint, message: impl Into<String>) -> UpstreamError {
        UpstreamError {
            kind,
            endpoint,
            message: message.into(),
            status: None,
        }
    }

    /// A status other than the one asked for.
    pub(super) fn status(endpoint: Endpoint, code: u16) -> UpstreamError {
        UpstreamError {
            status: Some(code),
            ..UpstreamError::new(ErrorKind::HttpStatus, endpoint, format!("HTTP {code}"))
        }
    }

    pub(super) fn decode(endpoint: Endpoint, e: api::DecodeError) -> UpstreamError {
        UpstreamError::new(ErrorKind::Decode, endpoint, e.to_string())
    }
}

/// The endpoint is not served (404): detection, not a failure.
pub fn is_not_found(e: &UpstreamError) -> bool {
    e.kind == ErrorKind::HttpStatus && e.status == Some(404)
}

/// Names a reqwest/hyper failure by walking its source chain.
pub(super) fn classify(endpoint: Endpoint, e: &reqwest::Error) -> UpstreamError {
    // reqwest's own text includes the URL; describe without it.
    named(endpoint, kind_of(e), || describe_without_url(e))
}

/// Names a failure of a request on the upstream's own connection
/// (`upstream::conn`): the connect has its own errors there, so what is left
/// is the response (its head, its body) or the connection under it.
pub(super) fn classify_hyper(endpoint: Endpoint, e: &hyper::Error) -> UpstreamError {
    let found = Found::walk(e);
    let kind = if found.too_large {
        ErrorKind::HeadTooLarge
    } else if found.parse {
        ErrorKind::Protocol
    } else if found.io == Some(std::io::ErrorKind::ConnectionReset) {
        ErrorKind::Reset
    } else {
        // Incomplete, canceled, closed, an EOF: the peer stopped sending.
        ErrorKind::Closed
    };
    named(endpoint, kind, || describe_chain(e))
}

/// The one text each kind is shown with, or `other` for the kinds whose
/// text depends on the error.
pub(super) fn named(
    endpoint: Endpoint,
    kind: ErrorKind,
    other: impl FnOnce() -> String,
) -> UpstreamError {
    let message = match kind {
        ErrorKind::ConnectTimeout => "TCP connect did not complete within the connect deadline",
        ErrorKind::Refused => "connection refused",
        ErrorKind::Reset => "connection reset by peer",
        ErrorKind::Closed => "connection closed before a complete response",
        ErrorKind::HeadTooLarge => "response head (status line and headers) too large",
        ErrorKind::Protocol => "not a valid HTTP/1 response",
        _ => return UpstreamError::new(kind, endpoint, other()),
    };
    UpstreamError::new(kind, endpoint, message)
}

/// What an error's source chain says, from the io and hyper errors in it.
#[derive(Default)]
struct Found {
    io: Option<std::io::ErrorKind>,
    incomplete: bool,
    too_large: bool,
    parse: bool,
}

impl Found {
    fn walk(e: &(dyn std::error::Error + 'static)) -> Found {
        let mut found = Found::default();
        let mut src = Some(e);
        while let Some(s) = src {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                found.io.get_or_insert(io.kind());
            }
            if let Some(h) = s.downcast_ref::<hyper::Error>() {
                found.incomplete |= h.is_incomplete_message();
                found.too_large |= h.is_parse_too_large();
                found.parse |= h.is_parse() || h.is_parse_status();
            }
            src = s.source();
        }
        found
    }
}

fn kind_of(e: &reqwest::Error) -> ErrorKind {
    let found = e.source().map(Found::walk).unwrap_or_default();
    let io_kind = found.io;
    use std::io::ErrorKind as Io;
    if e.is_redirect() {
        ErrorKind::Redirect
    } else if e.is_timeout() && e.is_connect() {
        ErrorKind::ConnectTimeout
    } else if e.is_timeout() {
        ErrorKind::Timeout
    } else if io_kind == Some(Io::ConnectionRefused) {
        ErrorKind::Refused
    } else if found.too_large {
        ErrorKind::HeadTooLarge
    } else if found.parse {
        ErrorKind::Protocol
    } else if e.is_connect() {
        ErrorKind::Connect
    } else if io_kind == Some(Io::ConnectionReset) {
        ErrorKind::Reset
    } else if found.incomplete
        || matches!(io_kind, Some(Io::UnexpectedEof | Io::BrokenPipe))
        || e.is_body()
        || e.is_decode()
    {
        // Whatever else broke a body mid-stream, the peer stopped sending.
        ErrorKind::Closed
    } else {
        ErrorKind::Connect
    }
}

fn describe_without_url(e: &reqwest::Error) -> String {
    e.source()
        .map_or_else(|| "request failed".to_string(), describe_chain)
}

/// An error and its sources, each bounded. hyper's texts hold no URL.
fn describe_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut src = Some(e);
    while let Some(s) = src {
        parts.push(redact::bound(&s.to_string(), redact::MAX_MESSAGE));
        src = s.source();
    }
    parts.join(": ")
}
