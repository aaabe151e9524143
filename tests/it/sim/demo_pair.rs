//! `leanpoint demo` serves a finalized pair a lean client accepts: the
//! block and State leanpoint serves verify, with leanpoint's own SSZ code,
//! against the finalized checkpoint it reports.

use std::time::Duration;

use crate::support::http::http;
use crate::support::sim::spawn;
use crate::support::wait_until;
use bytes::Bytes;
use leanpoint::lean::api::{paths, Root};
use leanpoint::served::verify::verify_pair;

/// The finalized checkpoint leanpoint reports in /status, once it has one.
fn reported(base: &str) -> Option<(u64, Root)> {
    let (status, _, body) = http("GET", &format!("{base}/status"), "");
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    let root = Root::from_hex(v["finalized_root"].as_str()?).ok()?;
    (status == 200).then_some((v["finalized_slot"].as_u64()?, root))
}

#[test]
fn the_demo_serves_a_pair_that_verifies() {
    let demo = spawn(&["--log-level", "warn", "demo", "--port", "0"]);
    let lines = demo.stdout_until(|l| l.starts_with("Ctrl-C stops"), Duration::from_secs(30));
    let page = lines
        .iter()
        .find_map(|l| l.trim_start().strip_prefix("status page"))
        .unwrap_or_else(|| panic!("no status page line in {lines:#?}"))
        .trim()
        .to_string();
    let base = page.trim_end_matches('/').to_string();

    // The served pair changes with finality: take one that stayed the same
    // while it was downloaded.
    let (agreed, block, state) = wait_until(
        Duration::from_secs(60),
        "a served pair under one finalized checkpoint",
        || {
            let before = reported(&base)?;
            let (bs, _, block) = http("GET", &format!("{base}{}", paths::BLOCK_FINALIZED), "");
            let (ss, _, state) = http("GET", &format!("{base}{}", paths::STATE_FINALIZED), "");
            let after = reported(&base)?;
            (bs == 200 && ss == 200 && before == after)
                .then(|| (before, Bytes::from(block), Bytes::from(state)))
        },
    );
    let pair = verify_pair(agreed.0, agreed.1, block.clone(), state.clone())
        .unwrap_or_else(|e| panic!("the demo's pair at slot {}: {e}", agreed.0));
    assert_eq!(pair.block, block, "served exactly as verified");
    assert_eq!(pair.state, state);
    assert!(agreed.0 > 0, "past genesis");
}
