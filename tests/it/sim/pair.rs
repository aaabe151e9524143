//! The simulator's chain is a real chain: the finalized (block, state) pair
//! downloaded from a `leanpoint sim` node verifies with leanpoint's own SSZ
//! code against that node's fork choice, and the pair faults are refused
//! with their named reasons.

use std::time::Duration;

use crate::support::http::http;
use crate::support::sim::{Sim, SimNode};
use crate::support::wait_until;
use bytes::Bytes;
use leanpoint::lean::api::{self, paths, Checkpoint, Root};
use leanpoint::lean::ssz::{self, HistoricalHash};
use leanpoint::served::verify::{verify_pair, VerifyError};

fn get(node: &SimNode, path: &str) -> (u16, Bytes) {
    let (status, _, body) = http("GET", &format!("{}{path}", node.url), "");
    (status, Bytes::from(body))
}

fn head_slot(sim: &Sim) -> u64 {
    let (_, _, body) = http("GET", &format!("{}/admin/chain", sim.admin), "");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("chain JSON");
    v["head_slot"].as_u64().expect("head_slot")
}

/// What one node served within one slot.
struct Served {
    fork_choice: api::ForkChoiceView,
    fork_choice_json: serde_json::Value,
    block: (u16, Bytes),
    state: (u16, Bytes),
}

fn fetch_all(sim: &Sim) -> Vec<Served> {
    wait_until(
        Duration::from_secs(30),
        "every node's pair within one slot",
        || {
            let before = head_slot(sim);
            let got: Vec<Served> = sim
                .nodes
                .iter()
                .map(|n| {
                    let (status, fc) = get(n, paths::FORK_CHOICE);
                    assert_eq!(status, 200, "{}", n.behaviour);
                    Served {
                        fork_choice: api::parse_fork_choice(&fc).expect("fork choice"),
                        fork_choice_json: serde_json::from_slice(&fc).expect("JSON"),
                        block: get(n, paths::BLOCK_FINALIZED),
                        state: get(n, paths::STATE_FINALIZED),
                    }
                })
                .collect();
            (head_slot(sim) == before).then_some(got)
        },
    )
}

/// A sim of `nodes` whose chain starts at `start_slot` and does not move
/// while the test reads it (a slot a minute), and what each node serves.
fn still_chain(nodes: &str, validators: &str, start_slot: &str) -> (Sim, Vec<Served>) {
    let sim = Sim::start(&[
        "--nodes",
        nodes,
        "--validators",
        validators,
        "--start-slot",
        start_slot,
        "--slot-ms",
        "60000",
    ]);
    let served = fetch_all(&sim);
    (sim, served)
}

fn verify(
    agreed: Checkpoint,
    s: &Served,
) -> Result<leanpoint::served::verify::VerifiedPair, VerifyError> {
    assert_eq!(s.block.0, 200);
    assert_eq!(s.state.0, 200);
    verify_pair(
        agreed.slot,
        agreed.root,
        s.block.1.clone(),
        s.state.1.clone(),
    )
}

#[test]
fn downloaded_pairs_verify_and_pair_faults_are_refused_by_name() {
    let (sim, served) = still_chain(
        "2:healthy,fork:30,lagging:2,block-mismatch,state-wrong-slot,trailing-bytes,no-block-route",
        "64",
        "40",
    );
    let healthy = &served[0];
    let agreed = healthy.fork_choice.finalized;
    assert_eq!(agreed.slot, head_slot(&sim) - 3);

    let pair = verify(agreed, healthy).expect("the healthy pair verifies");
    assert_eq!(pair.block, healthy.block.1, "served as downloaded");
    assert_eq!(pair.state, healthy.state.1);
    assert_eq!(
        verify(agreed, &served[1]).expect("node 1").state_root,
        pair.state_root
    );

    // The fork choice's nodes chain through real roots: the finalized
    // block's parent is the last root in the State's history.
    let nodes = healthy.fork_choice_json["nodes"].as_array().expect("nodes");
    let finalized_node = nodes
        .iter()
        .find(|n| n["slot"].as_u64() == Some(agreed.slot))
        .expect("finalized node");
    let parent =
        Root::from_hex(finalized_node["parent_root"].as_str().expect("hex")).expect("root");
    assert_eq!(
        ssz::state_historical_block_hash(&healthy.state.1, agreed.slot - 1),
        Ok(HistoricalHash::Root(parent))
    );
    for w in nodes.windows(2) {
        assert_eq!(w[1]["parent_root"], w[0]["root"], "{w:?}");
    }

    // A fork and a lagging node serve pairs valid on their own chains,
    // never for the agreed checkpoint.
    for s in &served[2..=3] {
        verify(s.fork_choice.finalized, s).expect("valid on its own chain");
    }
    let kind = |i: usize| verify(agreed, &served[i]).unwrap_err().kind();
    assert_eq!(kind(2), "block_root_mismatch", "fork");
    assert_eq!(kind(3), "block_root_mismatch", "lagging");
    let mixed = verify_pair(
        served[2].fork_choice.finalized.slot,
        served[2].fork_choice.finalized.root,
        served[2].block.1.clone(),
        healthy.state.1.clone(),
    );
    assert_eq!(
        mixed.unwrap_err().kind(),
        "state_root_mismatch",
        "fork block, main state"
    );

    assert_eq!(kind(4), "block_root_mismatch", "block-mismatch");
    assert_eq!(kind(5), "state_slot_mismatch", "state-wrong-slot");
    assert_eq!(kind(6), "state_decode", "trailing-bytes");
    let stripped = verify_pair(
        agreed.slot,
        agreed.root,
        served[6].block.1.clone(),
        healthy.state.1.clone(),
    )
    .expect("trailing bytes on the block are proof bytes");
    assert_eq!(stripped.block, pair.block, "never served");
    assert_eq!(served[7].block.0, 404, "no-block-route");
    assert_eq!(served[7].state.1, healthy.state.1);
}

#[test]
fn a_full_registry_on_a_long_chain_verifies() {
    let (sim, served) = still_chain("1", "4096", "5000");
    let s = &served[0];
    let pair = verify(s.fork_choice.finalized, s).expect("verifies");
    let slot = pair.slot as usize;
    assert_eq!(pair.state.len(), 228 + 32 * slot + 1 + 112 * 4096 + 1);
    assert_eq!(slot, head_slot(&sim) as usize - 3);
}
