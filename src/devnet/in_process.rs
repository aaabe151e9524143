//! What a caller in the same process (a test) uses to run a sim: a config
//! on loopback, and a handle that switches behaviours and reads each node's
//! connection ledger without going through the admin port.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use super::chain::ChainParams;
use super::conns::ConnStats;
use super::faults::Behaviour;
use super::nodes::{Addressing, NodeSpec, Sim, SimConfig};
use super::server::RunningSim;

impl SimConfig {
    /// Nodes `node-0`, `node-1`, ... with these behaviours, each on an
    /// ephemeral 127.0.0.1 port, and the admin port too: a sim started in
    /// process (by a test) that collides with nothing.
    pub fn loopback(chain: ChainParams, behaviours: Vec<Behaviour>) -> SimConfig {
        let nodes = behaviours
            .into_iter()
            .enumerate()
            .map(|(i, behaviour)| NodeSpec {
                name: format!("node-{i}"),
                behaviour,
            })
            .collect();
        SimConfig {
            chain,
            nodes,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            addressing: Addressing::Ports { base: None },
            admin_port: 0,
        }
    }
}

/// Steers and reads a running sim from the same process: behaviours and
/// each node's connection ledger.
#[derive(Clone)]
pub struct SimHandle(Arc<Sim>);

impl RunningSim {
    /// What an in-process caller (a test) steers and reads the sim by.
    pub fn handle(&self) -> SimHandle {
        SimHandle(self.sim.clone())
    }
}

impl SimHandle {
    /// Switches node `i` from its next request on (the admin POST without
    /// HTTP, and without the wait for blackhole-connect to settle).
    pub fn set_behaviour(&self, i: usize, behaviour: Behaviour) {
        if let Some(branch) = behaviour.branch() {
            self.0.chain.walk(branch);
        }
        self.0.nodes[i].behaviour.send_replace(behaviour);
    }

    /// Node `i`'s connections so far.
    pub fn connections(&self, i: usize) -> ConnStats {
        self.0.nodes[i].conns.stats()
    }

    /// Requests node `i` received for `path` (without its query).
    pub fn requests(&self, i: usize, path: &str) -> usize {
        self.0.nodes[i].conns.requests(path)
    }
}
