//! The simulated lean devnet behind `leanpoint sim` and `leanpoint demo`
//! (their entry points are in `commands`, their flags in `cli`).
//!
//! N nodes speak the Lean API exactly as the reference node does (same JSON
//! shapes and key order, same SSZ layouts, same content types and 404
//! body), all serving one advancing chain, each with a behaviour that can be
//! a fault: lagging, forked, wrong status, garbage, endless or dripping
//! bodies, hangs, half-closes, resets, a connect that never completes. The
//! behaviour of each node can be changed while running through the admin
//! port. This is what leanpoint's tests, benchmarks and demo poll.
//!
//! - `params`: the chain's shape (parameters, branches, slot rules);
//!   `chain`: the shared chain and its per-slot snapshots; `ledger`: its
//!   blocks and states with real hash tree roots (`accumulator`: the growing
//!   history list's root); `encode`: bytes.
//! - `faults`: behaviours and the reply each gives a request.
//! - `canned`: nodes that answer from a fixed table of exact bytes (tests).
//! - `server`: listeners, connections and raw-socket faults; `conns`: each
//!   node's connection ledger; `in_process`: a sim run by a test in the
//!   same process; `http1`: the
//!   minimal HTTP/1.1 they speak; `wire`: replies on the wire, faults
//!   included; `admin`: the admin endpoint.

mod accumulator;
mod admin;
pub mod canned;
pub mod chain;
pub mod conns;
pub mod encode;
pub mod faults;
mod http1;
pub mod in_process;
pub mod ledger;
mod nodes;
pub mod params;
pub mod server;
mod wire;

use std::str::FromStr;

pub use faults::Behaviour;
pub use in_process::SimHandle;
pub use server::{Addressing, NodeInfo, NodeSpec, RunningSim, SimConfig};

/// Simulated upstreams beyond this are almost certainly a typo, and would need more fds
/// than a default limit allows.
pub const MAX_NODES: usize = 10_000;

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
        let e = "2:sleepy"
            .parse::<NodeGroups>()
            .expect_err("no such behaviour");
        assert!(e.starts_with("unknown behaviour \"sleepy\""), "{e}");
        let e = "20000".parse::<NodeGroups>().expect_err("over MAX_NODES");
        assert_eq!(e, format!("more than {MAX_NODES} nodes"));
    }
}
