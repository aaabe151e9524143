//! `leanpoint sim` speaks the Lean API like the reference node: every route,
//! its content type, agreement between healthy nodes, lagging, fork and
//! legacy nodes, the admin endpoint and single-port addressing.

use std::io::Read;
use std::time::Duration;

use crate::support::http::{http, raw_get};
use crate::support::sim::{spawn, Sim, SimNode};
use crate::support::{wait_until, TempDir};
use leanpoint::lean::api::{self, paths};

fn get(node: &SimNode, path: &str) -> (u16, String, Vec<u8>) {
    http("GET", &format!("{}{path}", node.url), "")
}

fn head_slot(admin: &str) -> u64 {
    let (status, _, body) = http("GET", &format!("{admin}/admin/chain"), "");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("chain JSON");
    v["head_slot"].as_u64().expect("head_slot")
}

/// Fetches `path` from every node in `nodes` within one slot, retrying if
/// the chain advanced meanwhile. Returns (head slot, bodies).
fn same_slot_fetch(
    admin: &str,
    nodes: &[SimNode],
    path: &str,
) -> (u64, Vec<(u16, String, Vec<u8>)>) {
    wait_until(Duration::from_secs(10), "a fetch within one slot", || {
        let before = head_slot(admin);
        let got: Vec<_> = nodes.iter().map(|n| get(n, path)).collect();
        (head_slot(admin) == before).then_some((before, got))
    })
}

#[test]
fn healthy_nodes_agree_byte_for_byte_and_faulty_ones_differ() {
    let sim = Sim::start(&[
        "--nodes",
        "3:healthy,lagging:3,fork,legacy",
        "--slot-ms",
        "60000",
        "--start-slot",
        "20",
    ]);
    assert_eq!(sim.nodes.len(), 6);
    assert_eq!(sim.nodes[3].behaviour, "lagging:3");
    let healthy = &sim.nodes[..3];
    for (path, ctype) in [
        (paths::HEALTH, "application/json"),
        (paths::JUSTIFIED, "application/json"),
        (paths::FORK_CHOICE, "application/json"),
        (paths::STATE_FINALIZED, "application/octet-stream"),
        (paths::BLOCK_FINALIZED, "application/octet-stream"),
    ] {
        let (_, got) = same_slot_fetch(&sim.admin, healthy, path);
        for (i, (status, ct, body)) in got.iter().enumerate() {
            assert_eq!(*status, 200, "{path} node {i}");
            assert_eq!(ct, ctype, "{path} node {i}");
            assert_eq!(body, &got[0].2, "{path}: node {i} differs from node 0");
        }
    }

    let all = &sim.nodes[..5];
    let (head, fcs) = same_slot_fetch(&sim.admin, all, paths::FORK_CHOICE);
    let views: Vec<_> = fcs
        .iter()
        .map(|(_, _, b)| api::parse_fork_choice(b).expect("fork_choice parses"))
        .collect();
    let ok = &views[0];
    assert_eq!(
        (ok.head_slot, ok.justified.slot, ok.finalized.slot),
        (head, head - 2, head - 3)
    );
    let lag = &views[3];
    assert_eq!(lag.head_slot, head - 3, "lagging:3 is 3 slots behind");
    assert_eq!(lag.finalized.slot, ok.finalized.slot - 3);
    let fork = &views[4];
    assert_eq!(fork.finalized.slot, ok.finalized.slot);
    assert_eq!(fork.head_slot, ok.head_slot);
    assert_ne!(
        fork.finalized.root, ok.finalized.root,
        "fork disagrees at the same slot"
    );

    let (_, states) = same_slot_fetch(&sim.admin, all, paths::STATE_FINALIZED);
    for (i, (_, _, body)) in states.iter().enumerate() {
        let h = api::validate_state(body).unwrap_or_else(|e| panic!("node {i}: {e}"));
        assert_eq!(
            h.slot, views[i].finalized.slot,
            "node {i}: state slot = finalized slot"
        );
        assert_eq!(body.len(), 228 + 32 * h.slot as usize + 1 + 112 * 4 + 1);
    }
    let (_, cps) = same_slot_fetch(&sim.admin, all, paths::JUSTIFIED);
    let cp = api::parse_checkpoint(&cps[0].2).expect("checkpoint");
    assert_eq!(cp, ok.justified);

    let legacy = &sim.nodes[5];
    for path in [paths::FORK_CHOICE, paths::JUSTIFIED] {
        let (status, ct, body) = get(legacy, path);
        assert_eq!(
            (status, body.as_slice()),
            (404, &b"404: Not Found"[..]),
            "legacy {path}"
        );
        assert!(ct.starts_with("text/plain"), "{ct}");
    }
    let (status, _, body) = get(legacy, paths::STATE_FINALIZED);
    assert_eq!(status, 200);
    api::validate_state(&body).expect("legacy state validates");
    let (status, ct, body) = get(&sim.nodes[0], "/lean/v0/nonexistent");
    assert_eq!(
        (status, ct.as_str(), body.as_slice()),
        (404, "text/plain; charset=utf-8", &b"404: Not Found"[..])
    );
}

#[test]
fn admin_switches_a_node_to_accept_hang_and_back() {
    let sim = Sim::start(&["--nodes", "2:healthy", "--slot-ms", "1000"]);
    let node = &sim.nodes[1];
    assert_eq!(get(node, paths::FORK_CHOICE).0, 200);

    let url = format!("{}/admin/node/1/behaviour", sim.admin);
    let (status, _, body) = http("POST", &url, "accept-hang");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let mut s = raw_get(node.addr(), paths::FORK_CHOICE);
    s.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    let err = s.read(&mut buf).expect_err("a hung node answers nothing");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );

    let (_, _, listing) = http("GET", &format!("{}/admin/nodes", sim.admin), "");
    let nodes: serde_json::Value = serde_json::from_slice(&listing).expect("nodes JSON");
    assert_eq!(nodes[1]["behaviour"], "accept-hang");
    assert_eq!(nodes[0]["behaviour"], "healthy");

    assert_eq!(http("POST", &url, "sleepy").0, 400);
    assert_eq!(
        http(
            "POST",
            &format!("{}/admin/node/9/behaviour", sim.admin),
            "healthy"
        )
        .0,
        404
    );
    assert_eq!(http("POST", &url, "healthy").0, 200);
    assert_eq!(get(node, paths::FORK_CHOICE).0, 200);
}

#[test]
fn one_port_serves_hundreds_of_nodes() {
    let tmp = TempDir::new();
    let out = tmp.join("upstreams.json");
    let path = out.to_str().expect("utf-8 temp path");
    let sim = Sim::start(&["--single-port", "--nodes", "300", "--write-upstreams", path]);
    assert_eq!(sim.nodes.len(), 300);
    let port = sim.nodes[0].addr();
    assert!(
        sim.nodes.iter().all(|n| n.addr() == port),
        "one port for all"
    );
    assert_eq!(sim.nodes[299].prefix(), "/node/299");
    let pair = [sim.nodes[0].clone(), sim.nodes[299].clone()];
    let (_, got) = same_slot_fetch(&sim.admin, &pair, paths::FORK_CHOICE);
    assert_eq!(got[0].0, 200);
    assert_eq!(got[0].2, got[1].2);
    let (status, _, _) = http("GET", &format!("http://{port}/node/300/lean/v0/health"), "");
    assert_eq!(status, 404);

    // The upstreams file loads as leanpoint's own config does.
    let ups = leanpoint::config::load_upstreams_file(&out).expect("upstreams.json loads");
    assert_eq!(ups.len(), 300);
    assert_eq!(ups[7].name, "node-7");
    assert_eq!(ups[7].url.as_str(), format!("{}", sim.nodes[7].url));
    assert_eq!(ups[7].path, "/status");

    // A behaviour that needs its own port is refused here.
    let url = format!("{}/admin/node/3/behaviour", sim.admin);
    assert_eq!(http("POST", &url, "blackhole-connect").0, 409);
    assert_eq!(http("POST", &url, "accept-hang").0, 200);
}

#[test]
fn single_port_refuses_blackhole_at_start() {
    let mut p = spawn(&["sim", "--single-port", "--node", "blackhole-connect"]);
    let status = wait_until(Duration::from_secs(10), "the sim to exit", || p.exited());
    assert!(!status.success());
    p.stderr_line(
        |l| l.contains("needs a port per node"),
        Duration::from_secs(5),
    );
}

#[test]
fn http_level_faults() {
    let sim = Sim::start(&[
        "--nodes",
        "garbage,http-status:502,no-store,flap:1",
        "--slot-ms",
        "300",
    ]);
    let (status, ct, body) = get(&sim.nodes[0], paths::FORK_CHOICE);
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    let e = api::parse_fork_choice(&body).expect_err("garbage does not parse");
    assert!(e.to_string().starts_with("fork_choice JSON: "), "{e}");
    let (status, _, body) = get(&sim.nodes[0], paths::STATE_FINALIZED);
    assert_eq!(status, 200);
    let e = api::validate_state(&body).expect_err("random bytes are no State");
    assert!(e.to_string().starts_with("state "), "{e}");

    let (status, _, body) = get(&sim.nodes[1], paths::FORK_CHOICE);
    assert_eq!((status, body.as_slice()), (502, &b"502: Bad Gateway"[..]));

    assert_eq!(get(&sim.nodes[2], paths::HEALTH).0, 200);
    assert_eq!(get(&sim.nodes[2], paths::FORK_CHOICE).0, 503);

    // flap:1 alternates every slot (300 ms): both answers show up.
    let mut seen = std::collections::BTreeSet::new();
    wait_until(Duration::from_secs(10), "flap to show 200 and 503", || {
        seen.insert(get(&sim.nodes[3], paths::FORK_CHOICE).0);
        (seen.len() == 2).then_some(())
    });
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![200, 503]);
}

#[tokio::test]
async fn keep_alive_connections_are_reused() {
    let sim = Sim::start(&["--nodes", "1"]);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let url = format!("{}{}", sim.nodes[0].url, paths::FORK_CHOICE);
    for _ in 0..20 {
        let r = client.get(&url).send().await.expect("request");
        assert_eq!(r.status(), 200);
        let body = r.bytes().await.expect("body");
        api::parse_fork_choice(&body).expect("parses");
    }
}
