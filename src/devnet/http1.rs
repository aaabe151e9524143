//! The smallest HTTP/1.1 server side the simulator needs.
//!
//! Hand-written rather than hyper because a fault node must control the
//! socket itself: stop after the request, send FIN, reset mid-body, drip one
//! byte at a time. Requests are GET (and the admin POST with a
//! Content-Length body); keep-alive is supported so a poller's pooled
//! connection is reused, as against a real node.

use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Request heads larger than this are refused (the connection is closed).
const MAX_HEAD: usize = 16 * 1024;
/// Request bodies larger than this are refused (only the admin reads bodies).
const MAX_BODY: usize = 64 * 1024;

/// One parsed request.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    pub body: Bytes,
    /// The client asked to close after this request (or spoke HTTP/1.0).
    pub close: bool,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Reads the next request from `stream`. `Ok(None)` on a clean close or when
/// no request starts within `idle`; errors on a malformed or oversized one.
pub async fn read_request(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    idle: Duration,
) -> io::Result<Option<Request>> {
    let head_len = loop {
        if let Some(end) = find_head_end(buf) {
            break end;
        }
        if buf.len() > MAX_HEAD {
            return Err(bad("request head too large"));
        }
        match tokio::time::timeout(idle, stream.read_buf(buf)).await {
            Err(_) => return Ok(None),
            Ok(Ok(0)) if buf.is_empty() => return Ok(None),
            Ok(Ok(0)) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
        }
    };
    let head = buf.split_to(head_len);
    let (method, path, close, body_len) = parse_head(&head)?;
    while buf.len() < body_len {
        match tokio::time::timeout(idle, stream.read_buf(buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(Err(e)) => return Err(e),
            _ => return Err(io::ErrorKind::UnexpectedEof.into()),
        }
    }
    let body = buf.split_to(body_len).freeze();
    Ok(Some(Request {
        method,
        path,
        body,
        close,
    }))
}

fn parse_head(head: &[u8]) -> io::Result<(String, String, bool, usize)> {
    let text = std::str::from_utf8(head).map_err(|_| bad("request head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("malformed request line"));
    };
    let mut close = version == "HTTP/1.0";
    let mut body_len = 0usize;
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad("malformed header line"));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                body_len = value.parse().map_err(|_| bad("bad Content-Length"))?;
                if body_len > MAX_BODY {
                    return Err(bad("request body too large"));
                }
            }
            "transfer-encoding" => return Err(bad("chunked request bodies are not supported")),
            "connection" => {
                let v = value.to_ascii_lowercase();
                close = v.contains("close") || (close && !v.contains("keep-alive"));
            }
            _ => {}
        }
    }
    let path = target.split('?').next().unwrap_or_default().to_string();
    Ok((method.to_string(), path, close, body_len))
}

/// The standard reason phrase of `status`, if it has one.
pub(super) fn canonical_reason(status: u16) -> Option<&'static str> {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|c| c.canonical_reason())
}

/// The status line and headers. `len: None` is a close-delimited body.
pub fn head(status: u16, content_type: &str, len: Option<usize>, close: bool) -> Vec<u8> {
    let mut h = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nServer: leanpoint-sim\r\n",
        canonical_reason(status).unwrap_or("Unknown")
    );
    if let Some(len) = len {
        h.push_str(&format!("Content-Length: {len}\r\n"));
    }
    if close || len.is_none() {
        h.push_str("Connection: close\r\n");
    }
    h.push_str("\r\n");
    h.into_bytes()
}

/// Writes a complete response. Small bodies go out in one write so a
/// keep-alive client never waits on Nagle plus delayed ACK.
pub async fn write_full(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &Bytes,
    close: bool,
) -> io::Result<()> {
    let mut h = head(status, content_type, Some(body.len()), close);
    if body.len() <= 16 * 1024 {
        h.extend_from_slice(body);
        stream.write_all(&h).await
    } else {
        stream.write_all(&h).await?;
        stream.write_all(body).await
    }
}

/// Reads and discards until the peer closes or errs: how a hanging node
/// keeps the socket exactly as long as the client does, and no longer.
pub async fn drain_until_closed(stream: &mut TcpStream) {
    let mut sink = [0u8; 4096];
    while let Ok(n) = stream.read(&mut sink).await {
        if n == 0 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse() {
        let (m, p, close, len) =
            parse_head(b"GET /node/3/lean/v0/health?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").expect("ok");
        assert_eq!(
            (m.as_str(), p.as_str(), close, len),
            ("GET", "/node/3/lean/v0/health", false, 0)
        );
        let (_, _, close, len) =
            parse_head(b"POST /admin HTTP/1.1\r\nContent-Length: 11\r\nConnection: close\r\n\r\n")
                .expect("ok");
        assert_eq!((close, len), (true, 11));
        let e = parse_head(b"GET\r\n\r\n").expect_err("no target, no version");
        assert_eq!(e.to_string(), "malformed request line");
        let e = parse_head(b"GET / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n")
            .expect_err("over MAX_BODY");
        assert_eq!(e.to_string(), "request body too large");
        let (_, _, close, _) = parse_head(b"GET / HTTP/1.0\r\n\r\n").expect("ok");
        assert!(close);
    }

    #[test]
    fn head_formats() {
        let h = head(404, "text/plain; charset=utf-8", Some(14), false);
        assert_eq!(
            String::from_utf8(h).expect("utf-8"),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nServer: leanpoint-sim\r\nContent-Length: 14\r\n\r\n"
        );
    }
}
