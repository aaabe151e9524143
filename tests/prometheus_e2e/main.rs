//! End to end: the shipped dashboards and alert rules against a real
//! Prometheus scraping a real leanpoint that polls the simulator, one of
//! whose nodes accepts TCP and never answers (the fault that exhausted the
//! Zig leanpoint's fds).
//!
//! Every dashboard query must evaluate and return at least one series, so a
//! panel reading a metric leanpoint does not export fails here. Every rule
//! expression must evaluate, and every metric it reads must exist in the
//! scrape (alert expressions are legitimately empty while all is well). The
//! hung node's alerts must go pending or firing; the rules are loaded with
//! `for:` shortened to 1s and their expressions unchanged.
//!
//! Needs Debian's `prometheus` on PATH (scripts/install-deps.sh). Not part of
//! plain `cargo test` (it would compete with the timing-sensitive tests for
//! the machine's two cores): scripts/prometheus-e2e.sh runs it alone.

mod api;
mod promql;
#[path = "../it/support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use api::Prometheus;
use support::{wait_until, Leanpoint, Proc, Sim, TempDir, Timing};

const WAIT: Duration = Duration::from_secs(60);

/// Starts the simulator: three healthy nodes and one accept-hang, writing
/// an upstreams file. Returns it and the hung node's name.
fn start_sim() -> (Sim, String) {
    let sim = Sim::with_upstreams(&["--nodes", "3:healthy,1:accept-hang", "--slot-ms", "2000"]);
    let hung = sim
        .nodes
        .iter()
        .find(|n| n.behaviour == "accept-hang")
        .map(|n| n.name.clone())
        .expect("an accept-hang node");
    (sim, hung)
}

/// Starts leanpoint on an ephemeral port with short poll and deadlines.
fn start_leanpoint(sim: &Sim) -> Leanpoint {
    Leanpoint::builder()
        .upstreams_file(sim.upstreams_path())
        .args(&["--log-format", "json", "--slot-ms", "2000"])
        .timing(Timing::SCRAPED)
        .spawn()
}

/// `name` on PATH, or a panic that says how to get it.
fn which(name: &str) -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| {
            panic!(
                "{name} not found on PATH: run scripts/install-deps.sh (Debian package prometheus)"
            )
        })
}

/// Copies the shipped rules with `for:` shortened and checks that nothing
/// else changed.
fn copy_rules(repo: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("rules dir");
    for entry in std::fs::read_dir(repo.join("alerts")).expect("alerts/") {
        let path = entry.expect("entry").path();
        if !path.to_string_lossy().ends_with(".rules.yml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("rule file");
        let short = promql::shorten_for(&text, "1s");
        let strip = |t: &str| -> Value {
            let mut v: Value = serde_norway::from_str(t).expect("rules yaml");
            for g in v["groups"].as_array_mut().expect("groups") {
                for r in g["rules"].as_array_mut().expect("rules") {
                    r.as_object_mut().expect("rule").remove("for");
                }
            }
            v
        };
        assert_eq!(
            strip(&text),
            strip(&short),
            "{}: shortening for: changed more",
            path.display()
        );
        std::fs::write(to.join(path.file_name().expect("name")), short).expect("write rules");
    }
}

fn start_prometheus(dir: &Path, repo: &Path, leanpoint: SocketAddr) -> (Proc, Prometheus) {
    let rules = dir.join("rules");
    copy_rules(repo, &rules);
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n\
         rule_files:\n  - {}/*.rules.yml\n\
         scrape_configs:\n  - job_name: leanpoint\n    static_configs:\n      - targets: ['{leanpoint}']\n",
        rules.display()
    );
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, config).expect("write prometheus.yml");
    let args = vec![
        format!("--config.file={}", config_path.display()),
        format!("--storage.tsdb.path={}", dir.join("data").display()),
        "--web.listen-address=127.0.0.1:0".to_string(),
        "--log.level=info".to_string(),
    ];
    let mut cmd = std::process::Command::new(which("prometheus"));
    cmd.args(&args);
    let mut proc = Proc::spawn("prometheus", cmd);
    // Asked for port 0, Prometheus logs the port it got.
    let addr: SocketAddr = proc
        .find_stderr(
            |l| {
                if !l.contains("msg=\"Listening on\"") {
                    return None;
                }
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("address=")?.parse().ok())
            },
            WAIT,
        )
        .unwrap_or_else(|| panic!("Prometheus did not log its address:\n{}", proc.stderr()));
    let prom = Prometheus { addr };
    wait_until(WAIT, "Prometheus ready", || match prom.get("/-/ready")? {
        (200, _) => Ok(()),
        (s, b) => Err(format!("HTTP {s}: {b}")),
    });
    (proc, prom)
}

/// Every rule group loaded and evaluated without error.
fn check_rule_groups(prom: &Prometheus, shipped: &[promql::Rule]) {
    wait_until(WAIT, "rules evaluated without error", || {
        let groups = prom.rule_groups()?;
        let mut seen = 0;
        for g in &groups {
            for r in g["rules"].as_array().into_iter().flatten() {
                if r["health"] != "ok" {
                    return Err(format!(
                        "rule {} health {} {}",
                        r["name"], r["health"], r["lastError"]
                    ));
                }
                seen += 1;
            }
        }
        if seen != shipped.len() {
            return Err(format!("{seen} rules loaded, {} shipped", shipped.len()));
        }
        Ok(())
    });
}

/// Every rule expression evaluates; every metric it reads is in the TSDB.
fn check_rules(prom: &Prometheus, rules: &[promql::Rule]) -> usize {
    let mut names = BTreeSet::new();
    for r in rules {
        prom.query(&r.expr).unwrap_or_else(|e| {
            panic!("{}: {}: expression fails: {e}\n{}", r.file, r.name, r.expr)
        });
        let found = promql::metric_names(&r.expr);
        assert!(
            !found.is_empty(),
            "{}: {}: no metric name found in {}",
            r.file,
            r.name,
            r.expr
        );
        names.extend(found);
    }
    for name in &names {
        wait_until(
            WAIT,
            &format!("metric {name} (read by a rule) in the scrape"),
            || match prom
                .query(&format!("count({{__name__=\"{name}\"}})"))?
                .is_empty()
            {
                true => Err("no series".to_string()),
                false => Ok(()),
            },
        );
    }
    names.len()
}

/// Every dashboard query evaluates, and every panel query returns data.
fn check_dashboards(prom: &Prometheus, queries: &[promql::PanelQuery]) {
    wait_until(WAIT, "every dashboard query returns data", || {
        let mut failing = Vec::new();
        for q in queries {
            match prom.query(&q.expr) {
                Err(e) => panic!("{}: query fails: {e}\n{}", q.place, q.expr),
                Ok(r) if r.is_empty() && q.must_return_data => {
                    failing.push(format!("{}: {}", q.place, q.expr))
                }
                Ok(_) => {}
            }
        }
        match failing.is_empty() {
            true => Ok(()),
            false => Err(format!(
                "{} queries return nothing:\n{}",
                failing.len(),
                failing.join("\n")
            )),
        }
    });
}

/// The hung node's down and timeout alerts are pending or firing; no healthy
/// node is alerted as down.
fn check_alerts(prom: &Prometheus, hung: &str) {
    let active = |alerts: &[Value], name: &str, extra: Option<(&str, &str)>| {
        alerts.iter().any(|a| {
            let l = &a["labels"];
            l["alertname"] == name
                && l["upstream"] == hung
                && extra.is_none_or(|(k, v)| l[k] == v)
                && (a["state"] == "pending" || a["state"] == "firing")
        })
    };
    let alerts = wait_until(WAIT, "the hung node's alerts", || {
        let alerts = prom.alerts()?;
        let down = active(&alerts, "LeanpointUpstreamDown", None);
        let timing_out = active(
            &alerts,
            "LeanpointUpstreamTimingOut",
            Some(("phase", "total")),
        );
        match down && timing_out {
            true => Ok(alerts),
            false => Err(format!(
                "down {down}, timing out {timing_out}; active: {alerts:?}"
            )),
        }
    });
    for a in &alerts {
        let l = &a["labels"];
        if l["alertname"] == "LeanpointUpstreamDown" {
            assert_eq!(
                l["upstream"], hung,
                "a healthy node is alerted as down: {a}"
            );
        }
    }
}

#[test]
fn dashboards_and_rules_work_against_a_real_prometheus() {
    let started = Instant::now();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = TempDir::new();
    let (sim, hung) = start_sim();
    let leanpoint = start_leanpoint(&sim);
    let (_prometheus, prom) = start_prometheus(tmp.path(), repo, leanpoint.addr);

    wait_until(WAIT, "leanpoint scraped", || {
        match prom.query("up{job=\"leanpoint\"} == 1")?.len() {
            1 => Ok(()),
            n => Err(format!("{n} healthy leanpoint targets")),
        }
    });
    let fds = prom
        .query("process_open_fds{job=\"leanpoint\"}")
        .expect("query process_open_fds");
    assert_eq!(fds.len(), 1, "process_open_fds missing from the scrape");

    let rules = promql::rules(&repo.join("alerts"));
    check_rule_groups(&prom, &rules);
    let names = check_rules(&prom, &rules);
    let queries = promql::dashboard_queries(&repo.join("dashboards"));
    check_dashboards(&prom, &queries);
    check_alerts(&prom, &hung);

    let took = started.elapsed();
    eprintln!(
        "prometheus e2e: {} dashboard queries, {} rules ({names} metric names) checked against Prometheus at {}; \
         {hung}'s alerts active; {took:.1?}",
        queries.len(),
        rules.len(),
        prom.addr
    );
    assert!(took < Duration::from_secs(170), "took {took:?}");
}
