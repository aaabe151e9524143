//! lean-quickstart's validator-config.yaml to an upstreams.json, on stdout
//! or, as the Zig leanpoint's script did, into the file named second.
//!
//! Each validator entry becomes one upstream: its `name`, the host
//! `enrFields.ip` (127.0.0.1 when absent; host.docker.internal with
//! `--docker`, for a leanpoint in a container reaching nodes on the host) and
//! the port `apiPort`, else `metricsPort` (older files serve the API there),
//! else 8081 + the entry's index. The file holds private keys (`privkey`):
//! the structs below have no field for them, so they are skipped by the
//! parser and never held, copied or printed.

use std::net::IpAddr;

use anyhow::{bail, Context as _};

use serde::Deserialize;

/// The parts of the file that are read. Everything else, keys included, is
/// skipped by the parser.
#[derive(Deserialize)]
struct ValidatorConfig {
    validators: Option<Vec<Validator>>,
}

#[derive(Deserialize)]
struct Validator {
    name: Option<String>,
    #[serde(rename = "enrFields")]
    enr_fields: Option<EnrFields>,
    #[serde(rename = "apiPort")]
    api_port: Option<u16>,
    #[serde(rename = "metricsPort")]
    metrics_port: Option<u16>,
}

#[derive(Deserialize)]
struct EnrFields {
    ip: Option<String>,
}

/// The first port a node without apiPort and metricsPort is given.
const FALLBACK_PORT: u16 = 8081;

/// Converts the YAML text to `(name, url)` pairs. Errors say what is wrong
/// and where, never quoting the file's values beyond names.
pub fn convert(yaml: &str, docker: bool) -> anyhow::Result<Vec<(String, String)>> {
    let config: ValidatorConfig = serde_norway::from_str(yaml).context("invalid YAML")?;
    let validators = config
        .validators
        .context("no `validators` list: not a lean-quickstart validator-config.yaml")?;
    if validators.is_empty() {
        bail!("the `validators` list is empty");
    }
    validators
        .into_iter()
        .enumerate()
        .map(|(i, v)| upstream(i, v, docker))
        .collect()
}

fn upstream(i: usize, v: Validator, docker: bool) -> anyhow::Result<(String, String)> {
    let name = v
        .name
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .with_context(|| format!("validators[{i}]: no name"))?;
    let port = match v.api_port.or(v.metrics_port) {
        Some(p) => p,
        None => u16::try_from(FALLBACK_PORT as usize + i)
            .with_context(|| format!("validators[{i}] ({name}): no apiPort or metricsPort"))?,
    };
    let host = if docker {
        "host.docker.internal".to_string()
    } else {
        let ip = v
            .enr_fields
            .and_then(|e| e.ip)
            .unwrap_or_else(|| "127.0.0.1".to_string());
        match ip.trim().parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
            Ok(v4) => v4.to_string(),
            Err(_) => bail!("validators[{i}] ({name}): enrFields.ip is not an IP address"),
        }
    };
    Ok((name, format!("http://{host}:{port}")))
}

/// An upstreams.json in the Zig leanpoint's format, path "/status".
pub fn upstreams_json(entries: &[(String, String)]) -> String {
    #[derive(serde::Serialize)]
    struct Entry<'a> {
        name: &'a str,
        url: &'a str,
        path: &'a str,
    }
    #[derive(serde::Serialize)]
    struct File<'a> {
        upstreams: Vec<Entry<'a>>,
    }
    let file = File {
        upstreams: entries
            .iter()
            .map(|(name, url)| Entry {
                name,
                url,
                path: "/status",
            })
            .collect(),
    };
    let mut out = serde_json::to_string_pretty(&file).unwrap_or_default();
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_converts() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/lean-quickstart/validator-config.yaml");
        let text = std::fs::read_to_string(&p).expect("fixture");
        let ups = convert(&text, false).expect("converts");
        assert_eq!(
            ups,
            vec![
                ("zeam_0".to_string(), "http://127.0.0.1:5051".to_string()),
                ("zeam_1".to_string(), "http://127.0.0.1:5052".to_string()),
                (
                    "ethlambda_0".to_string(),
                    "http://127.0.0.1:5053".to_string()
                ),
            ]
        );
        let docker = convert(&text, true).expect("converts");
        assert_eq!(docker[2].1, "http://host.docker.internal:5053");
    }

    #[test]
    fn port_fallbacks() {
        let yaml = "validators:\n  - name: a\n    metricsPort: 9100\n  - name: b\n  - name: c\n    enrFields: {ip: \"::1\"}\n    apiPort: 7000\n";
        let ups = convert(yaml, false).expect("converts");
        assert_eq!(ups[0].1, "http://127.0.0.1:9100");
        assert_eq!(ups[1].1, "http://127.0.0.1:8082");
        assert_eq!(ups[2].1, "http://[::1]:7000");
    }

    #[test]
    fn bad_files_are_named() {
        for (yaml, needle) in [
            ("shuffle: roundrobin\n", "no `validators`"),
            ("validators: []\n", "empty"),
            ("validators: [\n", "invalid YAML"),
            ("validators:\n  - apiPort: 1\n", "validators[0]: no name"),
            (
                "validators:\n  - name: x\n    enrFields: {ip: \"not an ip\"}\n",
                "enrFields.ip",
            ),
        ] {
            let e = format!("{:#}", convert(yaml, false).expect_err(yaml));
            assert!(e.contains(needle), "{yaml:?}: {e}");
        }
    }
}
