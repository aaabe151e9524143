//! The status page's server side, in process: the server-rendered page
//! (what reads with JavaScript off), its script and CSP, `/api/history`
//! and the fields the page's header reads from /status and /api/upstreams.

use crate::support::fixtures::{FINALIZED_ROOT, JUSTIFIED_ROOT};
use crate::support::served::*;
use crate::support::*;

use std::time::Duration;

use axum::http::{header, StatusCode};
use leanpoint::lean::api::{Checkpoint, Root};
use leanpoint::upstream::{Endpoint, ErrorKind, Observation, Source, UpstreamError};

fn observation(finalized_slot: u64) -> Observation {
    Observation {
        source: Source::ForkChoice,
        head_slot: Some(finalized_slot + 3),
        justified: Some(Checkpoint {
            slot: finalized_slot + 1,
            root: Root::from_hex(JUSTIFIED_ROOT).expect("root"),
        }),
        finalized_slot,
        finalized_root: Some(Root::from_hex(FINALIZED_ROOT).expect("root")),
        tree: std::sync::Arc::from([]),
    }
}

#[tokio::test]
async fn history_records_checkpoints_and_polls_and_answers_only_what_is_new() {
    let state = agreed_with_fixture(FLAGS);
    state.record_poll(0, &Ok(observation(9)), Duration::from_micros(640));
    let h = get_path(&state, "/api/history").await;
    assert_eq!(h.status, StatusCode::OK);
    let h = h.json();
    let cps = h["checkpoints"].as_array().expect("checkpoints");
    assert_eq!(cps.len(), 1, "{h}");
    assert_eq!(cps[0]["slot"], 9);
    assert_eq!(cps[0]["root"], FINALIZED_ROOT);
    assert_eq!(cps[0]["supporters"], 1);
    assert!(cps[0]["at_ms"].as_u64().expect("at_ms") > 0);
    assert_eq!(h["agreed"][0]["finalized_slot"], 9);
    assert_eq!(h["agreed"][0]["justified_slot"], 10);
    let up = &h["upstreams"][0];
    assert_eq!(up["name"], "default");
    assert!(up.get("url").is_none(), "names only: {up}");
    let s = &up["samples"][0];
    assert_eq!(
        (s["ok"].clone(), s["latency_us"].clone()),
        (true.into(), 640.into())
    );
    assert_eq!(
        (s["head_slot"].clone(), s["finalized_slot"].clone()),
        (12.into(), 9.into())
    );
    assert_eq!(h["capacity"]["checkpoints"], 64);

    // Only what came after `seq`: one failed poll.
    let seq = h["seq"].as_u64().expect("seq");
    let err = UpstreamError {
        kind: ErrorKind::Timeout,
        endpoint: Endpoint::ForkChoice,
        message: "operation timed out".to_string(),
        status: None,
    };
    state.record_poll(0, &Err(err), Duration::from_millis(400));
    let next = get_path(&state, &format!("/api/history?after={seq}"))
        .await
        .json();
    assert!(
        next["checkpoints"].as_array().expect("list").is_empty(),
        "{next}"
    );
    let samples = next["upstreams"][0]["samples"].as_array().expect("samples");
    assert_eq!(samples.len(), 1, "{next}");
    assert_eq!(samples[0]["ok"], false);
    assert_eq!(samples[0]["latency_us"], 400_000);
    assert!(samples[0]["finalized_slot"].is_null());
    assert!(next["seq"].as_u64().expect("seq") > seq);

    let bad = get_path(&state, "/api/history?after=minus-one").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn status_and_upstreams_carry_what_the_header_shows() {
    let empty = build(FLAGS);
    let s = get_path(&empty, "/status").await.json();
    assert_eq!(s["serving"], false);
    assert_eq!(s["finalized_advanced_ms"], 0);

    let state = agreed_with_fixture(FLAGS);
    state.record_poll(0, &Ok(observation(9)), Duration::from_micros(640));
    let s = get_path(&state, "/status").await.json();
    assert_eq!(s["serving"], true);
    let now = s["now_ms"].as_u64().expect("now_ms");
    let advanced = s["finalized_advanced_ms"].as_u64().expect("advanced");
    assert!(advanced > 0 && advanced <= now, "{s}");
    let (open, max) = (s["open_fds"].as_u64(), s["max_fds"].as_u64());
    assert!(
        matches!((open, max), (Some(o), Some(m)) if o > 0 && o <= m),
        "{s}"
    );

    let u = get_path(&state, "/api/upstreams").await.json();
    assert_eq!(u["upstreams"][0]["last_latency_us"], 640);
    assert_eq!(
        u["upstreams"][0]["last_latency_ms"], 0,
        "the Zig field stays in ms"
    );
}

#[tokio::test]
async fn page_is_complete_without_javascript_and_allows_only_its_own_origin() {
    let tmp = TempDir::new();
    let file = tmp.upstreams(&[
        (
            "<img src=x onerror=alert(1)>",
            "http://u:pw@127.0.0.1:1/p?token=secret",
        ),
        ("good", "http://127.0.0.1:2"),
    ]);
    let state = build(&["--upstreams-config", file.to_str().expect("utf-8")]);
    agree(&state);
    serve_state(
        &state,
        bytes::Bytes::from(fixture("advanced", "states_finalized.ssz")),
    );
    state.record_poll(1, &Ok(observation(7)), Duration::from_micros(950));
    let page = get_path(&state, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    let csp = page
        .header(header::CONTENT_SECURITY_POLICY)
        .expect("CSP")
        .to_string();
    for rule in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
    ] {
        assert!(csp.contains(rule), "{csp}");
    }
    let html = page.text();
    // The header, the rows and the timeline, rendered on the server.
    for needle in [
        "SERVING",
        "id=\"served-slot\">9<",
        "966 B",
        "<span class=\"standing st-agreeing\" data-standing=\"agreeing\">agreeing</span>",
        "<td>2 behind</td>",
        "950 µs",
        "<td>9</td><td><code title=\"0x",
        "2 (of 2 required)",
        "<script src=\"/status.js\" defer></script>",
        "<noscript><meta http-equiv=\"refresh\"",
    ] {
        assert!(html.contains(needle), "{needle:?} missing from {html}");
    }
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    for leak in ["<img", "pw@", "secret", "token"] {
        assert!(!html.contains(leak), "{leak:?} in {html}");
    }

    let js = get_path(&state, "/status.js").await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js
        .header(header::CONTENT_TYPE)
        .is_some_and(|t| t.starts_with("text/javascript")));
    let js = js.text();
    assert!(js.contains("/api/history?after=") && !js.contains("innerHTML"));
}

#[tokio::test]
async fn static_dir_replaces_the_script_too() {
    let (_dir, state) = with_static_dir(&[("index.html", "<p>custom</p>")]);
    assert_eq!(get_path(&state, "/").await.text(), "<p>custom</p>");
    assert_statuses(
        &state,
        &[
            ("/status.js", StatusCode::NOT_FOUND),
            ("/api/history", StatusCode::OK),
        ],
    )
    .await;
}
