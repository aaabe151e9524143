//! `leanpoint sim`: the simulated devnet alone, until SIGINT/SIGTERM.
//!
//! Prints machine-readable discovery lines on stdout, so a test, a benchmark
//! or a person can find every simulated upstream and the admin endpoint.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use serde::Deserialize;

use crate::cli::devnet::{ChainArgs, SimArgs};
use crate::cli::LogFormat;
use crate::devnet::chain::ChainParams;
use crate::devnet::ledger::LAST_SLOT;
use crate::devnet::server::{self, Addressing, NodeSpec, RunningSim, SimConfig};
use crate::devnet::{Behaviour, MAX_NODES};

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

fn read_nodes_file(path: &Path) -> anyhow::Result<Vec<(Option<String>, Behaviour)>> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).with_context(|| format!("{shown}: cannot read"))?;
    let file: NodesFile =
        serde_json::from_str(&text).with_context(|| format!("{shown}: invalid nodes file"))?;
    file.nodes
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            let b = n
                .behaviour
                .parse()
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("{shown}: nodes[{i}].behaviour"))?;
            Ok((n.name, b))
        })
        .collect()
}

/// The simulated upstreams the arguments describe, in order, with their names.
fn node_specs(args: &SimArgs) -> anyhow::Result<Vec<NodeSpec>> {
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
        bail!("{} nodes; at most {MAX_NODES}", listed.len());
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

/// The chain the flags describe, starting now, seeded by `chain_id`.
pub(crate) fn chain_params(args: &ChainArgs, chain_id: u64) -> anyhow::Result<ChainParams> {
    if args.slot_ms == 0 {
        bail!("--slot-ms: must be greater than 0");
    }
    let registry = crate::lean::ssz::VALIDATOR_REGISTRY_LIMIT as u64;
    if !(1..=registry).contains(&args.validators) {
        bail!(
            "--validators: {} is not in 1..={registry} (the registry limit)",
            args.validators
        );
    }
    if args.start_slot > LAST_SLOT {
        bail!(
            "--start-slot: {} is past {LAST_SLOT}, where a State's history list is full",
            args.start_slot
        );
    }
    let limit = crate::lean::ssz::HISTORICAL_ROOTS_LIMIT as u64;
    if args.justification_roots > limit {
        bail!(
            "--justification-roots: {} is past {limit}, the justifications list's limit",
            args.justification_roots
        );
    }
    Ok(ChainParams {
        justification_roots: args.justification_roots,
        ..ChainParams::starting_now(
            chain_id,
            args.validators,
            std::time::Duration::from_millis(args.slot_ms),
            args.start_slot,
        )
    })
}

fn sim_config(args: &SimArgs) -> anyhow::Result<SimConfig> {
    let chain = chain_params(&args.chain, args.chain_id)?;
    let addressing = match (args.single_port, args.base_port) {
        (Some(_), Some(_)) => bail!("--single-port and --base-port exclude each other"),
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

/// The machine-readable discovery lines: `sim-admin URL`, one
/// `sim-node INDEX NAME URL BEHAVIOUR` per simulated upstream, then
/// `sim-ready COUNT`.
fn print_discovery(sim: &RunningSim) {
    println!("sim-admin {}", sim.admin_url);
    for (i, n) in sim.nodes.iter().enumerate() {
        println!("sim-node {i} {} {} {}", n.name, n.url, n.behaviour);
    }
}

/// `leanpoint sim`: serve until SIGINT/SIGTERM. Exit 2 on bad flags.
pub fn main(args: SimArgs) -> ExitCode {
    let config = match sim_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("leanpoint sim: {e:#}");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::logging::init(&args.log_level, LogFormat::Text);
    super::raise_nofile();
    match super::runtime().and_then(|rt| rt.block_on(serve(config, &args))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("leanpoint sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: SimConfig, args: &SimArgs) -> anyhow::Result<()> {
    let (trigger, shutdown) = crate::shutdown::channel();
    let sim = server::start(config, shutdown)
        .await
        .context("starting the simulated devnet")?;
    print_discovery(&sim);
    if let Some(path) = &args.write_upstreams {
        let entries: Vec<_> = sim
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.url.clone()))
            .collect();
        std::fs::write(path, crate::config::convert::upstreams_json(&entries))
            .with_context(|| format!("--write-upstreams {}", path.display()))?;
    }
    println!("sim-ready {}", sim.nodes.len());
    crate::shutdown::signal().await;
    trigger.fire();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim_args(argv: &[&str]) -> SimArgs {
        use clap::Parser;
        let mut full = vec!["leanpoint", "sim"];
        full.extend_from_slice(argv);
        match crate::cli::Cli::try_parse_from(full)
            .expect("parses")
            .command
        {
            Some(crate::cli::Command::Sim(a)) => a,
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
            .map(|_| ())
            .expect_err("missing")
            .to_string();
        assert!(
            e.contains("/nonexistent/nodes.json") && e.contains("cannot read"),
            "{e}"
        );
    }

    #[test]
    fn addressing_flags_conflict() {
        let e = sim_config(&sim_args(&["--single-port", "--base-port", "9000"]))
            .map(|_| ())
            .expect_err("conflict")
            .to_string();
        assert!(e.contains("exclude"), "{e}");
        let e = sim_config(&sim_args(&["--slot-ms", "0"]))
            .map(|_| ())
            .expect_err("zero")
            .to_string();
        assert!(e.contains("--slot-ms"), "{e}");
        let e = sim_config(&sim_args(&["--validators", "4097"]))
            .map(|_| ())
            .expect_err("over the limit")
            .to_string();
        assert!(e.contains("4096"), "{e}");
        assert!(sim_config(&sim_args(&["--validators", "4096"])).is_ok());
        let e = sim_config(&sim_args(&["--start-slot", "262144"]))
            .map(|_| ())
            .expect_err("past the end")
            .to_string();
        assert!(e.contains("--start-slot"), "{e}");
        let c = sim_config(&sim_args(&["--single-port", "7000"])).expect("valid");
        assert!(matches!(c.addressing, Addressing::Paths { port: 7000 }));
    }

    #[test]
    fn clap_definitions_are_consistent() {
        use clap::CommandFactory;
        crate::cli::Cli::command().debug_assert();
    }
}
