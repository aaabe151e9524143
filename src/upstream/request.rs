//! The one bounded request path to an upstream.
//!
//! Every request here has a connect deadline (`--connect-timeout-ms`) and a
//! total deadline that covers headers *and* body: the whole request is a
//! future raced against `tokio::time::timeout_at`, and losing the race drops
//! it. A plain-HTTP upstream's connection is owned by that future while it
//! runs (`upstream::conn`), so the drop closes its socket then and there; an
//! https upstream's goes through reqwest, whose connection task closes it as
//! soon as it next runs (microseconds; the poller leaves an interval before
//! the next request so the two never overlap). That is the fix for the Zig
//! leanpoint's incident, where a worker blocked in recv() was detached at its
//! deadline and kept its socket for ~15 minutes.
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
use http::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, LOCATION, RANGE,
    USER_AGENT,
};
use http::StatusCode;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use reqwest::Url;
use tokio::time::Instant;

use super::conn::{Channel, Ended, Live, Target};
use super::error::{
    classify, classify_hyper, is_not_found, named, Endpoint, ErrorKind, UpstreamError,
};
use super::redirect;
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
        .user_agent(USER_AGENT_VALUE)
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
    /// For a plain-HTTP upstream, what its own connection sends (`conn`);
    /// `None` for https, which goes through reqwest and its TLS.
    direct: Option<Direct>,
}

/// The requests of a plain-HTTP upstream, ready to send on its connection.
#[derive(Debug)]
struct Direct {
    target: Target,
    connect_timeout: Duration,
    /// Each endpoint's request target (path and query), as `urls`.
    targets: [http::Uri; Endpoint::ALL.len()],
    /// Host, User-Agent, Authorization from the URL's userinfo, then the
    /// configured headers (which replace any of those they name).
    headers: HeaderMap,
}

impl Prepared {
    pub fn new(upstream: &Upstream, connect_timeout: Duration) -> Prepared {
        let headers: Vec<_> = upstream
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
        let urls = Endpoint::ALL.map(|e| upstream.endpoint(e.path()));
        let direct = Direct::new(&upstream.url, &urls, &headers, connect_timeout);
        Prepared {
            urls,
            headers,
            direct,
        }
    }

    /// By its place in `Endpoint::ALL`, the order `new` built them in (not
    /// by discriminant, which nothing ties to that order).
    fn url(&self, endpoint: Endpoint) -> &Url {
        &self.urls[index(endpoint)]
    }
}

fn index(endpoint: Endpoint) -> usize {
    let k = Endpoint::ALL.iter().position(|e| *e == endpoint);
    k.expect("Endpoint::ALL lists every endpoint")
}

impl Direct {
    /// `None` for a URL this path does not speak (https), or one without
    /// the parts a request needs (config::file has refused those already).
    fn new(
        base: &Url,
        urls: &[Url; Endpoint::ALL.len()],
        configured: &[(HeaderName, HeaderValue)],
        connect_timeout: Duration,
    ) -> Option<Direct> {
        if base.scheme() != "http" {
            return None;
        }
        let target = Target {
            host: base.host()?.to_owned(),
            port: base.port_or_known_default()?,
        };
        let targets = urls
            .iter()
            .map(request_target)
            .collect::<Option<Vec<_>>>()?
            .try_into()
            .ok()?;
        let mut headers = HeaderMap::new();
        let host = match base.port() {
            Some(port) => format!("{}:{port}", base.host_str()?),
            None => base.host_str()?.to_string(),
        };
        headers.insert(HOST, HeaderValue::from_str(&host).ok()?);
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        if let Some(basic) = userinfo_authorization(base) {
            headers.insert(AUTHORIZATION, basic);
        }
        // `insert`: a configured header replaces one set above, so URL
        // userinfo and `headers.Authorization` never send two Authorization
        // headers; the configured one wins (README).
        for (k, v) in configured {
            headers.insert(k.clone(), v.clone());
        }
        Some(Direct {
            target,
            connect_timeout,
            targets,
            headers,
        })
    }

    /// The GET of `target` with its Accept and Range.
    fn request(
        &self,
        target: &http::Uri,
        expect: Expect,
        read: Read,
    ) -> http::Request<Empty<Bytes>> {
        let mut req = http::Request::new(Empty::new());
        *req.uri_mut() = target.clone();
        let headers = req.headers_mut();
        *headers = self.headers.clone();
        headers.insert(ACCEPT, accept(expect));
        if let Some(range) = range(read) {
            headers.insert(RANGE, range);
        }
        req
    }
}

/// A URL's path and query, as an HTTP/1 request target.
fn request_target(url: &Url) -> Option<http::Uri> {
    let target = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    target.parse().ok()
}

/// `Authorization: Basic` from a URL's userinfo (percent-decoded), as
/// reqwest sends it for the https upstreams it carries.
fn userinfo_authorization(url: &Url) -> Option<HeaderValue> {
    use base64::Engine as _;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .ok()
            .map(|c| c.into_owned())
    };
    let user = decode(url.username())?;
    let password = url.password().map(decode);
    if user.is_empty() && password.is_none() {
        return None;
    }
    let pair = format!("{user}:{}", password.flatten().unwrap_or_default());
    let token = base64::engine::general_purpose::STANDARD.encode(pair);
    let mut v = HeaderValue::from_str(&format!("Basic {token}")).ok()?;
    v.set_sensitive(true);
    Some(v)
}

const USER_AGENT_VALUE: &str = concat!("leanpoint/", env!("CARGO_PKG_VERSION"));

fn accept(expect: Expect) -> HeaderValue {
    HeaderValue::from_static(match expect {
        Expect::Json => "application/json",
        Expect::Ssz => "application/octet-stream",
    })
}

/// A server that honours it sends only the prefix (206); one that does not
/// sends the whole body, of which only the prefix is read.
fn range(read: Read) -> Option<HeaderValue> {
    match read {
        Read::Prefix { n } => HeaderValue::from_str(&format!("bytes=0-{}", n.max(1) - 1)).ok(),
        Read::All { .. } => None,
    }
}

/// A response being read, from either path.
enum Response {
    /// On the upstream's own connection, which goes back to its channel
    /// once the body has been read to its end.
    Direct {
        head: http::response::Parts,
        body: Incoming,
        live: Box<Live>,
    },
    Pooled(reqwest::Response),
}

impl Response {
    fn status(&self) -> StatusCode {
        match self {
            Response::Direct { head, .. } => head.status,
            Response::Pooled(r) => r.status(),
        }
    }

    fn headers(&self) -> &HeaderMap {
        match self {
            Response::Direct { head, .. } => &head.headers,
            Response::Pooled(r) => r.headers(),
        }
    }

    fn content_length(&self) -> Option<u64> {
        match self {
            Response::Direct { body, .. } => hyper::body::Body::size_hint(body).exact(),
            Response::Pooled(r) => r.content_length(),
        }
    }

    /// Whether the whole body has been read (known without waiting).
    fn at_end(&self) -> bool {
        match self {
            Response::Direct { body, .. } => hyper::body::Body::is_end_stream(body),
            Response::Pooled(_) => false,
        }
    }

    /// The next piece of the body; `None` at its end.
    async fn chunk(&mut self, endpoint: Endpoint) -> Result<Option<Bytes>, UpstreamError> {
        let (body, live) = match self {
            Response::Pooled(r) => return r.chunk().await.map_err(|e| classify(endpoint, &e)),
            Response::Direct { body, live, .. } => (body, live),
        };
        loop {
            let frame = match live.drive(body.frame()).await {
                Ok(None) => return Ok(None),
                Ok(Some(frame)) => frame.map_err(|e| classify_hyper(endpoint, &e))?,
                Err(Ended(e)) => return Err(ended(endpoint, e)),
            };
            // Trailers carry nothing leanpoint reads.
            if let Ok(data) = frame.into_data() {
                return Ok(Some(data));
            }
        }
    }

    /// The body has been read to its end: its connection is kept.
    fn finished(self, channel: &Channel) {
        if let Response::Direct { live, .. } = self {
            channel.put(live);
        }
    }
}

/// A connection that ended while a response was awaited on it.
fn ended(endpoint: Endpoint, e: Option<hyper::Error>) -> UpstreamError {
    match e {
        Some(e) => classify_hyper(endpoint, &e),
        None => named(endpoint, ErrorKind::Closed, String::new),
    }
}

/// Sends GETs to one upstream, each bounded by a deadline and a size cap,
/// and tells `report` what each did.
pub struct Requester<'a> {
    /// For https upstreams only; a plain-HTTP one has `channel`.
    pub client: &'a reqwest::Client,
    pub upstream: &'a Upstream,
    pub prepared: &'a Prepared,
    /// The upstream's own connection, kept between requests.
    pub channel: &'a Channel,
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
        if self.prepared.direct.is_none() {
            // Whatever asks this upstream next (a poll's history read after
            // its fork_choice, the State after the block, the fetcher once
            // the poll releases the upstream) must find reqwest's connection
            // back in its pool, or hyper opens a second socket to the
            // upstream. The task that puts it back was woken as the response
            // ended, on this same thread (every request runs on the polling
            // thread, `service::poll_thread`): let it run first. After the
            // request, not before it: a yield before would hold a whole
            // group of polls' requests at once, and their buffers.
            tokio::task::yield_now().await;
        }
        result
    }

    /// The request itself; only ever run inside `timeout_at`.
    async fn unbounded(
        &self,
        endpoint: Endpoint,
        expect: Expect,
        read: Read,
    ) -> Result<Bytes, UpstreamError> {
        let mut resp = match &self.prepared.direct {
            Some(direct) => self.direct(direct, endpoint, expect, read).await?,
            None => Response::Pooled(self.pooled(endpoint, expect, read).await?),
        };
        let status = resp.status();
        let partial_ok =
            matches!(read, Read::Prefix { .. }) && status == StatusCode::PARTIAL_CONTENT;
        if status != StatusCode::OK && !partial_ok {
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
        while let Some(chunk) = resp.chunk(endpoint).await? {
            if body.len() as u64 + chunk.len() as u64 > cap {
                return Err(UpstreamError::new(
                    ErrorKind::BodyTooLarge,
                    endpoint,
                    format!("body exceeds the {cap}-byte cap"),
                ));
            }
            body.extend_from_slice(&chunk);
            if prefix.is_some_and(|n| body.len() >= n) {
                // A 206 of just the prefix has ended: its connection is kept.
                // Else the rest is never read, and dropping `resp` closes its
                // connection rather than keep one with a body pending.
                if resp.at_end() && resp.chunk(endpoint).await?.is_none() {
                    resp.finished(self.channel);
                }
                return Ok(body.freeze());
            }
        }
        resp.finished(self.channel);
        Ok(body.freeze())
    }

    /// The GET on the upstream's own connection, following redirects within
    /// its origin (`redirect::check`), each on a fresh connection (the
    /// redirect's body is not read).
    async fn direct(
        &self,
        direct: &Direct,
        endpoint: Endpoint,
        expect: Expect,
        read: Read,
    ) -> Result<Response, UpstreamError> {
        let first = self.prepared.url(endpoint);
        let mut url = std::borrow::Cow::Borrowed(first);
        let mut target = direct.targets[index(endpoint)].clone();
        let mut followed = 0;
        loop {
            let (live, resp) = self
                .exchange(direct, endpoint, || direct.request(&target, expect, read))
                .await?;
            let (head, body) = resp.into_parts();
            let next = match head.status.is_redirection() {
                true => location(&head.headers, &url),
                false => None,
            };
            // No usable Location: the 3xx itself is the answer.
            let Some(next) = next else {
                return Ok(Response::Direct { head, body, live });
            };
            redirect::check(first, &next, followed)
                .map_err(|r| UpstreamError::new(ErrorKind::Redirect, endpoint, r.to_string()))?;
            target = request_target(&next).ok_or_else(|| {
                UpstreamError::new(
                    ErrorKind::Redirect,
                    endpoint,
                    "redirect to an unusable path",
                )
            })?;
            url = std::borrow::Cow::Owned(next);
            followed += 1;
        }
    }

    /// Sends the request `build` makes on the upstream's idle connection, or
    /// a new one. A kept connection the peer closed just as it was reused
    /// (its keep-alive timeout, a restart) fails before any response: the
    /// GET is sent once more, on a new connection, inside the same deadline.
    async fn exchange(
        &self,
        direct: &Direct,
        endpoint: Endpoint,
        build: impl Fn() -> http::Request<Empty<Bytes>>,
    ) -> Result<(Box<Live>, http::Response<Incoming>), UpstreamError> {
        if let Some(mut live) = self.channel.take().await {
            match live.send(build()).await {
                Ok(resp) => return Ok((live, resp)),
                Err(Ended(e)) => {
                    let e = ended(endpoint, e);
                    if !matches!(e.kind, ErrorKind::Closed | ErrorKind::Reset) {
                        return Err(e);
                    }
                }
            }
        }
        let mut live = Live::connect(&direct.target, direct.connect_timeout, endpoint).await?;
        match live.send(build()).await {
            Ok(resp) => Ok((live, resp)),
            Err(Ended(e)) => Err(ended(endpoint, e)),
        }
    }

    /// The GET through reqwest (https upstreams).
    async fn pooled(
        &self,
        endpoint: Endpoint,
        expect: Expect,
        read: Read,
    ) -> Result<reqwest::Response, UpstreamError> {
        let req = self.build(endpoint, expect, read)?;
        self.client
            .execute(req)
            .await
            .map_err(|e| classify(endpoint, &e))
    }

    /// The reqwest GET with its Accept, Range and configured headers.
    fn build(
        &self,
        endpoint: Endpoint,
        expect: Expect,
        read: Read,
    ) -> Result<reqwest::Request, UpstreamError> {
        // Through the builder, not `Request::new`: it moves a URL's userinfo
        // into the Authorization header.
        let mut req = self
            .client
            .get(self.prepared.url(endpoint).clone())
            .header(ACCEPT, accept(expect));
        if let Some(range) = range(read) {
            req = req.header(RANGE, range);
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

/// Where a redirect points, resolved against the URL it came from.
fn location(headers: &HeaderMap, from: &Url) -> Option<Url> {
    let to = headers.get(LOCATION)?.to_str().ok()?;
    from.join(to).ok()
}

fn check_content_type(
    endpoint: Endpoint,
    expect: Expect,
    headers: &HeaderMap,
) -> Result<(), UpstreamError> {
    let Some(ct) = headers.get(CONTENT_TYPE) else {
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
