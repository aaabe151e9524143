//! Resumable State downloads on the real binary over real sockets: `Range`
//! and `If-Range` with the ETag (206, 416, `Accept-Ranges: bytes`), a
//! download resumed after a cut, `If-None-Match` before `Range`, HEAD, and
//! the cases where the whole State must come back instead (stale or weak
//! `If-Range`, malformed or multi-part ranges).

use std::time::Duration;

use crate::support::fixtures::STATE;
use crate::support::{
    fixture, fixtures, metric, request, start, wait_until, Leanpoint, Resp, Timing,
};

const WAIT: Duration = Duration::from_secs(30);

fn served() -> (Vec<crate::support::SimUpstream>, Leanpoint, Resp) {
    let (fakes, lp) = start(
        &fixtures(&[("a", "advanced"), ("b", "advanced"), ("c", "advanced")]),
        &Timing::FAST.args(),
    );
    let whole = wait_until(WAIT, "the State served", || {
        let r = lp.try_get(STATE, &[]).map_err(|e| e.to_string())?;
        if r.status == 200 {
            Ok(r)
        } else {
            Err(format!("HTTP {}", r.status))
        }
    });
    (fakes, lp, whole)
}

fn get(lp: &Leanpoint, headers: &[(&str, &str)]) -> Resp {
    lp.try_get(STATE, headers)
        .unwrap_or_else(|e| panic!("GET {STATE} {headers:?}: {e:#}"))
}

#[test]
fn state_ranges_resume_and_refuse_as_rfc_9110_says() {
    let (_fakes, lp, whole) = served();
    let state = fixture("advanced", "states_finalized.ssz");
    let len = state.len();
    assert_eq!(&whole.body[..], state.as_slice());
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    let etag = whole.header("etag").expect("ETag");

    // A download cut after 300 bytes resumes from byte 300 with If-Range.
    let first = get(&lp, &[("range", "bytes=0-299")]);
    assert_eq!(first.status, 206);
    assert_eq!(
        first.header("content-range").map(str::to_string),
        Some(format!("bytes 0-299/{len}"))
    );
    assert_eq!(first.header("content-length"), Some("300"));
    let rest = get(&lp, &[("range", "bytes=300-"), ("if-range", etag)]);
    assert_eq!(rest.status, 206);
    assert_eq!(
        rest.header("content-range").map(str::to_string),
        Some(format!("bytes 300-{}/{len}", len - 1))
    );
    assert_eq!(rest.header("etag"), Some(etag));
    let mut joined = first.body.to_vec();
    joined.extend_from_slice(&rest.body);
    assert_eq!(joined, state, "resumed download differs from the State");

    // The last 100 bytes; an end past the State is cut to it.
    let tail = get(&lp, &[("range", "bytes=-100")]);
    assert_eq!(
        (tail.status, tail.body.as_ref()),
        (206, &state[len - 100..])
    );
    let past = get(&lp, &[("range", "bytes=900-99999")]);
    assert_eq!((past.status, past.body.as_ref()), (206, &state[900..]));

    // Nothing of the State at or past its length: 416 with its size.
    let beyond = format!("bytes={len}-");
    let refused = get(&lp, &[("range", &beyond)]);
    assert_eq!(refused.status, 416);
    assert_eq!(
        refused.header("content-range").map(str::to_string),
        Some(format!("bytes */{len}"))
    );
    assert!(refused.body.is_empty());

    // The whole State (200) when the Range cannot be used as asked: another
    // root's (or a weak) If-Range, a date, bad syntax, several ranges.
    for headers in [
        vec![("range", "bytes=300-"), ("if-range", "\"0xother\"")],
        vec![("range", "bytes=300-"), ("if-range", &format!("W/{etag}"))],
        vec![
            ("range", "bytes=300-"),
            ("if-range", "Tue, 01 Dec 2026 22:00:00 GMT"),
        ],
        vec![("range", "bytes=300-200")],
        vec![("range", "lines=1-2")],
        vec![("range", "bytes=0-9,20-29")],
    ] {
        let r = get(&lp, &headers);
        assert_eq!(r.status, 200, "{headers:?}");
        assert_eq!(&r.body[..], state.as_slice(), "{headers:?}");
    }

    // If-None-Match is decided first: a client holding this State gets 304.
    let cached = get(&lp, &[("range", "bytes=0-9"), ("if-none-match", etag)]);
    assert_eq!(cached.status, 304);
    assert!(cached.body.is_empty());
}

#[test]
fn head_with_a_range_reports_the_part_without_a_body() {
    let (_fakes, lp, whole) = served();
    let len = whole.body.len();
    let head = request(
        lp.addr,
        "HEAD",
        STATE,
        &[("range", "bytes=10-19")],
        b"",
        Duration::from_secs(5),
    )
    .expect("HEAD");
    assert_eq!(head.status, 206);
    let h = |n: &str| head.header(n).map(str::to_string);
    assert_eq!(h("content-range"), Some(format!("bytes 10-19/{len}")));
    assert_eq!(h("content-length").as_deref(), Some("10"));
    assert_eq!(h("accept-ranges").as_deref(), Some("bytes"));
    assert!(head.body.is_empty());
}

/// Every byte of the State a download asks for goes by sendfile from its
/// file, wholes and ranges alike; HEAD, 304 and the block (not in a file)
/// send none of it.
#[test]
fn state_bodies_go_out_by_sendfile_byte_for_byte() {
    let (_fakes, lp, whole) = served();
    let len = whole.body.len() as f64;
    let sent = |lp: &Leanpoint| {
        let text = lp.metrics();
        assert_eq!(
            metric(&text, "leanpoint_served_state_sendfile", &[]),
            Some(1.0),
            "the served State is in a file of its own"
        );
        metric(&text, "leanpoint_http_sendfile_bytes_total", &[]).expect("sendfile counter")
    };
    let before = sent(&lp);
    assert!(
        before >= len,
        "the first download went by sendfile: {before}"
    );
    let again = get(&lp, &[]);
    assert_eq!(again.body, whole.body);
    assert_eq!(sent(&lp) - before, len, "a whole download");
    let etag = whole.header("etag").expect("ETag").to_string();
    let part = get(&lp, &[("range", "bytes=300-599")]);
    assert_eq!((part.status, &part.body[..]), (206, &whole.body[300..600]));
    assert_eq!(sent(&lp) - before, len + 300.0, "a range of 300 bytes");
    let head = request(lp.addr, "HEAD", STATE, &[], b"", Duration::from_secs(5)).expect("HEAD");
    assert_eq!(head.status, 200);
    assert_eq!(get(&lp, &[("if-none-match", &etag)]).status, 304);
    let block = lp.try_get("/lean/v0/blocks/finalized", &[]).expect("block");
    assert_eq!(block.status, 200);
    assert_eq!(
        sent(&lp) - before,
        len + 300.0,
        "HEAD, 304 and the block send none"
    );
}
