//! Concurrent scrapes of the real binary over real sockets: every one gets a
//! complete body though they share encodings (`telemetry::scrape`), the
//! encodings counter never rises by more than the scrapes, and gzip is sent
//! only to scrapers that ask for it, one layer, decoding to a valid body.

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::Barrier;

use crate::support::metrics::{parse_sample, samples};
use crate::support::*;

const OPENMETRICS: (&str, &str) = ("accept", "application/openmetrics-text;version=1.0.0");
const GZIP: (&str, &str) = ("accept-encoding", "gzip");

/// A leanpoint polling two closed ports: it polls and fails, so its
/// counters move while it is scraped.
fn start() -> Leanpoint {
    Leanpoint::builder().refused_upstreams(2).spawn()
}

fn encodings(text: &str) -> f64 {
    metric_exact(text, "leanpoint_metrics_encodings_total")
        .unwrap_or_else(|| panic!("no leanpoint_metrics_encodings_total in\n{text}"))
}

/// The families a body declares (`# TYPE` lines).
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect()
}

/// A body is complete and parseable: every sample line parses, it has the
/// families `want` declares, and OpenMetrics ends with `# EOF`.
fn assert_complete(text: &str, openmetrics: bool, want: &BTreeSet<String>, what: &str) {
    assert!(text.ends_with('\n'), "{what}: cut short:\n{text}");
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(parse_sample(line).is_some(), "{what}: bad line {line:?}");
    }
    if openmetrics {
        assert!(text.ends_with("# EOF\n"), "{what}: no # EOF");
        assert!(text.contains("# TYPE leanpoint_metrics_encodings counter"));
    } else {
        let got = families(text);
        let missing: Vec<_> = want.difference(&got).collect();
        assert!(missing.is_empty(), "{what}: families missing: {missing:?}");
    }
}

fn gunzip(body: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(body)
        .read_to_string(&mut out)
        .expect("a gzip body of UTF-8 text");
    out
}

#[test]
fn concurrent_scrapes_all_get_complete_bodies_from_shared_encodings() {
    let lp = start();
    let first = lp.metrics();
    let before = encodings(&first);
    let want = families(&first);
    const N: usize = 24;
    let start = Barrier::new(N);
    let bodies: Vec<(usize, Resp)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let (lp, start) = (&lp, &start);
                s.spawn(move || {
                    // Each kind of scrape a few times: text, OpenMetrics,
                    // each plain and gzip.
                    let mut headers = Vec::new();
                    if i % 2 == 1 {
                        headers.push(OPENMETRICS);
                    }
                    if (i / 2) % 2 == 1 {
                        headers.push(GZIP);
                    }
                    start.wait();
                    let r = lp
                        .try_get("/metrics", &headers)
                        .unwrap_or_else(|e| panic!("scrape {i}: {e}"));
                    (i, r)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("scrape thread"))
            .collect()
    });
    for (i, r) in &bodies {
        assert_eq!(r.status, 200, "scrape {i}");
        let (openmetrics, gzip) = (i % 2 == 1, (i / 2) % 2 == 1);
        assert_eq!(
            r.header("content-encoding"),
            gzip.then_some("gzip"),
            "scrape {i}"
        );
        let text = if gzip { gunzip(&r.body) } else { r.text() };
        assert_complete(&text, openmetrics, &want, &format!("scrape {i}"));
    }
    let after = encodings(&lp.metrics());
    // The first scrape's encoding is in `before`; the last one's in `after`.
    assert!(
        after - before <= (N + 1) as f64,
        "{} encodings for {} scrapes",
        after - before,
        N + 1
    );
    assert!(after > before, "the last scrape encoded nothing?");
    let compressions = metric_exact(&lp.metrics(), "leanpoint_metrics_compressions_total")
        .expect("compressions counter");
    assert!(
        (1.0..=(N / 2) as f64).contains(&compressions),
        "{compressions} compressions for {} gzip scrapes",
        N / 2
    );
}

#[test]
fn gzip_only_when_asked_one_layer_decoding_to_a_valid_body() {
    let lp = start();
    let plain = lp.try_get("/metrics", &[]).expect("plain scrape");
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("content-encoding"), None);
    let text = plain.text();
    let want = families(&text);
    assert_complete(&text, false, &want, "plain");
    for (accept, openmetrics) in [(None, false), (Some(OPENMETRICS), true)] {
        let mut headers = vec![GZIP];
        headers.extend(accept);
        let gz = lp.try_get("/metrics", &headers).expect("gzip scrape");
        assert_eq!(gz.status, 200);
        assert_eq!(gz.header("content-encoding"), Some("gzip"));
        assert_eq!(gz.header("vary"), Some("accept-encoding"));
        // Compressed once per body and sent whole: its exact length.
        assert_eq!(
            gz.header("content-length"),
            Some(gz.body.len().to_string().as_str())
        );
        let decoded = gunzip(&gz.body);
        assert_complete(&decoded, openmetrics, &want, "gzip");
        assert!(samples(&decoded).count() > 50, "{decoded}");
    }
    // Refused gzip, identity only: plain.
    for refuse in ["gzip;q=0", "identity", "gzip;q=0.5, identity"] {
        let r = lp
            .try_get("/metrics", &[("accept-encoding", refuse)])
            .expect("scrape");
        assert_eq!(r.header("content-encoding"), None, "{refuse}");
        assert!(
            r.text().contains("# TYPE leanpoint_build_info gauge"),
            "{refuse}"
        );
    }
}
