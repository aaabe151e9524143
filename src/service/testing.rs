//! What the service's unit tests share: an `AppState` over given upstreams,
//! observations and decisions.

use std::sync::Arc;

use crate::agreement::{Agreement, Decision, Finalized, Standing};
use crate::cli::Cli;
use crate::config::Config;
use crate::lean::api::{Checkpoint, Root};
use crate::service::AppState;
use crate::upstream::{Observation, Source};

/// An `AppState` polling `upstreams` (name, base URL), with `flags`.
pub fn state(upstreams: &[(&str, &str)], flags: &[&str]) -> Arc<AppState> {
    let mut argv = vec!["leanpoint"];
    argv.extend_from_slice(flags);
    let args = Cli::try_parse_with_sources(argv)
        .expect("flags parse")
        .serve;
    let upstreams = upstreams
        .iter()
        .map(|(n, u)| (n.to_string(), u.to_string()))
        .collect();
    let config = Config::with_upstreams(&args, "test", upstreams).expect("valid config");
    super::build(config).expect("build AppState")
}

/// `count` upstreams on closed ports: nothing in these tests contacts them.
pub fn closed(count: usize) -> Arc<AppState> {
    let urls: Vec<(String, String)> = (0..count)
        .map(|i| (format!("u{i}"), format!("http://127.0.0.1:{}", i + 1)))
        .collect();
    let refs: Vec<(&str, &str)> = urls.iter().map(|(n, u)| (n.as_str(), u.as_str())).collect();
    state(&refs, &[])
}

pub fn root(b: u8) -> Root {
    Root([b; 32])
}

pub fn fin(slot: u64, b: u8) -> Finalized {
    Finalized {
        slot,
        root: Some(root(b)),
    }
}

/// A fork-choice observation finalized at (`slot`, `root(b)`).
pub fn observation(slot: u64, b: u8) -> Observation {
    Observation {
        source: Source::ForkChoice,
        head_slot: Some(slot + 2),
        justified: Some(Checkpoint {
            slot: slot + 1,
            root: root(b.wrapping_add(100)),
        }),
        finalized_slot: slot,
        finalized_root: Some(root(b)),
        tree: Arc::from([]),
    }
}

/// Every one of `n` upstreams agrees on `f`; `contradicted` as the
/// decision found the served checkpoint.
pub fn agreed(n: usize, f: Finalized, contradicted: bool) -> Decision {
    Decision {
        agreed: Some(Agreement {
            finalized_slot: f.slot,
            finalized_root: f.root,
            justified: Some(Checkpoint {
                slot: f.slot + 1,
                root: root(7),
            }),
            supporters: (0..n).collect(),
        }),
        responding: n,
        required: n / 2 + 1,
        conflict: false,
        standings: vec![Standing::Agreeing; n],
        wanted: Vec::new(),
        impossible: Vec::new(),
        served_contradicted: contradicted,
    }
}

/// Polls `f` every 10 ms until it holds, or panics after `limit`.
pub async fn until(limit: std::time::Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
