//! Serving the simulated nodes: listeners, connections, replies on the wire.
//!
//! Two addressing modes. Per-node ports: node i has its own listener and
//! serves `/lean/v0/...`; every behaviour works, including
//! `blackhole-connect`, which stops accepting and keeps the listener's accept
//! queue full so the kernel drops new SYNs. One shared port: node i is
//! `/node/{i}/lean/v0/...`, so a thousand nodes cost one listener; every
//! behaviour except `blackhole-connect` works there, since the others act on
//! the connection that carried the node's request.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::BytesMut;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::chain::{Branch, Chain, ChainParams};
use super::faults::{self, Behaviour, Reply, Route};
use super::nodes::Node;
use super::nodes::Sim;
pub use super::nodes::{Addressing, NodeInfo, NodeSpec, SimConfig};
use super::{admin, http1, wire};
use crate::shutdown::Shutdown;

/// A connection that starts no request within this is closed.
const IDLE: Duration = Duration::from_secs(60);
/// The accept backlog outside blackhole mode (tokio's default).
const BACKLOG: i32 = 1024;
/// A started sim. Dropping it stops the listeners.
pub struct RunningSim {
    pub nodes: Vec<NodeInfo>,
    pub admin_url: String,
    /// For [`RunningSim::handle`] (in `in_process`).
    pub(crate) sim: Arc<Sim>,
    _tasks: JoinSet<()>,
}

#[derive(Clone, Copy)]
enum Target {
    Node(usize),
    Shared,
    Admin,
}

fn shown_host(bind: IpAddr) -> IpAddr {
    if bind.is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        bind
    }
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("sim: cannot bind {what} on {addr}"))
}

/// Binds every listener, then starts serving until `shutdown`.
pub async fn start(config: SimConfig, shutdown: Shutdown) -> anyhow::Result<RunningSim> {
    let host = shown_host(config.bind);
    let single_port = matches!(config.addressing, Addressing::Paths { .. });
    if single_port {
        refuse_own_port_behaviours(&config.nodes)?;
    }
    let (mut listeners, urls) = node_listeners(&config, host).await?;
    let admin = bind(
        SocketAddr::new(config.bind, config.admin_port),
        "the admin port",
    )
    .await?;
    let admin_url = format!(
        "http://{}",
        SocketAddr::new(host, admin.local_addr()?.port())
    );
    listeners.push((Target::Admin, admin));

    let nodes: Vec<NodeInfo> = config
        .nodes
        .iter()
        .zip(&urls)
        .map(|(n, url)| NodeInfo {
            name: n.name.clone(),
            url: url.clone(),
            behaviour: n.behaviour.clone(),
        })
        .collect();
    let chain = walked_chain(config.chain, &config.nodes).await?;
    let sim = Arc::new(Sim {
        chain,
        nodes: nodes.iter().map(Node::new).collect(),
        single_port,
    });
    let mut tasks = JoinSet::new();
    for (target, listener) in listeners {
        tasks.spawn(accept_loop(sim.clone(), target, listener, shutdown.clone()));
    }
    settle_all(&sim).await?;
    Ok(RunningSim {
        nodes,
        admin_url,
        sim,
        _tasks: tasks,
    })
}

/// On one shared port a behaviour that acts on the node's own listener
/// (`blackhole-connect`) cannot work: refused before anything binds.
fn refuse_own_port_behaviours(nodes: &[NodeSpec]) -> anyhow::Result<()> {
    match nodes
        .iter()
        .enumerate()
        .find(|(_, n)| n.behaviour.needs_own_port())
    {
        Some((i, n)) => anyhow::bail!(
            "sim: node {i} ({}) is {}, which needs a port per node; drop --single-port",
            n.name,
            n.behaviour
        ),
        None => Ok(()),
    }
}

/// The nodes' listeners and base URLs: one port each, or one shared port
/// with `/node/{i}` prefixes.
async fn node_listeners(
    config: &SimConfig,
    host: IpAddr,
) -> anyhow::Result<(Vec<(Target, TcpListener)>, Vec<String>)> {
    let mut listeners = Vec::new();
    let mut urls = Vec::new();
    match config.addressing {
        Addressing::Ports { base } => {
            for i in 0..config.nodes.len() {
                let port = match base {
                    Some(b) => u16::try_from(b as usize + i)
                        .map_err(|_| anyhow::anyhow!("sim: --base-port {b} + {i} exceeds 65535"))?,
                    None => 0,
                };
                let l = bind(SocketAddr::new(config.bind, port), &format!("node {i}")).await?;
                urls.push(format!(
                    "http://{}",
                    SocketAddr::new(host, l.local_addr()?.port())
                ));
                listeners.push((Target::Node(i), l));
            }
        }
        Addressing::Paths { port } => {
            let l = bind(SocketAddr::new(config.bind, port), "the shared node port").await?;
            let base = SocketAddr::new(host, l.local_addr()?.port());
            urls.extend((0..config.nodes.len()).map(|i| format!("http://{base}/node/{i}")));
            listeners.push((Target::Shared, l));
        }
    }
    Ok((listeners, urls))
}

/// A node that starts blackholed must already drop SYNs when its URL is
/// printed, or a client could slip into the accept queue first.
async fn settle_all(sim: &Sim) -> anyhow::Result<()> {
    for (i, node) in sim.nodes.iter().enumerate() {
        if !node.settled().await {
            anyhow::bail!(
                "sim: node {i} ({}) did not enter {}",
                node.name,
                *node.behaviour.borrow()
            );
        }
    }
    Ok(())
}

/// The chain, with every branch a node starts on walked up to now: the
/// roots of a 100000-slot chain take seconds, paid here rather than by the
/// first requests.
async fn walked_chain(params: ChainParams, nodes: &[NodeSpec]) -> anyhow::Result<Chain> {
    let mut branches = vec![Branch::Main];
    for n in nodes {
        if let Some(b) = n.behaviour.branch() {
            if !branches.contains(&b) {
                branches.push(b);
            }
        }
    }
    tokio::task::spawn_blocking(move || {
        let chain = Chain::new(params);
        for b in branches {
            chain.walk(b);
        }
        chain
    })
    .await
    .context("sim: walking the chain failed")
}

async fn accept_loop(sim: Arc<Sim>, target: Target, listener: TcpListener, mut shutdown: Shutdown) {
    let mut changes = match target {
        Target::Node(i) => Some(sim.nodes[i].behaviour.subscribe()),
        _ => None,
    };
    loop {
        if let Some(rx) = changes.as_mut() {
            if rx.borrow_and_update().needs_own_port() {
                let Target::Node(i) = target else { return };
                blackhole(&listener, rx, &sim.nodes[i].blackholed, &mut shutdown).await;
                if shutdown.is_fired() {
                    return;
                }
                continue;
            }
        }
        let changed = async {
            match changes.as_mut() {
                Some(rx) => rx.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.wait() => return,
            still_there = changed => if !still_there { return },
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(connection(sim.clone(), target, stream, shutdown.clone()));
                }
                Err(e) => {
                    // Out of fds or similar: back off instead of spinning.
                    tracing::warn!(error = %e, "sim: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// Stops accepting and keeps the accept queue full until the behaviour
/// changes: with a backlog of 0 the queue holds one connection, ours, and
/// Linux drops every further SYN, so clients' connects time out.
async fn blackhole(
    listener: &TcpListener,
    changes: &mut watch::Receiver<Behaviour>,
    blackholed: &watch::Sender<bool>,
    shutdown: &mut Shutdown,
) {
    if let Err(e) = rustix::net::listen(listener, 0) {
        tracing::warn!(error = %e, "sim: cannot shrink the backlog; blackhole-connect ineffective");
    }
    let fillers = match listener.local_addr() {
        Ok(addr) => fill_accept_queue(addr).await,
        Err(_) => Vec::new(),
    };
    blackholed.send_replace(true);
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            r = changes.changed() => {
                if r.is_err() || !changes.borrow_and_update().needs_own_port() {
                    break;
                }
            }
        }
    }
    if let Err(e) = rustix::net::listen(listener, BACKLOG) {
        tracing::warn!(error = %e, "sim: cannot restore the backlog");
    }
    drop(fillers);
    blackholed.send_replace(false);
}

/// Connects to `addr` until a connect times out: the queue is then full.
async fn fill_accept_queue(addr: SocketAddr) -> Vec<TcpStream> {
    let target = SocketAddr::new(shown_host(addr.ip()), addr.port());
    let mut held = Vec::new();
    for _ in 0..8 {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(target)).await {
            Ok(Ok(s)) => held.push(s),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "sim: blackhole filler connect failed");
                return held;
            }
            Err(_) => return held,
        }
    }
    tracing::warn!("sim: accept queue never filled; blackhole-connect ineffective");
    held
}

async fn connection(sim: Arc<Sim>, target: Target, mut stream: TcpStream, mut shutdown: Shutdown) {
    let _ = stream.set_nodelay(true);
    let id = match target {
        Target::Node(i) => Some(sim.nodes[i].conns.accepted(&stream)),
        _ => None,
    };
    tokio::select! {
        _ = shutdown.wait() => {}
        _ = serve(&sim, target, &mut stream, id) => {}
    }
    if let (Target::Node(i), Some(id)) = (target, id) {
        sim.nodes[i].conns.closed(id);
    }
}

/// `conn`: the id of the connection in its node's ledger (own port only).
async fn serve(sim: &Sim, target: Target, stream: &mut TcpStream, conn: Option<usize>) {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        let req = match http1::read_request(stream, &mut buf, IDLE).await {
            Ok(Some(r)) => r,
            _ => return,
        };
        let node = |i: usize, path: &str| {
            sim.nodes[i].conns.request(conn, path);
            node_reply(sim, i, &req.method, path)
        };
        let reply = match target {
            Target::Admin => admin::handle(sim, &req).await,
            Target::Node(i) => node(i, &req.path),
            Target::Shared => match split_node_path(&req.path, sim.nodes.len()) {
                Some((i, rest)) => node(i, rest),
                None => faults::not_found(),
            },
        };
        if !wire::send(stream, reply, req.close).await {
            return;
        }
    }
}

/// `/node/{i}/rest` to `(i, "/rest")`.
fn split_node_path(path: &str, nodes: usize) -> Option<(usize, &str)> {
    let rest = path.strip_prefix("/node/")?;
    let (index, rest) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, ""),
    };
    let i: usize = index.parse().ok()?;
    (i < nodes).then_some((i, rest))
}

fn node_reply(sim: &Sim, i: usize, method: &str, path: &str) -> Reply {
    let behaviour = sim.nodes[i].behaviour.borrow().clone();
    if let Behaviour::Canned(canned) = &behaviour {
        return Reply::Canned(canned.reply(path).clone());
    }
    if method != "GET" {
        return faults::status_reply(405, "Method Not Allowed");
    }
    let route = Route::from_path(path);
    if matches!(behaviour, Behaviour::MovesOn(_)) && route == Route::BlockFinalized {
        sim.nodes[i].behaviour.send_replace(Behaviour::Healthy);
        return faults::reply(&Behaviour::Healthy, route, &sim.chain);
    }
    faults::reply(&behaviour, route, &sim.chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_paths_split() {
        assert_eq!(
            split_node_path("/node/3/lean/v0/health", 4),
            Some((3, "/lean/v0/health"))
        );
        assert_eq!(split_node_path("/node/4/lean/v0/health", 4), None);
        assert_eq!(split_node_path("/node/x/lean", 4), None);
        assert_eq!(split_node_path("/lean/v0/health", 4), None);
        assert_eq!(split_node_path("/node/0", 4), Some((0, "")));
    }
}
