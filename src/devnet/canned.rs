//! Canned nodes: a simulated node that answers from a fixed table of
//! replies instead of the chain.
//!
//! The chain-backed behaviours cover what a devnet node does; canned replies
//! cover what only exact bytes can: the reference node's captured responses
//! and hostile variants of them (a wrong content type, a chunked body with no
//! length, a redirect, a body that drips under an announced length). Tests
//! build the table in code; no flag or admin request can name one.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::http1::canonical_reason;

/// Content-Length a dripping reply announces: under every body cap a test
/// sets, so only the client's deadline can end the request.
pub const DRIP_LENGTH: usize = 4000;
/// The reference node's error body type (also `faults::TEXT`; not imported,
/// since faults builds on this module).
const TEXT: &str = "text/plain; charset=utf-8";
/// One body byte per this, forever, for a dripping reply.
const DRIP_EVERY: Duration = Duration::from_millis(100);

/// One canned response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CannedReply {
    pub status: u16,
    /// Empty: no Content-Type header at all.
    pub content_type: String,
    pub body: Bytes,
    /// Sent with `Transfer-Encoding: chunked` (no Content-Length), so a size
    /// cap can only be enforced while streaming.
    pub chunked: bool,
    /// A 200 head announcing [`DRIP_LENGTH`], then one byte per 100 ms
    /// forever (status and body are ignored).
    pub drip: bool,
    /// Extra response headers (the `Location` of a redirect).
    pub headers: Vec<(String, String)>,
}

impl CannedReply {
    /// `status` with this content type and body.
    pub fn status(status: u16, content_type: &str, body: impl Into<Bytes>) -> CannedReply {
        CannedReply {
            status,
            content_type: content_type.to_string(),
            body: body.into(),
            chunked: false,
            drip: false,
            headers: Vec::new(),
        }
    }

    /// The reference node's 404 (`404: Not Found`, text/plain).
    pub fn not_found() -> CannedReply {
        CannedReply::status(404, TEXT, Bytes::from_static(b"404: Not Found"))
    }

    /// 200 with this content type and body.
    pub fn ok(content_type: &str, body: impl Into<Bytes>) -> CannedReply {
        CannedReply::status(200, content_type, body)
    }

    /// `status` (a 3xx) to `location`, empty body.
    pub fn redirect(status: u16, location: &str) -> CannedReply {
        let mut r = CannedReply::status(status, TEXT, Bytes::new());
        r.headers
            .push(("Location".to_string(), location.to_string()));
        r
    }

    /// This reply's content type, dripped forever (see `drip`).
    pub fn dripping(mut self) -> CannedReply {
        self.drip = true;
        self
    }

    /// The same reply sent chunked.
    pub fn chunked(mut self) -> CannedReply {
        self.chunked = true;
        self
    }
}

/// Path (without query) to reply; any other path gets the fallback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Canned {
    routes: HashMap<String, CannedReply>,
    fallback: CannedReply,
}

impl Default for Canned {
    fn default() -> Canned {
        Canned {
            routes: HashMap::new(),
            fallback: CannedReply::not_found(),
        }
    }
}

impl Canned {
    /// Replaces (or adds) the reply of one path.
    pub fn with(mut self, path: &str, reply: CannedReply) -> Canned {
        self.routes.insert(path.to_string(), reply);
        self
    }

    /// The reply of every path not listed (default: the reference 404).
    pub fn otherwise(mut self, reply: CannedReply) -> Canned {
        self.fallback = reply;
        self
    }

    /// The reply for `path`.
    pub fn reply(&self, path: &str) -> &CannedReply {
        self.routes.get(path).unwrap_or(&self.fallback)
    }
}

/// Puts `reply` on the wire. True when the connection may serve another
/// request.
pub async fn send(stream: &mut TcpStream, reply: &CannedReply, close: bool) -> bool {
    if reply.drip {
        drip(stream, &reply.content_type).await;
        return false;
    }
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nServer: leanpoint-sim\r\n",
        reply.status,
        canonical_reason(reply.status).unwrap_or("Status")
    )
    .into_bytes();
    if !reply.content_type.is_empty() {
        out.extend_from_slice(format!("Content-Type: {}\r\n", reply.content_type).as_bytes());
    }
    for (k, v) in &reply.headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    if reply.chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        for chunk in reply.body.chunks(1024) {
            out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
    } else {
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", reply.body.len()).as_bytes());
        out.extend_from_slice(&reply.body);
    }
    stream.write_all(&out).await.is_ok() && !close
}

/// A 200 head announcing [`DRIP_LENGTH`], then a space per [`DRIP_EVERY`]
/// until the peer closes.
async fn drip(stream: &mut TcpStream, content_type: &str) {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {DRIP_LENGTH}\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let (mut rd, mut wr) = stream.split();
    let mut ticks = tokio::time::interval(DRIP_EVERY);
    let mut sink = [0u8; 1024];
    loop {
        tokio::select! {
            r = rd.read(&mut sink) => if matches!(r, Ok(0) | Err(_)) { return },
            _ = ticks.tick() => if wr.write_all(b" ").await.is_err() { return },
        }
    }
}
