//! Serving one immutable byte string (the State, a block) with conditional
//! and partial requests: `If-None-Match` (304), `Range` / `If-Range` (206,
//! 416) and `Accept-Ranges: bytes`, so a client can resume a large download
//! from another replica or after a broken connection.
//!
//! The ETag is the block root, strong and the same on every replica, so a
//! resumed `If-Range` either names the bytes being served (206 of the rest)
//! or gets the whole new representation (200), never a splice of two.
//!
//! Range syntax is parsed by `http-range-header` (strict RFC 9110 grammar);
//! which ranges are satisfiable, and what an ignored Range means, is decided
//! here. One range is served; a multi-range request is answered with the
//! whole body (200), which RFC 9110 §14.2 allows, so no multipart encoding
//! is needed. Every body is a zero-copy slice of the shared `Bytes`.

use std::ops::RangeInclusive;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_range_header::{EndPosition, StartPosition};

const OCTET_STREAM: &str = "application/octet-stream";

/// What a Range header asks of a body of a given length.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    /// No usable Range (absent, malformed, several ranges, or `If-Range`
    /// not matching): the whole body.
    Whole,
    Part(RangeInclusive<u64>),
    Unsatisfiable,
}

/// `GET`/`HEAD` of `bytes` under `etag` (a quoted strong ETag), as
/// `application/octet-stream`. HEAD gets the same headers (axum drops the
/// body).
pub fn serve(headers: &HeaderMap, bytes: Bytes, etag: &str) -> Response {
    let tag = HeaderValue::from_str(etag).ok();
    if tag.is_some() && if_none_match(headers, etag) {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        with_common(r.headers_mut(), tag);
        return r;
    }
    let len = bytes.len() as u64;
    let wanted = match headers.get(header::RANGE) {
        Some(range) if if_range_allows(headers, etag) => wanted(range, len),
        _ => Wanted::Whole,
    };
    let (status, body, content_range) = match wanted {
        Wanted::Whole => (StatusCode::OK, bytes, None),
        Wanted::Part(r) => {
            let content_range = format!("bytes {}-{}/{len}", r.start(), r.end());
            // In bounds: wanted() only returns ranges inside 0..len.
            let part = bytes.slice(*r.start() as usize..=*r.end() as usize);
            (StatusCode::PARTIAL_CONTENT, part, Some(content_range))
        }
        Wanted::Unsatisfiable => (
            StatusCode::RANGE_NOT_SATISFIABLE,
            Bytes::new(),
            Some(format!("bytes */{len}")),
        ),
    };
    let length = HeaderValue::from(body.len());
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    with_common(h, tag);
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(OCTET_STREAM));
    h.insert(header::CONTENT_LENGTH, length);
    if let Some(v) = content_range.and_then(|v| HeaderValue::from_str(&v).ok()) {
        h.insert(header::CONTENT_RANGE, v);
    }
    r
}

fn with_common(h: &mut HeaderMap, tag: Option<HeaderValue>) {
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(tag) = tag {
        h.insert(header::ETAG, tag);
    }
}

/// True when `If-None-Match` lists `etag` (weak or strong) or is `*`.
pub fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// `If-Range` absent, or naming exactly this strong ETag. A weak tag never
/// matches (RFC 9110 §13.1.5 asks a strong comparison), and a date never
/// does either: nothing here has a Last-Modified to compare with.
fn if_range_allows(headers: &HeaderMap, etag: &str) -> bool {
    match headers.get(header::IF_RANGE) {
        None => true,
        Some(v) => v.to_str().is_ok_and(|v| v.trim() == etag),
    }
}

/// The part of a body of `len` bytes that `range` asks for.
fn wanted(range: &HeaderValue, len: u64) -> Wanted {
    let Some(parsed) = range
        .to_str()
        .ok()
        .and_then(|v| http_range_header::parse_range_header(v).ok())
    else {
        return Wanted::Whole;
    };
    let [one] = parsed.ranges.as_slice() else {
        return Wanted::Whole;
    };
    let last = match len.checked_sub(1) {
        Some(last) => last,
        None => return Wanted::Unsatisfiable,
    };
    match (one.start, one.end) {
        // `first-last` with last < first is not a valid range: ignored.
        (StartPosition::Index(first), EndPosition::Index(end)) if end < first => Wanted::Whole,
        (StartPosition::Index(first), _) if first > last => Wanted::Unsatisfiable,
        (StartPosition::Index(first), EndPosition::Index(end)) => {
            Wanted::Part(first..=end.min(last))
        }
        (StartPosition::Index(first), EndPosition::LastByte) => Wanted::Part(first..=last),
        // `-n`: the last n bytes, or all of a shorter body (the parser
        // refuses n = 0).
        (StartPosition::FromLast(n), _) => Wanted::Part(len.saturating_sub(n)..=last),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(range: &str, len: u64) -> Wanted {
        wanted(&HeaderValue::from_str(range).expect("header"), len)
    }

    #[test]
    fn ranges_against_a_ten_byte_body() {
        use Wanted::*;
        for (range, expect) in [
            ("bytes=0-3", Part(0..=3)),
            ("bytes=4-", Part(4..=9)),
            ("bytes=9-9", Part(9..=9)),
            ("bytes=5-100", Part(5..=9)),
            ("bytes=-3", Part(7..=9)),
            ("bytes=-30", Part(0..=9)),
            ("bytes=10-", Unsatisfiable),
            ("bytes=10-20", Unsatisfiable),
            ("bytes=5-4", Whole),
            ("bytes=0-1,4-5", Whole),
            ("bytes=abc", Whole),
            ("items=0-3", Whole),
            ("bytes= 0-3", Whole),
            ("bytes=-0", Whole),
        ] {
            assert_eq!(want(range, 10), expect, "{range}");
        }
        assert_eq!(want("bytes=0-", 0), Unsatisfiable);
        assert_eq!(want("bytes=-5", 0), Unsatisfiable);
    }

    #[test]
    fn if_none_match_forms() {
        let tag = "\"0xabc\"";
        for (value, hit) in [
            ("\"0xabc\"", true),
            ("W/\"0xabc\"", true),
            ("\"x\", \"0xabc\"", true),
            ("*", true),
            ("\"0xab\"", false),
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, HeaderValue::from_static(value));
            assert_eq!(if_none_match(&h, tag), hit, "{value}");
        }
        assert!(!if_none_match(&HeaderMap::new(), tag));
    }

    #[test]
    fn if_range_needs_the_same_strong_tag() {
        let tag = "\"0xabc\"";
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::IF_RANGE, HeaderValue::from_static(v));
            if_range_allows(&h, tag)
        };
        assert!(if_range_allows(&HeaderMap::new(), tag));
        assert!(with("\"0xabc\""));
        assert!(!with("W/\"0xabc\""));
        assert!(!with("\"0xdef\""));
        assert!(!with("Tue, 01 Dec 2026 22:00:00 GMT"));
    }
}
