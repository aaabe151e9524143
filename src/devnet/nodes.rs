//! The simulated nodes: how a caller specifies them, and the state every
//! listener, connection and the admin endpoint share while they run.

use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::watch;

use super::chain::{Chain, ChainParams};
use super::conns::Conns;
use super::faults::Behaviour;

/// Longest wait for a node's accept loop to enter or leave blackhole mode.
const SETTLE: Duration = Duration::from_secs(3);

/// One node to simulate.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub name: String,
    pub behaviour: Behaviour,
}

#[derive(Clone, Copy, Debug)]
pub enum Addressing {
    /// One port per node: `base + i`, or ephemeral ports.
    Ports { base: Option<u16> },
    /// One port (0: ephemeral) with `/node/{i}` prefixes.
    Paths { port: u16 },
}

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub chain: ChainParams,
    pub nodes: Vec<NodeSpec>,
    pub bind: IpAddr,
    pub addressing: Addressing,
    pub admin_port: u16,
}

/// A running node, as shown to the caller and the admin endpoint.
pub(crate) struct Node {
    pub name: String,
    pub url: String,
    pub behaviour: watch::Sender<Behaviour>,
    /// True while the node's accept queue is held full: set by its accept
    /// loop, awaited by whoever switched the behaviour, so "blackholed"
    /// means the kernel already drops SYNs.
    pub blackholed: watch::Sender<bool>,
    /// Connections to the node's own port and requests to the node.
    pub conns: Conns,
}

impl Node {
    /// Waits (bounded) until the accept loop has applied the behaviour's
    /// blackhole state. False if it did not within the bound.
    pub async fn settled(&self) -> bool {
        let want = self.behaviour.borrow().needs_own_port();
        let mut rx = self.blackholed.subscribe();
        tokio::time::timeout(SETTLE, rx.wait_for(|b| *b == want))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// State shared by every listener and connection of one sim.
pub(crate) struct Sim {
    pub chain: Chain,
    pub nodes: Vec<Node>,
    pub single_port: bool,
}

/// What the caller learns about a started node.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub name: String,
    /// Base URL: `http://127.0.0.1:P` or `http://127.0.0.1:P/node/i`.
    pub url: String,
    pub behaviour: Behaviour,
}
