//! The PromQL the repository ships: every dashboard query (with Grafana's
//! variables filled in as Grafana would for "All") and every rule expression
//! (verbatim), plus the metric names an expression reads.

use std::path::Path;

use serde_json::Value;

/// One query of one dashboard panel (or annotation).
pub struct PanelQuery {
    pub place: String,
    pub expr: String,
    /// Annotations may legitimately match nothing; panels may not.
    pub must_return_data: bool,
}

/// One rule: alert or record name, its expression and its `for`.
pub struct Rule {
    pub file: String,
    pub name: String,
    pub expr: String,
}

/// Grafana's variables as they expand for a dashboard opened with "All"
/// selected (allValue `.+`) and a 1 s scrape interval.
pub fn substitute(expr: &str) -> String {
    let mut out = expr
        .replace("$__rate_interval", "10s")
        .replace("${__rate_interval}", "10s")
        .replace("$__interval", "5s")
        .replace("$__range", "1m");
    for var in ["job", "instance", "upstream"] {
        out = out
            .replace(&format!("${{{var}}}"), ".+")
            .replace(&format!("${var}"), ".+");
    }
    assert!(!out.contains('$'), "unsubstituted variable in {out}");
    out
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sorted_files(dir: &Path, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}

/// Every target of every panel (rows' nested panels included) and every
/// annotation query of every dashboard in `dir`.
pub fn dashboard_queries(dir: &Path) -> Vec<PanelQuery> {
    let mut out = Vec::new();
    for path in sorted_files(dir, ".json") {
        let d = read_json(&path);
        let file = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        let mut panels: Vec<&Value> = Vec::new();
        for p in d["panels"].as_array().expect("panels") {
            panels.push(p);
            panels.extend(p["panels"].as_array().into_iter().flatten());
        }
        for p in panels {
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push(PanelQuery {
                    place: format!("{file}: {} / {}", p["title"], t["refId"]),
                    expr: substitute(t["expr"].as_str().expect("target expr")),
                    must_return_data: true,
                });
            }
        }
        for a in d["annotations"]["list"].as_array().into_iter().flatten() {
            if let Some(expr) = a["expr"].as_str() {
                out.push(PanelQuery {
                    place: format!("{file}: annotation {}", a["name"]),
                    expr: substitute(expr),
                    must_return_data: false,
                });
            }
        }
    }
    out
}

/// Every rule of every `*.rules.yml` in `dir`, expressions verbatim.
pub fn rules(dir: &Path) -> Vec<Rule> {
    let mut out = Vec::new();
    for path in sorted_files(dir, ".rules.yml") {
        let text = std::fs::read_to_string(&path).expect("rule file");
        let doc: Value =
            serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let file = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        for g in doc["groups"].as_array().expect("groups") {
            for r in g["rules"].as_array().expect("rules") {
                let name = r["alert"]
                    .as_str()
                    .or(r["record"].as_str())
                    .expect("alert or record");
                out.push(Rule {
                    file: file.clone(),
                    name: name.to_string(),
                    expr: r["expr"].as_str().expect("expr").to_string(),
                });
            }
        }
    }
    out
}

/// Rule files with every `for:` shortened to `for_`, nothing else changed:
/// the test cannot wait minutes, the expressions must stay the shipped ones.
pub fn shorten_for(text: &str, for_: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("for: ") {
            let indent = &line[..line.len() - trimmed.len()];
            out.push_str(&format!("{indent}for: {for_}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Operators, modifiers and aggregations: never metric names here, even when
/// not directly followed by '(' (`max by (job) (...)`).
/// (The grouping and matching modifiers are in [`GROUPING`].)
const KEYWORDS: [&str; 19] = [
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];

/// Modifiers followed by a label list, `by (job)`: never metric names, and
/// neither is anything in their parentheses.
const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Metric names (and recording-rule names) an expression selects: identifiers
/// outside strings, label matchers, ranges and grouping lists that are not
/// keywords and not called as functions.
pub fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    let mut skip_list = false; // the next '(' opens a label list (by, on, ...)
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => i = skip_until(&chars, i + 1, c) + 1,
            '{' => i = skip_until(&chars, i + 1, '}') + 1,
            '[' => i = skip_until(&chars, i + 1, ']') + 1,
            '(' if skip_list => {
                skip_list = false;
                i = skip_until(&chars, i + 1, ')') + 1;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = chars[i..].iter().find(|c| !c.is_whitespace());
                let lower = word.to_lowercase();
                if GROUPING.contains(&lower.as_str()) {
                    skip_list = next == Some(&'(');
                } else if !KEYWORDS.contains(&lower.as_str()) && next != Some(&'(') {
                    names.push(word);
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                // A number or a duration (5m, 1h30m): digits then unit letters.
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    names.sort();
    names.dedup();
    names
}

fn skip_until(chars: &[char], mut i: usize, end: char) -> usize {
    while i < chars.len() && chars[i] != end {
        i += 1;
    }
    i
}

#[test]
fn metric_names_skips_functions_labels_and_keywords() {
    let expr = r#"predict_linear(process_open_fds{job="leanpoint"}[1h], 4 * 3600) > process_max_fds{job="leanpoint"}
  and leanpoint:process_fd_utilisation:ratio > 0.1"#;
    assert_eq!(
        metric_names(expr),
        [
            "leanpoint:process_fd_utilisation:ratio",
            "process_max_fds",
            "process_open_fds"
        ]
    );
    let expr =
        "max by (job, instance) (a > 0) - on (job, instance) group_right () b and on(x) (c == 1)";
    assert_eq!(metric_names(expr), ["a", "b", "c"]);
    assert_eq!(metric_names("time() - up offset 5m"), ["up"]);
}

#[test]
fn shorten_for_changes_only_for_lines() {
    let text = "      - alert: X\n        expr: a > 1\n        for: 10m\n";
    assert_eq!(
        shorten_for(text, "1s"),
        "      - alert: X\n        expr: a > 1\n        for: 1s\n"
    );
}
