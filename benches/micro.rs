//! Micro-benchmarks of leanpoint's hot pure functions: fork-choice parsing,
//! State validation, pair verification (SSZ decoding and hash tree roots),
//! the agreement decision and /metrics encoding.
//!
//! A hand-written timing loop (warm-up, calibrated iterations per sample,
//! median of several samples, `black_box`) instead of criterion: criterion's
//! dependency tree would be compiled in every CI build, because
//! `cargo test --all-targets` builds bench targets too.
//!
//! `cargo bench --bench micro [-- NAME...]` measures (all cases, or those
//! whose name contains one of the NAMEs; `BENCH_QUICK=1` for shorter samples;
//! `BENCH_MICRO_JSON=path` also writes the results as JSON). Under
//! `cargo test` (no `--bench` argument) every case runs once as a smoke test,
//! so the test suite stays fast while still checking the cases work.

use std::hint::black_box;
use std::time::{Duration, Instant};

use clap::Parser;
use leanpoint::agreement::{self, AgreementRule, Vote};
use leanpoint::cli::Cli;
use leanpoint::config::Config;
use leanpoint::lean::api::{self, Checkpoint, Root};
use leanpoint::lean::ssz;
use leanpoint::served::verify;
use leanpoint::service::AppState;
use leanpoint::telemetry::{self, Metrics};
use leanpoint::upstream::{Endpoint, ErrorKind, Observation, Source};
use prometheus_client::registry::Registry;

/// One measured case.
struct Measured {
    name: String,
    input: String,
    median_ns: f64,
    min_ns: f64,
    max_ns: f64,
    iters_per_sample: u64,
    samples: usize,
}

/// Runs cases either as measurements or, under `cargo test`, once each.
struct Runner {
    measure: bool,
    /// Substrings of case names to run (all when empty).
    filters: Vec<String>,
    sample: Duration,
    samples: usize,
    results: Vec<Measured>,
}

impl Runner {
    fn case<T>(&mut self, name: &str, input: &str, mut f: impl FnMut() -> T) {
        if !self.filters.is_empty() && !self.filters.iter().any(|p| name.contains(p.as_str())) {
            return;
        }
        if !self.measure {
            black_box(f());
            println!("smoke ok: {name} ({input})");
            return;
        }
        // Warm-up doubles as calibration: how many calls fill a sample.
        let warm = Instant::now();
        let mut calls = 0u64;
        while warm.elapsed() < self.sample / 2 || calls < 3 {
            black_box(f());
            calls += 1;
        }
        let per_call = warm.elapsed().as_secs_f64() / calls as f64;
        let iters = ((self.sample.as_secs_f64() / per_call) as u64).max(1);
        let mut per_iter: Vec<f64> = (0..self.samples)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..iters {
                    black_box(f());
                }
                t.elapsed().as_nanos() as f64 / iters as f64
            })
            .collect();
        per_iter.sort_by(f64::total_cmp);
        let m = Measured {
            name: name.to_string(),
            input: input.to_string(),
            median_ns: per_iter[per_iter.len() / 2],
            min_ns: per_iter[0],
            max_ns: per_iter[per_iter.len() - 1],
            iters_per_sample: iters,
            samples: self.samples,
        };
        println!(
            "{:<34} {:<44} median {:>12} (min {}, max {}; {} x {} iters)",
            m.name,
            m.input,
            human(m.median_ns),
            human(m.min_ns),
            human(m.max_ns),
            m.samples,
            m.iters_per_sample
        );
        self.results.push(m);
    }

    fn write_json(&self, path: &str) {
        let rows: Vec<serde_json::Value> = self
            .results
            .iter()
            .map(|m| {
                serde_json::json!({
                    "name": m.name, "input": m.input, "median_ns": m.median_ns,
                    "min_ns": m.min_ns, "max_ns": m.max_ns,
                    "iters_per_sample": m.iters_per_sample, "samples": m.samples,
                })
            })
            .collect();
        let text = serde_json::to_string_pretty(&rows).unwrap_or_default();
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("micro: cannot write {path}: {e}");
        }
    }
}

fn human(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
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
    use ssz::{Block, BlockBody, Config, SignedBlock, SszBitlist, SszList, State, Validator};
    let cp = |s: u64| ssz::Checkpoint {
        root: root_of(s).0,
        slot: s,
    };
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
        justifications_roots: SszList::new(),
        justifications_validators: SszBitlist::new(),
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
fn busy_registry(n: usize) -> Registry {
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
            u.observe_request(Endpoint::ForkChoice, 0.0005 * (k % 9) as f64);
        }
        u.observe_error(ErrorKind::Timeout);
    }
    m.observe_http("/metrics", 200, 0.002);
    reg
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let measure = args.iter().any(|a| a == "--bench");
    // `cargo bench --bench micro -- encode` runs only the matching cases.
    let filters = args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .cloned()
        .collect();
    let quick = std::env::var_os("BENCH_QUICK").is_some_and(|v| v != "0");
    let mut r = Runner {
        measure,
        filters,
        sample: Duration::from_millis(if quick { 40 } else { 200 }),
        samples: if quick { 5 } else { 11 },
        results: Vec::new(),
    };

    let fc = fixture("advanced/fork_choice.json");
    r.case("parse_fork_choice", "fixture advanced (1.2 KB)", || {
        api::parse_fork_choice(black_box(&fc)).expect("fixture parses")
    });
    let fc_big = synthetic_fork_choice(2000);
    let label = format!("synthetic 2000 nodes ({} KB)", fc_big.len() / 1024);
    r.case("parse_fork_choice", &label, || {
        api::parse_fork_choice(black_box(&fc_big)).expect("synthetic parses")
    });

    let st = fixture("advanced/states_finalized.ssz");
    r.case("validate_state", "fixture advanced (966 B)", || {
        api::validate_state(black_box(&st)).expect("fixture validates")
    });
    let st_big = synthetic_state(100_000, 4_096);
    let label = format!(
        "synthetic slot 100000, 4096 validators ({:.1} MiB)",
        st_big.len() as f64 / 1048576.0
    );
    r.case("validate_state", &label, || {
        api::validate_state(black_box(&st_big)).expect("synthetic validates")
    });

    // The registry limit and a long-running devnet: 200000 slots of history.
    let (root, block, state) = synthetic_pair(200_000, 4_096);
    let label = format!(
        "slot 200000, 4096 validators ({:.1} MiB state)",
        state.len() as f64 / 1048576.0
    );
    r.case("verify_pair", &label, || {
        verify::verify_pair(200_000, root, block.clone(), state.clone()).expect("pair verifies")
    });
    r.case("ssz::decode_state", &label, || {
        ssz::decode_state(black_box(&state)).expect("decodes")
    });
    let decoded = ssz::decode_state(&state).expect("decodes");
    r.case("ssz::htr(state)", &label, || ssz::htr(black_box(&decoded)));

    let agree = votes(1000, usize::MAX, usize::MAX);
    r.case("agreement::decide", "1000 upstreams, all agree", || {
        agreement::decide(black_box(&agree), AgreementRule::ConfiguredMajority)
    });
    let mixed = votes(1000, 10, 20);
    r.case(
        "agreement::decide",
        "1000 upstreams, 10% slot-only, 5% lagging",
        || agreement::decide(black_box(&mixed), AgreementRule::ConfiguredMajority),
    );

    let polled = polled_state(1000);
    r.case(
        "decider round",
        "1000 upstreams: fresh_votes + decide + apply",
        || {
            let votes = polled.fresh_votes();
            let d = polled.decide(&votes);
            polled.apply(&d, &votes);
            d.agreed.is_some()
        },
    );

    // The process collector's TCP socket states. Both read every TCP socket
    // of the network namespace (this process's and everyone else's), so the
    // cost depends on the machine: the label says how many there were.
    let all = procfs::net::tcp().map(|v| v.len()).unwrap_or(0)
        + procfs::net::tcp6().map(|v| v.len()).unwrap_or(0);
    let mine = std::collections::HashSet::new();
    let label = format!("{all} TCP sockets in the namespace");
    r.case("tcp states via /proc/net/tcp{,6}", &label, || {
        procfs::net::tcp().map(|v| v.len()).unwrap_or(0)
            + procfs::net::tcp6().map(|v| v.len()).unwrap_or(0)
    });
    r.case("tcp states via sock_diag", &label, || {
        // An error (netlink not allowed here) is what the collector falls
        // back from; it must not fail the smoke run.
        leanpoint::telemetry::sockdiag::tcp_states(&mine).ok()
    });

    let reg = busy_registry(1000);
    let bytes = telemetry::encode(&reg, false).expect("encode").len();
    let label = format!("1000 upstreams, classic text ({} KB)", bytes / 1024);
    r.case("telemetry::encode", &label, || {
        telemetry::encode(black_box(&reg), false).expect("encode")
    });
    let bytes = telemetry::encode(&reg, true).expect("encode").len();
    let label = format!("1000 upstreams, OpenMetrics ({} KB)", bytes / 1024);
    r.case("telemetry::encode", &label, || {
        telemetry::encode(black_box(&reg), true).expect("encode")
    });

    if let Some(path) = std::env::var_os("BENCH_MICRO_JSON") {
        if measure {
            r.write_json(&path.to_string_lossy());
        }
    }
}
