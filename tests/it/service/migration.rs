//! Drop-in for the Zig leanpoint, on the real binary: every setup the Zig
//! leanpoint accepted starts and is polled, and each deliberate refusal
//! names its field and where the value came from (flag or env var).
//! One case per item of the migration list (README, "Migration from the Zig
//! leanpoint").

use std::time::Duration;

use crate::support::fixtures::{FORK_CHOICE, JSON, SSZ, STATE};
use crate::support::{
    fixture, fixture_finalized, fixtures, run_to_exit_env, start_with, wait_until, FixtureRoutes,
    Leanpoint, Mode, Reply, Routes, SimUpstream, TempDir, Timing,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
const EXIT_WITHIN: Duration = Duration::from_secs(20);

/// Waits until upstream `name` has answered a poll; returns its entry.
fn wait_polled(lp: &Leanpoint, name: &str) -> Value {
    lp.wait_upstream(name, &format!("upstream {name} answering"), WAIT, |u| {
        u["healthy"] == true
    })
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

#[test]
fn timeout_alone_on_the_command_line_starts_and_polls() {
    let (_fakes, lp) = start_with(&[("a", Mode::Fixture("advanced"))], |b| {
        b.args(&["--timeout-ms", "200", "--poll-ms", "100"])
    });
    wait_polled(&lp, "a");
}

#[test]
fn timeout_alone_in_the_environment_starts_and_polls() {
    let (_fakes, lp) = start_with(&[("a", Mode::Fixture("advanced"))], |b| {
        b.env("LEANPOINT_TIMEOUT_MS", "500")
    });
    wait_polled(&lp, "a");
}

#[test]
fn poll_alone_starts_and_polls() {
    let (_fakes, lp) = start_with(&[("a", Mode::Fixture("advanced"))], |b| {
        b.args(&["--poll-ms", "60000"])
    });
    wait_polled(&lp, "a");
    // The stale window followed the poll interval: the one poll keeps the
    // agreement fresh (a 30 s window would be shorter than the interval).
    let status = lp.wait_json("/status", "agreement", WAIT, |s| s["agreement"] == true);
    assert_eq!(status["stale"], false, "{status}");
}

#[test]
fn stale_alone_starts_and_polls() {
    let (_fakes, lp) = start_with(&[("a", Mode::Fixture("advanced"))], |b| {
        b.args(&["--stale-ms", "5000"])
    });
    wait_polled(&lp, "a");
    // The poll interval followed the stale window (at most half of it): a
    // second poll comes well within 10 s.
    lp.wait_upstream("a", "a second poll", WAIT, |u| {
        u["polls"].as_u64() >= Some(2)
    });
}

#[test]
fn a_repeated_flag_takes_its_last_value() {
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
    });
    wait_polled(&lp, "a");
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

#[test]
fn the_zig_example_config_starts_unchanged_and_polls() {
    let path = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/lean-quickstart/upstreams.zig-example.json"
    ));
    // No timing flags: the Zig defaults. Its nodes are localhost ports where
    // nothing may listen; the first upstream's first poll runs at start
    // and must end (answered or failed) within the 5 s deadline.
    let lp = Leanpoint::builder().upstreams_file(path).spawn();
    let all = lp.wait_json("/api/upstreams", "zeam_0 polled", WAIT, |a| {
        crate::support::find_upstream(a, "zeam_0")["last_attempt_ms"].is_u64()
    });
    assert_eq!(all["upstreams"].as_array().map(Vec::len), Some(6), "{all}");
    assert!(!lp.stderr().contains("unknown field"), "{}", lp.stderr());
}

#[test]
fn an_env_only_configuration_with_a_file_starts_and_polls() {
    let (_fakes, lp) = start_with(&[("a", Mode::Fixture("advanced"))], |b| {
        b.env_only()
            .env("LEANPOINT_POLL_MS", "200")
            .env("LEANPOINT_TIMEOUT_MS", "500")
            .env("LEANPOINT_STALE_MS", "5000")
    });
    wait_polled(&lp, "a");
}

#[test]
fn an_env_only_single_upstream_starts_and_polls() {
    let fake = SimUpstream::start(Mode::Fixture("advanced"));
    let lp = Leanpoint::builder()
        .env_only()
        .env("LEANPOINT_LEAN_URL", &fake.url())
        .env("LEANPOINT_LEAN_PATH", "/status")
        .env("LEANPOINT_POLL_MS", "200")
        .env("LEANPOINT_TIMEOUT_MS", "300")
        .spawn();
    wait_polled(&lp, "default");
}

// --- item 3: upstreams.json that the Zig leanpoint loaded ---

#[test]
fn unknown_fields_in_upstreams_json_are_warnings() {
    let fake = SimUpstream::start(Mode::Fixture("advanced"));
    let dir = TempDir::new();
    let file = dir.write(
        "upstreams.json",
        format!(
            r#"{{"comment":"devnet 3","upstreams":[{{"name":"a","url":"{}","path":"/status","enabled":false}}]}}"#,
            fake.url()
        ),
    );
    let lp = Leanpoint::builder()
        .upstreams_file(&file)
        .args(&["--poll-ms", "200", "--timeout-ms", "500"])
        .spawn();
    wait_polled(&lp, "a");
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

// --- item 4: nodes the Zig leanpoint polled through the State ---

/// Routes of the `advanced` fixture with fork_choice replaced by `reply`.
fn fork_choice_as(reply: Reply) -> Mode {
    Mode::Routes(Routes::fixture("advanced").with(FORK_CHOICE, reply))
}

#[test]
fn an_unusable_fork_choice_falls_back_to_the_state() {
    let other_shape = r#"{"head":{"slot":12,"root":"0x01"},"justified_checkpoint":{"epoch":1},"fork_choice_nodes":[]}"#;
    let (fakes, lp) = start_with(
        &[
            (
                "status500",
                fork_choice_as(Reply::status(500, "text/plain", "boom")),
            ),
            (
                "status403",
                fork_choice_as(Reply::status(403, "text/plain", "no")),
            ),
            ("other_shape", fork_choice_as(Reply::ok(JSON, other_shape))),
            (
                "html",
                fork_choice_as(Reply::ok("text/html", "<html></html>")),
            ),
            // zeam's content types: JSON with a charset, SSZ as x-ssz or none.
            (
                "zeam",
                Mode::Routes(
                    Routes::fixture("advanced")
                        .with(
                            FORK_CHOICE,
                            Reply::ok(
                                "application/json; charset=utf-8",
                                fixture("advanced", "fork_choice.json"),
                            ),
                        )
                        .with(
                            STATE,
                            Reply::ok(
                                "application/x-ssz",
                                fixture("advanced", "states_finalized.ssz"),
                            ),
                        ),
                ),
            ),
            (
                "no_type",
                Mode::Routes(Routes::legacy("advanced").with(
                    STATE,
                    Reply::ok("", fixture("advanced", "states_finalized.ssz")),
                )),
            ),
        ],
        |b| {
            b.args(&[
                "--poll-ms",
                "100",
                "--timeout-ms",
                "1000",
                "--stale-ms",
                "5000",
            ])
        },
    );
    let (slot, _) = fixture_finalized("advanced");
    let fallback = ["status500", "status403", "other_shape", "html", "no_type"];
    let all = lp.wait_json("/api/upstreams", "every upstream answering", WAIT, |a| {
        a["upstreams"]
            .as_array()
            .is_some_and(|us| us.len() == 6 && us.iter().all(|u| u["healthy"] == true))
    });
    for name in fallback {
        let u = crate::support::find_upstream(&all, name);
        assert_eq!(u["source"], "fallback", "{u}");
        assert_eq!(u["last_finalized_slot"], slot, "{u}");
    }
    assert_eq!(
        crate::support::find_upstream(&all, "zeam")["source"],
        "fork_choice"
    );
    // The zeam node's State (application/x-ssz) is downloadable and served.
    lp.wait_code(STATE, 200, WAIT);

    // Re-probed later: a node that gains a reference fork_choice is read
    // through it again.
    fakes[0].set_mode(Mode::Fixture("advanced"));
    lp.wait_upstream("status500", "status500 re-probed", WAIT, |u| {
        u["source"] == "fork_choice"
    });
}

// --- item 5: redirects ---

/// Waits until upstream `name` fails with kind `redirect`, and asserts the
/// error says why (`reason`): a redirect refused for the right cause.
fn wait_redirect_refused(lp: &Leanpoint, name: &str, reason: &str) {
    let u = lp.wait_upstream(name, &format!("{name} failing with redirect"), WAIT, |u| {
        u["last_error_kind"] == "redirect"
    });
    assert!(
        u["last_error"].as_str().is_some_and(|e| e.contains(reason)),
        "{u}"
    );
}

#[test]
fn same_origin_redirects_are_followed() {
    let state = fixture("advanced", "states_finalized.ssz");
    let routes = Routes::fixture("advanced")
        .with(FORK_CHOICE, Reply::redirect(302, "/v2/fork_choice"))
        .with(
            "/v2/fork_choice",
            Reply::ok(JSON, fixture("advanced", "fork_choice.json")),
        )
        .with(STATE, Reply::redirect(307, "/v2/state"))
        .with("/v2/state", Reply::redirect(301, "/v3/state"))
        .with("/v3/state", Reply::ok(SSZ, state.clone()));
    let (_fakes, lp) = start_with(&[("moved", Mode::Routes(routes))], |b| {
        b.timing(Timing::FAST)
    });
    let u = wait_polled(&lp, "moved");
    assert_eq!(u["source"], "fork_choice", "{u}");
    let served = lp.wait_code(STATE, 200, WAIT);
    assert_eq!(&served.body[..], &state[..]);
    lp.wait_code("/readyz", 200, WAIT);
}

#[test]
fn a_redirect_to_another_origin_is_refused_and_sends_nothing_there() {
    let elsewhere = SimUpstream::start(Mode::Fixture("advanced"));
    let away = format!("{}{STATE}", elsewhere.url());
    let node = SimUpstream::start(Mode::Routes(
        Routes::fixture("advanced").with(STATE, Reply::redirect(302, &away)),
    ));
    let away_fc = format!("{}{FORK_CHOICE}", elsewhere.url());
    let hop = SimUpstream::start(fork_choice_as(Reply::redirect(302, &away_fc)));
    let dir = TempDir::new();
    let file = dir.write(
        "upstreams.json",
        serde_json::json!({"upstreams": [
            {"name": "node", "url": node.url(), "headers": {"Authorization": "Bearer s3cret"}},
            {"name": "hop", "url": hop.url().replace("http://", "http://user:pw@")},
        ]})
        .to_string(),
    );
    let lp = Leanpoint::builder()
        .upstreams_file(&file)
        .timing(Timing::FAST)
        .args(&["--agreement", "count:1"])
        .spawn();
    wait_polled(&lp, "node");
    wait_redirect_refused(&lp, "hop", "another origin");
    // Agreement holds (node's fork_choice is fine), but no State can be
    // had: the State and /readyz say so, whatever /healthz says. /readyz is
    // 503 before the first download too, so wait for the failure itself.
    wait_until(WAIT, "a failed State download counted", || {
        let m = lp.metrics();
        let n = crate::support::metric(&m, "leanpoint_state_fetch_failures_total", &[]);
        (n.unwrap_or(0.0) >= 1.0).then_some(())
    });
    let ready = lp.get("/readyz");
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert!(ready.text().contains("state"), "{}", ready.text());
    let st = lp.get(STATE);
    assert_eq!(st.status, 503, "{}", st.text());
    assert_eq!(
        elsewhere.accepted(),
        0,
        "a request went to the other origin"
    );
    assert!(!lp.stderr().contains("s3cret"), "{}", lp.stderr());
}

#[test]
fn a_fourth_redirect_is_not_followed() {
    let routes = Routes::fixture("advanced")
        .with(FORK_CHOICE, Reply::redirect(302, "/r1"))
        .with("/r1", Reply::redirect(302, "/r2"))
        .with("/r2", Reply::redirect(302, "/r3"))
        .with("/r3", Reply::redirect(302, "/r4"))
        .with(
            "/r4",
            Reply::ok(JSON, fixture("advanced", "fork_choice.json")),
        );
    let (fakes, lp) = start_with(&[("loop", Mode::Routes(routes))], |b| {
        b.timing(Timing::FAST)
    });
    wait_redirect_refused(&lp, "loop", "more than 3 redirects");
    assert_eq!(
        fakes[0].requests("/r4"),
        0,
        "the fourth redirect was followed"
    );
    assert!(
        fakes[0].requests("/r3") >= 1,
        "the third redirect was not followed"
    );
}

// --- item 6: metrics and probe bodies that scripts and dashboards read ---

#[test]
fn the_six_zig_metric_families_keep_their_names_and_meanings() {
    let (_fakes, lp) = start_with(
        &[
            ("a", Mode::Fixture("advanced")),
            ("b", Mode::Fixture("advanced")),
            ("dead", Mode::Routes(Routes::default())),
        ],
        |b| b.timing(Timing::FAST),
    );
    let status = lp.wait_json("/status", "agreement and a failed poll", WAIT, |s| {
        s["agreement"] == true && s["error_count"].as_u64() >= Some(1)
    });
    let m = lp.metrics();
    for (name, kind) in [
        ("leanpoint_justified_slot", "gauge"),
        ("leanpoint_finalized_slot", "gauge"),
        ("leanpoint_last_success_timestamp_ms", "gauge"),
        ("leanpoint_last_updated_timestamp_ms", "gauge"),
        ("leanpoint_last_latency_ms", "gauge"),
        ("leanpoint_error_total", "counter"),
    ] {
        assert!(
            m.contains(&format!("# TYPE {name} {kind}\n")),
            "{name} {kind}"
        );
    }
    for name in [
        "leanpoint_last_success_timestamp_ms",
        "leanpoint_last_updated_timestamp_ms",
        "leanpoint_last_latency_ms",
        "leanpoint_error_total",
    ] {
        assert!(
            m.contains(&format!("# HELP {name} Deprecated")),
            "{name} not marked deprecated"
        );
    }
    let value =
        |name: &str| crate::support::metric(&m, name, &[]).unwrap_or_else(|| panic!("{name}"));
    let (slot, _) = fixture_finalized("advanced");
    assert_eq!(value("leanpoint_finalized_slot"), slot as f64);
    assert_eq!(value("leanpoint_justified_slot"), 10.0);
    // Milliseconds since the epoch, as Zig wrote them, near /status's.
    let success = value("leanpoint_last_success_timestamp_ms");
    let since = status["last_success_ms"].as_f64().expect("last_success_ms");
    assert!(
        success >= since && success < since + 60_000.0,
        "{success} vs {since}"
    );
    assert!(value("leanpoint_last_updated_timestamp_ms") >= success);
    assert!(
        value("leanpoint_error_total") >= 1.0,
        "the dead upstream's polls"
    );
    assert!(
        value("leanpoint_last_latency_ms") < 1_000.0,
        "over the deadline"
    );
}

#[test]
fn healthz_and_state_bodies_start_with_the_zig_words() {
    // Agreement and a State: ok.
    let (fakes, lp) = start_with(&fixtures(&[("a", "advanced"), ("b", "advanced")]), |b| {
        b.timing(Timing::FAST).args(&["--stale-ms", "1500"])
    });
    lp.wait_code(STATE, 200, WAIT);
    let ok = lp.wait_code("/healthz", 200, WAIT);
    assert_eq!(ok.text(), "ok\n");

    // Two forks, one each: responders but no consensus.
    fakes[1].set_mode(Mode::Fixture("fork"));
    let h = lp.wait_code("/healthz", 503, WAIT);
    assert!(h.text().starts_with("no_consensus: "), "{}", h.text());
    let st = lp.get(STATE);
    assert_eq!(st.status, 503);
    assert!(st.text().starts_with("stale: "), "{}", st.text());
    assert_eq!(st.header("content-type"), Some("text/plain; charset=utf-8"));
    let js = lp
        .try_get(STATE, &[("accept", "application/json")])
        .expect("GET");
    assert_eq!(js.status, 503);
    assert!(js.json()["error"]
        .as_str()
        .is_some_and(|e| e.starts_with("stale")));

    // Nobody answering: no_upstreams.
    for f in &fakes {
        f.set_mode(Mode::AcceptHang);
    }
    crate::support::wait_until(WAIT, "/healthz saying no_upstreams", || {
        let r = lp.try_get("/healthz", &[]).map_err(|e| e.to_string())?;
        if r.status == 503 && r.text().starts_with("no_upstreams: ") {
            Ok(())
        } else {
            Err(r.text())
        }
    });
}

#[test]
fn the_state_says_no_finalized_state_until_one_is_downloaded() {
    // Agreement through fork_choice, but no node serves its State.
    let routes = Routes::fixture("advanced").with(STATE, Reply::status(500, "text/plain", "x"));
    let (_fakes, lp) = start_with(
        &[
            ("a", Mode::Routes(routes.clone())),
            ("b", Mode::Routes(routes)),
        ],
        |b| b.timing(Timing::FAST),
    );
    lp.wait_code("/healthz", 200, WAIT);
    let st = lp.get(STATE);
    assert_eq!(st.status, 503);
    assert!(
        st.text().starts_with("no_finalized_state: "),
        "{}",
        st.text()
    );
    let ready = lp.get("/readyz");
    assert_eq!(ready.status, 503, "{}", ready.text());
}

// --- item 7: the Zig image's docker run ---

/// A JSON-array instruction (`ENTRYPOINT [...]`, `CMD [...]`) of the
/// runtime stage of the Dockerfile.
fn dockerfile_array(instruction: &str) -> Vec<String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile"))
        .expect("Dockerfile");
    let prefix = format!("{instruction} ");
    let line = text
        .lines()
        .rfind(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {instruction} in the Dockerfile"));
    serde_json::from_str(&line[prefix.len()..])
        .unwrap_or_else(|e| panic!("{instruction} is not an exec-form array: {e}"))
}

#[test]
fn the_images_default_arguments_read_the_mounted_upstreams_json() {
    const MOUNT: &str = "/etc/leanpoint/upstreams.json";
    let entrypoint = dockerfile_array("ENTRYPOINT");
    assert_eq!(entrypoint, ["/usr/local/bin/leanpoint"]);
    let cmd = dockerfile_array("CMD");
    assert!(
        cmd.iter().any(|a| a == MOUNT),
        "CMD does not read {MOUNT}: {cmd:?}"
    );

    // `docker run -v upstreams.json:/etc/leanpoint/upstreams.json IMAGE`:
    // the CMD as it is, with the mount's path pointing at a real file.
    let fake = SimUpstream::start(Mode::Fixture("advanced"));
    let dir = TempDir::new();
    let file = dir.write(
        "upstreams.json",
        serde_json::json!({"upstreams": [{"name": "mounted", "url": fake.url(), "path": "/status"}]})
            .to_string(),
    );
    let file = file.display().to_string();
    let args: Vec<String> = cmd
        .iter()
        .map(|a| if a == MOUNT { file.clone() } else { a.clone() })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let lp = Leanpoint::builder().env_only().args(&args).spawn();
    wait_polled(&lp, "mounted");
    drop(lp);

    // `docker run IMAGE leanpoint --upstreams-config FILE`: the entrypoint
    // gets the binary's name as its first argument.
    let lp = Leanpoint::builder()
        .env_only()
        .args(&["leanpoint", "--upstreams-config", &file])
        .spawn();
    wait_polled(&lp, "mounted");

    // Nothing mounted: a refusal that names the path, not a quiet single
    // upstream at 127.0.0.1:5052.
    if !std::path::Path::new(MOUNT).exists() {
        let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
        assert_refused("nothing mounted", &cmd, &[], &[MOUNT, "cannot read"]);
    }
}

// --- item 8: smaller things a migrating operator trips on ---

#[test]
fn convert_validator_config_writes_the_output_file_it_is_given() {
    let dir = TempDir::new();
    let yaml = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/lean-quickstart/validator-config.yaml"
    );
    let out = dir.path().join("upstreams.json");
    let run = |args: &[&str]| {
        std::process::Command::new(crate::support::BIN)
            .arg("convert-validator-config")
            .args(args)
            .output()
            .expect("run convert-validator-config")
    };
    // The Zig script's order: input, output, then --docker.
    let done = run(&[yaml, &out.display().to_string(), "--docker"]);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(done.stdout.is_empty(), "wrote to stdout too");
    let ups = leanpoint::config::load_upstreams_file(&out).expect("the output loads");
    assert_eq!(ups.len(), 3);
    assert_eq!(ups[0].url.host_str(), Some("host.docker.internal"));

    // A failed conversion leaves the existing file as it was.
    let before = std::fs::read(&out).expect("output");
    let bad = dir.write("bad.yaml", "validators: 3\n");
    let failed = run(&[&bad.display().to_string(), &out.display().to_string()]);
    assert_eq!(failed.status.code(), Some(2));
    assert_eq!(std::fs::read(&out).expect("output"), before);
}

#[test]
fn logs_to_a_file_or_pipe_carry_no_colour_codes() {
    let (_fakes, lp) = start_with(&[("a", Mode::Fixture("advanced"))], |b| {
        b.timing(Timing::FAST)
    });
    wait_polled(&lp, "a");
    let log = lp.stderr();
    assert!(log.contains("leanpoint listening"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escape in a log file: {log:?}"
    );
}

// --- item 1: the repository tests alone ---

/// Every text file of the repository outside the docs, `target/` and `.git`.
fn repo_text_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        if path.is_dir() {
            repo_text_files(&path, out);
        } else if path.extension().is_none_or(|e| e != "md") {
            out.push(path);
        }
    }
}

#[test]
fn nothing_outside_the_docs_refers_to_dotdot_shared() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    repo_text_files(root, &mut files);
    assert!(
        files.len() > 50,
        "only {} files found under {root:?}",
        files.len()
    );
    // Built from pieces so this file does not match itself.
    let needle = ["..", "/", "shared"].concat();
    let offenders: Vec<_> = files
        .iter()
        .filter(|p| {
            std::fs::read(p)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .is_some_and(|t| t.contains(&needle))
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "files referring to {needle}: {offenders:?}"
    );
}
