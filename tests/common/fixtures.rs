//! The captured Lean API responses (tests/fixtures/lean-api) and canned
//! responses built from them, for fake upstreams to serve.

use std::collections::HashMap;

use bytes::Bytes;

/// The captured Lean API responses of the reference node (read-only).
pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/lean-api");

/// Content type of the JSON routes, as the reference node sends it.
pub const JSON: &str = "application/json";
/// Content type of the SSZ routes.
pub const SSZ: &str = "application/octet-stream";

/// Lean API paths a fake upstream knows.
pub const FORK_CHOICE: &str = "/lean/v0/fork_choice";
pub const JUSTIFIED: &str = "/lean/v0/checkpoints/justified";
pub const HEALTH: &str = "/lean/v0/health";
pub const STATE: &str = "/lean/v0/states/finalized";
pub const BLOCK: &str = "/lean/v0/blocks/finalized";

/// Bytes of `lean-api/<folder>/<file>`.
pub fn fixture(folder: &str, file: &str) -> Vec<u8> {
    let path = format!("{FIXTURES}/{folder}/{file}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading fixture {path}: {e}"))
}

/// The finalized root (`0x…`) and slot in `lean-api/<folder>/fork_choice.json`.
pub fn fixture_finalized(folder: &str) -> (u64, String) {
    let v: serde_json::Value = serde_json::from_slice(&fixture(folder, "fork_choice.json"))
        .expect("fixture fork_choice.json is JSON");
    let slot = v["finalized"]["slot"].as_u64().expect("finalized.slot");
    let root = v["finalized"]["root"].as_str().expect("finalized.root");
    (slot, root.to_string())
}

/// One canned response.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Bytes,
    /// Sent with `Transfer-Encoding: chunked` (no Content-Length), so a size
    /// cap can only be enforced while streaming.
    pub chunked: bool,
    /// Sent as a 200 head with a large Content-Length, then one body byte
    /// every 100 ms forever (status and body are ignored).
    pub drip: bool,
    /// Extra response headers (`Location` of a redirect).
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// 200 with this content type and body.
    pub fn ok(content_type: &str, body: impl Into<Bytes>) -> Reply {
        Reply {
            status: 200,
            content_type: content_type.to_string(),
            body: body.into(),
            chunked: false,
            drip: false,
            headers: Vec::new(),
        }
    }

    /// The reference node's 404 (`404: Not Found`, text/plain).
    pub fn not_found() -> Reply {
        Reply {
            status: 404,
            content_type: "text/plain; charset=utf-8".to_string(),
            body: Bytes::from_static(b"404: Not Found"),
            chunked: false,
            drip: false,
            headers: Vec::new(),
        }
    }

    /// `status` (a 3xx) to `location`, empty body.
    pub fn redirect(status: u16, location: &str) -> Reply {
        let mut r = Reply::status(status, "text/plain; charset=utf-8", "");
        r.headers
            .push(("Location".to_string(), location.to_string()));
        r
    }

    /// Any status with this content type and body.
    pub fn status(status: u16, content_type: &str, body: impl Into<Bytes>) -> Reply {
        let mut r = Reply::ok(content_type, body);
        r.status = status;
        r
    }

    /// This route's content type, dripped forever (see `drip`).
    pub fn dripping(mut self) -> Reply {
        self.drip = true;
        self
    }

    /// The same response sent chunked.
    pub fn chunked(mut self) -> Reply {
        self.chunked = true;
        self
    }
}

/// Path -> response; any other path gets [`Reply::not_found`].
#[derive(Clone, Debug, Default)]
pub struct Routes(HashMap<String, Reply>);

impl Routes {
    /// Every Lean API route of a fixture folder, with the node's content
    /// types; a `*.503.txt` capture (the `nostore` folder) is served as 503.
    pub fn fixture(folder: &str) -> Routes {
        let mut routes = Routes::default();
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
                Reply {
                    status: 503,
                    content_type: "text/plain; charset=utf-8".to_string(),
                    body: body.into(),
                    chunked: false,
                    drip: false,
                    headers: Vec::new(),
                }
            } else {
                panic!("fixture folder {folder} has no {file}");
            };
            routes.0.insert(path.to_string(), reply);
        }
        routes
    }

    /// A client without fork_choice and checkpoints/justified (404): only
    /// the finalized State, as the oldest lean clients serve.
    pub fn legacy(folder: &str) -> Routes {
        Routes::default().with(
            STATE,
            Reply::ok(SSZ, fixture(folder, "states_finalized.ssz")),
        )
    }

    /// Replaces (or adds) one route.
    pub fn with(mut self, path: &str, reply: Reply) -> Routes {
        self.0.insert(path.to_string(), reply);
        self
    }

    /// The response for `path`.
    pub fn reply(&self, path: &str) -> Reply {
        self.0.get(path).cloned().unwrap_or_else(Reply::not_found)
    }
}
