//! Static checks of the Grafana dashboards in `dashboards/`: importable as is
//! (no `__inputs`, a stable uid) and provisionable, every panel and target on
//! the templated data source, and the grafana/dashboard-linter rules that
//! matter for leanpoint (job/instance variables, `$__rate_interval`, units
//! and descriptions).
//!
//! Whether each query returns data from a real leanpoint is
//! scripts/prometheus-e2e.sh's job.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{json, Value};

fn dashboards() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dashboards");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("dashboards/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).expect("dashboard file");
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", path.display()));
            out.push((path.display().to_string(), v));
        }
    }
    assert!(!out.is_empty(), "no dashboards");
    out
}

/// Every panel, including those nested in collapsed rows.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        out.push(p);
        if let Some(inner) = p.get("panels").and_then(Value::as_array) {
            out.extend(inner.iter());
        }
    }
    out
}

/// Every query target of every panel, with its panel's title.
fn targets(d: &Value) -> Vec<(&str, &Value)> {
    panels(d)
        .into_iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or("?");
            p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |t| (title, t))
        })
        .collect()
}

fn templated_ds() -> Value {
    json!({"type": "prometheus", "uid": "${datasource}"})
}

fn variable<'a>(d: &'a Value, name: &str) -> &'a Value {
    d["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no template variable {name}"))
}

#[test]
fn dashboards_are_importable_and_provisionable() {
    let mut uids = BTreeSet::new();
    for (file, d) in dashboards() {
        assert!(
            d.get("__inputs").is_none(),
            "{file}: has __inputs (export for sharing externally off)"
        );
        assert!(d.get("__requires").is_none(), "{file}: has __requires");
        let uid = d["uid"].as_str().unwrap_or("");
        assert!(!uid.is_empty() && uid.len() <= 40, "{file}: uid {uid:?}");
        assert!(uids.insert(uid.to_string()), "{file}: uid {uid} used twice");
        let schema = d["schemaVersion"].as_u64().unwrap_or(0);
        assert!(
            (36..=41).contains(&schema),
            "{file}: schemaVersion {schema}"
        );
        assert!(
            d["id"].is_null(),
            "{file}: id must be null so provisioning assigns one"
        );
        assert!(
            !d.to_string().contains("DS_PROMETHEUS"),
            "{file}: refers to ${{DS_PROMETHEUS}}; use ${{datasource}}"
        );
    }
}

#[test]
fn variables_datasource_job_instance_upstream() {
    for (file, d) in dashboards() {
        let ds = variable(&d, "datasource");
        assert_eq!(ds["type"], "datasource", "{file}");
        assert_eq!(ds["query"], "prometheus", "{file}");
        for (name, label) in [
            ("job", "Job"),
            ("instance", "Instance"),
            ("upstream", "Upstream"),
        ] {
            let v = variable(&d, name);
            assert_eq!(v["type"], "query", "{file}: {name}");
            assert_eq!(v["label"], label, "{file}: {name}");
            assert_eq!(v["datasource"], templated_ds(), "{file}: {name}");
            assert_eq!(v["multi"], true, "{file}: {name} must be multi-select");
            assert_eq!(v["includeAll"], true, "{file}: {name} must include All");
            assert_eq!(v["allValue"], ".+", "{file}: {name}");
        }
        let upstream_query = variable(&d, "upstream")["definition"]
            .as_str()
            .unwrap_or("");
        assert_eq!(
            upstream_query,
            r#"label_values(leanpoint_upstream_up{job=~"$job",instance=~"$instance"}, upstream)"#,
            "{file}"
        );
    }
}

#[test]
fn every_panel_and_target_uses_the_templated_datasource() {
    for (file, d) in dashboards() {
        for p in panels(&d) {
            let title = p["title"].as_str().unwrap_or("?");
            assert_eq!(p["datasource"], templated_ds(), "{file}: panel {title:?}");
        }
        for (title, t) in targets(&d) {
            assert_eq!(
                t["datasource"],
                templated_ds(),
                "{file}: panel {title:?} target"
            );
        }
        for a in d["annotations"]["list"].as_array().expect("annotations") {
            if a.get("builtIn").is_none() {
                assert_eq!(a["datasource"], templated_ds(), "{file}: annotation");
            }
        }
    }
}

#[test]
fn every_panel_has_a_description_and_a_unit() {
    for (file, d) in dashboards() {
        let mut ids = BTreeSet::new();
        for p in panels(&d) {
            let title = p["title"].as_str().unwrap_or("");
            assert!(!title.is_empty(), "{file}: panel without title");
            assert!(
                ids.insert(p["id"].as_u64().expect("panel id")),
                "{file}: {title}: duplicate id"
            );
            if p["type"] == "row" {
                continue;
            }
            let desc = p["description"].as_str().unwrap_or("");
            assert!(desc.len() > 20, "{file}: {title}: description missing");
            let unit = p["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or("");
            assert!(!unit.is_empty(), "{file}: {title}: unit missing");
            assert!(
                !p["targets"].as_array().is_none_or(Vec::is_empty),
                "{file}: {title}: no targets"
            );
        }
    }
}

/// Each query filters by the job and instance variables, and every range in
/// a rate, irate or increase is `$__rate_interval`.
#[test]
fn every_query_selects_job_and_instance_and_uses_rate_interval() {
    for (file, d) in dashboards() {
        for (title, t) in targets(&d) {
            let expr = t["expr"].as_str().unwrap_or("");
            assert!(!expr.is_empty(), "{file}: {title}: empty expr");
            for selector in expr.split('{').skip(1) {
                let body = selector.split('}').next().unwrap_or("");
                assert!(
                    body.contains(r#"job=~"$job""#),
                    "{file}: {title}: {expr}: selector without job"
                );
                assert!(
                    body.contains(r#"instance=~"$instance""#),
                    "{file}: {title}: {expr}: selector without instance"
                );
            }
            for func in ["rate(", "increase(", "changes("] {
                for rest in expr.split(func).skip(1) {
                    let range = rest.split('[').nth(1).and_then(|r| r.split(']').next());
                    assert_eq!(range, Some("$__rate_interval"), "{file}: {title}: {expr}");
                }
            }
            let legend = t["legendFormat"].as_str();
            assert!(legend.is_some(), "{file}: {title}: legendFormat missing");
        }
    }
}

#[test]
fn panels_do_not_overlap() {
    for (file, d) in dashboards() {
        let mut cells = BTreeSet::new();
        for p in d["panels"].as_array().expect("panels") {
            let g = &p["gridPos"];
            let (x, y, w, h) = (
                g["x"].as_u64(),
                g["y"].as_u64(),
                g["w"].as_u64(),
                g["h"].as_u64(),
            );
            let (Some(x), Some(y), Some(w), Some(h)) = (x, y, w, h) else {
                panic!("{file}: {}: gridPos incomplete", p["title"]);
            };
            assert!(x + w <= 24, "{file}: {}: wider than the grid", p["title"]);
            for cx in x..x + w {
                for cy in y..y + h {
                    assert!(
                        cells.insert((cx, cy)),
                        "{file}: {} overlaps another panel",
                        p["title"]
                    );
                }
            }
        }
    }
}
