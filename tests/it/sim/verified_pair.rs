//! The verified (block, state) pair and agreement that knows ancestry, on
//! the real binary with fake upstreams serving the captured fixture bytes
//! (and one real simulator): what is served, from whom, and what is refused
//! with which named reason.

use std::time::Duration;

use crate::support::fixtures::{assert_fixture_body, BLOCK, FORK_CHOICE, JSON, SSZ, STATE};
use crate::support::metrics::assert_at_least;
use crate::support::{
    fixture, fixture_finalized, fixtures, metric, start, FixtureRoutes, Leanpoint, Mode, Reply,
    Routes, Timing,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// Waits until every upstream was polled `rounds` more times, asserting on
/// every look that nothing is agreed or served.
fn assert_nothing_served(lp: &Leanpoint, rounds: u64) -> Value {
    lp.hold_for_polls(rounds, || {
        let status = lp.json("/status");
        assert_eq!(status["agreement"], false, "{status}");
        assert_eq!(lp.get(STATE).status, 503, "a State was served");
        assert_eq!(lp.get(BLOCK).status, 503, "a block was served");
    })
}

/// Waits for agreement on `slot` and a served pair; returns /status.
fn wait_pair(lp: &Leanpoint, slot: u64) -> Value {
    lp.wait_json("/status", "a served pair", WAIT, |s| {
        s["agreement"] == true && s["finalized_slot"] == slot && s["served_state_slot"] == slot
    })
}

#[test]
fn the_block_route_serves_the_verified_block_like_the_state() {
    let (_fakes, lp) = start(
        &fixtures(&[("n1", "advanced"), ("n2", "advanced"), ("n3", "advanced")]),
        &Timing::FAST.args(),
    );
    let (slot, root) = fixture_finalized("advanced");
    let status = wait_pair(&lp, slot);
    assert_eq!(status["served_block_root"], root, "{status}");
    assert_eq!(status["served_pair_verified"], true, "{status}");
    assert_eq!(status["served_block_bytes"], 237, "{status}");
    assert!(
        status["served_state_root"]
            .as_str()
            .is_some_and(|r| r.len() == 66),
        "{status}"
    );
    let block = lp
        .try_get(BLOCK, &[("accept-encoding", "gzip")])
        .expect("GET block");
    assert_fixture_body(&block, "advanced", "blocks_finalized.ssz");
    assert_eq!(
        block.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(
        block.header("content-encoding"),
        None,
        "the block is never compressed"
    );
    assert_eq!(block.header("content-length"), Some("237"));
    let etag = block.header("etag").expect("ETag on the block");
    assert_eq!(etag, format!("\"{root}\""));
    let again = lp
        .try_get(BLOCK, &[("if-none-match", etag)])
        .expect("conditional GET");
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let head = crate::support::request(lp.addr, "HEAD", BLOCK, &[], b"", Duration::from_secs(5))
        .expect("HEAD block");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("237"));
    let m = lp.metrics();
    assert_eq!(metric(&m, "leanpoint_served_block_bytes", &[]), Some(237.0));
    assert_eq!(metric(&m, "leanpoint_served_pair_verified", &[]), Some(1.0));
    let state_root = status["served_state_root"].as_str().unwrap_or_default();
    assert_eq!(
        metric(
            &m,
            "leanpoint_served_pair",
            &[("block_root", &root), ("state_root", state_root)]
        ),
        Some(1.0),
        "{m}"
    );
    let page = lp.get("/").text();
    assert!(
        page.contains(&root) && page.contains(state_root),
        "the page shows the pair"
    );
}

#[test]
fn advanced_and_genesis_serve_nothing() {
    let (_fakes, lp) = start(
        &fixtures(&[("advanced", "advanced"), ("genesis", "genesis")]),
        &Timing::FAST.args(),
    );
    let all = assert_nothing_served(&lp, 5);
    for name in ["advanced", "genesis"] {
        let u = crate::support::find_upstream(&all, name);
        assert_eq!(u["agrees"], false, "{u}");
        assert_eq!(u["healthy"], true, "{u}");
    }
}

#[test]
fn behind_and_fork_agree_on_their_common_block() {
    let (fakes, lp) = start(
        &fixtures(&[("behind", "behind"), ("fork", "fork")]),
        &Timing::FAST.args(),
    );
    let (slot, root) = fixture_finalized("behind");
    let status = wait_pair(&lp, slot);
    assert_eq!(status["finalized_root"], root, "{status}");
    assert_eq!(status["served_from"], "behind", "{status}");
    assert_fixture_body(&lp.get(STATE), "behind", "states_finalized.ssz");
    assert_fixture_body(&lp.get(BLOCK), "behind", "blocks_finalized.ssz");
    let all = lp.wait_json("/api/upstreams", "standings", WAIT, |a| {
        crate::support::find_upstream(a, "fork")["standing"] == "ahead"
    });
    assert_eq!(
        crate::support::find_upstream(&all, "behind")["standing"],
        "agreeing"
    );
    assert_eq!(crate::support::find_upstream(&all, "fork")["agrees"], true);
    // The fork's evidence is entry 5 of its own State's history, read once
    // (its finalized checkpoint never changes here), not once per poll.
    assert_nothing_new_read(&lp, 5);
    assert!(fakes[1].requests(STATE) >= 1);
    assert_eq!(
        fakes[1].requests(BLOCK),
        0,
        "the fork is past slot 5: never a pair source"
    );
}

/// Over `rounds` more polls of every upstream, no further ancestry read.
fn assert_nothing_new_read(lp: &Leanpoint, rounds: u64) {
    let reads = |m: &str| metric(m, "leanpoint_ancestry_reads_total", &[]).unwrap_or(0.0);
    let before = reads(&lp.metrics());
    assert_eq!(before, 1.0, "one history read");
    let polls = |a: &Value| a["upstreams"][0]["polls"].as_u64().unwrap_or(0);
    let target = polls(&lp.json("/api/upstreams")) + rounds;
    lp.wait_json("/api/upstreams", "more polls", WAIT, |a| polls(a) >= target);
    assert_eq!(
        reads(&lp.metrics()),
        before,
        "read again without a finalized change"
    );
}

#[test]
fn a_branch_past_a_forked_node_does_not_count_for_it() {
    // lagging:3 is on the main branch, 3 slots behind; the fork node is on
    // another branch and finalized past it. Under count:2 the old rule made
    // them "2 of 2"; the fork's own State history says otherwise.
    let sim = crate::support::Sim::start(&["--nodes", "1:lagging:3,1:fork", "--slot-ms", "1000"]);
    let lp = Leanpoint::builder()
        .upstream("lagging", &sim.nodes[0].url)
        .upstream("fork", &sim.nodes[1].url)
        .args(&Timing::FAST.with(&["--agreement", "count:2", "--slot-ms", "1000"]))
        .spawn();
    let all = assert_nothing_served(&lp, 20);
    for name in ["lagging", "fork"] {
        let u = crate::support::find_upstream(&all, name);
        assert_eq!(u["healthy"], true, "{u}");
        assert_eq!(u["agrees"], false, "{u}");
    }
    let m = lp.metrics();
    let reads = metric(&m, "leanpoint_ancestry_reads_total", &[]).unwrap_or(0.0);
    assert!(reads >= 1.0, "the fork's history was never read: {m}");
}

/// A fork_choice whose finalized slot is 1,000,000,000 (root 0x77…).
fn hostile_fork_choice() -> Vec<u8> {
    let r = format!("0x{}", "77".repeat(32));
    format!(
        r#"{{"nodes":[{{"root":"{r}","slot":1000000000,"parent_root":"{r}","proposer_index":0,"weight":0}}],"head":"{r}","justified":{{"slot":1000000000,"root":"{r}"}},"finalized":{{"slot":1000000000,"root":"{r}"}},"safe_target":"{r}","validator_count":4}}"#
    )
    .into_bytes()
}

/// The advanced State with its slots rewritten to 1,000,000,000.
fn forged_state() -> Vec<u8> {
    let mut s = fixture("advanced", "states_finalized.ssz");
    s[8..16].copy_from_slice(&1_000_000_000u64.to_le_bytes());
    s[16..24].copy_from_slice(&1_000_000_000u64.to_le_bytes());
    s
}

fn hostile() -> Mode {
    Mode::Routes(
        Routes::fixture("advanced")
            .with(FORK_CHOICE, Reply::ok(JSON, hostile_fork_choice()))
            .with(STATE, Reply::ok(SSZ, forged_state())),
    )
}

#[test]
fn a_hostile_huge_slot_is_never_agreed_nor_a_source_under_any_rule() {
    for rule in ["configured-majority", "responding-majority", "count:1"] {
        let args = Timing::FAST.with(&["--agreement", rule]);
        let (fakes, lp) = start(
            &[
                ("hostile", hostile()),
                ("adv1", Mode::Fixture("advanced")),
                ("adv2", Mode::Fixture("advanced")),
            ],
            &args,
        );
        let (slot, root) = fixture_finalized("advanced");
        let status = wait_pair(&lp, slot);
        assert_eq!(status["finalized_root"], root, "{rule}: {status}");
        assert_ne!(status["served_from"], "hostile", "{rule}: {status}");
        assert_fixture_body(&lp.get(STATE), "advanced", "states_finalized.ssz");
        let u = lp.upstream("hostile");
        assert_eq!(u["standing"], "conflicting", "{rule}: {u}");
        assert_eq!(u["agrees"], false, "{rule}: {u}");
        let reason = u["standing_reason"].as_str().unwrap_or_default();
        assert!(reason.starts_with("impossible_slot"), "{rule}: {u}");
        let m = lp.metrics();
        let named = metric(
            &m,
            "leanpoint_upstream_verify_failures_total",
            &[("upstream", "hostile"), ("reason", "impossible_slot")],
        );
        assert_at_least(named, 1.0, rule);
        assert_eq!(
            metric(
                &m,
                "leanpoint_upstream_standing",
                &[("upstream", "hostile"), ("standing", "conflicting")]
            ),
            Some(1.0),
            "{rule}"
        );
        assert_eq!(
            fakes[0].requests(BLOCK),
            0,
            "{rule}: the hostile upstream was a pair source"
        );
    }
}

#[test]
fn a_hostile_slot_answered_first_does_not_lock_leanpoint_in() {
    // The issue's case: responding-majority, the hostile upstream answers
    // while the others are still starting (503). Nothing is served then, and
    // once they answer their honest slot 9 is agreed and served.
    let args = Timing::FAST.with(&["--agreement", "responding-majority"]);
    let (fakes, lp) = start(
        &[
            ("hostile", hostile()),
            ("n1", Mode::Fixture("nostore")),
            ("n2", Mode::Fixture("nostore")),
        ],
        &args,
    );
    assert_nothing_served(&lp, 5);
    fakes[1].set_mode(Mode::Fixture("advanced"));
    fakes[2].set_mode(Mode::Fixture("advanced"));
    // A poll that straddles the switch may see a 503 fork_choice and then
    // the State: one slot-only vote, briefly. The verified pair follows.
    let (slot, root) = fixture_finalized("advanced");
    let status = lp.wait_json("/status", "the verified advanced pair", WAIT, |s| {
        s["finalized_slot"] == slot
            && s["served_block_root"] == root.as_str()
            && s["served_pair_verified"] == true
    });
    assert_eq!(status["finalized_root"], root, "{status}");
    assert_fixture_body(&lp.get(STATE), "advanced", "states_finalized.ssz");
    assert_eq!(fakes[0].requests(BLOCK), 0);
}

#[test]
fn a_checkpoint_contradicted_by_a_majority_is_replaced() {
    // responding-majority: the fork answers alone first and its pair (valid
    // in itself) is served; then both others answer the advanced chain at the
    // same slot. They are a majority of all configured upstreams and prove
    // the served root is not on their chain: the recovery rule replaces it.
    let args = Timing::FAST.with(&["--agreement", "responding-majority"]);
    let (fakes, lp) = start(
        &fixtures(&[("fork", "fork"), ("n1", "nostore"), ("n2", "nostore")]),
        &args,
    );
    let (slot, fork_root) = fixture_finalized("fork");
    let status = wait_pair(&lp, slot);
    assert_eq!(status["finalized_root"], fork_root, "{status}");
    fakes[1].set_mode(Mode::Fixture("advanced"));
    fakes[2].set_mode(Mode::Fixture("advanced"));
    let (_, root) = fixture_finalized("advanced");
    lp.wait_json("/status", "the advanced pair", WAIT, |s| {
        s["finalized_root"] == root.as_str() && s["served_block_root"] == root.as_str()
    });
    assert_fixture_body(&lp.get(STATE), "advanced", "states_finalized.ssz");
    assert_fixture_body(&lp.get(BLOCK), "advanced", "blocks_finalized.ssz");
    let m = lp.metrics();
    assert_eq!(
        metric(&m, "leanpoint_served_checkpoint_replaced_total", &[]),
        Some(1.0),
        "{m}"
    );
    assert_eq!(lp.upstream("fork")["standing"], "conflicting");
}

/// Advanced fork_choice with these finalized routes.
fn serving(block: Vec<u8>, state: Vec<u8>) -> Mode {
    Mode::Routes(
        Routes::fixture("advanced")
            .with(BLOCK, Reply::ok(SSZ, block))
            .with(STATE, Reply::ok(SSZ, state)),
    )
}

#[test]
fn refused_pairs_are_named_and_the_next_source_is_used() {
    let adv_block = || fixture("advanced", "blocks_finalized.ssz");
    let adv_state = || fixture("advanced", "states_finalized.ssz");
    let mut trailing = adv_state();
    trailing.extend_from_slice(&[0, 0, 0, 0]);
    // In source order: each is refused with its reason, then "good" serves.
    let faulty: Vec<(&str, Mode, &str)> = vec![
        (
            "mismatch",
            serving(fixture("fork", "blocks_finalized.ssz"), adv_state()),
            "block_root_mismatch",
        ),
        (
            "other-slot",
            serving(adv_block(), fixture("behind", "states_finalized.ssz")),
            "state_slot_mismatch",
        ),
        ("trailing", serving(adv_block(), trailing), "state_decode"),
    ];
    let mut upstreams: Vec<(&str, Mode)> = faulty.iter().map(|(n, m, _)| (*n, m.clone())).collect();
    upstreams.push(("good", Mode::Fixture("advanced")));
    let (_fakes, lp) = start(&upstreams, &Timing::FAST.args());
    let status = wait_pair(&lp, 9);
    assert_eq!(status["served_from"], "good", "{status}");
    assert_eq!(&lp.get(STATE).body[..], &adv_state()[..]);
    assert_eq!(&lp.get(BLOCK).body[..], &adv_block()[..]);
    let m = lp.metrics();
    for (name, _, reason) in &faulty {
        let u = lp.upstream(name);
        assert_eq!(u["pair_error_kind"], *reason, "{u}");
        assert!(
            u["pair_error"].as_str().is_some_and(|e| !e.is_empty()),
            "{u}"
        );
        let n = metric(
            &m,
            "leanpoint_upstream_verify_failures_total",
            &[("upstream", name), ("reason", reason)],
        );
        assert_eq!(n, Some(1.0), "{name} {reason}: {m}");
    }
    assert_eq!(lp.upstream("good")["pair_error_kind"], Value::Null);
}

#[test]
fn without_a_block_route_nothing_is_served() {
    // Upstreams that report a root but 404 the block route: the State cannot
    // be proven, so it is refused (named), agreement notwithstanding.
    let no_block = || Mode::Routes(Routes::fixture("advanced").with(BLOCK, Reply::not_found()));
    let (fakes, lp) = start(
        &[("a", no_block()), ("b", no_block())],
        &Timing::FAST.args(),
    );
    lp.wait_json("/status", "agreement", WAIT, |s| s["agreement"] == true);
    lp.wait_json("/api/upstreams", "named refusals", WAIT, |a| {
        a["upstreams"].as_array().is_some_and(|us| {
            us.iter()
                .all(|u| u["pair_error_kind"] == "block_unavailable")
        })
    });
    let state = lp.get(STATE);
    assert_eq!(state.status, 503, "an unproven State was served");
    assert_eq!(lp.get(BLOCK).status, 503);
    let m = lp.metrics();
    let n = metric(
        &m,
        "leanpoint_upstream_verify_failures_total",
        &[("upstream", "a"), ("reason", "block_unavailable")],
    );
    assert_at_least(n, 1.0, &m);
    // One of them gains the route: its block proves either State.
    fakes[1].set_mode(Mode::Fixture("advanced"));
    wait_pair(&lp, 9);
    assert_fixture_body(&lp.get(STATE), "advanced", "states_finalized.ssz");
}
