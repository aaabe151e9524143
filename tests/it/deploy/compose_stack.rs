//! Static checks of the compose stack (docker-compose.yml, Dockerfile,
//! deploy/): every file the stack mounts or copies exists in the repository,
//! and the pieces name each other consistently (scrape target and leanpoint's
//! port, rule glob and the mounted alerts/, Grafana's dashboard path and the
//! mounted dashboards/, the upstreams file and the devnet's nodes).
//!
//! `docker-compose config -q`, `promtool check config` and `amtool
//! check-config` validate each file's syntax; this checks what they cannot.

use std::path::{Path, PathBuf};

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml(rel: &str) -> Value {
    let text = std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn compose() -> Value {
    yaml("docker-compose.yml")
}

/// (source, target) of each bind mount of `service` ("./src:/dst[:ro]").
fn bind_mounts(c: &Value, service: &str) -> Vec<(String, String)> {
    let vols = c["services"][service]["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    vols.iter()
        .filter_map(Value::as_str)
        .filter(|v| v.starts_with("./"))
        .map(|v| {
            let mut parts = v.split(':');
            let src = parts.next().unwrap_or("").to_string();
            let dst = parts.next().unwrap_or("").to_string();
            (src, dst)
        })
        .collect()
}

fn mount_source(c: &Value, service: &str, target: &str) -> String {
    bind_mounts(c, service)
        .into_iter()
        .find(|(_, dst)| dst == target)
        .map(|(src, _)| src)
        .unwrap_or_else(|| panic!("service {service} mounts nothing at {target}"))
}

/// The entry of the list `doc[list]` that `pick` accepts; panics with
/// `wanted` if there is none.
fn entry<'a>(doc: &'a Value, list: &str, wanted: &str, pick: impl Fn(&Value) -> bool) -> &'a Value {
    doc[list]
        .as_array()
        .unwrap_or_else(|| panic!("{list} is not a list"))
        .iter()
        .find(|v| pick(v))
        .unwrap_or_else(|| panic!("{wanted}"))
}

fn services(c: &Value) -> Vec<String> {
    let map = c["services"].as_object().expect("services");
    map.keys().cloned().collect()
}

#[test]
fn every_mounted_file_exists_in_the_repository() {
    let c = compose();
    let named: Vec<String> = c["volumes"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let mut mounts = 0;
    for s in services(&c) {
        for v in c["services"][&s]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let v = v.as_str().expect("short volume syntax");
            let src = v.split(':').next().unwrap_or("");
            if src.starts_with("./") {
                let path = repo().join(src);
                assert!(
                    path.exists(),
                    "service {s} mounts {src}, which is not in the repository"
                );
                mounts += 1;
            } else {
                assert!(
                    named.contains(&src.to_string()),
                    "service {s}: volume {src} not declared"
                );
            }
        }
        if let Some(ctx) = c["services"][&s]["build"]["context"].as_str() {
            let file = c["services"][&s]["build"]["dockerfile"]
                .as_str()
                .unwrap_or("Dockerfile");
            assert!(
                repo().join(ctx).join(file).is_file(),
                "service {s}: no {file} in {ctx}"
            );
        }
    }
    assert!(mounts >= 6, "only {mounts} bind mounts checked");
}

#[test]
fn dockerfile_copies_only_what_exists_and_dockerignore_lets_it_in() {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).expect(".dockerignore");
    for line in text
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        for src in &words[1..words.len() - 1] {
            assert!(
                repo().join(src).exists(),
                "Dockerfile copies {src}, which does not exist"
            );
            let allowed = format!("!{}", src.trim_end_matches('/'));
            assert!(
                ignore.lines().any(|l| l.trim_end_matches('/') == allowed),
                ".dockerignore does not let {src} into the build context"
            );
        }
    }
    assert!(text.contains("--locked"), "the build must use Cargo.lock");
    assert!(text.contains("\nUSER "), "the runtime must not run as root");
}

#[test]
fn leanpoint_service_sets_fd_limit_and_healthcheck() {
    let c = compose();
    let lp = &c["services"]["leanpoint"];
    let nofile = &lp["ulimits"]["nofile"];
    assert!(
        nofile["soft"].as_u64().is_some() && nofile["hard"].as_u64().is_some(),
        "ulimits.nofile"
    );
    let test = lp["healthcheck"]["test"].to_string();
    assert!(
        test.contains("/livez"),
        "healthcheck must ask /livez: {test}"
    );
    let admin = lp["environment"]["LEANPOINT_ADMIN_PORT"]
        .as_str()
        .expect("LEANPOINT_ADMIN_PORT");
    assert!(
        test.contains(&format!("/dev/tcp/127.0.0.1/{admin}")),
        "healthcheck must ask the admin listener ({admin}): {test}"
    );
    for s in [
        "devnet",
        "leanpoint",
        "prometheus",
        "alertmanager",
        "grafana",
    ] {
        assert!(c["services"].get(s).is_some(), "service {s} missing");
    }
}

/// Prometheus scrapes leanpoint's admin listener, loads the mounted rules and
/// alerts the Alertmanager service.
#[test]
fn prometheus_config_matches_the_stack() {
    let c = compose();
    let prom = yaml("deploy/prometheus/prometheus.yml");
    let port = c["services"]["leanpoint"]["environment"]["LEANPOINT_ADMIN_PORT"]
        .as_str()
        .expect("LEANPOINT_ADMIN_PORT: Prometheus scrapes the admin listener");
    let job = entry(
        &prom,
        "scrape_configs",
        "a scrape job named leanpoint (the rules select job=\"leanpoint\")",
        |j| j["job_name"] == "leanpoint",
    );
    let target = job["static_configs"][0]["targets"][0]
        .as_str()
        .unwrap_or("");
    assert_eq!(target, format!("leanpoint:{port}"));

    for pattern in prom["rule_files"].as_array().expect("rule_files") {
        let pattern = pattern.as_str().expect("rule file pattern");
        let (dir, glob) = pattern.rsplit_once('/').expect("absolute pattern");
        let src = mount_source(&c, "prometheus", dir);
        let suffix = glob.trim_start_matches('*');
        let found = std::fs::read_dir(repo().join(&src))
            .expect("mounted rules dir")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(suffix))
            })
            .count();
        assert!(found >= 4, "{pattern} matches {found} files in {src}");
    }
    let am = prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0]
        .as_str()
        .unwrap_or("");
    assert_eq!(am.split(':').next(), Some("alertmanager"));
    let config = mount_source(&c, "prometheus", "/etc/prometheus/prometheus.yml");
    assert_eq!(config, "./deploy/prometheus/prometheus.yml");
}

#[test]
fn grafana_provisioning_matches_the_mounts() {
    let c = compose();
    let provisioning = mount_source(&c, "grafana", "/etc/grafana/provisioning");
    let providers = yaml(&format!(
        "{}/dashboards/leanpoint.yml",
        provisioning.trim_start_matches("./")
    ));
    let path = providers["providers"][0]["options"]["path"]
        .as_str()
        .expect("provider path");
    assert_eq!(mount_source(&c, "grafana", path), "./dashboards");
    let ds = yaml(&format!(
        "{}/datasources/leanpoint.yml",
        provisioning.trim_start_matches("./")
    ));
    let prom = entry(&ds, "datasources", "a prometheus data source", |d| {
        d["type"] == "prometheus"
    });
    assert_eq!(prom["uid"], "prometheus", "fixed uid");
    assert_eq!(prom["url"], "http://prometheus:9090");
    let home = c["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
        .as_str()
        .expect("home dashboard");
    let file = Path::new(home).file_name().expect("file name");
    assert!(
        repo().join("dashboards").join(file).is_file(),
        "home dashboard {home} not shipped"
    );
}

/// The upstreams file leanpoint mounts is valid for leanpoint itself and
/// names exactly the devnet's nodes (BASE..BASE+N on the devnet service).
#[test]
fn upstreams_file_names_the_devnet_nodes() {
    let c = compose();
    let rel = mount_source(&c, "leanpoint", "/etc/leanpoint/upstreams.json");
    let upstreams = leanpoint::config::load_upstreams_file(&repo().join(&rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"));
    let args: Vec<String> = c["services"]["devnet"]["command"]
        .as_array()
        .expect("devnet command list")
        .iter()
        .map(|a| a.as_str().expect("string argument").to_string())
        .collect();
    let after = |flag: &str| {
        let i = args
            .iter()
            .position(|a| a == flag)
            .unwrap_or_else(|| panic!("devnet without {flag}"));
        args[i + 1].clone()
    };
    let base: u16 = after("--base-port").parse().expect("base port");
    let nodes: usize = after("--nodes")
        .split(',')
        .map(|g| {
            g.split(':')
                .next()
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(1)
        })
        .sum();
    assert!(
        after("--nodes").contains("accept-hang"),
        "the devnet must include a hung node"
    );
    assert_eq!(
        upstreams.len(),
        nodes,
        "{rel}: one upstream per devnet node"
    );
    for (i, u) in upstreams.iter().enumerate() {
        assert_eq!(u.url.host_str(), Some("devnet"), "{}", u.name);
        assert_eq!(u.url.port(), Some(base + i as u16), "{}", u.name);
    }
}

/// The Dockerfile builds from Cargo.toml, Cargo.lock and src/ alone
/// (.dockerignore admits nothing else). cargo demands the file of a
/// `[[bench]]`/`[[test]]`/`[[example]]` target at load time only when it has to
/// infer its path, so every such table must name its path, or the image build
/// fails on a file the build context leaves out (benches/micro.rs did).
#[test]
fn explicit_cargo_targets_name_their_path() {
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).expect("Cargo.toml");
    let mut table: Option<String> = None;
    let mut has_path = false;
    let mut missing = Vec::new();
    for line in manifest
        .lines()
        .map(str::trim)
        .chain(std::iter::once("[end]"))
    {
        if line.starts_with('[') {
            if let Some(t) = table.take() {
                if !has_path {
                    missing.push(t);
                }
            }
            if ["[[bench]]", "[[test]]", "[[example]]"].contains(&line) {
                table = Some(line.to_string());
                has_path = false;
            }
        } else if table.is_some() && line.starts_with("path") {
            has_path = true;
        }
    }
    assert!(
        missing.is_empty(),
        "Cargo.toml target tables without `path`: {missing:?}"
    );
}
