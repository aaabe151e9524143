//! The router and its handlers.
//!
//! **Handlers only read `AppState`.** They copy a snapshot out of it and
//! answer; none awaits anything but the response write (and `/metrics` an
//! encoding of the registry already running, `telemetry::scrape`), none
//! contacts an upstream, so an upstream's behaviour can never slow an
//! inbound request.
//! Every request is counted in `leanpoint_http_requests_total` by route
//! template (a fixed set; everything else is `unmatched`).

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::compression::{CompressionLayer, CompressionLevel};

use super::health;
use super::json::{Status, Upstreams};
pub use super::range::if_none_match;
use crate::lean::api::{self, paths};
use crate::service::reload::Live;
use crate::service::AppState;
use crate::telemetry;

type AppRef = Arc<AppState>;

const STATUS: &str = "/status";
const API_UPSTREAMS: &str = "/api/upstreams";
const METRICS: &str = "/metrics";
const HEALTHZ: &str = "/healthz";
const LIVEZ: &str = "/livez";
const READYZ: &str = "/readyz";
const INDEX: &str = "/";
const API_HISTORY: &str = "/api/history";
const PAGE_SCRIPT: &str = "/status.js";

/// Every route template, for the `route` label. Public so that tests that
/// must cover every output (the secrets audit) follow this list as it grows.
pub const ROUTES: [&str; 13] = [
    paths::STATE_FINALIZED,
    paths::BLOCK_FINALIZED,
    paths::JUSTIFIED,
    paths::HEALTH,
    STATUS,
    API_UPSTREAMS,
    METRICS,
    HEALTHZ,
    LIVEZ,
    READYZ,
    INDEX,
    API_HISTORY,
    PAGE_SCRIPT,
];

const TEXT: &str = "text/plain; charset=utf-8";

/// The public API. With `--static-dir`, that directory is served for `/`
/// and every unknown path instead of the embedded page.
pub fn router(state: AppRef) -> Router {
    live_router(Live::new(state))
}

/// [`router`] on the state in service (`reload::Live`), so a reload takes
/// effect on the next request.
pub fn live_router(live: Live) -> Router {
    let static_dir = live.current().config.static_dir.clone();
    let mut app = Router::new()
        .route(paths::STATE_FINALIZED, get(state_finalized))
        .route(paths::BLOCK_FINALIZED, get(block_finalized))
        .route(paths::JUSTIFIED, get(justified))
        .route(paths::HEALTH, get(lean_health))
        .route(STATUS, get(status))
        .route(API_UPSTREAMS, get(api_upstreams))
        .route(METRICS, get(metrics_text))
        .route(HEALTHZ, get(healthz))
        .route(LIVEZ, get(livez))
        .route(READYZ, get(readyz))
        .route(API_HISTORY, get(super::status_page::history));
    app = match static_dir {
        // ServeDir refuses `..` components; `static_dir::confined` also
        // refuses symlinks that lead out of the directory.
        Some(dir) => app.fallback_service(super::static_dir::confined(&dir)),
        None => app
            .route(INDEX, get(super::status_page::index))
            .route(PAGE_SCRIPT, get(super::status_page::script))
            .fallback(not_found),
    };
    finish(app, live)
}

/// The admin listener's routes (`--admin-port`): probes and /metrics only,
/// nothing large, so its few connections are always quick.
pub fn admin_router(live: Live) -> Router {
    let app = Router::new()
        .route(paths::HEALTH, get(lean_health))
        .route(METRICS, get(metrics_text))
        .route(HEALTHZ, get(healthz))
        .route(LIVEZ, get(livez))
        .route(READYZ, get(readyz))
        .fallback(not_found);
    finish(app, live)
}

fn finish(app: Router<Live>, live: Live) -> Router {
    app.layer(axum::middleware::from_fn_with_state(live.clone(), observe))
        .layer(
            CompressionLayer::new()
                .quality(CompressionLevel::Fastest)
                .compress_when(SizeAbove::new(256).and(Compressible)),
        )
        .with_state(live)
}

/// Records the request in the HTTP metrics once the response head is ready.
async fn observe(State(state): State<AppRef>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|p| ROUTES.iter().copied().find(|r| *r == p.as_str()))
        .unwrap_or("unmatched");
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    state.metrics.observe_http(
        route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Gzip only text we generate. Never the State: every download shares one
/// `Bytes` sent as is with its exact Content-Length (what HEAD reports and
/// checkpoint-sync clients check), and compressing it per request would
/// spend CPU on each of possibly many concurrent downloads.
#[derive(Clone, Copy)]
struct Compressible;

impl Predicate for Compressible {
    fn should_compress<B>(&self, response: &http::Response<B>) -> bool
    where
        B: axum::body::HttpBody,
    {
        let ct = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        [
            "application/json",
            "text/html",
            "text/javascript",
            "text/plain",
            "application/openmetrics-text",
        ]
        .iter()
        .any(|t| ct.starts_with(t))
    }
}

fn unavailable(reason: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": reason.into() });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

/// 503 as the Zig leanpoint sent it on the State route, a text line
/// starting `stale` or `no_finalized_state` (what its scripts match), or
/// JSON `{"error": ...}` for a client that asks for JSON.
fn state_unavailable(headers: &HeaderMap, reason: String) -> Response {
    let wants_json = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/json"));
    if wants_json {
        unavailable(reason)
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, reason + "\n")
    }
}

fn text(code: StatusCode, body: String) -> Response {
    (code, [(header::CONTENT_TYPE, TEXT)], body).into_response()
}

/// `GET/HEAD /lean/v0/states/finalized`: the cached agreed State, the same
/// `Bytes` for every client (no copy), only while agreement is fresh; with
/// `If-None-Match` (304) and `Range` / `If-Range` (206, 416): see `range`.
async fn state_finalized(State(state): State<AppRef>, headers: HeaderMap) -> Response {
    if let Some(reason) = health::stale_problem(&state) {
        return state_unavailable(&headers, reason);
    }
    let Some(served) = state.served_state() else {
        return state_unavailable(&headers, health::no_finalized_state(&state));
    };
    super::range::serve(&headers, served.bytes.clone(), &served.etag)
}

/// `GET/HEAD /lean/v0/blocks/finalized`: the SignedBlock of the served pair
/// (checkpoint-sync clients fetch it before the State), under the State's
/// rules (ETag, 304, ranges, exact bytes, never compressed). None is served
/// beside a State served by slot alone: there is no verified block to give.
async fn block_finalized(State(state): State<AppRef>, headers: HeaderMap) -> Response {
    if let Some(reason) = health::stale_problem(&state) {
        return state_unavailable(&headers, reason);
    }
    let Some(served) = state.served_state() else {
        return state_unavailable(&headers, health::no_finalized_state(&state));
    };
    let Some(block) = served.block.clone() else {
        return state_unavailable(
            &headers,
            "no_finalized_block: the State is served by slot alone (legacy upstreams), no verified block".to_string(),
        );
    };
    super::range::serve(&headers, block, &served.etag)
}

/// `GET /lean/v0/checkpoints/justified`: the agreed justified checkpoint,
/// in the Lean API's shape.
async fn justified(State(state): State<AppRef>) -> Response {
    if let Some(reason) = health::stale_problem(&state) {
        return unavailable(reason);
    }
    match state.consensus().justified {
        Some(cp) => Json(cp).into_response(),
        None => unavailable("no justified checkpoint agreed yet"),
    }
}

/// `GET /lean/v0/health`: leanpoint's own API is up (the Lean API shape).
async fn lean_health() -> Json<api::Health> {
    Json(api::Health {
        status: "healthy",
        service: "lean-rpc-api",
    })
}

async fn status(State(state): State<AppRef>) -> Json<Status> {
    Json(Status::read(&state))
}

async fn api_upstreams(State(state): State<AppRef>) -> Json<Upstreams> {
    Json(Upstreams::read(&state))
}

/// `GET /metrics`: OpenMetrics when the scraper asks for it, else the
/// classic text format; a body shared with the scrapes that arrived with
/// this one (`telemetry::scrape`), never one encoded before it arrived.
///
/// A gzip body is compressed once per shared body here, and sent with its
/// own `Content-Encoding`, which the compression layer passes through
/// untouched (it never recompresses an encoded response); so it adds the
/// `Vary` it would have added. A scraper that does not ask for gzip gets
/// exactly what it got before: the plain body, left to the layer.
async fn metrics_text(State(state): State<AppRef>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let format = if openmetrics {
        telemetry::Format::OpenMetrics
    } else {
        telemetry::Format::Text
    };
    match state.scrapes.body(format, accepts_gzip(&headers)).await {
        Ok(body) if body.gzip => (
            [
                (header::CONTENT_TYPE, format.content_type()),
                (header::CONTENT_ENCODING, "gzip"),
                (header::VARY, "accept-encoding"),
            ],
            body.bytes,
        )
            .into_response(),
        Ok(body) => ([(header::CONTENT_TYPE, format.content_type())], body.bytes).into_response(),
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics encoding failed\n".to_string(),
        ),
    }
}

/// Whether tower-http's `CompressionLayer` (gzip its only coding here)
/// would answer these request headers with gzip: its negotiation, rule for
/// rule, so /metrics compresses for exactly the clients it did. Every
/// `Accept-Encoding` entry counts; unknown codings (`*` too) are ignored, as
/// is an entry whose parameter is not a valid `q`; q=0 refuses; the highest
/// q wins and gzip wins a tie with identity.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let (mut gzip, mut identity) = (0u16, 0u16);
    let entries = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','));
    for entry in entries {
        let mut parts = entry.splitn(2, ';');
        let coding = parts.next().unwrap_or_default().trim();
        let best = if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            &mut gzip
        } else if coding.eq_ignore_ascii_case("identity") {
            &mut identity
        } else {
            continue;
        };
        let q = match parts.next() {
            None => Some(1000),
            Some(param) => qvalue(param.trim()),
        };
        if let Some(q) = q {
            *best = (*best).max(q);
        }
    }
    gzip > 0 && gzip >= identity
}

/// `q=0`, `q=1`, `q=0.xyz` (at most three decimals, at most 1) in
/// thousandths, else None: tower-http's `QValue::parse`.
fn qvalue(s: &str) -> Option<u16> {
    let rest = s.strip_prefix(['q', 'Q'])?.strip_prefix('=')?;
    let mut c = rest.chars();
    let mut value: u16 = match c.next()? {
        '0' => 0,
        '1' => 1000,
        _ => return None,
    };
    match c.next() {
        None => return Some(value),
        Some('.') => {}
        Some(_) => return None,
    }
    let mut factor = 100;
    for ch in c {
        let digit = ch.to_digit(10)?;
        if factor < 1 {
            return None;
        }
        value += factor * digit as u16;
        factor /= 10;
    }
    (value <= 1000).then_some(value)
}

/// 200 with `ok_body`, or 503 with one reason per line.
fn probe(reasons: Vec<String>, ok_body: &str) -> Response {
    if reasons.is_empty() {
        text(StatusCode::OK, format!("{ok_body}\n"))
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, reasons.join("\n") + "\n")
    }
}

async fn healthz(State(state): State<AppRef>) -> Response {
    probe(health::healthz(&state), "ok")
}

async fn livez(State(state): State<AppRef>) -> Response {
    probe(health::livez(&state), "ok")
}

async fn readyz(State(state): State<AppRef>) -> Response {
    probe(health::readyz(&state), "ready")
}

async fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "404: Not Found\n".to_string())
}
