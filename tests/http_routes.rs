//! Route shapes, in process: `router(state)` driven with `oneshot`, on an
//! `AppState` built from a real `Config` and given an agreement by
//! `AppState::apply`, exactly as the decider would.

mod http_support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_support::*;
use leanpoint::http::router;
use leanpoint::lean_api::{Checkpoint, Root};
use leanpoint::state::AppState;
use leanpoint::upstream::{Observation, Source};
use serde_json::Value;
use tower::ServiceExt;

struct Got {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn call(state: &Arc<AppState>, req: Request<Body>) -> Got {
    let resp = router(state.clone())
        .oneshot(req)
        .await
        .expect("infallible");
    let (parts, body) = resp.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("body")
        .to_vec();
    Got {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

fn req(method: &str, path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::empty()).expect("request")
}

async fn get_path(state: &Arc<AppState>, path: &str) -> Got {
    call(state, req("GET", path, &[])).await
}

const FLAGS: &[&str] = &["--lean-url", "http://127.0.0.1:1", "--stale-ms", "600000"];

#[tokio::test]
async fn state_is_served_byte_identical_with_etag() {
    let state = agreed_with_fixture(FLAGS);
    let r = get_path(&state, "/lean/v0/states/finalized").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, fixture("advanced/states_finalized.ssz"));
    assert_eq!(
        r.header(header::CONTENT_TYPE),
        Some("application/octet-stream")
    );
    assert_eq!(r.header(header::CONTENT_LENGTH), Some("966"));
    let etag = format!("\"{FINALIZED_ROOT}\"");
    assert_eq!(r.header(header::ETAG), Some(etag.as_str()));

    // Asking for gzip changes nothing: the State is never compressed.
    let gz = call(
        &state,
        req(
            "GET",
            "/lean/v0/states/finalized",
            &[("accept-encoding", "gzip")],
        ),
    )
    .await;
    assert_eq!(gz.header(header::CONTENT_ENCODING), None);
    assert_eq!(gz.header(header::CONTENT_LENGTH), Some("966"));
    assert_eq!(gz.body, r.body);

    let cached = call(
        &state,
        req(
            "GET",
            "/lean/v0/states/finalized",
            &[("if-none-match", etag.as_str())],
        ),
    )
    .await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
    assert!(cached.body.is_empty());
    assert_eq!(cached.header(header::ETAG), Some(etag.as_str()));

    let other = call(
        &state,
        req(
            "GET",
            "/lean/v0/states/finalized",
            &[("if-none-match", "\"0xother\"")],
        ),
    )
    .await;
    assert_eq!(other.status, StatusCode::OK);

    let head = call(&state, req("HEAD", "/lean/v0/states/finalized", &[])).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header(header::CONTENT_LENGTH), Some("966"));
    assert!(head.body.is_empty());
}

#[tokio::test]
async fn no_agreement_means_503_json_with_a_reason() {
    let state = build(FLAGS);
    for path in [
        "/lean/v0/states/finalized",
        "/lean/v0/checkpoints/justified",
    ] {
        let r = get_path(&state, path).await;
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
    let r = get_path(&state, "/lean/v0/states/finalized").await;
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
    assert_eq!(r.body, fixture("advanced/checkpoints_justified.json"));
    let h = get_path(&state, "/lean/v0/health").await;
    assert_eq!(h.body, fixture("advanced/health.json"));
    assert_eq!(h.header(header::CONTENT_TYPE), Some("application/json"));
    // leanpoint is not a node: no fork choice of its own.
    assert_eq!(
        get_path(&state, "/lean/v0/fork_choice").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get_path(&state, "/no/such/route").await.status,
        StatusCode::NOT_FOUND
    );
}

fn assert_types(obj: &Value, fields: &[(&str, &str)]) {
    for (field, ty) in fields {
        let v = obj
            .get(*field)
            .unwrap_or_else(|| panic!("missing {field} in {obj}"));
        let ok = match *ty {
            "u64" => v.is_u64(),
            "bool" => v.is_boolean(),
            "string" => v.is_string(),
            "string|null" => v.is_string() || v.is_null(),
            "u64|null" => v.is_u64() || v.is_null(),
            "object" => v.is_object(),
            other => panic!("unknown type {other}"),
        };
        assert!(ok, "{field} should be {ty}, is {v}");
    }
}

const ZIG_STATUS: &[(&str, &str)] = &[
    ("justified_slot", "u64"),
    ("finalized_slot", "u64"),
    ("last_updated_ms", "u64"),
    ("last_success_ms", "u64"),
    ("stale", "bool"),
    ("error_count", "u64"),
    ("last_error", "string|null"),
];

const NEW_STATUS: &[(&str, &str)] = &[
    ("finalized_root", "string|null"),
    ("justified_root", "string|null"),
    ("agreement", "bool"),
    ("agreeing", "u64"),
    ("disagreeing", "u64"),
    ("failing", "u64"),
    ("responding", "u64"),
    ("required", "u64"),
    ("rule", "string"),
    ("served_state_slot", "u64|null"),
    ("served_state_bytes", "u64"),
];

#[tokio::test]
async fn status_has_every_zig_field_with_its_type() {
    let empty = build(FLAGS);
    let s = get_path(&empty, "/status").await.json();
    assert_types(&s, ZIG_STATUS);
    assert_types(&s, NEW_STATUS);
    assert_eq!(s["last_success_ms"], 0);
    assert_eq!(s["stale"], true);
    assert!(s["last_error"].is_null() || s["last_error"].is_string());
    assert!(s["served_state_slot"].is_null());

    let state = agreed_with_fixture(FLAGS);
    let s = get_path(&state, "/status").await.json();
    assert_types(&s, ZIG_STATUS);
    assert_types(&s, NEW_STATUS);
    assert_eq!(s["finalized_slot"], 9);
    assert_eq!(s["justified_slot"], 10);
    assert_eq!(s["finalized_root"], FINALIZED_ROOT);
    assert_eq!(s["justified_root"], JUSTIFIED_ROOT);
    assert_eq!(s["stale"], false);
    assert_eq!(s["agreement"], true);
    assert!(s["last_error"].is_null());
    assert!(s["last_success_ms"].as_u64().expect("u64") > 0);
    assert_eq!(s["served_state_slot"], 9);
    assert_eq!(s["served_state_bytes"], 966);
    assert_eq!(s["rule"], "majority");
}

#[tokio::test]
async fn api_upstreams_has_every_zig_field_with_its_type() {
    let state = agreed_with_fixture(FLAGS);
    state.record_poll(
        0,
        &Ok(Observation {
            source: Source::ForkChoice,
            head_slot: Some(12),
            justified: Some(Checkpoint {
                slot: 10,
                root: Root::from_hex(JUSTIFIED_ROOT).expect("root"),
            }),
            finalized_slot: 9,
            finalized_root: Some(Root::from_hex(FINALIZED_ROOT).expect("root")),
        }),
        std::time::Duration::from_millis(7),
    );
    let body = get_path(&state, "/api/upstreams").await.json();
    let ups = body["upstreams"].as_array().expect("upstreams array");
    assert_eq!(ups.len(), 1);
    let u = &ups[0];
    assert_types(
        u,
        &[
            ("name", "string"),
            ("url", "string"),
            ("path", "string"),
            ("healthy", "bool"),
            ("last_success_ms", "u64|null"),
            ("error_count", "u64"),
            ("last_error", "string|null"),
            ("last_justified_slot", "u64|null"),
            ("last_finalized_slot", "u64|null"),
            ("head_slot", "u64|null"),
            ("justified_root", "string|null"),
            ("finalized_root", "string|null"),
            ("source", "string"),
            ("agrees", "bool"),
            ("standing", "string"),
            ("last_error_kind", "string|null"),
            ("errors_by_kind", "object"),
            ("consecutive_errors", "u64"),
            ("last_latency_ms", "u64|null"),
            ("last_attempt_ms", "u64|null"),
            ("polls", "u64"),
            ("polls_skipped", "u64"),
        ],
    );
    assert_eq!(u["name"], "default");
    assert_eq!(u["path"], "/status");
    assert_eq!(u["standing"], "agreeing");
    assert_eq!(u["agrees"], true);
    assert_eq!(u["healthy"], true);
    assert_eq!(u["source"], "fork_choice");
    assert_eq!(u["head_slot"], 12);
    assert_eq!(u["last_justified_slot"], 10);
    assert_eq!(u["last_finalized_slot"], 9);
    assert_eq!(u["finalized_root"], FINALIZED_ROOT);
    assert_eq!(u["last_latency_ms"], 7);
    assert!(u["last_error"].is_null() && u["last_error_kind"].is_null());
    assert_eq!(u["errors_by_kind"].as_object().expect("obj").len(), 11);
    assert_eq!(u["errors_by_kind"]["connect_timeout"], 0);
    let c = &body["consensus"];
    assert_types(
        c,
        &[
            ("total_upstreams", "u64"),
            ("responding_upstreams", "u64"),
            ("consensus_threshold", "u64"),
            ("has_consensus", "bool"),
            ("required_votes", "u64"),
            ("rule", "string"),
            ("agreeing", "u64"),
            ("finalized_slot", "u64|null"),
            ("finalized_root", "string|null"),
        ],
    );
    assert_eq!(c["consensus_threshold"], 50);
    assert_eq!(c["has_consensus"], true);
    assert_eq!(c["finalized_slot"], 9);
}

#[tokio::test]
async fn upstream_secrets_appear_nowhere() {
    let secret_url = "http://user:secret@127.0.0.1:1/x?apikey=k";
    let state = build(&["--lean-url", secret_url]);
    let mut seen = String::new();
    for path in [
        "/api/upstreams",
        "/status",
        "/",
        "/metrics",
        "/healthz",
        "/livez",
    ] {
        let r = get_path(&state, path).await;
        assert!(r.status.is_success() || r.status == StatusCode::SERVICE_UNAVAILABLE);
        seen.push_str(&r.text());
    }
    for needle in ["secret", "apikey", "user:", "/x?"] {
        assert!(!seen.contains(needle), "{needle:?} leaked");
    }
    let ups = get_path(&state, "/api/upstreams").await.json();
    assert_eq!(ups["upstreams"][0]["url"], "http://127.0.0.1:1/x");
}

#[tokio::test]
async fn json_is_gzipped_when_asked() {
    let state = agreed_with_fixture(FLAGS);
    let plain = get_path(&state, "/api/upstreams").await;
    assert_eq!(plain.header(header::CONTENT_ENCODING), None);
    let gz = call(
        &state,
        req("GET", "/api/upstreams", &[("accept-encoding", "gzip")]),
    )
    .await;
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
        Some(leanpoint::metrics::TEXT_CONTENT_TYPE)
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
    let om = call(
        &state,
        req(
            "GET",
            "/metrics",
            &[(
                "accept",
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
            )],
        ),
    )
    .await;
    assert_eq!(
        om.header(header::CONTENT_TYPE),
        Some(leanpoint::metrics::OPENMETRICS_CONTENT_TYPE)
    );
    assert!(om.text().ends_with("# EOF\n"));
}

#[tokio::test]
async fn probes_follow_agreement() {
    let state = build(FLAGS);
    let h = get_path(&state, "/healthz").await;
    assert_eq!(h.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(h.text().starts_with("stale"), "{}", h.text());
    assert_eq!(
        get_path(&state, "/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Pollers are not running here, but were "ticked" at build: live.
    assert_eq!(get_path(&state, "/livez").await.status, StatusCode::OK);

    let state = agreed_with_fixture(FLAGS);
    let h = get_path(&state, "/healthz").await;
    assert_eq!((h.status, h.text().as_str()), (StatusCode::OK, "ok\n"));
    let r = get_path(&state, "/readyz").await;
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "ready\n"));
}

#[tokio::test]
async fn status_page_escapes_everything() {
    let file = upstreams_file(&[
        ("<b>evil</b>", "http://u:pw@127.0.0.1:1/?k=<script>"),
        ("good", "http://127.0.0.1:2"),
    ]);
    let path = file.to_str().expect("utf-8 path");
    let state = build(&["--upstreams-config", path]);
    let page = get_path(&state, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(html.contains("http-equiv=\"refresh\""));
    assert!(html.contains("&lt;b&gt;evil&lt;/b&gt;"), "{html}");
    assert!(!html.contains("<b>evil"));
    assert!(!html.contains("<script>") && !html.contains("pw@"));
    assert!(html.contains("http://127.0.0.1:2"));
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn static_dir_replaces_the_page_without_traversal() {
    let dir = temp_path("static");
    std::fs::create_dir_all(dir.join("assets")).expect("mkdir");
    std::fs::write(dir.join("index.html"), "<p>custom ui</p>").expect("write");
    std::fs::write(dir.join("assets/app.js"), "let x = 1;").expect("write");
    let state = build(&[
        "--lean-url",
        "http://127.0.0.1:1",
        "--static-dir",
        dir.to_str().expect("utf-8"),
    ]);
    let index = get_path(&state, "/").await;
    assert_eq!(index.status, StatusCode::OK);
    assert_eq!(index.text(), "<p>custom ui</p>");
    assert_eq!(
        get_path(&state, "/assets/app.js").await.text(),
        "let x = 1;"
    );
    assert_eq!(
        get_path(&state, "/missing.html").await.status,
        StatusCode::NOT_FOUND
    );
    for attempt in [
        "/../Cargo.toml",
        "/assets/../../etc/passwd",
        "/%2e%2e/etc/passwd",
    ] {
        let r = get_path(&state, attempt).await;
        assert!(
            r.status.is_client_error() && !r.text().contains("root:"),
            "{attempt}: {}",
            r.status
        );
    }
    // The API routes still win over the directory.
    assert!(get_path(&state, "/status").await.json().is_object());
    let _ = std::fs::remove_dir_all(dir);
}
