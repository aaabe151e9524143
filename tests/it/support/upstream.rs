//! Simulated upstreams in this process: the simulator's nodes
//! (`leanpoint::sim`), each on its own 127.0.0.1 port, serving captured
//! fixtures, exact hostile replies or raw-socket faults ([`Mode`]),
//! switchable at run time, with the simulator's ledger of the connections
//! leanpoint opens to them.
//!
//! The sim runs on a thread and runtime of its own, so blocking test code
//! never starves it, and everything it holds closes when the last
//! [`SimUpstream`] of a [`start`] call drops.

use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use leanpoint::devnet::canned::{Canned, CannedReply};
use leanpoint::devnet::chain::ChainParams;
use leanpoint::devnet::conns::{ConnRecord, ConnStats};
use leanpoint::devnet::{Behaviour, SimConfig, SimHandle};
use leanpoint::shutdown::Trigger;

use super::fixtures::{FixtureRoutes, BLOCK, JSON, SSZ, STATE};

/// How a simulated upstream behaves. Applied per request, so a switch takes
/// effect on the next request, also on an open keep-alive connection.
#[derive(Clone, Debug)]
pub enum Mode {
    /// Serves `lean-api/<folder>` (see [`FixtureRoutes::fixture`]).
    Fixture(&'static str),
    /// Serves only the folder's finalized State (see [`FixtureRoutes::legacy`]).
    Legacy(&'static str),
    /// Custom routes.
    Routes(Canned),
    /// Reads the request, never answers, keeps the socket open (the incident).
    AcceptHang,
    /// Reads the request, shuts down its write side (FIN), keeps the socket.
    HalfClose,
    /// Sends a 200 head announcing [`leanpoint::devnet::canned::DRIP_LENGTH`]
    /// bytes, then one body byte every 100 ms, forever, on every path.
    SlowDrip,
    /// Any chain-backed behaviour of the simulator.
    Sim(Behaviour),
}

impl Mode {
    fn behaviour(self) -> Behaviour {
        let canned = |c: Canned| Behaviour::Canned(Arc::new(c));
        match self {
            Mode::Fixture(f) => canned(Canned::fixture(f)),
            Mode::Legacy(f) => canned(Canned::legacy(f)),
            Mode::Routes(r) => canned(r),
            Mode::AcceptHang => Behaviour::AcceptHang,
            Mode::HalfClose => Behaviour::HalfClose,
            Mode::SlowDrip => canned(
                Canned::default()
                    .with(STATE, CannedReply::ok(SSZ, "").dripping())
                    .with(BLOCK, CannedReply::ok(SSZ, "").dripping())
                    .otherwise(CannedReply::ok(JSON, "").dripping()),
            ),
            Mode::Sim(b) => b,
        }
    }
}

/// The sim's thread; stopped (every socket closed) when dropped.
struct SimThread {
    stop: Trigger,
    thread: Option<JoinHandle<()>>,
}

impl Drop for SimThread {
    fn drop(&mut self) {
        self.stop.fire();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One simulated upstream.
#[derive(Clone)]
pub struct SimUpstream {
    url: String,
    node: usize,
    handle: SimHandle,
    _sim: Arc<SimThread>,
}

type Started = Result<(Vec<String>, SimHandle, Trigger), String>;

/// Starts one simulated upstream per mode, in one sim.
pub fn start(modes: Vec<Mode>) -> Vec<SimUpstream> {
    let behaviours = modes.into_iter().map(Mode::behaviour).collect();
    let chain = ChainParams::starting_now(1, 4, Duration::from_secs(4), 16);
    let config = SimConfig::loopback(chain, behaviours);
    let (tx, rx) = mpsc::channel::<Started>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the sim");
        rt.block_on(async move {
            let (trigger, mut shutdown) = leanpoint::shutdown::channel();
            match leanpoint::devnet::server::start(config, trigger.subscribe()).await {
                Ok(sim) => {
                    let urls = sim.nodes.iter().map(|n| n.url.clone()).collect();
                    let _ = tx.send(Ok((urls, sim.handle(), trigger)));
                    shutdown.wait().await;
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("{e:#}")));
                }
            }
        });
    });
    let (urls, handle, stop) = rx
        .recv()
        .expect("the sim thread answers")
        .unwrap_or_else(|e| panic!("starting simulated upstreams: {e}"));
    let sim = Arc::new(SimThread {
        stop,
        thread: Some(thread),
    });
    urls.into_iter()
        .enumerate()
        .map(|(node, url)| SimUpstream {
            url,
            node,
            handle: handle.clone(),
            _sim: sim.clone(),
        })
        .collect()
}

impl SimUpstream {
    /// One simulated upstream in a sim of its own.
    pub fn start(mode: Mode) -> SimUpstream {
        start(vec![mode]).remove(0)
    }

    /// Base URL (`http://127.0.0.1:PORT`) to put in an upstreams file.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Switches the behaviour for every following request.
    pub fn set_mode(&self, mode: Mode) {
        self.handle.set_behaviour(self.node, mode.behaviour());
    }

    fn stats(&self) -> ConnStats {
        self.handle.connections(self.node)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.stats().accepted()
    }

    /// Connections open now (peer closes already in the kernel are counted).
    pub fn open(&self) -> usize {
        self.stats().open
    }

    /// The most connections that were ever open at once.
    pub fn max_open(&self) -> usize {
        self.stats().max_open
    }

    /// Every connection accepted so far, in order.
    pub fn connections(&self) -> Vec<ConnRecord> {
        self.stats().records
    }

    /// Requests received for `path`.
    pub fn requests(&self, path: &str) -> usize {
        self.handle.requests(self.node, path)
    }

    /// Asserts leanpoint never had two connections open to this upstream
    /// (`name` in the message), listing the overlapping ones if it did.
    pub fn assert_one_connection_at_a_time(&self, name: &str) {
        let stats = self.stats();
        assert!(
            stats.max_open <= 1,
            "{name} saw {} connections from leanpoint open at once: {}",
            stats.max_open,
            overlaps(&stats.records)
        );
    }
}

/// The connections that were open together, for the failure message.
fn overlaps(conns: &[ConnRecord]) -> String {
    let t0 = conns.first().map(|c| c.accepted_at);
    let ms = |t: Instant| t0.map_or(0, |t0| (t - t0).as_millis());
    conns
        .windows(2)
        .filter(|w| w[0].closed_at.is_none_or(|c| c > w[1].accepted_at))
        .map(|w| {
            format!(
                "[{}..{:?}] overlaps [{}..]",
                ms(w[0].accepted_at),
                w[0].closed_at.map(ms),
                ms(w[1].accepted_at)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
