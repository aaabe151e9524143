//! /status, /api/upstreams and the status page, in process: every field of
//! the Zig leanpoint with its JSON type, the additions, no upstream secret
//! anywhere, HTML escaping and --static-dir.

use crate::support::fixtures::{FINALIZED_ROOT, JUSTIFIED_ROOT};
use crate::support::served::*;
use crate::support::*;

use axum::http::StatusCode;
use leanpoint::lean::api::{Checkpoint, Root};
use leanpoint::upstream::{ErrorKind, Observation, Source};
use serde_json::Value;

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
            tree: std::sync::Arc::from([]),
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
    assert_eq!(
        u["errors_by_kind"].as_object().expect("obj").len(),
        ErrorKind::ALL.len()
    );
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
    for needle in ["secret", "apikey", "user:", "/x"] {
        assert!(!seen.contains(needle), "{needle:?} leaked");
    }
    let ups = get_path(&state, "/api/upstreams").await.json();
    assert_eq!(
        ups["upstreams"][0]["url"], "http://127.0.0.1:1",
        "the path is not shown unless public"
    );
}

#[tokio::test]
async fn status_page_escapes_everything() {
    let tmp = TempDir::new();
    let file = tmp.upstreams(&[
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
}

#[tokio::test]
async fn static_dir_replaces_the_page_without_traversal() {
    let (_dir, state) = with_static_dir(&[
        ("index.html", "<p>custom ui</p>"),
        ("assets/app.js", "let x = 1;"),
    ]);
    let index = get_path(&state, "/").await;
    assert_eq!(index.status, StatusCode::OK);
    assert_eq!(index.text(), "<p>custom ui</p>");
    assert_eq!(
        get_path(&state, "/assets/app.js").await.text(),
        "let x = 1;"
    );
    assert_statuses(&state, &[("/missing.html", StatusCode::NOT_FOUND)]).await;
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
}
