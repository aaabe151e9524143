//! Checkpoint-sync routes, probes and /metrics, in process: `router(state)`
//! driven with `oneshot` on an `AppState` built from a real `Config` and given
//! an agreement by `AppState::apply`, exactly as the decider would.

use crate::support::fixtures::{FINALIZED_ROOT, STATE};
use crate::support::served::*;
use crate::support::*;

use axum::body::Body;
use axum::http::{header, StatusCode};
use leanpoint::http::router;
use serde_json::Value;
use tower::ServiceExt;

#[tokio::test]
async fn state_is_served_byte_identical_with_etag() {
    let state = agreed_with_fixture(FLAGS);
    let r = get_path(&state, STATE).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, fixture("advanced", "states_finalized.ssz"));
    assert_eq!(
        r.header(header::CONTENT_TYPE),
        Some("application/octet-stream")
    );
    assert_eq!(r.header(header::CONTENT_LENGTH), Some("966"));
    let etag = format!("\"{FINALIZED_ROOT}\"");
    assert_eq!(r.header(header::ETAG), Some(etag.as_str()));

    // Asking for gzip changes nothing: the State is never compressed.
    let gz = get_with(&state, STATE, &[("accept-encoding", "gzip")]).await;
    assert_eq!(gz.header(header::CONTENT_ENCODING), None);
    assert_eq!(gz.header(header::CONTENT_LENGTH), Some("966"));
    assert_eq!(gz.body, r.body);

    let cached = get_with(&state, STATE, &[("if-none-match", etag.as_str())]).await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
    assert!(cached.body.is_empty());
    assert_eq!(cached.header(header::ETAG), Some(etag.as_str()));

    let other = get_with(&state, STATE, &[("if-none-match", "\"0xother\"")]).await;
    assert_eq!(other.status, StatusCode::OK);

    let head = call(&state, req("HEAD", STATE, &[])).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header(header::CONTENT_LENGTH), Some("966"));
    assert!(head.body.is_empty());
}

#[tokio::test]
async fn no_agreement_means_503_json_with_a_reason() {
    let state = build(FLAGS);
    for path in [STATE, "/lean/v0/checkpoints/justified"] {
        let r = get_with(&state, path, &[("accept", "application/json")]).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(r.header(header::CONTENT_TYPE), Some("application/json"));
        let err = r.json()["error"]
            .as_str()
            .expect("error string")
            .to_string();
        assert!(err.starts_with("stale: no agreement"), "{path}: {err}");
    }
    // Agreement but the State not downloaded yet.
    agree(&state);
    let r = get_with(&state, STATE, &[("accept", "application/json")]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.json()["error"]
        .as_str()
        .expect("error")
        .contains("slot 9) is not downloaded yet"));
    let ready = get_path(&state, "/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        ready.text().contains("not downloaded yet"),
        "{}",
        ready.text()
    );
}

#[tokio::test]
async fn lean_api_shapes_match_the_reference_node() {
    let state = agreed_with_fixture(FLAGS);
    let r = get_path(&state, "/lean/v0/checkpoints/justified").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, fixture("advanced", "checkpoints_justified.json"));
    let h = get_path(&state, "/lean/v0/health").await;
    assert_eq!(h.body, fixture("advanced", "health.json"));
    assert_eq!(h.header(header::CONTENT_TYPE), Some("application/json"));
    // leanpoint is not a node: no fork choice of its own.
    assert_statuses(
        &state,
        &[
            ("/lean/v0/fork_choice", StatusCode::NOT_FOUND),
            ("/no/such/route", StatusCode::NOT_FOUND),
        ],
    )
    .await;
}

#[tokio::test]
async fn json_is_gzipped_when_asked() {
    let state = agreed_with_fixture(FLAGS);
    let plain = get_path(&state, "/api/upstreams").await;
    assert_eq!(plain.header(header::CONTENT_ENCODING), None);
    let gz = get_with(&state, "/api/upstreams", &[("accept-encoding", "gzip")]).await;
    assert_eq!(gz.header(header::CONTENT_ENCODING), Some("gzip"));
    assert_eq!(&gz.body[..2], &[0x1f, 0x8b], "gzip magic");
    // A real gzip client decodes it back to the same JSON.
    let client = tower_http::decompression::Decompression::new(router(state.clone()));
    let resp = client
        .oneshot(req("GET", "/api/upstreams", &[]))
        .await
        .expect("infallible");
    let body = axum::body::to_bytes(Body::new(resp.into_body()), usize::MAX)
        .await
        .expect("decoded body");
    let decoded: Value = serde_json::from_slice(&body).expect("decoded JSON");
    assert_eq!(decoded, plain.json());
}

#[tokio::test]
async fn metrics_negotiates_format_and_counts_requests() {
    let state = build(FLAGS);
    let _ = get_path(&state, "/status").await;
    let _ = get_path(&state, "/nope").await;
    let text = get_path(&state, "/metrics").await;
    assert_eq!(
        text.header(header::CONTENT_TYPE),
        Some(leanpoint::telemetry::TEXT_CONTENT_TYPE)
    );
    let t = text.text();
    for needle in [
        "# TYPE process_cpu_seconds_total counter",
        "process_open_fds ",
        "process_max_fds ",
        "process_resident_memory_bytes ",
        "process_virtual_memory_bytes ",
        "process_start_time_seconds ",
        "process_threads ",
        "leanpoint_process_tcp_sockets{state=\"established\"} ",
        "leanpoint_process_tcp_sockets{state=\"close_wait\"} ",
        "leanpoint_http_requests_total{route=\"/status\",code=\"200\"} 1",
        "leanpoint_http_requests_total{route=\"unmatched\",code=\"404\"} 1",
    ] {
        assert!(t.contains(needle), "missing {needle:?} in\n{t}");
    }
    assert!(!t.contains("# EOF"));
    let om = get_with(
        &state,
        "/metrics",
        &[(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )],
    )
    .await;
    assert_eq!(
        om.header(header::CONTENT_TYPE),
        Some(leanpoint::telemetry::OPENMETRICS_CONTENT_TYPE)
    );
    assert!(om.text().ends_with("# EOF\n"));
}

/// /metrics gzips its shared body itself; the compression layer must pass
/// that through (not compress it again, not drop the coding) and /metrics
/// must pick gzip for exactly the Accept-Encoding values the layer picks it
/// for on any other route (here /api/upstreams, compressed by the layer).
#[tokio::test]
async fn metrics_gzip_is_negotiated_as_the_layer_does_and_sent_once_compressed() {
    let state = agreed_with_fixture(FLAGS);
    let plain = get_path(&state, "/metrics").await;
    assert_eq!(plain.header(header::CONTENT_ENCODING), None);
    assert_eq!(plain.header(header::VARY), Some("accept-encoding"));
    for accept in [
        "gzip",
        "GZIP",
        "x-gzip",
        "gzip;q=0",
        "gzip; q=0.001",
        "gzip;q=0.",
        "gzip;q=1.0001",
        "gzip;q=2",
        "gzip;level=1",
        "identity",
        "identity;q=0, gzip;q=0",
        "gzip;q=0.5, identity",
        "identity;q=0.5, gzip;q=0.5",
        "identity;q=0.5, gzip;q=0.4",
        "br, deflate",
        "*",
        "gzip;q=0, *",
        "deflate, gzip;q=0.1",
        "",
    ] {
        let layer = get_with(&state, "/api/upstreams", &[("accept-encoding", accept)]).await;
        let ours = get_with(&state, "/metrics", &[("accept-encoding", accept)]).await;
        assert_eq!(
            ours.header(header::CONTENT_ENCODING),
            layer.header(header::CONTENT_ENCODING),
            "Accept-Encoding: {accept:?}"
        );
        assert_eq!(
            ours.header(header::VARY),
            Some("accept-encoding"),
            "{accept:?}"
        );
        if ours.header(header::CONTENT_ENCODING).is_none() {
            assert!(ours.text().starts_with("# HELP "), "{accept:?}");
            continue;
        }
        // One gzip layer: decoded once, it is the text exposition.
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&ours.body[..]), &mut text)
            .expect("gzip once");
        assert!(text.starts_with("# HELP "), "{accept:?}: {text:.80}");
        assert!(text.contains("# TYPE leanpoint_metrics_encodings_total counter"));
        assert_eq!(
            ours.header(header::CONTENT_LENGTH),
            Some(ours.body.len().to_string().as_str())
        );
    }
    // Two headers count together, as in the layer.
    let both = call(
        &state,
        req(
            "GET",
            "/metrics",
            &[("accept-encoding", "identity"), ("accept-encoding", "gzip")],
        ),
    )
    .await;
    assert_eq!(both.header(header::CONTENT_ENCODING), Some("gzip"));
}

#[tokio::test]
async fn probes_follow_agreement() {
    let state = build(FLAGS);
    let h = get_path(&state, "/healthz").await;
    assert_eq!(h.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(h.text().starts_with("stale"), "{}", h.text());
    // Pollers are not running here, but were "ticked" at build: live.
    assert_statuses(
        &state,
        &[
            ("/readyz", StatusCode::SERVICE_UNAVAILABLE),
            ("/livez", StatusCode::OK),
        ],
    )
    .await;

    let state = agreed_with_fixture(FLAGS);
    let h = get_path(&state, "/healthz").await;
    assert_eq!((h.status, h.text().as_str()), (StatusCode::OK, "ok\n"));
    let r = get_path(&state, "/readyz").await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "ready\n"));
}
