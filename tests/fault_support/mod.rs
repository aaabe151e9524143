//! Shared by the fault_* tests: a simulated devnet with leanpoint polling
//! it, deadline-bounded probes on new connections, and what the tests read
//! from /proc and from the nodes themselves to judge leanpoint from outside.
//!
//! Builds on `sim_support` (the sim process, its discovery lines) and
//! `http_support` (the leanpoint process, responses, metrics): a test crate
//! using this module declares those two as well.

#![allow(dead_code)] // each test file uses a different part

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use leanpoint::lean::api::{self, paths};
use serde_json::Value;

use crate::http_support::{parse_response, Leanpoint, Resp};
use crate::sim_support::{http, start_sim, Sim, SimNode, TempFile};

/// A running sim and the upstreams.json it wrote for leanpoint.
pub struct Devnet {
    pub sim: Sim,
    pub upstreams: TempFile,
}

impl Devnet {
    /// Starts `leanpoint sim ARGS --write-upstreams FILE`, with a file of
    /// its own (tests of one crate run in parallel in one process).
    pub fn start(tag: &str, args: &[&str]) -> Devnet {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let upstreams = TempFile::new(&format!("{tag}-{n}-upstreams.json"));
        let path = upstreams.0.to_str().expect("utf-8 temp path").to_string();
        let mut argv: Vec<&str> = args.to_vec();
        argv.extend(["--write-upstreams", &path]);
        let sim = start_sim(&argv);
        Devnet { sim, upstreams }
    }

    pub fn upstreams_path(&self) -> &str {
        self.upstreams.0.to_str().expect("utf-8 temp path")
    }

    pub fn node(&self, i: usize) -> &SimNode {
        &self.sim.nodes[i]
    }
}

/// One request on a new connection that must be answered completely within
/// `limit` (connect, any wait in the accept backlog, and the whole body).
/// Err says what did not happen in time.
pub fn probe(addr: SocketAddr, path: &str, limit: Duration) -> Result<(Resp, Duration), String> {
    let started = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, limit)
        .map_err(|e| format!("{path}: connect: {e} after {:?}", started.elapsed()))?;
    let left = limit
        .saturating_sub(started.elapsed())
        .max(Duration::from_millis(1));
    s.set_read_timeout(Some(left)).expect("read timeout");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("{path}: send: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| {
        format!(
            "{path}: no complete answer within {limit:?} ({e} after {:?}, {} bytes)",
            started.elapsed(),
            raw.len()
        )
    })?;
    let took = started.elapsed();
    if took > limit {
        return Err(format!("{path}: answered in {took:?}, over {limit:?}"));
    }
    if raw.is_empty() {
        return Err(format!("{path}: connection closed without an answer"));
    }
    Ok((parse_response(&raw), took))
}

/// [`probe`] that panics with the server's recent log when it fails.
pub fn must_probe(lp: &Leanpoint, path: &str, limit: Duration) -> Resp {
    probe(lp.addr, path, limit)
        .unwrap_or_else(|e| panic!("{e}\nleanpoint log tail:\n{}", log_tail(lp, 20)))
        .0
}

/// GET `path` (answered within 2 s) as JSON.
pub fn json(lp: &Leanpoint, path: &str) -> Value {
    let r = must_probe(lp, path, Duration::from_secs(2));
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()
}

/// /metrics text (answered within 2 s).
pub fn metrics(lp: &Leanpoint) -> String {
    let r = must_probe(lp, "/metrics", Duration::from_secs(2));
    assert_eq!(r.status, 200, "/metrics: {}", r.text());
    r.text()
}

/// The /api/upstreams entry named `name`.
pub fn upstream(all: &Value, name: &str) -> Value {
    all["upstreams"]
        .as_array()
        .expect("upstreams array")
        .iter()
        .find(|u| u["name"] == name)
        .unwrap_or_else(|| panic!("no upstream {name} in {all}"))
        .clone()
}

pub fn log_tail(lp: &Leanpoint, n: usize) -> String {
    let log = lp.log.lock().expect("log lock");
    log[log.len().saturating_sub(n)..].join("\n")
}

/// VmRSS of `pid` in KiB.
pub fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

/// Lets this test process hold many client sockets whatever the shell's
/// soft limit is.
pub fn raise_own_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let l = getrlimit(Resource::Nofile);
    if let (Some(cur), Some(max)) = (l.current, l.maximum) {
        if cur < 4096 && max > cur {
            let _ = setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(max.min(4096)),
                    maximum: Some(max),
                },
            );
        }
    }
}

/// Block roots by slot, as a healthy node's own fork choice lists them (its
/// finalized slot up to its head).
pub fn node_roots(node: &SimNode) -> Vec<(u64, String)> {
    let (status, _, body) = http("GET", &format!("{}{}", node.url, paths::FORK_CHOICE), "");
    assert_eq!(status, 200, "{} fork_choice", node.name);
    let v: Value = serde_json::from_slice(&body).expect("fork_choice JSON");
    v["nodes"]
        .as_array()
        .expect("fork_choice nodes")
        .iter()
        .map(|n| {
            let slot = n["slot"].as_u64().expect("node slot");
            (slot, n["root"].as_str().expect("node root").to_string())
        })
        .collect()
}

/// The finalized State a node serves now, and its slot.
pub fn node_state(node: &SimNode) -> (u64, Vec<u8>) {
    let (status, _, body) = http(
        "GET",
        &format!("{}{}", node.url, paths::STATE_FINALIZED),
        "",
    );
    assert_eq!(status, 200, "{} states/finalized", node.name);
    let slot = api::parse_state_header(&body)
        .expect("node state header")
        .slot;
    (slot, body)
}

/// The State leanpoint serves together with the /status it belongs to:
/// read /status, the State, /status again, until neither moved in between
/// and the State is the one of the agreed slot (it is downloaded right after
/// an agreement moves, so for a moment the previous one is still served).
pub struct Served {
    pub status: Value,
    pub slot: u64,
    pub etag: String,
    pub bytes: Vec<u8>,
}

pub fn served_state(lp: &Leanpoint, within: Duration) -> Served {
    let deadline = Instant::now() + within;
    loop {
        let before = json(lp, "/status");
        let r = must_probe(lp, paths::STATE_FINALIZED, Duration::from_secs(2));
        let after = json(lp, "/status");
        let problem = if r.status == 200 {
            let header = api::parse_state_header(&r.body)
                .unwrap_or_else(|e| panic!("served State does not parse: {e}"));
            let agreed = after["finalized_slot"].as_u64().expect("finalized_slot");
            if before["finalized_slot"] == after["finalized_slot"] && header.slot == agreed {
                return Served {
                    slot: header.slot,
                    etag: r.header("etag").unwrap_or_default().to_string(),
                    bytes: r.body,
                    status: after,
                };
            }
            format!(
                "State slot {} while /status said {} then {}",
                header.slot, before["finalized_slot"], after["finalized_slot"]
            )
        } else {
            format!("states/finalized {}: {}", r.status, r.text())
        };
        assert!(
            Instant::now() < deadline,
            "no consistent State and /status within {within:?}: {problem}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
