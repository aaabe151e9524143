//! Micro-benchmarks of leanpoint's hot pure functions: fork-choice parsing,
//! State validation, pair verification (SSZ decoding and hash tree roots,
//! up to a 64 MiB State), the agreement decision and /metrics encoding.
//!
//! divan: `cargo bench --bench micro [-- FILTER...]` measures (FILTER is a
//! regex over the benchmark paths, e.g. `verify`); divan prints fastest,
//! slowest, median and mean per case. Under `cargo test --all-targets` (no
//! `--bench` argument) every case runs once, as a smoke test, with the
//! 64 MiB State cut down, so the test suite stays cheap; the arguments
//! `cargo test` passes on (`--test-threads=2`) are not divan's and are not
//! parsed then.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use clap::Parser;
use divan::Bencher;
use leanpoint::agreement::{self, AgreementRule, Vote};
use leanpoint::cli::Cli;
use leanpoint::config::Config;
use leanpoint::lean::api::{self, Checkpoint, Root};
use leanpoint::lean::ssz;
use leanpoint::served::verify;
use leanpoint::service::AppState;
use leanpoint::telemetry::{self, Metrics};
use leanpoint::upstream::{Endpoint, ErrorKind, Observation, Report, Source};
use prometheus_client::registry::Registry;

/// Set under `cargo test`: large inputs are built small (each case runs once).
static SMOKE: AtomicBool = AtomicBool::new(false);

fn main() {
    if std::env::args().any(|a| a == "--bench") {
        divan::Divan::from_args().main();
    } else {
        SMOKE.store(true, Ordering::Relaxed);
        divan::Divan::default().test_benches();
    }
}

fn fixture(path: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lean-api")
        .join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

fn root_of(n: u64) -> Root {
    let mut r = [0u8; 32];
    r[..8].copy_from_slice(&n.to_le_bytes());
    r[31] = 0xaa;
    Root(r)
}

/// A fork-choice body shaped like the reference node's, with `nodes` nodes
/// (a long unfinalized chain), the head last.
fn synthetic_fork_choice(nodes: u64) -> Vec<u8> {
    let list: Vec<serde_json::Value> = (0..nodes)
        .map(|s| {
            serde_json::json!({
                "root": root_of(s + 1).to_string(), "slot": s,
                "parent_root": root_of(s).to_string(), "proposer_index": s % 64,
                "weight": s % 7,
            })
        })
        .collect();
    let cp = |s: u64| serde_json::json!({"slot": s, "root": root_of(s + 1).to_string()});
    let body = serde_json::json!({
        "nodes": list, "head": root_of(nodes).to_string(),
        "justified": cp(1), "finalized": cp(0),
        "safe_target": root_of(1).to_string(), "validator_count": 64,
    });
    serde_json::to_vec(&body).expect("serialising a JSON value")
}

/// A finalized pair that verifies: the block at `slot` commits to the
/// State's root and the State holds the block's header.
fn synthetic_pair(slot: u64, validators: u64) -> (Root, bytes::Bytes, bytes::Bytes) {
    synthetic_pair_with(slot, validators, 0)
}

/// [`synthetic_pair`] with `pending` justifications collecting votes (a
/// root and a vote bit per validator each): how a State reaches tens of MiB.
fn synthetic_pair_with(
    slot: u64,
    validators: u64,
    pending: u64,
) -> (Root, bytes::Bytes, bytes::Bytes) {
    use ssz::{Block, BlockBody, Config, SignedBlock, SszBitlist, SszList, State, Validator};
    let cp = |s: u64| ssz::Checkpoint {
        root: root_of(s).0,
        slot: s,
    };
    let votes = pending * validators;
    let validators: Vec<Validator> = (0..validators)
        .map(|index| Validator {
            attestation_public_key: [0x11; 52],
            proposal_public_key: [0x22; 52],
            index,
        })
        .collect();
    let mut block = Block {
        slot,
        proposer_index: slot % validators.len() as u64,
        parent_root: root_of(slot - 1).0,
        state_root: [0; 32],
        body: BlockBody::default(),
    };
    let state = State {
        config: Config { genesis_time: 0 },
        slot,
        latest_block_header: block.header([0; 32]),
        latest_justified: cp(slot - 2),
        latest_finalized: cp(slot - 3),
        historical_block_hashes: SszList::try_from(
            (0..slot).map(|s| root_of(s).0).collect::<Vec<_>>(),
        )
        .expect("within the history limit"),
        justified_slots: SszBitlist::with_length(2).expect("2 bits"),
        validators: SszList::try_from(validators).expect("within the registry limit"),
        justifications_roots: SszList::try_from(
            (0..pending).map(|i| root_of(i).0).collect::<Vec<_>>(),
        )
        .expect("within the history limit"),
        justifications_validators: votes_bitlist(votes),
    };
    block.state_root = ssz::htr(&state).0;
    let signed = SignedBlock {
        block,
        proof: Default::default(),
    };
    (
        ssz::htr(&signed.block),
        ssz::encode(&signed).into(),
        ssz::encode(&state).into(),
    )
}

/// A bitlist of `bits` bits, a quarter of them set, built from its SSZ
/// bytes (setting half a billion bits one by one takes long).
fn votes_bitlist(bits: u64) -> ssz::SszBitlist<{ ssz::JUSTIFICATION_VOTES_LIMIT }> {
    let mut b = vec![0x11u8; (bits / 8 + 1) as usize];
    let last = (bits / 8) as usize;
    b[last] = (b[last] & ((1u8 << (bits % 8)) - 1)) | (1 << (bits % 8));
    libssz::SszDecode::from_ssz_bytes(&b).expect("a bitlist within the limit")
}

/// A structurally valid State at `slot` with `validators` validators (the
/// layout of the fixtures' README): what a long-running devnet serves.
fn synthetic_state(slot: u64, validators: u64) -> Vec<u8> {
    let bitlist = |bits: u64| -> Vec<u8> {
        let mut b = vec![0u8; (bits / 8 + 1) as usize];
        b[(bits / 8) as usize] |= 1 << (bits % 8);
        b
    };
    let hist = 228u32;
    let jslots = hist + 32 * slot as u32;
    let jslots_bytes = bitlist(slot);
    let vals = jslots + jslots_bytes.len() as u32;
    let jroots = vals + 112 * validators as u32;
    let jvals = jroots;
    let mut s = Vec::with_capacity(jvals as usize + 1);
    s.extend_from_slice(&0u64.to_le_bytes());
    s.extend_from_slice(&slot.to_le_bytes());
    s.extend_from_slice(&slot.to_le_bytes());
    s.resize(128, 0);
    for cp in [slot.saturating_sub(2), slot.saturating_sub(3)] {
        s.extend_from_slice(&root_of(cp).0);
        s.extend_from_slice(&cp.to_le_bytes());
    }
    for off in [hist, jslots, vals, jroots, jvals] {
        s.extend_from_slice(&off.to_le_bytes());
    }
    for h in 0..slot {
        s.extend_from_slice(&root_of(h).0);
    }
    s.extend_from_slice(&jslots_bytes);
    for v in 0..validators {
        s.extend_from_slice(&[0x11; 104]);
        s.extend_from_slice(&v.to_le_bytes());
    }
    s.extend_from_slice(&bitlist(0));
    s
}

fn votes(n: usize, fallback_every: usize, lagging_every: usize) -> Vec<Option<Vote>> {
    (0..n)
        .map(|i| {
            let slot = if i % lagging_every == lagging_every - 1 {
                95
            } else {
                100
            };
            Some(Vote {
                finalized_slot: slot,
                finalized_root: (i % fallback_every != 0).then(|| root_of(slot)),
                justified: Some(Checkpoint {
                    slot: slot + 1,
                    root: root_of(slot + 1),
                }),
                // A healthy node's fork-choice tree: its finalized block and a
                // few descendants, one chain.
                evidence: std::sync::Arc::new(leanpoint::agreement::ancestry::Evidence {
                    tree: (slot..=slot + 4).map(|s| (s, root_of(s))).collect(),
                    ..Default::default()
                }),
            })
        })
        .collect()
}

/// A registry for `n` upstreams with every series carrying a value, as after
/// a few minutes of polling.
fn busy_registry(n: usize) -> (Registry, Metrics) {
    let mut reg = Registry::default();
    let names: Vec<String> = (0..n).map(|i| format!("lean-node-{i:04}")).collect();
    let m = Metrics::new(&mut reg, &names, 0.8);
    for (i, u) in m.upstreams.iter().enumerate() {
        u.head_slot.set(1000 + i as i64);
        u.finalized_slot.set(990);
        u.justified_slot.set(995);
        u.up.set(1);
        u.agrees.set(1);
        u.last_success.set(1.7e9 + i as f64);
        u.set_source(Source::ForkChoice);
        for k in 0..50 {
            u.polls.inc();
            let failure = (k == 0).then_some(ErrorKind::Timeout);
            u.finished(Endpoint::ForkChoice, 0.0005 * (k % 9) as f64, failure);
        }
    }
    m.observe_http("/metrics", 200, 0.002);
    (reg, m)
}

/// An `AppState` for `n` upstreams, each with one fresh successful poll of
/// the same checkpoint: what the decider reads on a healthy devnet.
fn polled_state(n: usize) -> std::sync::Arc<AppState> {
    let dir = std::env::temp_dir().join(format!("leanpoint-micro-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("upstreams.json");
    let list: Vec<serde_json::Value> = (0..n)
        .map(|i| serde_json::json!({"name": format!("node-{i}"), "url": format!("http://127.0.0.1:9/node/{i}")}))
        .collect();
    std::fs::write(&file, serde_json::json!({ "upstreams": list }).to_string())
        .expect("write upstreams.json");
    let cli = Cli::try_parse_from(["leanpoint", "--upstreams-config", &file.to_string_lossy()])
        .expect("flags");
    let config = Config::load(&cli.serve).expect("config");
    let _ = std::fs::remove_dir_all(&dir);
    let state = leanpoint::service::build(config).expect("state");
    let obs = Observation {
        source: Source::ForkChoice,
        head_slot: Some(103),
        justified: Some(Checkpoint {
            slot: 101,
            root: root_of(101),
        }),
        finalized_slot: 100,
        finalized_root: Some(root_of(100)),
        tree: (100..=103).map(|s| (s, root_of(s))).collect(),
    };
    for i in 0..n {
        state.record_poll(i, &Ok(obs.clone()), Duration::from_millis(1));
    }
    state
}

// --- fork choice and State validation

static FORK_CHOICE: LazyLock<Vec<u8>> = LazyLock::new(|| fixture("advanced/fork_choice.json"));
static FORK_CHOICE_2000: LazyLock<Vec<u8>> = LazyLock::new(|| synthetic_fork_choice(2000));

/// The fixture (1.2 KB).
#[divan::bench]
fn parse_fork_choice_fixture() -> api::ForkChoiceView {
    api::parse_fork_choice(black_box(&FORK_CHOICE)).expect("fixture parses")
}

/// 2000 unfinalized nodes (397 KB).
#[divan::bench]
fn parse_fork_choice_2000_nodes() -> api::ForkChoiceView {
    api::parse_fork_choice(black_box(&FORK_CHOICE_2000)).expect("synthetic parses")
}

static STATE_FIXTURE: LazyLock<Vec<u8>> =
    LazyLock::new(|| fixture("advanced/states_finalized.ssz"));
static STATE_3_5_MIB: LazyLock<Vec<u8>> = LazyLock::new(|| synthetic_state(100_000, 4_096));

/// The fixture (966 B).
#[divan::bench]
fn validate_state_fixture() {
    api::validate_state(black_box(&STATE_FIXTURE)).expect("fixture validates");
}

/// Slot 100000, 4096 validators (3.5 MiB).
#[divan::bench]
fn validate_state_3_5_mib() {
    api::validate_state(black_box(&STATE_3_5_MIB)).expect("synthetic validates");
}

// --- pair verification: the State's hash tree root, once per new checkpoint

type Pair = (Root, bytes::Bytes, bytes::Bytes);

fn smoke() -> bool {
    SMOKE.load(Ordering::Relaxed)
}

/// Slot 200000 with 4096 validators: a 6.5 MiB State, the registry limit and
/// a long-running devnet's history.
static PAIR_6_5_MIB: LazyLock<Pair> = LazyLock::new(|| {
    let slot = if smoke() { 2_000 } else { 200_000 };
    synthetic_pair(slot, 4_096)
});

/// 123000 pending justifications of 4096 votes each on a short history: a
/// 64 MiB State (issue 13). 1000 of them under `cargo test`.
static PAIR_64_MIB: LazyLock<Pair> = LazyLock::new(|| {
    let pending = if smoke() { 1_000 } else { 123_000 };
    synthetic_pair_with(1_000, 4_096, pending)
});

fn verify(b: Bencher, pair: &Pair, slot: u64) {
    let (root, block, state) = pair;
    b.bench(|| {
        verify::verify_pair(slot, *root, block.clone(), state.clone()).expect("pair verifies")
    });
}

#[divan::bench(sample_count = 20, sample_size = 1)]
fn verify_pair_6_5_mib(b: Bencher) {
    let slot = if smoke() { 2_000 } else { 200_000 };
    verify(b, &PAIR_6_5_MIB, slot);
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn verify_pair_64_mib(b: Bencher) {
    verify(b, &PAIR_64_MIB, 1_000);
}

#[divan::bench(sample_count = 20, sample_size = 1)]
fn decode_state_6_5_mib(b: Bencher) {
    let state = &PAIR_6_5_MIB.2;
    b.bench(|| ssz::decode_state(black_box(state)).expect("decodes"));
}

#[divan::bench(sample_count = 20, sample_size = 1)]
fn htr_state_6_5_mib(b: Bencher) {
    let decoded = ssz::decode_state(&PAIR_6_5_MIB.2).expect("decodes");
    b.bench(|| ssz::htr(black_box(&decoded)));
}

// --- the agreement decision

static AGREE_1000: LazyLock<Vec<Option<Vote>>> =
    LazyLock::new(|| votes(1000, usize::MAX, usize::MAX));
static MIXED_1000: LazyLock<Vec<Option<Vote>>> = LazyLock::new(|| votes(1000, 10, 20));

/// 1000 upstreams, all agree.
#[divan::bench]
fn decide_1000_agree() -> agreement::Decision {
    agreement::decide(black_box(&AGREE_1000), AgreementRule::ConfiguredMajority)
}

/// 1000 upstreams, 10% slot-only, 5% lagging.
#[divan::bench]
fn decide_1000_mixed() -> agreement::Decision {
    agreement::decide(black_box(&MIXED_1000), AgreementRule::ConfiguredMajority)
}

/// 1000 upstreams: fresh_votes + decide + apply, as the decider does.
#[divan::bench]
fn decider_round_1000(b: Bencher) {
    let polled = polled_state(1000);
    b.bench(|| {
        let votes = polled.fresh_votes();
        let d = polled.decide(&votes);
        polled.apply(&d, &votes);
        d.agreed.is_some()
    });
}

// --- the process collector's TCP socket states: both read every TCP socket
// of the network namespace, so the cost depends on the machine.

#[divan::bench(sample_count = 20)]
fn tcp_states_proc_net_tcp() -> usize {
    procfs::net::tcp().map(|v| v.len()).unwrap_or(0)
        + procfs::net::tcp6().map(|v| v.len()).unwrap_or(0)
}

#[divan::bench(sample_count = 20)]
fn tcp_states_sock_diag() -> bool {
    // An error (netlink not allowed here) is what the collector falls back
    // from; it must not fail the smoke run.
    let mine = std::collections::HashSet::new();
    leanpoint::telemetry::sockdiag::tcp_states(&mine).is_ok()
}

// --- /metrics encoding

static REGISTRY_16: LazyLock<(Registry, Metrics)> = LazyLock::new(|| busy_registry(16));
static REGISTRY_1000: LazyLock<(Registry, Metrics)> = LazyLock::new(|| busy_registry(1000));

#[divan::bench(args = [false, true])]
fn encode_16_upstreams(openmetrics: bool) -> String {
    let (reg, m) = &*REGISTRY_16;
    telemetry::encode(black_box(reg), m.series(), openmetrics).expect("encode")
}

#[divan::bench(args = [false, true], sample_count = 20)]
fn encode_1000_upstreams(openmetrics: bool) -> String {
    let (reg, m) = &*REGISTRY_1000;
    telemetry::encode(black_box(reg), m.series(), openmetrics).expect("encode")
}

/// What a gzip scrape adds to an encoding: the 16-upstream text body
/// compressed as /metrics compresses it (once per shared body).
#[divan::bench]
fn gzip_16_upstreams(b: Bencher) {
    let (reg, m) = &*REGISTRY_16;
    let body = telemetry::encode(reg, m.series(), false).expect("encode");
    b.bench(|| telemetry::scrape::gzip_fast(black_box(body.as_bytes())).expect("gzip"));
}
