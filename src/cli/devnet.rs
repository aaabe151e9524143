//! Flags of `leanpoint sim` and `leanpoint demo`.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::devnet::{Behaviour, NodeGroups};

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
    /// One node with this behaviour (repeatable): healthy, lagging:K, moves-on:K, fork[:SLOT],
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
    /// Pending justifications in every State, at most 262144: 32 bytes each
    /// plus a vote bit per validator (123000 with 4096 validators: a 64 MiB
    /// State, for benchmarks of large States).
    #[arg(long, default_value_t = 0)]
    pub justification_roots: u64,
}

/// `leanpoint demo` arguments. Every other service flag (`--agreement`,
/// `--log-level`, ...) is given before `demo`: `leanpoint --agreement count:3 demo`.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// The simulated nodes, as for `leanpoint sim --nodes`.
    #[arg(long, default_value = "5:healthy,1:accept-hang,1:lagging:3,1:fork")]
    pub nodes: NodeGroups,
    #[command(flatten)]
    pub chain: ChainArgs,
    /// leanpoint's bind address [default: 127.0.0.1].
    #[arg(long)]
    pub bind: Option<String>,
    /// leanpoint's port (0: any free port) [default: --port before `demo`, 5555].
    #[arg(long)]
    pub port: Option<u16>,
    /// Poll interval, milliseconds [default: 1000].
    #[arg(long)]
    pub poll_ms: Option<u64>,
    /// Total deadline of a poll, milliseconds [default: 500].
    #[arg(long)]
    pub timeout_ms: Option<u64>,
}
