//! The fetcher against the devnet's in-process upstreams on 127.0.0.1,
//! which serve real (block, State) pairs and named faults.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use crate::devnet::chain::ChainParams;
use crate::devnet::faults::Behaviour;
use crate::devnet::server::{self, Addressing, NodeSpec, RunningSim, SimConfig};
use crate::service::testing::{state, until};
use crate::service::AppState;
use crate::shutdown::{Shutdown, Trigger};

/// A devnet whose nodes behave as `behaviours` (named n0, n1, ...). Slots
/// last an hour, so the finalized checkpoint does not move during a test.
async fn devnet(behaviours: &[Behaviour], shutdown: Shutdown) -> RunningSim {
    let nodes = behaviours
        .iter()
        .enumerate()
        .map(|(i, b)| NodeSpec {
            name: format!("n{i}"),
            behaviour: b.clone(),
        })
        .collect();
    let config = SimConfig {
        chain: ChainParams::starting_now(11, 4, Duration::from_secs(3600), 40),
        nodes,
        bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        addressing: Addressing::Ports { base: None },
        admin_port: 0,
    };
    server::start(config, shutdown)
        .await
        .expect("devnet starts")
}

/// Pollers, decider and fetcher over the devnet's nodes, in node order.
async fn leanpoint(behaviours: &[Behaviour]) -> (Arc<AppState>, RunningSim, Trigger) {
    let (trigger, shutdown) = crate::shutdown::channel();
    let sim = devnet(behaviours, shutdown.clone()).await;
    let ups: Vec<(&str, &str)> = sim
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.url.as_str()))
        .collect();
    let state = state(&ups, &["--poll-ms", "100"]);
    for i in 0..state.upstreams.len() {
        tokio::spawn(super::super::poller::run_upstream(
            state.clone(),
            i,
            shutdown.clone(),
        ));
    }
    tokio::spawn(super::super::decider::run(state.clone(), shutdown.clone()));
    tokio::spawn(super::run(
        state.clone(),
        tokio::runtime::Handle::current(),
        shutdown,
    ));
    (state, sim, trigger)
}

fn pair_error(state: &AppState, i: usize) -> Option<&'static str> {
    state.upstreams[i].view().pair_error.map(|(kind, _)| kind)
}

#[tokio::test]
async fn a_refused_pair_moves_on_to_the_next_source_and_its_verified_pair_is_served() {
    let (state, _sim, trigger) = leanpoint(&[Behaviour::BlockMismatch, Behaviour::Healthy]).await;
    until(Duration::from_secs(20), "a served pair", || {
        state.served_state().is_some()
    })
    .await;
    let served = state.served_state().expect("served");
    let agreed = state.consensus().finalized.expect("agreed");
    assert_eq!((served.slot, served.root), (agreed.slot, agreed.root));
    assert!(agreed.root.is_some(), "agreed with a root");
    assert!(
        served.block.is_some() && served.state_root.is_some(),
        "a verified pair"
    );
    assert_eq!(served.fetched_from, "n1");
    assert_eq!(served.etag, format!("\"{}\"", agreed.root.expect("root")));
    assert_eq!(pair_error(&state, 0), Some("block_root_mismatch"));
    assert_eq!(pair_error(&state, 1), None);
    assert!(state.metrics.state_fetch_failures.get() >= 1);
    assert_eq!(state.metrics.pair.served_verified.get(), 1);
    trigger.fire();
}

#[tokio::test]
async fn nothing_unverified_is_served_when_every_source_is_refused() {
    let behaviours = [Behaviour::BlockMismatch, Behaviour::StateWrongSlot];
    let (state, _sim, trigger) = leanpoint(&behaviours).await;
    until(Duration::from_secs(20), "both sources refused", || {
        pair_error(&state, 0).is_some() && pair_error(&state, 1).is_some()
    })
    .await;
    assert!(state.consensus().agreement, "the checkpoint is agreed");
    assert_eq!(pair_error(&state, 0), Some("block_root_mismatch"));
    assert_eq!(pair_error(&state, 1), Some("state_slot_mismatch"));
    assert!(
        state.served_state().is_none(),
        "no proven pair, nothing served"
    );
    assert_eq!(state.metrics.pair.served_verified.get(), 0);
    trigger.fire();
}
