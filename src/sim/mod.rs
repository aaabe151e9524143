//! The simulated lean devnet: `leanpoint sim` and `leanpoint demo`.
//!
//! N nodes speak the Lean API exactly as the reference node does (same JSON
//! shapes and key order, same SSZ layouts, same content types and 404
//! body), all serving one advancing chain, each with a behaviour that can be
//! a fault: lagging, forked, wrong status, garbage, endless or dripping
//! bodies, hangs, half-closes, resets, a connect that never completes. The
//! behaviour of each node can be changed while running through the admin
//! port. This is what leanpoint's tests, benchmarks and demo poll.
//!
//! - `chain`: the shared chain and its per-slot snapshots; `ledger`: its
//!   blocks and states with real hash tree roots (`accumulator`: the growing
//!   history list's root); `encode`: bytes.
//! - `faults`: behaviours and the reply each gives a request.
//! - `canned`: nodes that answer from a fixed table of exact bytes (tests).
//! - `server`: listeners, connections and raw-socket faults; `conns`: each
//!   node's connection ledger; `http1`: the
//!   minimal HTTP/1.1 they speak; `wire`: replies on the wire, faults
//!   included; `admin`: the admin endpoint.
//! - `demo`: the sim plus leanpoint in one process.

mod accumulator;
mod admin;
pub mod canned;
pub mod chain;
pub mod conns;
mod demo;
pub mod encode;
pub mod faults;
mod http1;
pub mod ledger;
pub mod server;
mod wire;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

pub use demo::{demo_main, DemoArgs};
pub use faults::Behaviour;
pub use server::{Addressing, NodeInfo, NodeSpec, RunningSim, SimConfig, SimHandle};

use crate::config::LogFormat;

/// Nodes beyond this are almost certainly a typo, and would need more fds
/// than a default limit allows.
const MAX_NODES: usize = 10_000;

/// `COUNT:BEHAVIOUR[,COUNT:BEHAVIOUR...]`, e.g. `5:healthy,1:accept-hang`.
/// An entry without a count is one node; a bare number is that many healthy
/// nodes.
#[derive(Clone, Debug)]
pub struct NodeGroups(pub Vec<Behaviour>);

impl FromStr for NodeGroups {
    type Err = String;
    fn from_str(s: &str) -> Result<NodeGroups, String> {
        let mut out = Vec::new();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (count, behaviour) = match entry.split_once(':') {
                Some((n, b)) if n.parse::<usize>().is_ok() => (n.parse().unwrap_or(0), b.parse()?),
                _ => match entry.parse::<usize>() {
                    Ok(n) => (n, Behaviour::Healthy),
                    Err(_) => (1, entry.parse()?),
                },
            };
            if out.len() + count > MAX_NODES {
                return Err(format!("more than {MAX_NODES} nodes"));
            }
            out.extend(std::iter::repeat_n(behaviour, count));
        }
        Ok(NodeGroups(out))
    }
}

const SIM_AFTER_HELP: &str = "\
Stdout, one line each: `sim-admin URL`, `sim-node INDEX NAME URL BEHAVIOUR` per node, then
`sim-ready COUNT` once every node serves. Admin: GET /admin/nodes, GET /admin/chain,
POST /admin/node/{i}/behaviour with a behaviour as the body (in force when it answers).
The chain: a slot every --slot-ms; justified = head-2, finalized = head-3. Blocks and States
are real SSZ containers: every root is a hash tree root, so the finalized pair verifies.
With --single-port every behaviour but blackhole-connect works: hang, half-close and reset
act on the connection that carried the node's request.";

/// `leanpoint sim` arguments.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = SIM_AFTER_HELP)]
pub struct SimArgs {
    /// One node with this behaviour (repeatable): healthy, lagging:K, fork[:SLOT],
    /// http-status:CODE, garbage, oversized, slow-drip[:MS], accept-hang, half-close,
    /// reset, blackhole-connect, flap[:SLOTS], legacy, no-store, block-mismatch,
    /// state-wrong-slot, trailing-bytes[:N], no-block-route.
    #[arg(long = "node", value_name = "BEHAVIOUR")]
    pub node: Vec<Behaviour>,
    /// Groups of nodes, e.g. 5:healthy,1:accept-hang,1:lagging:3 (repeatable).
    #[arg(long, value_name = "GROUPS")]
    pub nodes: Vec<NodeGroups>,
    /// JSON file of nodes: {"nodes":[{"behaviour":"lagging:3","name":"optional"}]}.
    /// File nodes come first, then --nodes, then --node. Default: 4 healthy nodes.
    #[arg(long, value_name = "FILE")]
    pub nodes_file: Option<PathBuf>,
    #[command(flatten)]
    pub chain: ChainArgs,
    /// Seeds every root; sims with different ids never agree.
    #[arg(long, default_value_t = 1)]
    pub chain_id: u64,
    /// Address the nodes and the admin endpoint listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Node i listens on BASE+i (default: ephemeral ports).
    #[arg(long, value_name = "BASE")]
    pub base_port: Option<u16>,
    /// Serve every node on one port as /node/{i} (0 or no value: ephemeral).
    /// blackhole-connect needs a port per node and is refused here.
    #[arg(long, value_name = "PORT", num_args = 0..=1, default_missing_value = "0")]
    pub single_port: Option<u16>,
    /// Port of the admin endpoint (GET /admin/nodes, POST /admin/node/{i}/behaviour).
    #[arg(long, default_value_t = 0)]
    pub admin_port: u16,
    /// Also write the nodes as an upstreams.json for leanpoint.
    #[arg(long, value_name = "FILE")]
    pub write_upstreams: Option<PathBuf>,
    /// Log filter (stderr).
    #[arg(long, default_value = "info")]
    pub log_level: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodesFile {
    nodes: Vec<FileNode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNode {
    behaviour: String,
    name: Option<String>,
}

fn read_nodes_file(path: &Path) -> Result<Vec<(Option<String>, Behaviour)>, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
    let file: NodesFile =
        serde_json::from_str(&text).map_err(|e| format!("{shown}: invalid nodes file: {e}"))?;
    file.nodes
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            let b = n
                .behaviour
                .parse()
                .map_err(|e| format!("{shown}: nodes[{i}].behaviour: {e}"))?;
            Ok((n.name, b))
        })
        .collect()
}

/// The nodes the arguments describe, in order, with their names.
fn node_specs(args: &SimArgs) -> Result<Vec<NodeSpec>, String> {
    let mut listed = match &args.nodes_file {
        Some(p) => read_nodes_file(p)?,
        None => Vec::new(),
    };
    let flags = args.nodes.iter().flat_map(|g| g.0.iter()).chain(&args.node);
    listed.extend(flags.map(|b| (None, b.clone())));
    if listed.is_empty() {
        listed = vec![(None, Behaviour::Healthy); 4];
    }
    if listed.len() > MAX_NODES {
        return Err(format!("{} nodes; at most {MAX_NODES}", listed.len()));
    }
    Ok(listed
        .into_iter()
        .enumerate()
        .map(|(i, (name, behaviour))| NodeSpec {
            name: name.unwrap_or_else(|| format!("node-{i}")),
            behaviour,
        })
        .collect())
}

/// The simulated chain's shape: the flags `sim` and `demo` share.
#[derive(clap::Args, Debug, Clone)]
pub struct ChainArgs {
    /// Validators of the chain, 1..=4096 (the State carries 112 bytes per validator).
    #[arg(long, default_value_t = 4)]
    pub validators: u64,
    /// Slot duration, milliseconds (lean devnets use 4 s).
    #[arg(long, default_value_t = 4000)]
    pub slot_ms: u64,
    /// Head slot at start, at most 262143 (the State carries 32 bytes per slot
    /// of history; a long chain takes a moment to walk at start).
    #[arg(long, default_value_t = 16)]
    pub start_slot: u64,
}

impl ChainArgs {
    /// The chain these flags describe, starting now, seeded by `chain_id`.
    pub fn params(&self, chain_id: u64) -> Result<chain::ChainParams, String> {
        if self.slot_ms == 0 {
            return Err("--slot-ms: must be greater than 0".into());
        }
        let registry = crate::lean_ssz::VALIDATOR_REGISTRY_LIMIT as u64;
        if !(1..=registry).contains(&self.validators) {
            return Err(format!(
                "--validators: {} is not in 1..={registry} (the registry limit)",
                self.validators
            ));
        }
        if self.start_slot > ledger::LAST_SLOT {
            return Err(format!(
                "--start-slot: {} is past {}, where a State's history list is full",
                self.start_slot,
                ledger::LAST_SLOT
            ));
        }
        Ok(chain::ChainParams::starting_now(
            chain_id,
            self.validators,
            Duration::from_millis(self.slot_ms),
            self.start_slot,
        ))
    }
}

fn sim_config(args: &SimArgs) -> Result<SimConfig, String> {
    let chain = args.chain.params(args.chain_id)?;
    let addressing = match (args.single_port, args.base_port) {
        (Some(_), Some(_)) => return Err("--single-port and --base-port exclude each other".into()),
        (Some(port), None) => Addressing::Paths { port },
        (None, base) => Addressing::Ports { base },
    };
    Ok(SimConfig {
        chain,
        nodes: node_specs(args)?,
        bind: args.bind,
        addressing,
        admin_port: args.admin_port,
    })
}

/// Raises the soft fd limit to the hard one: a sim of many nodes on their
/// own ports, each with a connection or two, needs more than 1024.
pub(crate) fn raise_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        let raised = Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, "sim: cannot raise RLIMIT_NOFILE");
        }
    }
}

/// The machine-readable discovery lines: `sim-admin URL`, one
/// `sim-node INDEX NAME URL BEHAVIOUR` per node, then `sim-ready COUNT`.
fn print_discovery(sim: &RunningSim) {
    println!("sim-admin {}", sim.admin_url);
    for (i, n) in sim.nodes.iter().enumerate() {
        println!("sim-node {i} {} {} {}", n.name, n.url, n.behaviour);
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// `leanpoint sim`: serve until SIGINT/SIGTERM.
pub fn sim_main(args: SimArgs) -> ExitCode {
    let config = match sim_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("leanpoint sim: {e}");
            return ExitCode::from(2);
        }
    };
    crate::logging::init(&args.log_level, LogFormat::Text);
    raise_nofile();
    let result = runtime().and_then(|rt| {
        rt.block_on(async {
            let (trigger, shutdown) = crate::shutdown::channel();
            let sim = server::start(config, shutdown)
                .await
                .map_err(|e| e.to_string())?;
            print_discovery(&sim);
            if let Some(path) = &args.write_upstreams {
                let entries: Vec<_> = sim
                    .nodes
                    .iter()
                    .map(|n| (n.name.clone(), n.url.clone()))
                    .collect();
                std::fs::write(path, crate::convert::upstreams_json(&entries))
                    .map_err(|e| format!("--write-upstreams {}: {e}", path.display()))?;
            }
            println!("sim-ready {}", sim.nodes.len());
            crate::shutdown::signal().await;
            trigger.fire();
            Ok(())
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("leanpoint sim: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_parse() {
        let g: NodeGroups = "5:healthy,1:accept-hang,2:lagging:3,fork,legacy"
            .parse()
            .expect("ok");
        assert_eq!(g.0.len(), 10);
        assert_eq!(g.0[5], Behaviour::AcceptHang);
        assert_eq!(g.0[6], Behaviour::Lagging(3));
        assert_eq!(g.0[9], Behaviour::Legacy);
        assert_eq!(
            "3".parse::<NodeGroups>().expect("ok").0,
            vec![Behaviour::Healthy; 3]
        );
        assert!("2:sleepy".parse::<NodeGroups>().is_err());
        assert!("20000".parse::<NodeGroups>().is_err());
    }

    fn sim_args(argv: &[&str]) -> SimArgs {
        use clap::Parser;
        let mut full = vec!["leanpoint", "sim"];
        full.extend_from_slice(argv);
        match crate::config::Cli::try_parse_from(full)
            .expect("parses")
            .command
        {
            Some(crate::config::Command::Sim(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nodes_come_from_file_then_groups_then_flags() {
        let path =
            std::env::temp_dir().join(format!("leanpoint-nodes-{}.json", std::process::id()));
        std::fs::write(
            &path,
            r#"{"nodes":[{"behaviour":"fork:6","name":"forky"},{"behaviour":"legacy"}]}"#,
        )
        .expect("write");
        let p = path.to_str().expect("utf-8");
        let specs = node_specs(&sim_args(&[
            "--nodes-file",
            p,
            "--nodes",
            "2",
            "--node",
            "reset",
        ]));
        let _ = std::fs::remove_file(&path);
        let specs = specs.expect("valid");
        let got: Vec<_> = specs
            .iter()
            .map(|n| (n.name.as_str(), n.behaviour.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("forky", "fork:6".to_string()),
                ("node-1", "legacy".to_string()),
                ("node-2", "healthy".to_string()),
                ("node-3", "healthy".to_string()),
                ("node-4", "reset".to_string()),
            ]
        );
        assert_eq!(node_specs(&sim_args(&[])).expect("default").len(), 4);
        let e = node_specs(&sim_args(&["--nodes-file", "/nonexistent/nodes.json"]))
            .expect_err("missing");
        assert!(
            e.contains("/nonexistent/nodes.json") && e.contains("cannot read"),
            "{e}"
        );
    }

    #[test]
    fn addressing_flags_conflict() {
        let e =
            sim_config(&sim_args(&["--single-port", "--base-port", "9000"])).expect_err("conflict");
        assert!(e.contains("exclude"), "{e}");
        assert!(sim_config(&sim_args(&["--slot-ms", "0"])).is_err());
        let e = sim_config(&sim_args(&["--validators", "4097"])).expect_err("over the limit");
        assert!(e.contains("4096"), "{e}");
        assert!(sim_config(&sim_args(&["--validators", "4096"])).is_ok());
        assert!(sim_config(&sim_args(&["--start-slot", "262144"])).is_err());
        let c = sim_config(&sim_args(&["--single-port", "7000"])).expect("valid");
        assert!(matches!(c.addressing, Addressing::Paths { port: 7000 }));
    }

    #[test]
    fn clap_definitions_are_consistent() {
        use clap::CommandFactory;
        crate::config::Cli::command().debug_assert();
    }
}
