//! The Kubernetes base (`deploy/kubernetes`) against the rest of the repo:
//! the PrometheusRule carries exactly the groups of `alerts/*.rules.yml`
//! (the operator evaluates what promtool tested), and the names that tie
//! the manifests together agree (ports, selectors, probes, the job label the
//! rules select on). scripts/check-k8s.sh renders the base with kubectl and
//! validates it against the Kubernetes schema.

use std::path::{Path, PathBuf};

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn manifest(name: &str) -> Value {
    yaml(&repo().join("deploy/kubernetes").join(name))
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .fold(v, |v, key| match key.parse::<usize>() {
            Ok(i) => &v[i],
            Err(_) => &v[key],
        })
}

#[test]
fn prometheus_rule_has_exactly_the_groups_of_alerts() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("alerts"))
        .expect("alerts/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".rules.yml"))
        .collect();
    files.sort();
    let mut want = Vec::new();
    for f in &files {
        let groups = yaml(f)["groups"].as_array().cloned();
        want.extend(groups.unwrap_or_else(|| panic!("{}: no groups", f.display())));
    }
    assert!(!want.is_empty(), "no rule groups in alerts/");
    let rule = manifest("prometheusrule.yaml");
    assert_eq!(rule["kind"], "PrometheusRule");
    let got = at(&rule, "spec.groups").as_array().expect("spec.groups");
    let names = |g: &[Value]| -> Vec<String> { g.iter().map(|g| g["name"].to_string()).collect() };
    assert_eq!(
        names(got),
        names(&want),
        "deploy/kubernetes/prometheusrule.yaml is stale: run scripts/gen-k8s-rules.sh"
    );
    assert!(
        got == &want,
        "deploy/kubernetes/prometheusrule.yaml differs from alerts/: run scripts/gen-k8s-rules.sh"
    );
}

#[test]
fn kustomization_lists_every_manifest() {
    let k = manifest("kustomization.yaml");
    let listed: Vec<&str> = k["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let dir = repo().join("deploy/kubernetes");
    for entry in std::fs::read_dir(&dir).expect("deploy/kubernetes") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .to_string();
        if name.ends_with(".yaml") && name != "kustomization.yaml" {
            assert!(
                listed.contains(&name.as_str()),
                "{name} is not in kustomization.yaml"
            );
        }
    }
    let generated = at(&k, "configMapGenerator.0.files.0")
        .as_str()
        .expect("file");
    let upstreams = std::fs::read_to_string(dir.join(generated)).expect("upstreams.json");
    let parsed: Value = serde_json::from_str(&upstreams).expect("upstreams.json is JSON");
    assert!(parsed["upstreams"]
        .as_array()
        .is_some_and(|u| !u.is_empty()));
}

#[test]
fn names_tie_the_manifests_together() {
    let deploy = manifest("deployment.yaml");
    let service = manifest("service.yaml");
    let monitor = manifest("servicemonitor.yaml");
    let pdb = manifest("poddisruptionbudget.yaml");
    let pod = at(&deploy, "spec.template");
    let container = at(pod, "spec.containers.0");
    let pod_labels = at(pod, "metadata.labels");

    // The rules in alerts/ select job="leanpoint"; the operator sets job to
    // the Service's name.
    assert_eq!(at(&service, "metadata.name"), "leanpoint");
    for selector in [
        at(&service, "spec.selector"),
        at(&deploy, "spec.selector.matchLabels"),
        at(&pdb, "spec.selector.matchLabels"),
    ] {
        for (k, v) in selector.as_object().expect("selector") {
            assert_eq!(&pod_labels[k], v, "selector {k} does not match the pod");
        }
    }
    for (k, v) in at(&monitor, "spec.selector.matchLabels")
        .as_object()
        .expect("selector")
    {
        assert_eq!(
            &at(&service, "metadata.labels")[k],
            v,
            "ServiceMonitor misses the Service"
        );
    }
    let port = at(container, "ports.0.name");
    assert_eq!(at(&service, "spec.ports.0.targetPort"), port);
    // Probes and the scrape go to the admin listener: the container port
    // named "admin" is the one LEANPOINT_ADMIN_PORT opens, the Service
    // carries it, and the ServiceMonitor scrapes that Service port.
    let env = container["env"].as_array().expect("env");
    let env_value = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str())
            .unwrap_or_else(|| panic!("{name} not in the container's env"))
            .to_string()
    };
    let ports = container["ports"].as_array().expect("ports");
    let admin = ports
        .iter()
        .find(|p| p["name"] == "admin")
        .expect("a container port named admin");
    assert_eq!(
        admin["containerPort"].to_string(),
        env_value("LEANPOINT_ADMIN_PORT")
    );
    let scraped = at(&monitor, "spec.endpoints.0.port");
    let service_port = service["spec"]["ports"]
        .as_array()
        .expect("Service ports")
        .iter()
        .find(|p| &p["name"] == scraped)
        .unwrap_or_else(|| panic!("the ServiceMonitor's port {scraped} is not the Service's"));
    assert_eq!(service_port["targetPort"], "admin");
    assert_eq!(at(&monitor, "spec.endpoints.0.path"), "/metrics");
    for (probe, path) in [
        ("livenessProbe", "/livez"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/livez"),
    ] {
        assert_eq!(at(container, &format!("{probe}.httpGet.path")), path);
        assert_eq!(at(container, &format!("{probe}.httpGet.port")), "admin");
    }

    // Non-root, read-only root filesystem, and the config where the env says.
    assert_eq!(at(pod, "spec.securityContext.runAsNonRoot"), true);
    assert_eq!(
        at(container, "securityContext.readOnlyRootFilesystem"),
        true
    );
    let config = env
        .iter()
        .find(|e| e["name"] == "LEANPOINT_UPSTREAMS_CONFIG")
        .expect("LEANPOINT_UPSTREAMS_CONFIG");
    let mount = at(container, "volumeMounts.0.mountPath")
        .as_str()
        .expect("mount");
    let path = config["value"].as_str().expect("value");
    assert_eq!(Path::new(path).parent(), Some(Path::new(mount)));
    assert!(container["resources"]["limits"]["memory"].is_string());
}
