//! The sim's admin endpoint, on its own port: lets a test break a node
//! mid-run and see the chain's position.
//!
//! - `GET /admin/nodes`: `[{"index","name","url","behaviour"}]`
//! - `GET /admin/chain`: `{"head_slot","justified_slot","finalized_slot","slot_ms"}`
//! - `POST /admin/node/{i}/behaviour` with a behaviour as the body
//!   (`accept-hang`, `lagging:3`, ...): the node's new entry.

use bytes::Bytes;
use serde::Serialize;

use super::faults::{self, Behaviour, Reply};
use super::http1::Request;
use super::nodes::Sim;
use super::params::{finalized_slot, justified_slot};

#[derive(Serialize)]
struct NodeJson<'a> {
    index: usize,
    name: &'a str,
    url: &'a str,
    behaviour: String,
}

#[derive(Serialize)]
struct ChainJson {
    head_slot: u64,
    justified_slot: u64,
    finalized_slot: u64,
    slot_ms: u128,
}

fn json(value: &impl Serialize) -> Reply {
    Reply::Full {
        status: 200,
        content_type: faults::JSON,
        body: Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
    }
}

fn node_json(sim: &Sim, i: usize) -> NodeJson<'_> {
    let n = &sim.nodes[i];
    NodeJson {
        index: i,
        name: &n.name,
        url: &n.url,
        behaviour: n.behaviour.borrow().to_string(),
    }
}

/// Answers one admin request.
pub(crate) async fn handle(sim: &Sim, req: &Request) -> Reply {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/admin/nodes") => {
            let all: Vec<_> = (0..sim.nodes.len()).map(|i| node_json(sim, i)).collect();
            json(&all)
        }
        ("GET", "/admin/chain") => {
            let head = sim.chain.current_slot();
            json(&ChainJson {
                head_slot: head,
                justified_slot: justified_slot(head),
                finalized_slot: finalized_slot(head),
                slot_ms: sim.chain.params().slot.as_millis(),
            })
        }
        ("POST", path) => match behaviour_target(path) {
            Some(i) => set_behaviour(sim, i, &req.body).await,
            None => faults::not_found(),
        },
        _ => faults::not_found(),
    }
}

/// `/admin/node/{i}/behaviour` to `i`.
fn behaviour_target(path: &str) -> Option<usize> {
    path.strip_prefix("/admin/node/")?
        .strip_suffix("/behaviour")?
        .parse()
        .ok()
}

async fn set_behaviour(sim: &Sim, i: usize, body: &[u8]) -> Reply {
    if i >= sim.nodes.len() {
        return faults::status_reply(404, &format!("no node {i}"));
    }
    let text = String::from_utf8_lossy(body);
    let behaviour: Behaviour = match text.trim().parse() {
        Ok(b) => b,
        Err(e) => return faults::status_reply(400, &e),
    };
    if sim.single_port && behaviour.needs_own_port() {
        return faults::status_reply(
            409,
            &format!("{behaviour} needs a port per node; this sim shares one port"),
        );
    }
    // A fork not walked yet takes seconds on a long chain: walk it before
    // the switch, so no node request waits for it.
    if let Some(branch) = behaviour.branch() {
        sim.chain.walk(branch);
    }
    tracing::info!(node = %sim.nodes[i].name, %behaviour, "sim: behaviour changed");
    sim.nodes[i].behaviour.send_replace(behaviour);
    // Answer once the change is in force (the accept loop has to act for
    // blackhole-connect), so a test can rely on it right away.
    if !sim.single_port && !sim.nodes[i].settled().await {
        return faults::status_reply(500, "the node's listener did not apply the change");
    }
    json(&node_json(sim, i))
}
