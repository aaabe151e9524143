//! `leanpoint convert-validator-config`: lean-quickstart's YAML to an
//! upstreams.json that leanpoint loads, never carrying a private key.

use std::process::Command;

use crate::support::{TempDir, BIN};

fn convert(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("convert-validator-config")
        .args(args)
        .output()
        .expect("run leanpoint");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn fixture() -> String {
    format!(
        "{}/tests/fixtures/lean-quickstart/validator-config.yaml",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn yaml_file(dir: &TempDir, name: &str, text: &str) -> std::path::PathBuf {
    dir.write(name, text)
}

#[test]
fn the_quickstart_fixture_converts_to_three_loadable_upstreams() {
    let (code, stdout, stderr) = convert(&[&fixture()]);
    assert_eq!(code, 0, "{stderr}");
    let tmp = TempDir::new();
    let out = tmp.write("converted.json", &stdout);
    let ups = leanpoint::config::load_upstreams_file(&out).expect("leanpoint loads it");
    let got: Vec<_> = ups
        .iter()
        .map(|u| (u.name.as_str(), u.url.as_str(), u.path.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("zeam_0", "http://127.0.0.1:5051/", "/status"),
            ("zeam_1", "http://127.0.0.1:5052/", "/status"),
            ("ethlambda_0", "http://127.0.0.1:5053/", "/status"),
        ]
    );
    assert!(
        stdout.starts_with("{\n  \"upstreams\": ["),
        "pretty JSON: {stdout}"
    );

    let (code, docker, _) = convert(&[&fixture(), "--docker"]);
    assert_eq!(code, 0);
    assert!(
        docker.contains("\"url\": \"http://host.docker.internal:5052\""),
        "{docker}"
    );
    assert!(!docker.contains("127.0.0.1"));
}

#[test]
fn ports_fall_back_to_metrics_port_then_8081_plus_index() {
    let tmp = TempDir::new();
    let f = yaml_file(
        &tmp,
        "ports.yaml",
        "validators:\n  - name: a\n    enrFields: {ip: 10.0.0.5}\n    metricsPort: 9100\n  - name: b\n  - name: c\n",
    );
    let (code, stdout, stderr) = convert(&[f.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    let urls: Vec<_> = v["upstreams"]
        .as_array()
        .expect("list")
        .iter()
        .map(|u| u["url"].as_str().expect("url").to_string())
        .collect();
    assert_eq!(
        urls,
        [
            "http://10.0.0.5:9100",
            "http://127.0.0.1:8082",
            "http://127.0.0.1:8083"
        ]
    );
}

#[test]
fn private_keys_never_reach_the_output() {
    let tmp = TempDir::new();
    let key = "c0ffee5ec7e7c0ffee5ec7e7c0ffee5ec7e7c0ffee5ec7e7c0ffee5ec7e7beef";
    let f = yaml_file(
        &tmp,
        "keys.yaml",
        &format!("validators:\n  - name: n0\n    privkey: \"{key}\"\n    apiPort: 5051\n"),
    );
    let (code, stdout, stderr) = convert(&[f.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains(key) && !stderr.contains(key));
    assert!(!stdout.contains("privkey"));
    // Nor in an error about the same file.
    let bad = yaml_file(
        &tmp,
        "keys-bad.yaml",
        &format!("validators:\n  - privkey: \"{key}\"\n    apiPort: 5051\n"),
    );
    let (code, stdout, stderr) = convert(&[bad.to_str().expect("utf-8")]);
    assert_ne!(code, 0);
    assert!(!stdout.contains(key) && !stderr.contains(key), "{stderr}");
}

#[test]
fn bad_files_fail_with_the_file_and_the_reason() {
    let tmp = TempDir::new();
    let no_validators = yaml_file(&tmp, "none.yaml", "shuffle: roundrobin\nconfig: {}\n");
    let invalid = yaml_file(&tmp, "invalid.yaml", "validators: [\n  - name: x\n");
    let missing = tmp.join("missing.yaml");
    for (file, reason) in [
        (&no_validators, "no `validators` list"),
        (&invalid, "invalid YAML"),
        (&missing, "cannot read"),
    ] {
        let path = file.to_str().expect("utf-8");
        let (code, stdout, stderr) = convert(&[path]);
        assert_eq!(code, 2, "{path}");
        assert!(stdout.is_empty(), "{stdout}");
        assert!(stderr.contains(path) && stderr.contains(reason), "{stderr}");
    }
}
