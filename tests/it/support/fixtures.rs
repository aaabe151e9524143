//! The captured Lean API responses (tests/fixtures/lean-api) and canned
//! replies built from them, for simulated upstreams to serve.

use leanpoint::devnet::canned::{Canned, CannedReply};

use super::http::Resp;

/// The captured Lean API responses of the reference node (read-only).
pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/lean-api");

/// Content type of the JSON routes, as the reference node sends it.
pub const JSON: &str = "application/json";
/// Content type of the SSZ routes.
pub const SSZ: &str = "application/octet-stream";

/// Lean API paths a simulated upstream knows.
pub const FORK_CHOICE: &str = "/lean/v0/fork_choice";
pub const JUSTIFIED: &str = "/lean/v0/checkpoints/justified";
pub const HEALTH: &str = "/lean/v0/health";
pub const STATE: &str = "/lean/v0/states/finalized";
pub const BLOCK: &str = "/lean/v0/blocks/finalized";

/// Advanced fixture: finalized slot 9 and justified slot 10 roots.
pub const FINALIZED_ROOT: &str =
    "0x910fbdd40c1da21c7dd93fc14d3de1bd5e0093ce3eab1472b8f6096da0760a21";
pub const JUSTIFIED_ROOT: &str =
    "0x88c4239a55e0f0d9c76be0f3ad17c5764f9a6ee6d145deb9042f6cc15622f3d7";

/// Bytes of `lean-api/<folder>/<file>`.
pub fn fixture(folder: &str, file: &str) -> Vec<u8> {
    let path = format!("{FIXTURES}/{folder}/{file}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading fixture {path}: {e}"))
}

/// Asserts `r` is a 200 whose body is `lean-api/<folder>/<file>` byte for
/// byte: what leanpoint serves is exactly what the proven upstream sent.
pub fn assert_fixture_body(r: &Resp, folder: &str, file: &str) {
    let head: String = String::from_utf8_lossy(&r.body).chars().take(200).collect();
    assert_eq!(r.status, 200, "{folder}/{file}: {head}");
    let want = fixture(folder, file);
    assert!(
        r.body == want,
        "{folder}/{file}: {} bytes served, {} in the fixture, first difference at byte {:?}",
        r.body.len(),
        want.len(),
        r.body.iter().zip(&want).position(|(a, b)| a != b)
    );
}

/// The finalized root (`0x…`) and slot in `lean-api/<folder>/fork_choice.json`.
pub fn fixture_finalized(folder: &str) -> (u64, String) {
    let v: serde_json::Value = serde_json::from_slice(&fixture(folder, "fork_choice.json"))
        .expect("fixture fork_choice.json is JSON");
    let slot = v["finalized"]["slot"].as_u64().expect("finalized.slot");
    let root = v["finalized"]["root"].as_str().expect("finalized.root");
    (slot, root.to_string())
}

/// One canned response (built with `Reply::ok`, `Reply::status`, ...).
pub type Reply = CannedReply;
/// Path -> response; any other path gets [`Reply::not_found`].
pub type Routes = Canned;

/// The routes of captured fixture folders.
pub trait FixtureRoutes: Sized {
    /// Every Lean API route of a fixture folder, with the node's content
    /// types; a `*.503.txt` capture (the `nostore` folder) is served as 503.
    fn fixture(folder: &str) -> Self;
    /// A client without fork_choice and checkpoints/justified (404): only
    /// the finalized State, as the oldest lean clients serve.
    fn legacy(folder: &str) -> Self;
}

impl FixtureRoutes for Canned {
    fn fixture(folder: &str) -> Canned {
        let mut routes = Canned::default();
        for (path, file, ct) in [
            (FORK_CHOICE, "fork_choice", JSON),
            (JUSTIFIED, "checkpoints_justified", JSON),
            (HEALTH, "health", JSON),
            (STATE, "states_finalized", SSZ),
            (BLOCK, "blocks_finalized", SSZ),
        ] {
            let ext = if ct == JSON { "json" } else { "ssz" };
            let base = format!("{FIXTURES}/{folder}/{file}");
            let reply = if let Ok(body) = std::fs::read(format!("{base}.{ext}")) {
                Reply::ok(ct, body)
            } else if let Ok(body) = std::fs::read(format!("{base}.503.txt")) {
                Reply::status(503, "text/plain; charset=utf-8", body)
            } else {
                panic!("fixture folder {folder} has no {file}");
            };
            routes = routes.with(path, reply);
        }
        routes
    }

    fn legacy(folder: &str) -> Canned {
        Canned::default().with(
            STATE,
            Reply::ok(SSZ, fixture(folder, "states_finalized.ssz")),
        )
    }
}
