//! The incident that killed the Zig leanpoint, replayed on the real binary:
//! upstreams that accept TCP and then never answer (one of them half-closes)
//! under a 64-fd limit, for 200 poll intervals. Every request must end at
//! its deadline with its socket closed, at most one request per upstream may
//! be in flight, fds stay flat, and the public listener keeps answering new
//! connections within a second.

mod common;

use std::time::Duration;

use common::{client, get_with, metric, start_with, FakeUpstream, Leanpoint, Mode};
use serde_json::Value;
use tokio::time::Instant;

const POLL_MS: u64 = 50;
const INTERVALS: u64 = 200;
const HUNG: [&str; 3] = ["hang1", "hang2", "halfclose"];
const GOOD: [&str; 2] = ["good1", "good2"];
/// How long 200 intervals may take on a busy machine before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(90);
/// Every answer of the public listener must come within this.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);

/// What the run saw, checked at the end.
#[derive(Default)]
struct Seen {
    max_fd: usize,
    samples: usize,
    in_flight_zero: [bool; 5],
    hang_timeouts_mid: [f64; 2],
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_upstreams_cannot_exhaust_fds_or_stall_the_listener() {
    let (fakes, lp) = start_incident().await;
    let probe = client(ANSWER_WITHIN);
    let started = Instant::now();

    // Baseline: the most fds seen during the first 5 poll intervals.
    let mut baseline = lp.fd_count();
    while started.elapsed() < Duration::from_millis(5 * POLL_MS) {
        baseline = baseline.max(lp.fd_count());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(baseline > 0, "cannot read /proc/{}/fd", lp.pid());

    let mut seen = Seen::default();
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    loop {
        ticker.tick().await;
        assert!(
            started.elapsed() < RUN_LIMIT,
            "{INTERVALS} poll intervals did not pass within {RUN_LIMIT:?}"
        );
        let fds = lp.fd_count();
        seen.max_fd = seen.max_fd.max(fds);
        assert!(
            fds <= baseline + 5,
            "fds grew to {fds} (baseline {baseline} + 5 upstreams) after {:?}",
            started.elapsed()
        );
        seen.samples += 1;
        answers_quickly(&lp, &probe, "/status", &[200]).await;
        answers_quickly(&lp, &probe, "/healthz", &[200, 503]).await;
        let m = answers_quickly(&lp, &probe, "/metrics", &[200])
            .await
            .text();
        check_in_flight(&m, &mut seen);
        let all = answers_quickly(&lp, &probe, "/api/upstreams", &[200])
            .await
            .json();
        if seen.samples == 30 {
            for (i, name) in HUNG[..2].iter().enumerate() {
                seen.hang_timeouts_mid[i] = total_timeouts(&m, name);
            }
        }
        if seen.samples > 30 && ticks_done(&all) {
            final_checks(&lp, &fakes, &m, &all, &seen);
            break;
        }
    }
    eprintln!(
        "incident: {} samples over {:?}, fds baseline {baseline} max {}",
        seen.samples,
        started.elapsed(),
        seen.max_fd
    );
}

async fn start_incident() -> (Vec<FakeUpstream>, Leanpoint) {
    let poll = POLL_MS.to_string();
    start_with(
        &[
            (HUNG[0], Mode::AcceptHang),
            (HUNG[1], Mode::AcceptHang),
            (HUNG[2], Mode::HalfClose),
            (GOOD[0], Mode::Fixture("advanced")),
            (GOOD[1], Mode::Fixture("advanced")),
        ],
        |b| {
            b.args(&[
                "--poll-ms",
                &poll,
                "--timeout-ms",
                "200",
                "--connect-timeout-ms",
                "100",
                "--stale-ms",
                "2000",
            ])
            .nofile(64)
        },
    )
    .await
}

/// GET `path` on a new connection; it must complete within a second with
/// one of `codes`.
async fn answers_quickly(
    lp: &Leanpoint,
    probe: &reqwest::Client,
    path: &str,
    codes: &[u16],
) -> common::Response {
    let t = Instant::now();
    let r = get_with(probe, &lp.url(path), &[])
        .await
        .unwrap_or_else(|e| panic!("GET {path} got no answer within {ANSWER_WITHIN:?}: {e:#}"));
    assert!(
        t.elapsed() < ANSWER_WITHIN,
        "GET {path} took {:?}",
        t.elapsed()
    );
    assert!(
        codes.contains(&r.status),
        "GET {path}: HTTP {}: {}",
        r.status,
        r.text()
    );
    r
}

fn check_in_flight(m: &str, seen: &mut Seen) {
    for (i, name) in HUNG.iter().chain(GOOD.iter()).enumerate() {
        let n = metric(
            m,
            "leanpoint_upstream_in_flight_requests",
            &[("upstream", name)],
        )
        .unwrap_or_else(|| panic!("no in-flight gauge for {name}"));
        assert!(n <= 1.0, "{name} has {n} requests in flight");
        if n == 0.0 {
            seen.in_flight_zero[i] = true;
        }
    }
    let total = metric(m, "leanpoint_upstream_requests_in_flight", &[]).unwrap_or(0.0);
    assert!(total <= 6.0, "{total} requests in flight in all");
}

fn total_timeouts(m: &str, name: &str) -> f64 {
    metric(
        m,
        "leanpoint_upstream_timeouts_total",
        &[("upstream", name), ("phase", "total")],
    )
    .unwrap_or(0.0)
}

/// Every upstream has had its 200 poll intervals: started polls for the
/// healthy ones, started plus skipped ticks for the hung ones (a tick that
/// finds the previous poll still running is skipped, never doubled).
fn ticks_done(all: &Value) -> bool {
    all["upstreams"].as_array().is_some_and(|us| {
        us.len() == 5
            && us.iter().all(|u| {
                let polls = u["polls"].as_u64().unwrap_or(0);
                let skipped = u["polls_skipped"].as_u64().unwrap_or(0);
                if GOOD.iter().any(|g| u["name"] == *g) {
                    polls >= INTERVALS
                } else {
                    polls + skipped >= INTERVALS
                }
            })
    })
}

fn final_checks(lp: &Leanpoint, fakes: &[FakeUpstream], m: &str, all: &Value, seen: &Seen) {
    for (i, name) in HUNG.iter().enumerate() {
        let u = common::find_upstream(all, name);
        let kind = if *name == "halfclose" {
            "closed"
        } else {
            "timeout"
        };
        assert_eq!(u["last_error_kind"], kind, "{u}");
        assert!(u["errors_by_kind"][kind].as_u64().unwrap_or(0) >= 20, "{u}");
        assert_eq!(u["healthy"], false, "{u}");
        let fake = &fakes[i];
        assert!(
            fake.max_open() <= 1,
            "{name} saw {} connections from leanpoint open at once",
            fake.max_open()
        );
        assert!(
            fake.accepted() >= 20,
            "{name}: only {} connections",
            fake.accepted()
        );
    }
    for (i, name) in HUNG[..2].iter().enumerate() {
        let end = total_timeouts(m, name);
        assert!(
            end > seen.hang_timeouts_mid[i] && end >= 20.0,
            "{name}: total-deadline timeouts {} then {end}",
            seen.hang_timeouts_mid[i]
        );
    }
    for (i, name) in GOOD.iter().enumerate() {
        assert!(seen.in_flight_zero[HUNG.len() + i], "{name} never idle");
        let u = common::find_upstream(all, name);
        assert_eq!(u["healthy"], true, "{u}");
        assert!(fakes[HUNG.len() + i].max_open() <= 1, "{name}");
    }
    assert!(lp.fd_count() > 0, "leanpoint is gone");
}
