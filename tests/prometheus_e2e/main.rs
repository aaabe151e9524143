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
mod procs;
mod promql;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use api::Prometheus;
use procs::{spawn, wait_for, Proc, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_leanpoint");
const WAIT: Duration = Duration::from_secs(60);

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Starts the simulator: three healthy nodes and one accept-hang. Returns it,
/// the upstreams file it wrote, and the hung node's name.
fn start_sim(dir: &Path) -> (Proc, String, String) {
    let upstreams = dir.join("upstreams.json").display().to_string();
    let args = strings(&[
        "sim",
        "--nodes",
        "3:healthy,1:accept-hang",
        "--slot-ms",
        "2000",
    ]);
    let sim = spawn(
        "sim",
        BIN,
        &[args, strings(&["--write-upstreams", &upstreams])].concat(),
    );
    let hung = sim.wait_line(WAIT, |l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        (w.first() == Some(&"sim-node") && w.last() == Some(&"accept-hang"))
            .then(|| w[2].to_string())
    });
    sim.wait_line(WAIT, |l| l.starts_with("sim-ready").then_some(()));
    (sim, upstreams, hung)
}

/// Starts leanpoint on an ephemeral port with short poll and deadlines.
fn start_leanpoint(upstreams: &str) -> (Proc, SocketAddr) {
    let args = strings(&[
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--log-format",
        "json",
        "--upstreams-config",
        upstreams,
        "--slot-ms",
        "2000",
        "--poll-ms",
        "250",
        "--timeout-ms",
        "200",
        "--connect-timeout-ms",
        "100",
        "--stale-ms",
        "2000",
    ]);
    let lp = spawn("leanpoint", BIN, &args);
    let addr = lp.wait_line(WAIT, |l| {
        let v: Value = serde_json::from_str(l).ok()?;
        let f = &v["fields"];
        (f["message"] == "leanpoint listening").then(|| f["addr"].as_str()?.parse().ok())?
    });
    (lp, addr)
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
    let proc = spawn("prometheus", &procs::which("prometheus"), &args);
    // Asked for port 0, Prometheus logs the port it got.
    let addr: SocketAddr = proc.wait_line(WAIT, |l| {
        if !l.contains("msg=\"Listening on\"") {
            return None;
        }
        l.split_whitespace()
            .find_map(|w| w.strip_prefix("address=")?.parse().ok())
    });
    let prom = Prometheus { addr };
    wait_for("Prometheus ready", WAIT, || match prom.get("/-/ready")? {
        (200, _) => Ok(()),
        (s, b) => Err(format!("HTTP {s}: {b}")),
    });
    (proc, prom)
}

/// Every rule group loaded and evaluated without error.
fn check_rule_groups(prom: &Prometheus, shipped: &[promql::Rule]) {
    wait_for("rules evaluated without error", WAIT, || {
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
        wait_for(
            &format!("metric {name} (read by a rule) in the scrape"),
            WAIT,
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
    wait_for("every dashboard query returns data", WAIT, || {
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
    let alerts = wait_for("the hung node's alerts", WAIT, || {
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
    let tmp = TempDir::new("leanpoint-prometheus-e2e");
    let (_sim, upstreams, hung) = start_sim(tmp.path());
    let (_leanpoint, lp_addr) = start_leanpoint(&upstreams);
    let (_prometheus, prom) = start_prometheus(tmp.path(), repo, lp_addr);

    wait_for("leanpoint scraped", WAIT, || {
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
