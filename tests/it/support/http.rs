//! The tests' one HTTP client: blocking HTTP/1.1 over a new std
//! `TcpStream` per request (`Connection: close`), with a hard deadline on
//! the whole exchange, so every request also proves the listener still
//! accepts. And the one raw-socket probe: a request sent, the socket handed
//! back to read whatever the server does.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long a request may take when the caller names no deadline.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(10);

/// A complete response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body, chunked transfer coding removed.
    pub body: Vec<u8>,
    /// Connect to the last byte.
    pub took: Duration,
}

impl Resp {
    /// A header's value (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics (with the body) if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "expected JSON (HTTP {}): {e}: {:?}",
                self.status,
                self.text()
            )
        })
    }
}

/// `host:port` and path of an `http://` URL.
pub fn split_url(url: &str) -> (SocketAddr, String) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http:// URL: {url}"));
    let (hp, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    let addr = hp
        .parse()
        .unwrap_or_else(|e| panic!("{url}: host:port is not an address: {e}"));
    (addr, path.to_string())
}

/// One request on a new connection, answered completely within `limit`
/// (connect, any wait in the accept backlog, and the whole body). Err says
/// what did not happen in time.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    limit: Duration,
) -> Result<Resp, String> {
    let started = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, limit)
        .map_err(|e| format!("{path}: connect: {e} after {:?}", started.elapsed()))?;
    let left = limit
        .saturating_sub(started.elapsed())
        .max(Duration::from_millis(1));
    s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method != "GET" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut out = req.into_bytes();
    out.extend_from_slice(body);
    s.write_all(&out)
        .map_err(|e| format!("{path}: send: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| {
        format!(
            "{path}: no complete answer within {limit:?} ({e} after {:?}, {} bytes)",
            started.elapsed(),
            raw.len()
        )
    })?;
    let took = started.elapsed();
    if took > limit {
        return Err(format!("{path}: answered in {took:?}, over {limit:?}"));
    }
    if raw.is_empty() {
        return Err(format!("{path}: connection closed without an answer"));
    }
    let mut resp = parse_response(&raw)?;
    resp.took = took;
    Ok(resp)
}

/// GET `url` with extra `headers`, answered completely within `limit`.
pub fn get_url_within(
    url: &str,
    headers: &[(&str, &str)],
    limit: Duration,
) -> Result<Resp, String> {
    let (addr, path) = split_url(url);
    request(addr, "GET", &path, headers, b"", limit)
}

/// GET `url` with extra `headers` within [`DEFAULT_LIMIT`].
pub fn get_url(url: &str, headers: &[(&str, &str)]) -> Result<Resp, String> {
    get_url_within(url, headers, DEFAULT_LIMIT)
}

/// GET `url`; panics when no complete response arrives.
pub fn must_get(url: &str) -> Resp {
    get_url(url, &[]).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// POST `body` to `url`; panics when no complete response arrives.
pub fn must_post(url: &str, body: &str) -> Resp {
    let (addr, path) = split_url(url);
    request(addr, "POST", &path, &[], body.as_bytes(), DEFAULT_LIMIT)
        .unwrap_or_else(|e| panic!("POST {url}: {e}"))
}

/// Parses a response whose body runs to the end of `raw` (Connection:
/// close), undoing a chunked transfer coding.
pub fn parse_response(raw: &[u8]) -> Result<Resp, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no header end in {:?}", String::from_utf8_lossy(raw)))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut resp = Resp {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
        took: Duration::ZERO,
    };
    if resp
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        resp.body = dechunk(&resp.body)?;
    }
    Ok(resp)
}

fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunk size line not terminated")?;
        let size_text = String::from_utf8_lossy(&raw[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|e| format!("bad chunk size {size_text:?}: {e}"))?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if raw.len() < size + 2 {
            return Err(format!("chunk of {size} bytes cut short"));
        }
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// The raw-socket probe: connects (1 s deadline), sends `head` as it is
/// (request line and headers, the blank line added) and hands the socket
/// back, for tests of what a server does on the wire.
pub fn raw_request(addr: SocketAddr, head: &str) -> TcpStream {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.write_all(format!("{head}\r\n\r\n").as_bytes())
        .unwrap_or_else(|e| panic!("send to {addr}: {e}"));
    s
}

/// `n` connections to `addr` that never send a byte: idle clients holding
/// a server's connection slots and fds. A connect that fails panics.
pub fn idle_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {i} to {addr}: {e}")))
        .collect()
}

/// [`raw_request`] of a plain GET for `path`.
pub fn raw_get(addr: SocketAddr, path: &str) -> TcpStream {
    raw_request(addr, &format!("GET {path} HTTP/1.1\r\nHost: {addr}"))
}

/// `method url` with `body` as (status, content type, body); panics when no
/// complete response arrives within [`DEFAULT_LIMIT`].
pub fn http(method: &str, url: &str, body: &str) -> (u16, String, Vec<u8>) {
    let (addr, path) = split_url(url);
    let r = request(addr, method, &path, &[], body.as_bytes(), DEFAULT_LIMIT)
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let ctype = r.header("content-type").unwrap_or_default().to_string();
    (r.status, ctype, r.body)
}

/// GET `path` on a new connection, answered completely within `limit`:
/// the response and how long it took.
pub fn probe(addr: SocketAddr, path: &str, limit: Duration) -> Result<(Resp, Duration), String> {
    let r = request(addr, "GET", path, &[], b"", limit)?;
    let took = r.took;
    Ok((r, took))
}
