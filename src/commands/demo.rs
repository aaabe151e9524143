//! `leanpoint demo`: a simulated devnet and leanpoint polling it, in one
//! process, with nothing written to disk.
//!
//! The default devnet has 8 nodes: 5 healthy, one that accepts TCP and never
//! answers, one 3 slots behind, one on a fork. 5 of 8 agree, so leanpoint
//! reaches a majority and serves the finalized State while showing the three
//! faulty nodes as what they are. Intervals are short so the page moves.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::devnet::DemoArgs;
use crate::cli::ServeArgs;
use crate::config::Config;
use crate::devnet::chain::ChainParams;
use crate::devnet::server::{self, Addressing, NodeSpec, RunningSim, SimConfig};
use crate::devnet::NodeGroups;

/// A value given after `demo` wins; then one the user gave before `demo`
/// (flag or `LEANPOINT_*`, told apart from clap's default by its value
/// source); then the demo's own default.
fn pick<T: Copy>(demo: Option<T>, serve: T, given_before: bool, demo_default: T) -> T {
    demo.unwrap_or(if given_before { serve } else { demo_default })
}

/// The service flags the demo runs leanpoint with.
fn serve_args(serve: &ServeArgs, args: &DemoArgs) -> ServeArgs {
    let given = |id: &str| serve.sources.explicit(id);
    let mut s = serve.clone();
    s.bind = args.bind.clone().unwrap_or_else(|| {
        if given("bind") {
            serve.bind.clone()
        } else {
            "127.0.0.1".to_string()
        }
    });
    s.port = args.port.unwrap_or(serve.port);
    s.poll_ms = pick(args.poll_ms, serve.poll_ms, given("poll_ms"), 1000);
    s.timeout_ms = pick(args.timeout_ms, serve.timeout_ms, given("timeout_ms"), 500);
    s.connect_timeout_ms = s.connect_timeout_ms.min(s.timeout_ms);
    s.stale_ms = pick(None, serve.stale_ms, given("stale_ms"), 5 * s.poll_ms).max(s.poll_ms);
    // leanpoint bounds possible finalized slots by the devnet's slot time.
    s.slot_ms = args.chain.slot_ms;
    s.upstreams_config = None;
    s
}

fn node_specs(groups: &NodeGroups) -> Vec<NodeSpec> {
    groups
        .0
        .iter()
        .enumerate()
        .map(|(i, b)| NodeSpec {
            name: format!("node-{i}-{}", b.to_string().replace(':', "-")),
            behaviour: b.clone(),
        })
        .collect()
}

/// `leanpoint demo`: runs until SIGINT/SIGTERM.
pub fn main(serve: &ServeArgs, args: DemoArgs) -> ExitCode {
    if args.nodes.0.is_empty() {
        eprintln!("leanpoint demo: --nodes: must name at least one node");
        return ExitCode::from(2);
    }
    let chain = match super::sim::chain_params(&args.chain, 1) {
        Ok(chain) => chain,
        Err(e) => {
            eprintln!("leanpoint demo: {e:#}");
            return ExitCode::from(2);
        }
    };
    let serve = serve_args(serve, &args);
    // Validates the flags before anything starts (the URLs are placeholders).
    let placeholder: Vec<_> = node_specs(&args.nodes)
        .into_iter()
        .map(|n| (n.name, "http://127.0.0.1:1".to_string()))
        .collect();
    if let Err(e) = Config::with_upstreams(&serve, "demo", placeholder) {
        eprintln!("leanpoint demo: invalid configuration: {e}");
        return ExitCode::from(2);
    }
    crate::telemetry::logging::init(&serve.log_level, serve.log_format);
    super::raise_nofile();
    let result = super::runtime().and_then(|rt| rt.block_on(run(serve, args, chain)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("leanpoint demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(serve: ServeArgs, args: DemoArgs, chain: ChainParams) -> anyhow::Result<()> {
    let (trigger, shutdown) = crate::shutdown::channel();
    let sim = server::start(
        SimConfig {
            chain,
            nodes: node_specs(&args.nodes),
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            addressing: Addressing::Ports { base: None },
            admin_port: 0,
        },
        shutdown.clone(),
    )
    .await
    .context("starting the simulated devnet")?;
    let upstreams = sim
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.url.clone()))
        .collect();
    let config = Config::with_upstreams(&serve, "demo", upstreams)?;
    crate::telemetry::process::raise_fd_limit(&config);
    let addr = SocketAddr::new(config.bind, config.port);
    let listener = crate::http::bind(addr).with_context(|| format!("cannot bind {addr}"))?;
    let local = listener.local_addr().context("the bound address")?;
    print_banner(&sim, &config, local, args.chain.slot_ms);
    let state = crate::service::build(config)?;
    tokio::spawn(async move {
        crate::shutdown::signal().await;
        tracing::info!("shutdown signal received; stopping the demo");
        trigger.fire();
    });
    super::serve::run(state, listener, shutdown).await
}

fn print_banner(sim: &RunningSim, config: &Config, local: SocketAddr, slot_ms: u64) {
    let host = if local.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        local.ip()
    };
    let base = format!("http://{}", SocketAddr::new(host, local.port()));
    println!(
        "leanpoint demo: {} simulated lean nodes (slot {} ms), polled every {} ms, agreement {}",
        sim.nodes.len(),
        slot_ms,
        config.poll.as_millis(),
        config.agreement
    );
    for n in &sim.nodes {
        println!("  node      {:<28} {:<28} {}", n.name, n.url, n.behaviour);
    }
    println!("Open:");
    println!("  status page      {base}/");
    println!("  metrics          {base}/metrics");
    println!("  upstreams        {base}/api/upstreams");
    println!("  finalized state  {base}/lean/v0/states/finalized");
    println!("  finalized block  {base}/lean/v0/blocks/finalized");
    println!("Break a node while it runs:");
    println!(
        "  curl -X POST --data accept-hang {}/admin/node/0/behaviour",
        sim.admin_url
    );
    println!("Ctrl-C stops the demo.");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> (ServeArgs, DemoArgs) {
        let cli = crate::cli::Cli::try_parse_with_sources(argv).expect("parses");
        match cli.command {
            Some(crate::cli::Command::Demo(d)) => (cli.serve, d),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn demo_defaults_are_short_and_valid() {
        let (serve, demo) = parse(&["leanpoint", "demo"]);
        let s = serve_args(&serve, &demo);
        assert_eq!((s.bind.as_str(), s.port), ("127.0.0.1", 5555));
        assert_eq!((s.poll_ms, s.timeout_ms, s.stale_ms), (1000, 500, 5000));
        assert!(s.connect_timeout_ms <= s.timeout_ms);
        assert_eq!(demo.nodes.0.len(), 8);
    }

    #[test]
    fn explicit_flags_win() {
        let (serve, demo) = parse(&[
            "leanpoint",
            "--poll-ms",
            "2000",
            "demo",
            "--port",
            "0",
            "--timeout-ms",
            "900",
        ]);
        let s = serve_args(&serve, &demo);
        assert_eq!((s.port, s.poll_ms, s.timeout_ms), (0, 2000, 900));
        let names: Vec<_> = node_specs(&demo.nodes)
            .into_iter()
            .map(|n| n.name)
            .collect();
        assert_eq!(names[5], "node-5-accept-hang");
        assert_eq!(names[6], "node-6-lagging-3");
    }
}
