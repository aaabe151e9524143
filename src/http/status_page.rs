//! The embedded status page at `/`, its script at `/status.js`, and
//! `/api/history`.
//!
//! The HTML is rendered here in full from the same snapshots the JSON
//! endpoints serve, so it reads with JavaScript off (it then reloads itself
//! through a `<noscript>` refresh). The script (`status_page.js`, one file,
//! nothing to build, nothing fetched from elsewhere) then redraws it from
//! `/status`, `/api/upstreams` and `/api/history` without reloading, and
//! draws the sparklines and the slot plot. Every value that is not a number
//! goes through [`escape`] here and through `textContent` in the script:
//! upstream names and error texts are configuration and network input.
//! The Content-Security-Policy allows only this origin's script and JSON.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;

use super::json::{Status, UpstreamRow, Upstreams};
use crate::service::history::{CheckpointJson, HistoryJson};
use crate::service::AppState;

/// The page's script, embedded at build time.
const SCRIPT: &str = include_str!("status_page.js");

/// Standings: a distinct colour and word each (the word is the JSON value),
/// plus a mark so they differ without colour too.
const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1em 1.5em;color:#222;background:#fff}\
header{display:flex;align-items:baseline;gap:1em}h1{margin:.2em 0}h2{font-size:1.1em;margin:1.2em 0 .4em}\
.live{font-size:.85em;color:#666}.live.stale{color:#b00020;font-weight:bold}\
.head{display:flex;flex-wrap:wrap;gap:.8em}.card{border:1px solid #ccc;border-radius:6px;padding:.5em .8em;min-width:11em}\
.label{font-size:.75em;text-transform:uppercase;color:#666}.big{font-size:1.5em;font-weight:bold}\
.why{font-size:.8em;color:#a15c00;max-width:28em}\
table{border-collapse:collapse;font-size:.88em}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left}\
th{background:#f3f3f3}td.err{max-width:26em;font-size:.9em}.ok{color:#11772d}.bad{color:#b00020}\
code{font-size:.9em;word-break:break-all}\
.standing{font-weight:bold;white-space:nowrap;padding:0 .3em;border-radius:3px}\
.standing::before{margin-right:.25em}\
.st-agreeing{color:#fff;background:#11772d}.st-agreeing::before{content:'\\2714'}\
.st-behind{color:#000;background:#f2c14e}.st-behind::before{content:'\\25BC'}\
.st-ahead{color:#fff;background:#1f5fbf}.st-ahead::before{content:'\\25B2'}\
.st-conflicting{color:#fff;background:#8e24aa}.st-conflicting::before{content:'\\2716'}\
.st-unknown{color:#000;background:#d0d0d0}.st-unknown::before{content:'?'}\
.st-failing{color:#fff;background:#b00020}.st-failing::before{content:'\\25A0'}\
.st-disagreeing{color:#fff;background:#c2410c}.st-disagreeing::before{content:'\\2260'}\
.st-other{color:#000;background:#fff;border:1px solid #888}\
.plot svg{width:100%;max-width:1100px;height:auto;border:1px solid #ddd}\
.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.3em 1em;font-size:.85em}\
.sw{display:inline-block;width:1.4em;height:.5em;margin-right:.3em;vertical-align:middle}\
footer{margin-top:1.5em;font-size:.85em;color:#555}";

/// Only this origin's script and JSON; the inline `<style>` and `data:`
/// favicon are the page's own. Nothing else loads, wherever a value came from.
const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
                   style-src 'unsafe-inline'; img-src data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// HTML-escapes text for element content and quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| escape(&v.to_string()))
}

/// `GET /`.
pub async fn index(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_SECURITY_POLICY, CSP)],
        Html(render(&state)),
    )
        .into_response()
}

/// `GET /status.js`.
pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SCRIPT,
    )
        .into_response()
}

#[derive(serde::Deserialize)]
pub struct HistoryQuery {
    /// Only entries numbered above this (the `seq` of the previous answer).
    after: Option<u64>,
}

/// `GET /api/history[?after=SEQ]`.
pub async fn history(
    State(state): State<Arc<AppState>>,
    Query(q): Query<HistoryQuery>,
) -> Json<HistoryJson> {
    let names: Vec<&str> = state
        .upstreams
        .iter()
        .map(|u| u.config.name.as_str())
        .collect();
    Json(state.history.read(q.after.unwrap_or(0), &names))
}

/// Latency with units that fit: µs below a millisecond.
pub fn latency(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..10_000 => format!("{:.2} ms", us as f64 / 1e3),
        10_000..1_000_000 => format!("{:.1} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

pub fn bytes(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.2} MiB", n as f64 / 1_048_576.0),
    }
}

pub fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// Slots behind (or ahead of) the agreed finalized checkpoint.
pub fn lag(agreed: Option<u64>, own: Option<u64>) -> String {
    match (agreed, own) {
        (Some(a), Some(o)) if o < a => format!("{} behind", a - o),
        (Some(a), Some(o)) if o > a => format!("{} ahead", o - a),
        (Some(_), Some(_)) => "0".to_string(),
        _ => "-".to_string(),
    }
}

/// A root shortened for a cell, the whole of it in the title.
fn root(r: Option<&str>) -> String {
    match r {
        Some(r) if r.len() > 16 && r.is_ascii() => format!(
            "<code title=\"{}\">{}…{}</code>",
            escape(r),
            escape(&r[..10]),
            escape(&r[r.len() - 4..])
        ),
        Some(r) => format!("<code>{}</code>", escape(r)),
        None => "-".to_string(),
    }
}

/// The class for a standing; the script maps the same words the same way.
fn standing_class(s: &str) -> &'static str {
    match s {
        "agreeing" => "st-agreeing",
        "behind" => "st-behind",
        "ahead" => "st-ahead",
        "conflicting" => "st-conflicting",
        "unknown" => "st-unknown",
        "failing" => "st-failing",
        "disagreeing" => "st-disagreeing",
        _ => "st-other",
    }
}

/// Renders the page from the same snapshots the JSON endpoints serve.
pub fn render(state: &AppState) -> String {
    let status = Status::read(state);
    let upstreams = Upstreams::read(state);
    let checkpoints = state.history.checkpoints();
    let mut html = String::with_capacity(8192 + 640 * upstreams.upstreams.len());
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <link rel=\"icon\" href=\"data:,\"><title>leanpoint</title><style>{STYLE}</style>\
         <script src=\"/status.js\" defer></script></head><body>\
         <header><h1>leanpoint</h1><span id=\"live\" class=\"live\">static page</span></header>"
    );
    header(&mut html, &status);
    upstream_table(&mut html, &upstreams);
    html.push_str(
        "<h2>Slots over time</h2><div id=\"plot\" class=\"plot\">\
         <noscript>The plot needs JavaScript.</noscript></div><ul id=\"legend\" class=\"legend\"></ul>",
    );
    timeline(&mut html, &checkpoints, status.now_ms);
    html.push_str(
        "<footer>JSON: <a href=\"/status\">/status</a> · <a href=\"/api/upstreams\">/api/upstreams</a> · \
         <a href=\"/api/history\">/api/history</a> · <a href=\"/metrics\">/metrics</a> · \
         <a href=\"/healthz\">/healthz</a> · checkpoint sync: <code>/lean/v0/states/finalized</code>\
         </footer></body></html>\n",
    );
    html
}

fn header(html: &mut String, s: &Status) {
    let (class, word) = if s.serving {
        ("ok", "SERVING")
    } else {
        ("bad", "NOT SERVING")
    };
    let why = s.last_error.as_deref().map(escape).unwrap_or_default();
    let since = if s.finalized_advanced_ms == 0 {
        "never".to_string()
    } else {
        format!(
            "{} ago",
            age(s.now_ms.saturating_sub(s.finalized_advanced_ms))
        )
    };
    let fds = match (s.open_fds, s.max_fds) {
        (Some(o), Some(m)) => format!("{o} / {m}"),
        _ => "-".to_string(),
    };
    let agree_class = if s.agreeing >= s.required && s.required > 0 {
        "ok"
    } else {
        "bad"
    };
    let _ = write!(
        html,
        "<section class=\"head\"><div class=\"card\"><div class=\"label\">state</div>\
         <div id=\"serving\" class=\"big {class}\">{word}</div><div id=\"serving-why\" class=\"why\">{why}</div></div>\
         <div class=\"card\"><div class=\"label\">served pair</div>\
         <div class=\"big\">slot <span id=\"served-slot\">{}</span></div>\
         <div>block root <span id=\"served-block-root\">{}</span></div>\
         <div>state root <span id=\"served-state-root\">{}</span></div>\
         <div>size <span id=\"served-size\">{}</span></div></div>\
         <div class=\"card\"><div class=\"label\">finality advanced</div>\
         <div id=\"finality-age\" class=\"big\">{since}</div>\
         <div>finalized slot <span id=\"finalized-slot\">{}</span> · justified <span id=\"justified-slot\">{}</span></div></div>\
         <div class=\"card\"><div class=\"label\">agreement</div>\
         <div id=\"agreement\" class=\"big {agree_class}\">{} / {}</div>\
         <div>agreeing / required · rule <code id=\"rule\">{}</code></div></div>\
         <div class=\"card\"><div class=\"label\">file descriptors</div>\
         <div id=\"fds\" class=\"big\">{fds}</div><div>open / limit</div></div></section>",
        opt(s.served_state_slot),
        root(s.served_block_root.as_deref()),
        match (&s.served_state_root, s.served_state_slot) {
            (Some(r), _) => root(Some(r)),
            (None, Some(_)) => "unverified (slot only)".to_string(),
            (None, None) => "-".to_string(),
        },
        if s.served_state_slot.is_some() {
            format!(
                "state {} · block {}",
                bytes(s.served_state_bytes),
                bytes(s.served_block_bytes)
            )
        } else {
            "-".to_string()
        },
        s.finalized_slot,
        s.justified_slot,
        s.agreeing,
        s.required,
        escape(&s.rule),
    );
    if s.served_contradicted {
        html.push_str("<p class=\"bad\">The served checkpoint is contradicted by a majority of upstreams.</p>");
    }
}

fn upstream_table(html: &mut String, u: &Upstreams) {
    html.push_str(
        "<h2>Upstreams</h2><table id=\"upstreams\"><thead><tr><th>name</th><th>url</th>\
         <th>standing</th><th>lag (slots)</th><th>head</th><th>justified</th><th>finalized</th>\
         <th>source</th><th>last error</th><th>latency</th><th>recent polls</th></tr></thead><tbody>",
    );
    let agreed = u.consensus.finalized_slot;
    for e in &u.upstreams {
        upstream_row(html, e, agreed);
    }
    html.push_str("</tbody></table>");
}

fn upstream_row(html: &mut String, u: &UpstreamRow, agreed: Option<u64>) {
    let error = match (&u.last_error_kind, &u.last_error) {
        (Some(k), Some(e)) => format!("<code>{}</code> {}", escape(k), escape(e)),
        _ => "-".to_string(),
    };
    let _ = write!(
        html,
        "<tr data-name=\"{name}\"><td>{name}</td><td><code>{}</code></td>\
         <td><span class=\"standing {}\" data-standing=\"{st}\">{st}</span></td>\
         <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"err\">{error}</td>\
         <td>{}</td><td class=\"spark\"></td></tr>",
        escape(&u.url),
        standing_class(u.standing),
        lag(agreed, u.last_finalized_slot),
        opt(u.head_slot),
        opt(u.last_justified_slot),
        opt(u.last_finalized_slot),
        escape(u.source),
        u.last_latency_us.map_or_else(|| "-".to_string(), latency),
        name = escape(&u.name),
        st = escape(u.standing),
    );
}

fn timeline(html: &mut String, checkpoints: &[CheckpointJson], now_ms: u64) {
    html.push_str(
        "<h2>Agreed finalized checkpoints</h2><table id=\"timeline\"><thead><tr><th>slot</th>\
         <th>root</th><th>agreed</th><th>from upstreams</th></tr></thead><tbody>",
    );
    for c in checkpoints.iter().rev() {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{} ago</td><td>{} (of {} required)</td></tr>",
            c.slot,
            root(c.root.as_deref()),
            age(now_ms.saturating_sub(c.at_ms)),
            c.supporters,
            c.required
        );
    }
    html.push_str("</tbody></table>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn units_fit_the_value() {
        assert_eq!(latency(0), "0 µs");
        assert_eq!(latency(999), "999 µs");
        assert_eq!(latency(1_234), "1.23 ms");
        assert_eq!(latency(523_400), "523.4 ms");
        assert_eq!(latency(2_500_000), "2.50 s");
        assert_eq!(bytes(966), "966 B");
        assert_eq!(bytes(3_879_731), "3.70 MiB");
        assert_eq!(age(59_999), "59 s");
        assert_eq!(age(61_000), "1 min 1 s");
        assert_eq!(lag(Some(10), Some(7)), "3 behind");
        assert_eq!(lag(Some(10), Some(12)), "2 ahead");
        assert_eq!(lag(Some(10), Some(10)), "0");
        assert_eq!(lag(None, Some(10)), "-");
    }

    #[test]
    fn every_standing_has_its_own_class() {
        let all = [
            "agreeing",
            "behind",
            "ahead",
            "conflicting",
            "unknown",
            "failing",
            "disagreeing",
        ];
        let mut classes: Vec<_> = all.iter().map(|s| standing_class(s)).collect();
        classes.sort();
        classes.dedup();
        assert_eq!(classes.len(), all.len());
        assert!(!classes.contains(&"st-other"));
    }
}
