//! The fault matrix: the real `leanpoint` binary polling four simulated
//! nodes, three healthy and one with a fault, one test per fault.
//!
//! With 4 configured upstreams the 3 healthy ones are exactly a majority, so
//! agreement must hold whatever the fourth does. Every test checks, every
//! ~200 ms over a few seconds and each on a new connection:
//! - the fault is named where an operator looks: /api/upstreams
//!   (`last_error_kind`, `standing`, `agrees`, `source`) and /metrics
//!   (`leanpoint_upstream_errors_total{kind}`, timeouts by phase, `up`,
//!   `agrees_with_consensus`);
//! - the agreed checkpoint and the served State stay those of the healthy
//!   nodes (their own fork choice and State bytes, fetched directly), move
//!   only forward, and /lean/v0/states/finalized serves the agreed slot;
//! - /healthz answers 200 within 1 s; open fds stay within a few of their
//!   warmed-up count; resident memory stays small (an endless body included).

use crate::support::served::served_state;
use crate::support::sim::{node_roots, node_state, Sim};
use crate::support::sys::{fd_count, vm_rss_kib};
use crate::support::*;

use std::time::{Duration, Instant};

use serde_json::Value;

const FAULTY: &str = "node-3";
const TIMEOUT_MS: u64 = 300;
/// A poll cut at its deadline may be recorded this much later on a busy
/// machine (task wake-up), never more.
const LATENCY_SLACK_MS: u64 = 200;
const WINDOW: Duration = Duration::from_secs(4);
const SAMPLE_EVERY: Duration = Duration::from_millis(200);
const ANSWER_WITHIN: Duration = Duration::from_secs(1);
/// Outbound: one socket per upstream plus a State download; inbound: the
/// test's one connection at a time. Anything past this is a leak.
const FD_SLACK: usize = 8;
const RSS_LIMIT_KIB: u64 = 64 * 1024;

/// What the faulty node must look like from outside.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Every poll fails with this kind; timeouts also count in this phase.
    Fails {
        kind: &'static str,
        phase: Option<&'static str>,
    },
    /// Answers, K slots behind.
    Lags,
    /// Answers, on another branch: same slots, other roots.
    Forks,
    /// Serves only the finalized State: polled the Zig way, agrees by slot.
    Fallback,
    /// Answers for a slot, then 503 for a slot, and so on.
    Flaps,
}

macro_rules! fault {
    ($name:ident, $behaviour:literal, $expect:expr) => {
        #[test]
        fn $name() {
            run($behaviour, $expect);
        }
    };
}

const fn fails(kind: &'static str) -> Expect {
    Expect::Fails { kind, phase: None }
}

const fn times_out(kind: &'static str, phase: &'static str) -> Expect {
    Expect::Fails {
        kind,
        phase: Some(phase),
    }
}

fault!(lagging, "lagging:2", Expect::Lags);
fault!(fork, "fork", Expect::Forks);
fault!(http_status_503, "http-status:503", fails("http_status"));
fault!(http_status_500, "http-status:500", fails("http_status"));
// HTML under application/json: the content type passes, the body does not.
fault!(garbage, "garbage", fails("decode"));
// An endless body against --max-body-bytes 16384: cut at the cap long
// before the 300 ms deadline.
fault!(oversized, "oversized", fails("body_too_large"));
fault!(slow_drip, "slow-drip", times_out("timeout", "total"));
fault!(accept_hang, "accept-hang", times_out("timeout", "total"));
fault!(half_close, "half-close", fails("closed"));
fault!(reset, "reset", fails("reset"));
fault!(
    blackhole_connect,
    "blackhole-connect",
    times_out("connect_timeout", "connect")
);
fault!(flap, "flap:1", Expect::Flaps);
fault!(legacy, "legacy", Expect::Fallback);

/// What one test saw over its window.
#[derive(Default, Debug)]
struct Seen {
    samples: usize,
    first_slot: u64,
    last_slot: u64,
    root_checks: usize,
    state_matches: usize,
    /// Samples in which the faulty node stood as agreeing.
    agreeing: usize,
    up: usize,
    down: usize,
    /// `last_success_ms` when the node was last seen down.
    success_when_down: Option<u64>,
    recovered: bool,
    polls_at_start: u64,
    fds_warm: usize,
    fds_max: usize,
    rss_max_kib: u64,
}

fn run(behaviour: &str, expect: Expect) {
    let sim_args = format!("--nodes 3:healthy --node {behaviour} --slot-ms 800");
    let sim_args: Vec<&str> = sim_args.split(' ').collect();
    let net = Sim::with_upstreams(&sim_args);
    let flags = format!(
        "--poll-ms 100 --timeout-ms {TIMEOUT_MS} --connect-timeout-ms 150 \
         --stale-ms 3000 --max-body-bytes 16384 --slot-ms 800"
    );
    let mut args: Vec<&str> = flags.split_whitespace().collect();
    args.extend(["--upstreams-config", net.upstreams_path()]);
    let lp = Leanpoint::builder().args(&args).spawn();
    let fds_warm = warm_up(&lp, expect);
    let mut seen = Seen {
        polls_at_start: polls(&lp),
        fds_warm,
        ..Seen::default()
    };
    let started = Instant::now();
    while started.elapsed() < WINDOW {
        sample(&lp, &net, expect, &mut seen);
        std::thread::sleep(SAMPLE_EVERY);
    }
    eprintln!("{behaviour}: {seen:?}");
    conclude(&lp, expect, &seen);
}

fn polls(lp: &Leanpoint) -> u64 {
    find_upstream(&lp.json_ok("/api/upstreams", 2 * ANSWER_WITHIN), FAULTY)["polls"]
        .as_u64()
        .expect("polls")
}

/// Waits for agreement, a served State and the fault to show; returns the
/// open fd count then, the baseline for the rest of the test.
fn warm_up(lp: &Leanpoint, expect: Expect) -> usize {
    let settled = |u: &Value| match expect {
        Expect::Fails { kind, .. } => u["last_error_kind"] == kind,
        Expect::Lags => u["standing"] == "behind",
        Expect::Forks => u["standing"] == "conflicting",
        Expect::Fallback => u["source"] == "fallback" && u["agrees"] == true,
        Expect::Flaps => true,
    };
    wait_until(
        Duration::from_secs(15),
        &format!("agreement and {expect:?}"),
        || {
            let status = lp.json_ok("/status", 2 * ANSWER_WITHIN);
            let u = find_upstream(&lp.json_ok("/api/upstreams", 2 * ANSWER_WITHIN), FAULTY);
            if status["agreement"] == true
                && !status["served_state_slot"].is_null()
                && u["polls"].as_u64() >= Some(3)
                && settled(&u)
            {
                Ok(())
            } else {
                Err(format!("\n{status}\n{u}"))
            }
        },
    );
    fd_count(lp.pid())
}

fn sample(lp: &Leanpoint, net: &Sim, expect: Expect, seen: &mut Seen) {
    let health = lp.get_within("/healthz", ANSWER_WITHIN);
    assert_eq!(health.status, 200, "/healthz: {}", health.text());
    let fds = fd_count(lp.pid());
    assert!(
        fds <= seen.fds_warm + FD_SLACK,
        "{fds} fds open, {} after warm-up",
        seen.fds_warm
    );
    let rss = vm_rss_kib(lp.pid());
    assert!(rss < RSS_LIMIT_KIB, "VmRSS {rss} KiB");
    seen.fds_max = seen.fds_max.max(fds);
    seen.rss_max_kib = seen.rss_max_kib.max(rss);
    check_agreed(lp, net, seen);
    let all = lp.json_ok("/api/upstreams", 2 * ANSWER_WITHIN);
    let text = lp.metrics_within(2 * ANSWER_WITHIN);
    check_faulty(
        expect,
        &find_upstream(&all, FAULTY),
        &all["consensus"],
        &text,
        seen,
    );
    seen.samples += 1;
}

/// The served checkpoint and State are the healthy nodes', and only move
/// forward.
fn check_agreed(lp: &Leanpoint, net: &Sim, seen: &mut Seen) {
    let served = served_state(lp, Duration::from_secs(3));
    assert_eq!(served.status["agreement"], true, "{}", served.status);
    let root = served.status["finalized_root"]
        .as_str()
        .unwrap_or_else(|| panic!("no finalized_root: {}", served.status))
        .to_string();
    assert_eq!(served.etag, format!("\"{root}\""));
    assert!(
        served.slot >= seen.last_slot,
        "finalized slot went back from {} to {}",
        seen.last_slot,
        served.slot
    );
    if seen.samples == 0 {
        seen.first_slot = served.slot;
    }
    seen.last_slot = served.slot;
    let healthy = net.node(0);
    if let Some((_, want)) = node_roots(healthy)
        .into_iter()
        .find(|(s, _)| *s == served.slot)
    {
        assert_eq!(root, want, "finalized root at slot {}", served.slot);
        seen.root_checks += 1;
    }
    let (slot, bytes) = node_state(healthy);
    if slot == served.slot {
        assert!(
            bytes == served.bytes,
            "served State at slot {slot} differs from the healthy node's"
        );
        seen.state_matches += 1;
    }
}

fn series(text: &str, family: &str, extra: &str) -> f64 {
    let name = format!("{family}{{upstream=\"{FAULTY}\"{extra}}}");
    metric_exact(text, &name).unwrap_or_else(|| panic!("no series {name}"))
}

/// The sum of every series of `family` for the faulty upstream, whatever its other labels.
fn series_sum(text: &str, family: &str) -> f64 {
    crate::support::metrics::samples(text)
        .filter(|(n, ls, _)| {
            n == family
                && ls
                    .first()
                    .is_some_and(|(k, v)| k == "upstream" && v == FAULTY)
        })
        .map(|(_, _, v)| v)
        .sum()
}

fn check_faulty(expect: Expect, u: &Value, consensus: &Value, text: &str, seen: &mut Seen) {
    let in_flight = series(text, "leanpoint_upstream_in_flight_requests", "");
    assert!(in_flight <= 1.0, "{in_flight} requests in flight");
    match expect {
        Expect::Fails { kind, phase } => check_failing(kind, phase, u, text),
        Expect::Lags => {
            check_answering(u, "fork_choice");
            assert_eq!(u["standing"], "behind", "{u}");
            assert_eq!(u["agrees"], false, "{u}");
            assert!(u["last_finalized_slot"].as_u64() < consensus["finalized_slot"].as_u64());
            assert_eq!(
                series(text, "leanpoint_upstream_agrees_with_consensus", ""),
                0.0
            );
        }
        Expect::Forks => check_fork(u, consensus, text, seen),
        Expect::Fallback => {
            check_answering(u, "fallback");
            assert!(
                u["head_slot"].is_null() && u["finalized_root"].is_null(),
                "{u}"
            );
            assert_ne!(u["standing"], "failing", "{u}");
            seen.agreeing += usize::from(u["agrees"] == true);
            let source = ",source=\"fallback\"";
            assert_eq!(series(text, "leanpoint_upstream_source", source), 1.0);
        }
        Expect::Flaps => check_flap(u, seen),
    }
}

/// Answers, polled through `source`, with no error of any kind.
fn check_answering(u: &Value, source: &str) {
    assert_eq!(u["healthy"], true, "{u}");
    assert_eq!(u["source"], source, "{u}");
    assert_eq!(u["error_count"], 0, "{u}");
}

fn check_failing(kind: &str, phase: Option<&str>, u: &Value, text: &str) {
    assert_eq!(u["last_error_kind"], kind, "{u}");
    assert_eq!(u["standing"], "failing", "{u}");
    assert_eq!(
        (&u["healthy"], &u["agrees"], &u["source"]),
        (
            &Value::Bool(false),
            &Value::Bool(false),
            &Value::from("unknown")
        ),
        "{u}"
    );
    // Every failure has the one expected name, never a mix.
    assert_eq!(u["errors_by_kind"][kind], u["error_count"], "{u}");
    let latency = u["last_latency_ms"].as_u64().expect("last_latency_ms");
    assert!(
        latency <= TIMEOUT_MS + LATENCY_SLACK_MS,
        "a poll took {latency} ms with a {TIMEOUT_MS} ms deadline"
    );
    let kind_label = format!(",kind=\"{kind}\"");
    assert!(series(text, "leanpoint_upstream_errors_total", &kind_label) > 0.0);
    assert_eq!(series(text, "leanpoint_upstream_up", ""), 0.0);
    assert_eq!(
        series(text, "leanpoint_upstream_agrees_with_consensus", ""),
        0.0
    );
    for p in ["connect", "total"] {
        let n = series(
            text,
            "leanpoint_upstream_timeouts_total",
            &format!(",phase=\"{p}\""),
        );
        assert_eq!(n > 0.0, phase == Some(p), "timeouts in phase {p}: {n}");
    }
}

/// A node on another branch is never counted at the served checkpoint's
/// slot or behind it. While finality advances, the served checkpoint is held
/// by every fresh upstream *past* it (`agreement::hold`), and a forked node
/// one slot ahead is then counted too: no ancestry is known to tell it from
/// a healthy node ahead. That is the one case it may stand as agreeing.
fn check_fork(u: &Value, consensus: &Value, text: &str, seen: &mut Seen) {
    check_answering(u, "fork_choice");
    let slot = u["last_finalized_slot"].as_u64().expect("fork slot");
    let agreed = consensus["finalized_slot"].as_u64().expect("agreed slot");
    if u["agrees"] == true {
        assert!(
            slot > agreed,
            "fork agrees at slot {slot}, agreed {agreed}: {u}"
        );
        seen.agreeing += 1;
    } else if slot > agreed && u["standing"] == "unknown" {
        // Past the agreed slot, its State's history not read yet: not
        // counted, and settled (conflicting) by the next poll's read.
    } else {
        assert_eq!(u["standing"], "conflicting", "{u}");
    }
    if slot == agreed {
        assert_ne!(u["finalized_root"], consensus["finalized_root"], "{u}");
    }
    if series(text, "leanpoint_upstream_agrees_with_consensus", "") != 0.0 {
        let fork_slot = series(text, "leanpoint_upstream_finalized_slot", "");
        let agreed = metric(text, "leanpoint_finalized_slot", &[]).expect("finalized slot");
        assert!(
            fork_slot > agreed,
            "fork agrees in /metrics at {fork_slot}, agreed {agreed}"
        );
    }
}

fn check_flap(u: &Value, seen: &mut Seen) {
    assert_eq!(u["errors_by_kind"]["http_status"], u["error_count"], "{u}");
    let last_success = u["last_success_ms"].as_u64();
    if u["healthy"] == true {
        seen.up += 1;
        if let (Some(then), Some(now)) = (seen.success_when_down, last_success) {
            seen.recovered |= now > then;
        }
    } else {
        assert_eq!(u["last_error_kind"], "http_status", "{u}");
        seen.down += 1;
        seen.success_when_down = last_success;
    }
}

fn conclude(lp: &Leanpoint, expect: Expect, seen: &Seen) {
    assert!(seen.samples >= 8, "only {} samples", seen.samples);
    assert!(seen.root_checks >= 1, "never compared the root: {seen:?}");
    assert!(
        seen.state_matches >= 1,
        "never compared the State: {seen:?}"
    );
    assert!(
        seen.last_slot >= seen.first_slot + 2,
        "agreement did not follow finality: {seen:?}"
    );
    let text = lp.metrics_within(2 * ANSWER_WITHIN);
    match expect {
        Expect::Fails { .. } => {
            let polled = polls(lp) - seen.polls_at_start;
            assert!(polled >= 3, "only {polled} polls of the faulty node");
        }
        // Counted at the served checkpoint only in the short moments when it
        // is held while finality advances (see check_fork).
        Expect::Forks => assert!(seen.agreeing * 4 <= seen.samples, "{seen:?}"),
        // Slot-only: disagrees only in the moment it lags an advance.
        Expect::Fallback => assert!(seen.agreeing * 4 >= seen.samples * 3, "{seen:?}"),
        Expect::Flaps => {
            assert!(seen.up > 0 && seen.down > 0 && seen.recovered, "{seen:?}");
            let errors = series(
                &text,
                "leanpoint_upstream_errors_total",
                ",kind=\"http_status\"",
            );
            // Over every endpoint: a 5xx on fork_choice falls back to the
            // justified checkpoint and the State header, whose errors count too.
            let requests = series_sum(&text, "leanpoint_upstream_requests_total");
            assert!(
                errors > 0.0 && requests > errors,
                "{requests} requests, {errors} errors"
            );
        }
        Expect::Lags => {}
    }
}
