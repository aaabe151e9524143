//! leanpoint in this process: an `AppState` with an agreed checkpoint and a
//! served State, its router driven with `oneshot` (no socket, the exact
//! response the server would write); and, for the binary, the State served
//! together with the /status it belongs to.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use bytes::Bytes;
use clap::Parser;
use leanpoint::agreement::{Agreement, Decision, Vote};
use leanpoint::cli::Cli;
use leanpoint::config::Config;
use leanpoint::lean::api::{self, paths, Checkpoint, Root};
use leanpoint::served::pair::ServedState;
use leanpoint::service::AppState;
use serde_json::Value;
use tower::ServiceExt;

use super::binary::Leanpoint;
use super::fixtures::{fixture, FINALIZED_ROOT, JUSTIFIED_ROOT};
use super::fs::TempDir;
use super::wait::ANSWER_WITHIN;

/// One upstream on a closed port; agreement stays fresh for the whole test.
pub const FLAGS: &[&str] = &["--lean-url", "http://127.0.0.1:1", "--stale-ms", "600000"];

pub fn config(extra: &[&str]) -> Config {
    let mut argv = vec!["leanpoint"];
    argv.extend_from_slice(extra);
    let cli = Cli::try_parse_from(argv).expect("test flags parse");
    Config::load(&cli.serve).expect("test config is valid")
}

pub fn build(extra: &[&str]) -> Arc<AppState> {
    leanpoint::service::build(config(extra)).expect("build AppState")
}

/// Applies a decision in which every upstream agrees on the advanced
/// fixture's checkpoints (finalized 9, justified 10).
pub fn agree(state: &AppState) {
    let finalized_root = Root::from_hex(FINALIZED_ROOT).expect("root");
    let justified = Checkpoint {
        slot: 10,
        root: Root::from_hex(JUSTIFIED_ROOT).expect("root"),
    };
    let n = state.upstreams.len();
    let vote = Vote {
        finalized_slot: 9,
        finalized_root: Some(finalized_root),
        justified: Some(justified),
        evidence: Default::default(),
    };
    let decision = Decision {
        agreed: Some(Agreement {
            finalized_slot: 9,
            finalized_root: Some(finalized_root),
            justified: Some(justified),
            supporters: (0..n).collect(),
        }),
        responding: n,
        required: n / 2 + 1,
        conflict: false,
        standings: vec![leanpoint::agreement::Standing::Agreeing; n],
        wanted: Vec::new(),
        impossible: Vec::new(),
        served_contradicted: false,
    };
    state.apply(&decision, &vec![Some(vote); n]);
}

/// Installs `bytes` as the served finalized State at slot 9.
pub fn serve_state(state: &AppState, bytes: Bytes) {
    state.install_state(ServedState {
        slot: 9,
        root: Some(Root::from_hex(FINALIZED_ROOT).expect("root")),
        bytes,
        etag: format!("\"{FINALIZED_ROOT}\""),
        block: None,
        state_root: None,
        genesis_time: 0,
        fetched_from: "test".to_string(),
    });
}

/// Agreement plus the fixture State: what a healthy leanpoint serves.
pub fn agreed_with_fixture(extra: &[&str]) -> Arc<AppState> {
    let state = build(extra);
    agree(&state);
    serve_state(
        &state,
        Bytes::from(fixture("advanced", "states_finalized.ssz")),
    );
    state
}

/// A response of the in-process router.
pub struct Got {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Got {
    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn call(state: &Arc<AppState>, req: Request<Body>) -> Got {
    let resp = leanpoint::http::router(state.clone())
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

pub fn req(method: &str, path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::empty()).expect("request")
}

pub async fn get_path(state: &Arc<AppState>, path: &str) -> Got {
    get_with(state, path, &[]).await
}

/// GET `path` with request `headers` (conditional, encoding, accept).
pub async fn get_with(state: &Arc<AppState>, path: &str, headers: &[(&str, &str)]) -> Got {
    call(state, req("GET", path, headers)).await
}

/// GETs each path and asserts its status, naming the path that differs.
pub async fn assert_statuses(state: &Arc<AppState>, expected: &[(&str, StatusCode)]) {
    for (path, code) in expected {
        assert_eq!(get_path(state, path).await.status, *code, "GET {path}");
    }
}

/// An `AppState` (one upstream on a closed port) whose `--static-dir`
/// holds `files`, `(path in the dir, contents)`; the `TempDir` holds the
/// directory and must live as long as the state is asked.
pub fn with_static_dir(files: &[(&str, &str)]) -> (TempDir, Arc<AppState>) {
    let tmp = TempDir::new();
    let dir = tmp.join("static");
    for (name, contents) in files {
        let path = dir.join(name);
        let parent = path.parent().expect("a file inside the static dir");
        std::fs::create_dir_all(parent).expect("mkdir");
        std::fs::write(&path, contents).expect("write");
    }
    let state = build(&[
        "--lean-url",
        "http://127.0.0.1:1",
        "--static-dir",
        dir.to_str().expect("utf-8"),
    ]);
    (tmp, state)
}

/// The State leanpoint serves together with the /status it belongs to.
pub struct Served {
    pub status: Value,
    pub slot: u64,
    pub etag: String,
    pub bytes: Vec<u8>,
}

/// Reads /status, the State, /status again, until neither moved in between
/// and the State is the one of the agreed slot (it is downloaded right after
/// an agreement moves, so for a moment the previous one is still served).
pub fn served_state(lp: &Leanpoint, within: Duration) -> Served {
    let deadline = Instant::now() + within;
    let status = || {
        let r = lp.get_within("/status", 2 * ANSWER_WITHIN);
        assert_eq!(r.status, 200, "/status: {}", r.text());
        r.json()
    };
    loop {
        let before = status();
        let r = lp.get_within(paths::STATE_FINALIZED, 2 * ANSWER_WITHIN);
        let after = status();
        let problem = if r.status == 200 {
            let header = api::parse_state_header(&r.body)
                .unwrap_or_else(|e| panic!("served State does not parse: {e}"));
            let agreed = after["finalized_slot"].as_u64().expect("finalized_slot");
            if before["finalized_slot"] == after["finalized_slot"] && header.slot == agreed {
                return Served {
                    slot: header.slot,
                    etag: r.header("etag").unwrap_or_default().to_string(),
                    bytes: r.body,
                    status: after,
                };
            }
            format!(
                "State slot {} while /status said {} then {}",
                header.slot, before["finalized_slot"], after["finalized_slot"]
            )
        } else {
            format!("states/finalized {}: {}", r.status, r.text())
        };
        assert!(
            Instant::now() < deadline,
            "no consistent State and /status within {within:?}: {problem}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
