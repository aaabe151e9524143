//! Node behaviours: what a simulated node does with each request.
//!
//! Every behaviour is decided per request from the node's current behaviour
//! and the chain's current slot, so a behaviour switched through the admin
//! endpoint applies from the next request on. The raw-socket ones (hang,
//! half-close, reset) act on the connection that carried the request, so they
//! work in both addressing modes; only `blackhole-connect`, which acts before
//! any request exists, needs the node's own port.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::canned::{Canned, CannedReply};
use super::chain::{Branch, Chain};
use super::encode;
use super::http1::canonical_reason;
use crate::lean::api::paths;

pub const JSON: &str = "application/json";
pub const SSZ: &str = "application/octet-stream";
pub const TEXT: &str = "text/plain; charset=utf-8";

const DEFAULT_FORK_FROM: u64 = 1;
const DEFAULT_DRIP: Duration = Duration::from_millis(100);
const DEFAULT_FLAP_SLOTS: u64 = 3;
const DEFAULT_TRAILING: usize = 4;

/// What a simulated node does. Written and parsed as `name[:parameter]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Serves the chain head.
    Healthy,
    /// Serves the chain as it was K slots ago.
    Lagging(u64),
    /// Serves the chain as it was K slots ago until its finalized block is
    /// asked for, then the head from that request on (it becomes healthy):
    /// a node whose finalized checkpoint moves on between leanpoint's poll
    /// and the pair's download, as on a chain that finalizes faster than
    /// leanpoint polls, made deterministic.
    MovesOn(u64),
    /// Serves a branch whose roots differ from slot `from` on (same slots).
    Fork { from: u64 },
    /// Answers every request with this status and a text body.
    HttpStatus(u16),
    /// 200 with HTML on JSON routes and random bytes on SSZ routes.
    Garbage,
    /// 200, then an endless body at full speed.
    Oversized,
    /// 200 headers, then one body byte per interval, forever.
    SlowDrip(Duration),
    /// Reads the request, never answers, keeps the socket.
    AcceptHang,
    /// Reads the request, sends FIN, never answers, keeps the socket.
    HalfClose,
    /// Starts the body, then resets the connection (RST).
    Reset,
    /// The TCP handshake never completes (needs the node's own port).
    BlackholeConnect,
    /// Healthy for N slots, then 503 for N slots, and so on.
    Flap(u64),
    /// Serves only /lean/v0/states/finalized (an older client); 404 elsewhere.
    Legacy,
    /// 503 `Store not initialized` on the store routes, like a starting node.
    NoStore,
    /// Healthy, but its finalized block is another block of the same slot
    /// (same parent and state_root, no attestations): a root that does not
    /// match the fork choice's.
    BlockMismatch,
    /// Healthy, but its finalized State is the one of the slot before.
    StateWrongSlot,
    /// Healthy, with N zero bytes after each SSZ body (block and State).
    TrailingBytes(usize),
    /// Healthy, but 404 on /lean/v0/blocks/finalized (a node older than the route).
    NoBlockRoute,
    /// Answers from a fixed table instead of the chain (built in code only).
    Canned(Arc<Canned>),
}

impl Behaviour {
    /// Acts before a request exists, so it needs a port of its own.
    pub fn needs_own_port(&self) -> bool {
        matches!(self, Behaviour::BlackholeConnect)
    }

    /// The branch whose bodies this node serves, when it serves any.
    pub fn branch(&self) -> Option<Branch> {
        match self {
            Behaviour::Fork { from } => Some(Branch::Fork { from: *from }),
            Behaviour::AcceptHang
            | Behaviour::HalfClose
            | Behaviour::BlackholeConnect
            | Behaviour::HttpStatus(_)
            | Behaviour::Garbage
            | Behaviour::Oversized
            | Behaviour::Canned(_) => None,
            _ => Some(Branch::Main),
        }
    }
}

fn param<T: FromStr>(name: &str, v: Option<&str>, default: Option<T>) -> Result<T, String> {
    match (v, default) {
        (Some(v), _) => v
            .parse()
            .map_err(|_| format!("{name}: {v:?} is not a valid parameter")),
        (None, Some(d)) => Ok(d),
        (None, None) => Err(format!("{name} needs a parameter ({name}:VALUE)")),
    }
}

/// The behaviours that take no parameter, by name: what `FromStr` parses
/// and `Display` prints for them (the round-trip test covers every entry).
const PLAIN: [(&str, Behaviour); 12] = [
    ("healthy", Behaviour::Healthy),
    ("garbage", Behaviour::Garbage),
    ("oversized", Behaviour::Oversized),
    ("accept-hang", Behaviour::AcceptHang),
    ("half-close", Behaviour::HalfClose),
    ("reset", Behaviour::Reset),
    ("blackhole-connect", Behaviour::BlackholeConnect),
    ("legacy", Behaviour::Legacy),
    ("no-store", Behaviour::NoStore),
    ("block-mismatch", Behaviour::BlockMismatch),
    ("state-wrong-slot", Behaviour::StateWrongSlot),
    ("no-block-route", Behaviour::NoBlockRoute),
];

impl FromStr for Behaviour {
    type Err = String;
    fn from_str(s: &str) -> Result<Behaviour, String> {
        let s = s.trim();
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        let no_arg = |b: Behaviour| match arg {
            None => Ok(b),
            Some(_) => Err(format!("{name} takes no parameter")),
        };
        if let Some((_, b)) = PLAIN.iter().find(|(n, _)| *n == name) {
            return no_arg(b.clone());
        }
        match name {
            "lagging" => param(name, arg, Some(3)).map(Behaviour::Lagging),
            "moves-on" => param(name, arg, Some(3)).map(Behaviour::MovesOn),
            "fork" => param(name, arg, Some(DEFAULT_FORK_FROM))
                .map(|from: u64| Behaviour::Fork { from: from.max(1) }),
            "http-status" => {
                let code: u16 = param(name, arg, None)?;
                if !(300..=599).contains(&code) {
                    return Err(format!("http-status: {code} is not in 300..=599"));
                }
                Ok(Behaviour::HttpStatus(code))
            }
            "slow-drip" => {
                let ms: u64 = param(name, arg, Some(DEFAULT_DRIP.as_millis() as u64))?;
                Ok(Behaviour::SlowDrip(Duration::from_millis(ms.max(1))))
            }
            "flap" => param(name, arg, Some(DEFAULT_FLAP_SLOTS)).map(|n: u64| Behaviour::Flap(n.max(1))),
            "trailing-bytes" => {
                let n: usize = param(name, arg, Some(DEFAULT_TRAILING))?;
                if !(1..=1 << 20).contains(&n) {
                    return Err(format!("trailing-bytes: {n} is not in 1..=1048576"));
                }
                Ok(Behaviour::TrailingBytes(n))
            }
            _ => Err(format!(
                "unknown behaviour {name:?}; one of healthy, lagging:K, moves-on:K, fork[:SLOT], http-status:CODE, \
                 garbage, oversized, slow-drip[:MS], accept-hang, half-close, reset, \
                 blackhole-connect, flap[:SLOTS], legacy, no-store, block-mismatch, \
                 state-wrong-slot, trailing-bytes[:N], no-block-route"
            )),
        }
    }
}

impl fmt::Display for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Behaviour::Lagging(k) => write!(f, "lagging:{k}"),
            Behaviour::MovesOn(k) => write!(f, "moves-on:{k}"),
            Behaviour::Fork { from } if *from == DEFAULT_FORK_FROM => f.write_str("fork"),
            Behaviour::Fork { from } => write!(f, "fork:{from}"),
            Behaviour::HttpStatus(c) => write!(f, "http-status:{c}"),
            Behaviour::SlowDrip(d) if *d == DEFAULT_DRIP => f.write_str("slow-drip"),
            Behaviour::SlowDrip(d) => write!(f, "slow-drip:{}", d.as_millis()),
            Behaviour::Flap(n) if *n == DEFAULT_FLAP_SLOTS => f.write_str("flap"),
            Behaviour::Flap(n) => write!(f, "flap:{n}"),
            Behaviour::TrailingBytes(n) if *n == DEFAULT_TRAILING => f.write_str("trailing-bytes"),
            Behaviour::TrailingBytes(n) => write!(f, "trailing-bytes:{n}"),
            Behaviour::Canned(_) => f.write_str("canned"),
            plain => match PLAIN.iter().find(|(_, b)| b == plain) {
                Some((name, _)) => f.write_str(name),
                None => write!(f, "{plain:?}"),
            },
        }
    }
}

/// A Lean API route of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Health,
    Justified,
    ForkChoice,
    StateFinalized,
    BlockFinalized,
    Aggregator,
    Unknown,
}

impl Route {
    pub fn from_path(path: &str) -> Route {
        match path {
            paths::HEALTH => Route::Health,
            paths::JUSTIFIED => Route::Justified,
            paths::FORK_CHOICE => Route::ForkChoice,
            paths::STATE_FINALIZED => Route::StateFinalized,
            paths::BLOCK_FINALIZED => Route::BlockFinalized,
            "/lean/v0/admin/aggregator" => Route::Aggregator,
            _ => Route::Unknown,
        }
    }

    fn is_ssz(self) -> bool {
        matches!(self, Route::StateFinalized | Route::BlockFinalized)
    }

    /// Needs the fork-choice store (503 before it exists).
    fn needs_store(self) -> bool {
        !matches!(self, Route::Health | Route::Aggregator | Route::Unknown)
    }

    fn content_type(self) -> &'static str {
        if self.is_ssz() {
            SSZ
        } else {
            JSON
        }
    }
}

/// What to do with one request.
#[derive(Debug)]
pub enum Reply {
    Full {
        status: u16,
        content_type: &'static str,
        body: Bytes,
    },
    /// 200 and a body that never ends.
    Endless {
        content_type: &'static str,
        chunk: Bytes,
    },
    /// 200 and `body`, cyclically, one byte per `every`, forever.
    Drip {
        content_type: &'static str,
        body: Bytes,
        every: Duration,
    },
    Hang,
    HalfClose,
    /// A canned node's reply to the request's path.
    Canned(CannedReply),
    /// Headers with the full length, half of `body`, then RST.
    Reset {
        content_type: &'static str,
        body: Bytes,
    },
}

/// The `code: Reason` text body the reference node answers errors with.
pub fn status_reply(status: u16, reason: &str) -> Reply {
    Reply::Full {
        status,
        content_type: TEXT,
        body: Bytes::from(format!("{status}: {reason}")),
    }
}

pub fn not_found() -> Reply {
    status_reply(404, "Not Found")
}

fn canonical_status(code: u16) -> Reply {
    status_reply(code, canonical_reason(code).unwrap_or("Error"))
}

/// The healthy body of `route` on `branch`, `lag` slots behind the head.
fn body(chain: &Chain, route: Route, branch: Branch, lag: u64) -> Option<Bytes> {
    let snapshot = || chain.snapshot(branch, chain.current_slot().saturating_sub(lag));
    Some(match route {
        Route::Health => Bytes::from_static(encode::HEALTH_JSON),
        Route::Aggregator => Bytes::from_static(encode::AGGREGATOR_JSON),
        Route::Justified => snapshot().justified_json.clone(),
        Route::ForkChoice => snapshot().fork_choice.clone(),
        Route::StateFinalized => snapshot().state.clone(),
        Route::BlockFinalized => snapshot().block.clone(),
        Route::Unknown => return None,
    })
}

fn healthy(chain: &Chain, route: Route, branch: Branch, lag: u64) -> Reply {
    match body(chain, route, branch, lag) {
        Some(body) => full(route, body),
        None => not_found(),
    }
}

fn full(route: Route, body: Bytes) -> Reply {
    Reply::Full {
        status: 200,
        content_type: route.content_type(),
        body,
    }
}

const GARBAGE_HTML: &[u8] =
    b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>\n";

fn garbage(chain: &Chain, route: Route) -> Reply {
    let body = if route.is_ssz() {
        let mut noise = vec![0u8; 1024];
        super::params::fill(
            &[chain.params().chain_id, 99, chain.current_slot()],
            &mut noise,
        );
        Bytes::from(noise)
    } else {
        Bytes::from_static(GARBAGE_HTML)
    };
    Reply::Full {
        status: 200,
        content_type: route.content_type(),
        body,
    }
}

/// 64 KiB of JSON whitespace after an opening brace: parses as nothing
/// until the end that never comes.
fn endless_chunk() -> Bytes {
    static CHUNK: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    CHUNK
        .get_or_init(|| Bytes::from(vec![b' '; 64 * 1024]))
        .clone()
}

/// Decides the reply of a node behaving as `b` to a request for `route`.
pub fn reply(b: &Behaviour, route: Route, chain: &Chain) -> Reply {
    match b {
        Behaviour::AcceptHang | Behaviour::BlackholeConnect => return Reply::Hang,
        Behaviour::HalfClose => return Reply::HalfClose,
        _ => {}
    }
    if route == Route::Unknown {
        return not_found();
    }
    match b {
        Behaviour::Healthy => healthy(chain, route, Branch::Main, 0),
        Behaviour::Lagging(k) => healthy(chain, route, Branch::Main, *k),
        // server::node_reply turns it healthy at its block request.
        Behaviour::MovesOn(k) => healthy(chain, route, Branch::Main, *k),
        Behaviour::Fork { from } => healthy(chain, route, Branch::Fork { from: *from }, 0),
        Behaviour::HttpStatus(code) => canonical_status(*code),
        Behaviour::Garbage => garbage(chain, route),
        Behaviour::Oversized => Reply::Endless {
            content_type: route.content_type(),
            chunk: endless_chunk(),
        },
        Behaviour::SlowDrip(every) => match body(chain, route, Branch::Main, 0) {
            Some(body) => Reply::Drip {
                content_type: route.content_type(),
                body,
                every: *every,
            },
            None => not_found(),
        },
        Behaviour::Reset => match body(chain, route, Branch::Main, 0) {
            Some(body) => Reply::Reset {
                content_type: route.content_type(),
                body,
            },
            None => not_found(),
        },
        Behaviour::Flap(n) if (chain.current_slot() / n) % 2 == 1 => no_store(),
        Behaviour::Flap(_) => healthy(chain, route, Branch::Main, 0),
        Behaviour::Legacy if route == Route::StateFinalized => {
            healthy(chain, route, Branch::Main, 0)
        }
        Behaviour::Legacy => not_found(),
        Behaviour::NoStore if route.needs_store() => no_store(),
        Behaviour::NoStore => healthy(chain, route, Branch::Main, 0),
        Behaviour::BlockMismatch if route == Route::BlockFinalized => {
            let head = chain.current_slot();
            full(
                route,
                chain.snapshot(Branch::Main, head).other_block.clone(),
            )
        }
        Behaviour::StateWrongSlot if route == Route::StateFinalized => {
            healthy(chain, route, Branch::Main, 1)
        }
        Behaviour::TrailingBytes(n) if route.is_ssz() => {
            match body(chain, route, Branch::Main, 0) {
                Some(body) => {
                    let mut long = Vec::with_capacity(body.len() + n);
                    long.extend_from_slice(&body);
                    long.resize(body.len() + n, 0);
                    full(route, Bytes::from(long))
                }
                None => not_found(),
            }
        }
        Behaviour::NoBlockRoute if route == Route::BlockFinalized => not_found(),
        Behaviour::BlockMismatch
        | Behaviour::StateWrongSlot
        | Behaviour::TrailingBytes(_)
        | Behaviour::NoBlockRoute => healthy(chain, route, Branch::Main, 0),
        Behaviour::AcceptHang | Behaviour::BlackholeConnect | Behaviour::HalfClose => Reply::Hang,
        // Answered by path before the route is known (server::node_reply).
        Behaviour::Canned(canned) => Reply::Canned(canned.reply("").clone()),
    }
}

fn no_store() -> Reply {
    status_reply(503, "Store not initialized")
}

#[cfg(test)]
#[path = "faults_tests.rs"]
mod tests;
