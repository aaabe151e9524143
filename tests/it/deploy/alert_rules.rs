//! Static checks of the shipped alert rules (`alerts/*.rules.yml`), their
//! promtool unit tests (`alerts/tests/`) and RUNBOOK.md, so that none of them
//! drifts from the others: every alert has a severity, a summary, a
//! description and a runbook link to an existing section, a documented
//! threshold, and a unit test that sees it silent and then firing.
//!
//! promtool itself (`promtool check rules`, `promtool test rules`) checks the
//! PromQL and the alert behaviour; scripts/prometheus-e2e.sh runs the
//! expressions against a real leanpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

const RUNBOOK_BASE: &str = "https://github.com/blockblaz/leanpoint/blob/main/RUNBOOK.md";
const SEVERITIES: [&str; 3] = ["critical", "warning", "info"];
/// Alerts whose value is a constant (0, or absent's 1): nothing to show.
const NO_VALUE: [&str; 3] = [
    "LeanpointDown",
    "LeanpointAbsent",
    "LeanpointServedStateMissing",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &str, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
        .unwrap_or_else(|e| panic!("reading {dir}: {e}"))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no {suffix} files in {dir}");
    out
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Every rule of every rule file: (file name, rule).
fn rules() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for path in files("alerts", ".rules.yml") {
        let name = path
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .to_string();
        let doc = yaml(&path);
        let groups = doc["groups"].as_array().expect("groups list");
        for g in groups {
            for r in g["rules"].as_array().expect("rules list") {
                out.push((name.clone(), r.clone()));
            }
        }
    }
    out
}

fn alerts() -> Vec<(String, Value)> {
    rules()
        .into_iter()
        .filter(|(_, r)| r.get("alert").is_some())
        .collect()
}

/// Prometheus durations as used in the tests: 90s, 15m, 2h, 1h30m.
fn seconds(d: &str) -> u64 {
    let mut total = 0;
    let mut num = String::new();
    for c in d.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().unwrap_or_else(|_| panic!("bad duration {d:?}"));
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => panic!("bad duration unit in {d:?}"),
        };
        num.clear();
    }
    assert!(num.is_empty(), "duration {d:?} lacks a unit");
    total
}

#[test]
fn every_alert_has_severity_summary_description_and_runbook_link() {
    let runbook = std::fs::read_to_string(repo().join("RUNBOOK.md")).expect("RUNBOOK.md");
    let alerts = alerts();
    assert!(alerts.len() >= 20, "only {} alerts", alerts.len());
    let mut names = BTreeSet::new();
    for (file, a) in &alerts {
        let name = str_at(a, "alert").expect("alert name");
        assert!(names.insert(name.to_string()), "{name} defined twice");
        assert!(
            name.starts_with("Leanpoint"),
            "{file}: {name}: not Leanpoint*"
        );
        let severity = str_at(&a["labels"], "severity").unwrap_or("");
        assert!(
            SEVERITIES.contains(&severity),
            "{file}: {name}: severity {severity:?}"
        );
        for key in ["summary", "description"] {
            let text = str_at(&a["annotations"], key).unwrap_or("");
            assert!(
                text.len() > 20,
                "{file}: {name}: {key} missing or too short"
            );
        }
        let url = str_at(&a["annotations"], "runbook_url").unwrap_or("");
        let anchor = name.to_lowercase();
        assert_eq!(
            url,
            format!("{RUNBOOK_BASE}#{anchor}"),
            "{file}: {name}: runbook_url"
        );
        assert!(
            runbook.lines().any(|l| l == format!("### {name}")),
            "RUNBOOK.md has no section '### {name}'"
        );
        assert!(
            runbook.contains(&format!("| {name} |")),
            "RUNBOOK.md#thresholds does not list {name}"
        );
    }
}

/// Annotations that describe one upstream must name it; the value is shown
/// wherever the alert has one worth showing.
#[test]
fn per_upstream_alerts_name_the_upstream() {
    for (file, a) in alerts() {
        let name = str_at(&a, "alert").expect("alert name");
        let expr = str_at(&a, "expr").expect("expr");
        let summary = str_at(&a["annotations"], "summary").unwrap_or("");
        if expr.contains("leanpoint_upstream_") && !expr.contains("requests_in_flight >") {
            assert!(
                summary.contains("{{ $labels.upstream }}"),
                "{file}: {name}: summary does not name the upstream"
            );
        }
        let description = str_at(&a["annotations"], "description").unwrap_or("");
        if !NO_VALUE.contains(&name) {
            assert!(
                description.contains("$value") || summary.contains("$value"),
                "{file}: {name}: neither summary nor description shows the value"
            );
        }
    }
}

/// Thresholds are overridable by editing one marked line: each alert's
/// expression is preceded by a `# threshold:` comment.
#[test]
fn every_alert_marks_its_threshold() {
    for path in files("alerts", ".rules.yml") {
        let text = std::fs::read_to_string(&path).expect("rule file");
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(name) = line.trim().strip_prefix("- alert: ") else {
                continue;
            };
            assert!(
                lines
                    .get(i + 1)
                    .is_some_and(|l| l.trim().starts_with("# threshold:")),
                "{}: {name}: the line after '- alert:' must be a '# threshold:' comment",
                path.display()
            );
        }
    }
}

#[test]
fn recording_rules_follow_the_naming_convention() {
    let records: Vec<String> = rules()
        .iter()
        .filter_map(|(_, r)| str_at(r, "record").map(str::to_string))
        .collect();
    assert!(records.contains(&"leanpoint:process_fd_utilisation:ratio".to_string()));
    for r in records {
        assert_eq!(r.split(':').count(), 3, "{r}: not level:metric:operation");
        assert!(r.starts_with("leanpoint:"), "{r}");
    }
}

/// Each alert's unit tests: eval times where it must not fire, and where it
/// must fire.
fn unit_test_times() -> BTreeMap<String, (Vec<u64>, Vec<u64>)> {
    let mut out: BTreeMap<String, (Vec<u64>, Vec<u64>)> = BTreeMap::new();
    for path in files("alerts/tests", ".yml") {
        let doc = yaml(&path);
        for rf in doc["rule_files"].as_array().expect("rule_files") {
            let rf = rf.as_str().expect("rule file path");
            let resolved = path.parent().expect("test dir").join(rf);
            assert!(
                resolved.is_file(),
                "{}: rule file {rf} missing",
                path.display()
            );
        }
        for t in doc["tests"].as_array().expect("tests list") {
            let Some(cases) = t.get("alert_rule_test").and_then(Value::as_array) else {
                continue;
            };
            for c in cases {
                let name = str_at(c, "alertname").expect("alertname").to_string();
                let at = seconds(str_at(c, "eval_time").expect("eval_time"));
                let firing = c["exp_alerts"].as_array().is_some_and(|a| !a.is_empty());
                let entry = out.entry(name).or_default();
                if firing {
                    entry.1.push(at);
                } else {
                    entry.0.push(at);
                }
            }
        }
    }
    out
}

#[test]
fn every_alert_is_unit_tested_silent_then_firing() {
    let times = unit_test_times();
    let names: BTreeSet<String> = alerts()
        .iter()
        .map(|(_, a)| str_at(a, "alert").expect("alert").to_string())
        .collect();
    for name in &names {
        let (silent, firing) = times
            .get(name)
            .unwrap_or_else(|| panic!("{name} has no promtool unit test in alerts/tests"));
        let first_silent = silent.iter().min();
        let last_firing = firing.iter().max();
        match (first_silent, last_firing) {
            (Some(s), Some(f)) if s < f => {}
            _ => panic!("{name}: needs a test where it does not fire, then a later one where it fires (silent at {silent:?}, firing at {firing:?})"),
        }
    }
    for tested in times.keys() {
        assert!(
            names.contains(tested),
            "alerts/tests test unknown alert {tested}"
        );
    }
}

/// The tests' expectations are exact copies of the rules' labels and of the
/// runbook link: a rule changed without its test fails promtool, and this
/// catches a test file that stopped loading a rule file.
#[test]
fn every_rule_file_is_loaded_by_a_test_file() {
    let mut loaded = BTreeSet::new();
    for path in files("alerts/tests", ".yml") {
        for rf in yaml(&path)["rule_files"].as_array().expect("rule_files") {
            let p = path.parent().expect("dir").join(rf.as_str().expect("path"));
            let canon = p.canonicalize().expect("rule file exists");
            loaded.insert(canon);
        }
    }
    for f in files("alerts", ".rules.yml") {
        let canon = f.canonicalize().expect("rule file");
        assert!(
            loaded.contains(&canon),
            "{} is loaded by no test",
            f.display()
        );
    }
}
