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
//!
//! What a request did is told to a [`Report`], in one place
//! ([`Requester::request`]), not returned for the caller to record: the
//! in-flight count must also fall when the request future is dropped (at its
//! deadline, at shutdown), which only a guard inside the request sees. The
//! trait keeps this layer below telemetry, which implements it.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Url;
use tokio::time::Instant;

use super::error::{classify, is_not_found, Endpoint, ErrorKind, UpstreamError};
use crate::config::{Config, Upstream};
use crate::lean::api;
use crate::redact::{self, Secrets};

/// Whoever counts an upstream's requests (telemetry's per-upstream handles).
pub trait Report: Sync {
    /// A request starts; [`Report::left`] follows whatever becomes of it.
    fn entered(&self);
    fn left(&self);
    /// A request to `endpoint` ended after `secs`; `failure` is its kind
    /// when it failed (a 404 is detection, not a failure).
    fn finished(&self, endpoint: Endpoint, secs: f64, failure: Option<ErrorKind>);
}

/// Builds the one HTTP client all polls share. Redirects are followed only
/// within the upstream's origin (see [`super::redirect`]), and the idle pool
/// is sized so each upstream can keep its one keep-alive connection: with at
/// most one request in flight per upstream, the pool never holds more
/// sockets than there are upstreams.
pub fn build_client(config: &Config) -> reqwest::Result<reqwest::Client> {
    let mut per_host: std::collections::HashMap<(String, Option<u16>), usize> = Default::default();
    for u in &config.upstreams {
        let host = u.url.host_str().unwrap_or_default().to_string();
        *per_host
            .entry((host, u.url.port_or_known_default()))
            .or_default() += 1;
    }
    let max_idle = per_host.values().copied().max().unwrap_or(1);
    builder(config.connect_timeout)
        .pool_max_idle_per_host(max_idle)
        // Longer than a poll interval so keep-alive connections are reused,
        // bounded so a removed upstream's socket does not linger.
        .pool_idle_timeout(config.poll.saturating_mul(2).max(Duration::from_secs(5)))
        .build()
}

/// Settings every client has. No proxy from the environment: a devnet's
/// upstreams are addressed directly. No reqwest timeout beside the connect
/// timeout: the total deadline is [`Requester::bounded`]'s, over headers and
/// body alike, and a second timer per request, racing the first, only cost
/// a timer-wheel entry and a boxed sleep on every poll.
fn builder(connect_timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .redirect(super::redirect::policy())
        .no_proxy()
        .http1_only()
        .tcp_nodelay(true)
        .user_agent(concat!("leanpoint/", env!("CARGO_PKG_VERSION")))
}

/// What a response body must look like.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    Json,
    Ssz,
}

/// How much of the body to read.
#[derive(Clone, Copy)]
pub(super) enum Read {
    /// The whole body, failing past `cap` bytes.
    All { cap: u64 },
    /// Only the first `n` bytes; the rest is never read and the connection
    /// is dropped (cheaper than reading a large state to learn its slot).
    Prefix { n: usize },
}

/// Keeps the in-flight count right even when the request future is dropped
/// at its deadline or at shutdown.
struct InFlight<'a>(&'a dyn Report);

impl<'a> InFlight<'a> {
    fn enter(report: &'a dyn Report) -> Self {
        report.entered();
        InFlight(report)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.left();
    }
}

/// What every request to one upstream sends, worked out once: each
/// endpoint's URL (the base joined with the API path) and the configured
/// headers, parsed. Joining and parsing them again on every request was a
/// few percent of a poll's CPU.
#[derive(Debug)]
pub struct Prepared {
    urls: [Url; Endpoint::ALL.len()],
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Prepared {
    pub fn new(upstream: &Upstream) -> Prepared {
        let headers = upstream
            .headers
            .iter()
            .filter_map(|(k, v)| {
                // Both were validated with the configuration (config::file).
                let k = HeaderName::from_bytes(k.as_bytes()).ok()?;
                let mut v = HeaderValue::from_str(v).ok()?;
                v.set_sensitive(true);
                Some((k, v))
            })
            .collect();
        Prepared {
            urls: Endpoint::ALL.map(|e| upstream.endpoint(e.path())),
            headers,
        }
    }

    /// By its place in `Endpoint::ALL`, the order `new` built them in (not
    /// by discriminant, which nothing ties to that order).
    fn url(&self, endpoint: Endpoint) -> &Url {
        let k = Endpoint::ALL.iter().position(|e| *e == endpoint);
        &self.urls[k.expect("Endpoint::ALL lists every endpoint")]
    }
}

/// Sends GETs to one upstream, each bounded by a deadline and a size cap,
/// and tells `report` what each did.
pub struct Requester<'a> {
    pub client: &'a reqwest::Client,
    pub upstream: &'a Upstream,
    pub prepared: &'a Prepared,
    pub report: &'a dyn Report,
}

impl Requester<'_> {
    /// Sends one GET and reads its body before `deadline`, then makes of the
    /// outcome what `interpret` says (decode it, rename a 404). The one place
    /// a request's duration and failure are reported; the error returned is
    /// bounded and scrubbed (see `shown`).
    pub(super) async fn request<T>(
        &self,
        endpoint: Endpoint,
        expect: Expect,
        read: Read,
        deadline: Instant,
        interpret: impl FnOnce(Result<Bytes, UpstreamError>) -> Result<T, UpstreamError>,
    ) -> Result<T, UpstreamError> {
        let started = Instant::now();
        let fetched = {
            let _in_flight = InFlight::enter(self.report);
            self.bounded(endpoint, expect, read, started, deadline)
                .await
        };
        let secs = started.elapsed().as_secs_f64();
        let result = interpret(fetched);
        let failure = match &result {
            Err(e) if !is_not_found(e) => Some(e.kind),
            _ => None,
        };
        self.report.finished(endpoint, secs, failure);
        result.map_err(|e| self.shown(e))
    }

    /// What may be kept and shown of an error: bounded, and with this
    /// upstream's credentials scrubbed from whatever text it sent back.
    fn shown(&self, mut e: UpstreamError) -> UpstreamError {
        let u = self.upstream;
        let secrets = Secrets::of(&u.url, &u.headers, u.path_public);
        e.message = secrets.scrub(&redact::bound(&e.message, redact::MAX_MESSAGE));
        e
    }

    /// The request raced against its total deadline.
    async fn bounded(
        &self,
        endpoint: Endpoint,
        expect: Expect,
        read: Read,
        started: Instant,
        deadline: Instant,
    ) -> Result<Bytes, UpstreamError> {
        let unbounded = self.unbounded(endpoint, expect, read);
        let result = match tokio::time::timeout_at(deadline, unbounded).await {
            Ok(r) => r,
            Err(_) => {
                let ms = deadline.saturating_duration_since(started).as_millis();
                Err(UpstreamError::new(
                    ErrorKind::Timeout,
                    endpoint,
                    format!("no complete response within the {} ms deadline", ms.max(1)),
                ))
            }
        };
        // Whatever asks this upstream next (a poll's history read after its
        // fork_choice, the State after the block, the fetcher once the poll
        // releases the upstream) must find this connection back in the
        // pool, or hyper opens a second socket to the upstream. The task
        // that puts it back was woken as the response ended, on this same
        // thread (every request runs on the polling thread,
        // `service::poll_thread`): let it run first. After the request, not
        // before it: a yield before would hold a whole group of polls'
        // requests at once, and their buffers (8-13 MiB more RSS at 1000
        // upstreams).
        tokio::task::yield_now().await;
        result
    }

    /// The request itself; only ever run inside `timeout_at`.
    async fn unbounded(
        &self,
        endpoint: Endpoint,
        expect: Expect,
        read: Read,
    ) -> Result<Bytes, UpstreamError> {
        let req = self.build(endpoint, expect, read)?;
        let mut resp = self
            .client
            .execute(req)
            .await
            .map_err(|e| classify(endpoint, &e))?;
        let status = resp.status();
        let partial_ok =
            matches!(read, Read::Prefix { .. }) && status == reqwest::StatusCode::PARTIAL_CONTENT;
        if status != reqwest::StatusCode::OK && !partial_ok {
            return Err(UpstreamError::status(endpoint, status.as_u16()));
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
            if prefix.is_some_and(|n| body.len() >= n) {
                break;
            }
        }
        Ok(body.freeze())
    }

    /// The GET with its Accept, Range and configured headers.
    fn build(
        &self,
        endpoint: Endpoint,
        expect: Expect,
        read: Read,
    ) -> Result<reqwest::Request, UpstreamError> {
        let accept = HeaderValue::from_static(match expect {
            Expect::Json => "application/json",
            Expect::Ssz => "application/octet-stream",
        });
        // Through the builder, not `Request::new`: it moves a URL's userinfo
        // into the Authorization header.
        let mut req = self
            .client
            .get(self.prepared.url(endpoint).clone())
            .header(reqwest::header::ACCEPT, accept);
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
        for (k, v) in &self.prepared.headers {
            req.headers_mut().insert(k.clone(), v.clone());
        }
        Ok(req)
    }

    /// Reads the first `n` bytes of the finalized State (a Range request,
    /// else a streamed read cut off there): its fixed part and the head of
    /// `historical_block_hashes`, for ancestry evidence.
    pub async fn fetch_state_prefix(
        &self,
        n: usize,
        deadline: Instant,
    ) -> Result<Bytes, UpstreamError> {
        let read = Read::Prefix { n };
        self.request(Endpoint::StateFinalized, Expect::Ssz, read, deadline, |r| r)
            .await
    }

    /// Downloads the finalized SignedBlock (whole, under `cap`).
    pub async fn fetch_block(&self, cap: u64, deadline: Instant) -> Result<Bytes, UpstreamError> {
        let read = Read::All { cap };
        self.request(Endpoint::BlockFinalized, Expect::Ssz, read, deadline, |r| r)
            .await
    }

    /// Downloads and validates the whole finalized State for the cache.
    pub async fn fetch_state(
        &self,
        cap: u64,
        deadline: Instant,
    ) -> Result<(Bytes, api::StateHeader), UpstreamError> {
        let read = Read::All { cap };
        self.request(Endpoint::StateFinalized, Expect::Ssz, read, deadline, |r| {
            let body = r?;
            let header = api::validate_state(&body)
                .map_err(|e| UpstreamError::decode(Endpoint::StateFinalized, e))?;
            Ok((body, header))
        })
        .await
    }
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
