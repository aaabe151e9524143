//! `leanpoint sim` as a child process: its discovery lines, its nodes, the
//! upstreams.json it writes, and what its healthy nodes serve (to judge
//! leanpoint against).

use std::net::SocketAddr;
use std::path::PathBuf;

use leanpoint::lean::api::{self, paths};
use serde_json::Value;

use super::fs::TempDir;
use super::http::{must_get, split_url};
use super::process::{leanpoint_command, Proc};
use super::wait::START_WITHIN;

/// Starts `leanpoint ARGS` (any subcommand) under the process guard.
pub fn spawn(args: &[&str]) -> Proc {
    let mut cmd = leanpoint_command();
    cmd.args(args);
    Proc::spawn(&format!("leanpoint {}", args.join(" ")), cmd)
}

/// One node of a running sim, from its discovery line.
#[derive(Clone, Debug)]
pub struct SimNode {
    pub name: String,
    pub url: String,
    pub behaviour: String,
}

impl SimNode {
    /// `host:port` of the node's URL.
    pub fn addr(&self) -> SocketAddr {
        split_url(&self.url).0
    }

    /// The URL's path prefix (`/node/3` in single-port mode, else "").
    pub fn prefix(&self) -> String {
        let (_, path) = split_url(&self.url);
        if path == "/" {
            String::new()
        } else {
            path
        }
    }
}

/// A running `leanpoint sim`.
pub struct Sim {
    pub proc: Proc,
    pub admin: String,
    pub nodes: Vec<SimNode>,
    /// The upstreams.json the sim wrote (`--write-upstreams`), if asked for.
    pub upstreams: Option<PathBuf>,
    _dir: TempDir,
}

impl Sim {
    /// Starts `leanpoint sim ARGS` and waits for its `sim-ready` line.
    pub fn start(args: &[&str]) -> Sim {
        Sim::launch(args, false)
    }

    /// [`Sim::start`] with `--write-upstreams` to a file of its own.
    pub fn with_upstreams(args: &[&str]) -> Sim {
        Sim::launch(args, true)
    }

    fn launch(args: &[&str], write_upstreams: bool) -> Sim {
        let dir = TempDir::new();
        let file = dir.join("upstreams.json");
        let file_arg = file.to_str().expect("utf-8 temp path").to_string();
        let mut argv = vec!["sim", "--log-level", "warn"];
        argv.extend_from_slice(args);
        if write_upstreams {
            argv.extend(["--write-upstreams", &file_arg]);
        }
        let proc = spawn(&argv);
        let lines = proc.stdout_until(|l| l.starts_with("sim-ready "), START_WITHIN);
        let mut admin = String::new();
        let mut nodes = Vec::new();
        for line in &lines {
            let parts: Vec<&str> = line.split(' ').collect();
            match parts.as_slice() {
                ["sim-admin", url] => admin = url.to_string(),
                ["sim-node", i, name, url, behaviour] => {
                    assert_eq!(i.parse::<usize>().expect("index"), nodes.len(), "{line}");
                    nodes.push(SimNode {
                        name: name.to_string(),
                        url: url.to_string(),
                        behaviour: behaviour.to_string(),
                    });
                }
                _ => {}
            }
        }
        assert!(!admin.is_empty(), "no sim-admin line in {lines:#?}");
        let ready: usize = lines
            .last()
            .and_then(|l| l.strip_prefix("sim-ready "))
            .and_then(|n| n.parse().ok())
            .expect("sim-ready COUNT");
        assert_eq!(ready, nodes.len());
        Sim {
            proc,
            admin,
            nodes,
            upstreams: write_upstreams.then_some(file),
            _dir: dir,
        }
    }

    pub fn node(&self, i: usize) -> &SimNode {
        &self.nodes[i]
    }

    /// The upstreams.json path, for `--upstreams-config`.
    pub fn upstreams_path(&self) -> &str {
        self.upstreams
            .as_deref()
            .and_then(|p| p.to_str())
            .expect("a sim started with_upstreams")
    }
}

/// Block roots by slot, as a healthy node's own fork choice lists them (its
/// finalized slot up to its head).
pub fn node_roots(node: &SimNode) -> Vec<(u64, String)> {
    let r = must_get(&format!("{}{}", node.url, paths::FORK_CHOICE));
    assert_eq!(r.status, 200, "{} fork_choice", node.name);
    let v: Value = r.json();
    v["nodes"]
        .as_array()
        .expect("fork_choice nodes")
        .iter()
        .map(|n| {
            let slot = n["slot"].as_u64().expect("node slot");
            (slot, n["root"].as_str().expect("node root").to_string())
        })
        .collect()
}

/// The finalized State a node serves now, and its slot.
pub fn node_state(node: &SimNode) -> (u64, Vec<u8>) {
    let r = must_get(&format!("{}{}", node.url, paths::STATE_FINALIZED));
    assert_eq!(r.status, 200, "{} states/finalized", node.name);
    let slot = api::parse_state_header(&r.body)
        .expect("node state header")
        .slot;
    (slot, r.body)
}
