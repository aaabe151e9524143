//! Drop-in for the Zig leanpoint, on the real binary: every setup the Zig
//! leanpoint accepted starts and is polled, and each deliberate refusal
//! names its field and where the value came from (flag or env var).
//! One case per item of the migration list (README, "Migration from the Zig
//! leanpoint").

mod common;

use std::time::Duration;

use common::{run_to_exit_env, start_with, Leanpoint, Mode, TempDir};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
const EXIT_WITHIN: Duration = Duration::from_secs(20);

/// Waits until upstream `name` has answered a poll; returns its entry.
async fn wait_polled(lp: &Leanpoint, name: &str) -> Value {
    let all = lp
        .wait_json(
            "/api/upstreams",
            &format!("upstream {name} answering"),
            WAIT,
            |a| {
                a["upstreams"]
                    .as_array()
                    .is_some_and(|us| us.iter().any(|u| u["name"] == name && u["healthy"] == true))
            },
        )
        .await;
    common::find_upstream(&all, name)
}

/// Runs with `args` and `envs` until exit; asserts exit 2 and one stderr
/// line holding every needle.
fn assert_refused(what: &str, args: &[&str], envs: &[(&str, &str)], needles: &[&str]) {
    let exit = run_to_exit_env(args, envs, EXIT_WITHIN);
    let text = exit.stderr.trim();
    assert_eq!(exit.status.code(), Some(2), "{what}: {text}");
    assert_eq!(text.lines().count(), 1, "{what}: not one line: {text}");
    for needle in needles {
        assert!(text.contains(needle), "{what}: {needle:?} not in {text:?}");
    }
}

// --- item 2: configurations the Zig leanpoint started ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_alone_on_the_command_line_starts_and_polls() {
    let (_fakes, lp) = start_with(&[("a", Mode::Fixture("advanced"))], |b| {
        b.args(&["--timeout-ms", "200", "--poll-ms", "100"])
    })
    .await;
    wait_polled(&lp, "a").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_alone_in_the_environment_starts_and_polls() {
    let (_fakes, lp) = start_with(&[("a", Mode::Fixture("advanced"))], |b| {
        b.env("LEANPOINT_TIMEOUT_MS", "500")
    })
    .await;
    wait_polled(&lp, "a").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_alone_starts_and_polls() {
    let (_fakes, lp) = start_with(&[("a", Mode::Fixture("advanced"))], |b| {
        b.args(&["--poll-ms", "60000"])
    })
    .await;
    wait_polled(&lp, "a").await;
    // The stale window followed the poll interval: the one poll keeps the
    // agreement fresh (a 30 s window would be shorter than the interval).
    let status = lp
        .wait_json("/status", "agreement", WAIT, |s| s["agreement"] == true)
        .await;
    assert_eq!(status["stale"], false, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_alone_starts_and_polls() {
    let (_fakes, lp) = start_with(&[("a", Mode::Fixture("advanced"))], |b| {
        b.args(&["--stale-ms", "5000"])
    })
    .await;
    wait_polled(&lp, "a").await;
    // The poll interval followed the stale window (at most half of it): a
    // second poll comes well within 10 s.
    lp.wait_json("/api/upstreams", "a second poll", WAIT, |a| {
        common::find_upstream(a, "a")["polls"].as_u64() >= Some(2)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_flag_takes_its_last_value() {
    // A wrapper script appends its override: the first value would refuse.
    let (_fakes, lp) = start_with(&[("a", Mode::Fixture("advanced"))], |b| {
        b.args(&[
            "--timeout-ms",
            "0",
            "--poll-ms",
            "100",
            "--timeout-ms",
            "500",
        ])
    })
    .await;
    wait_polled(&lp, "a").await;
}

#[test]
fn an_explicit_connect_timeout_over_the_total_names_the_flags() {
    assert_refused(
        "flags",
        &["--timeout-ms", "2000", "--connect-timeout-ms", "3000"],
        &[],
        &[
            "command line: --connect-timeout-ms:",
            "--timeout-ms 2000 ms",
        ],
    );
}

#[test]
fn an_explicit_connect_timeout_over_the_total_names_the_env_vars() {
    assert_refused(
        "env",
        &[],
        &[
            ("LEANPOINT_TIMEOUT_MS", "2000"),
            ("LEANPOINT_CONNECT_TIMEOUT_MS", "3000"),
        ],
        &[
            "environment: LEANPOINT_CONNECT_TIMEOUT_MS:",
            "LEANPOINT_TIMEOUT_MS 2000 ms",
        ],
    );
}

#[test]
fn a_zero_timeout_from_the_environment_says_environment() {
    assert_refused(
        "env zero",
        &[],
        &[("LEANPOINT_TIMEOUT_MS", "0")],
        &["environment: LEANPOINT_TIMEOUT_MS: must be greater than 0"],
    );
}

#[test]
fn a_stale_window_under_an_explicit_poll_names_both_sources() {
    assert_refused(
        "mixed",
        &["--stale-ms", "5000"],
        &[("LEANPOINT_POLL_MS", "60000")],
        &["command line: --stale-ms:", "LEANPOINT_POLL_MS 60000 ms"],
    );
}

#[test]
fn a_bad_lean_url_from_the_environment_says_environment() {
    assert_refused(
        "env url",
        &[],
        &[("LEANPOINT_LEAN_URL", "ftp://127.0.0.1/")],
        &["environment: LEANPOINT_LEAN_URL[0].url:", "ftp"],
    );
}

// --- the Zig example config and env-only configurations, unchanged ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_zig_example_config_starts_unchanged_and_polls() {
    let path = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/lean-quickstart/upstreams.zig-example.json"
    ));
    // No timing flags: the Zig defaults. Its nodes are localhost ports where
    // nothing may listen; the first upstream's first poll runs at start
    // and must end (answered or failed) within the 5 s deadline.
    let lp = Leanpoint::builder().upstreams_file(path).spawn().await;
    let all = lp
        .wait_json("/api/upstreams", "zeam_0 polled", WAIT, |a| {
            common::find_upstream(a, "zeam_0")["last_attempt_ms"].is_u64()
        })
        .await;
    assert_eq!(all["upstreams"].as_array().map(Vec::len), Some(6), "{all}");
    assert!(!lp.stderr().contains("unknown field"), "{}", lp.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_env_only_configuration_with_a_file_starts_and_polls() {
    let (_fakes, lp) = start_with(&[("a", Mode::Fixture("advanced"))], |b| {
        b.env_only()
            .env("LEANPOINT_POLL_MS", "200")
            .env("LEANPOINT_TIMEOUT_MS", "500")
            .env("LEANPOINT_STALE_MS", "5000")
    })
    .await;
    wait_polled(&lp, "a").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_env_only_single_upstream_starts_and_polls() {
    let fake = common::FakeUpstream::start(Mode::Fixture("advanced")).await;
    let lp = Leanpoint::builder()
        .env_only()
        .env("LEANPOINT_LEAN_URL", &fake.url())
        .env("LEANPOINT_LEAN_PATH", "/status")
        .env("LEANPOINT_POLL_MS", "200")
        .env("LEANPOINT_TIMEOUT_MS", "300")
        .spawn()
        .await;
    wait_polled(&lp, "default").await;
}

// --- item 3: upstreams.json that the Zig leanpoint loaded ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_in_upstreams_json_are_warnings() {
    let fake = common::FakeUpstream::start(Mode::Fixture("advanced")).await;
    let dir = TempDir::new();
    let file = dir.write(
        "upstreams.json",
        &format!(
            r#"{{"comment":"devnet 3","upstreams":[{{"name":"a","url":"{}","path":"/status","enabled":false}}]}}"#,
            fake.url()
        ),
    );
    let lp = Leanpoint::builder()
        .upstreams_file(&file)
        .args(&["--poll-ms", "200", "--timeout-ms", "500"])
        .spawn()
        .await;
    wait_polled(&lp, "a").await;
    let log = lp.stderr();
    for field in ["comment", "upstreams[0].enabled"] {
        assert!(
            log.contains(&format!("{field}: unknown field, ignored")),
            "no warning for {field}: {log}"
        );
    }
    assert!(!log.contains("devnet 3"), "a value was echoed: {log}");
}

#[test]
fn what_cannot_work_in_upstreams_json_is_still_refused() {
    let dir = TempDir::new();
    let cases: &[(&str, &str, &str)] = &[
        (
            "duplicate",
            r#"{"upstreams":[{"name":"a","url":"http://127.0.0.1:1"},{"name":"a","url":"http://127.0.0.1:2"}]}"#,
            "upstreams[1].name: \"a\" duplicates upstreams[0].name",
        ),
        (
            "empty name",
            r#"{"upstreams":[{"name":"","url":"http://127.0.0.1:1"}]}"#,
            "upstreams[0].name: is empty",
        ),
        (
            "no url",
            r#"{"upstreams":[{"name":"a"}]}"#,
            "missing field `url`",
        ),
        (
            "not http",
            r#"{"upstreams":[{"name":"a","url":"ws://127.0.0.1:1"}]}"#,
            "upstreams[0].url: scheme \"ws\" is not http or https",
        ),
        (
            "no upstreams",
            r#"{"upstreams":[]}"#,
            "upstreams: no upstreams",
        ),
        ("no list", r#"{"nodes":[]}"#, "missing field `upstreams`"),
    ];
    for (i, (what, json, needle)) in cases.iter().enumerate() {
        let p = dir.write(&format!("case{i}.json"), json);
        let p = p.display().to_string();
        assert_refused(what, &["--upstreams-config", &p], &[], &[&p, needle]);
    }
}
