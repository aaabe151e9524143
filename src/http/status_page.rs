//! The embedded status page at `/`: server-rendered HTML that refreshes
//! itself, no JavaScript and nothing to build. Every value that is not a
//! number goes through [`escape`]: upstream names and error texts are
//! configuration and network input.

use std::fmt::Write as _;

use super::json::{Status, UpstreamEntry, Upstreams};
use crate::state::AppState;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}\
th{background:#f3f3f3}.ok{color:#11772d;font-weight:bold}.bad{color:#b00020;font-weight:bold}\
.warn{color:#a15c00}code{font-size:.85em;word-break:break-all}";

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

/// Renders the page from the same snapshots the JSON endpoints serve.
pub fn render(state: &AppState) -> String {
    let status = Status::read(state);
    let upstreams = Upstreams::read(state);
    let mut html = String::with_capacity(4096 + 512 * upstreams.upstreams.len());
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"5\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>leanpoint</title><style>{STYLE}</style></head><body><h1>leanpoint</h1>"
    );
    summary(&mut html, &status);
    upstream_table(&mut html, &upstreams.upstreams);
    html.push_str(
        "<p>JSON: <a href=\"/status\">/status</a> · <a href=\"/api/upstreams\">/api/upstreams</a> · \
         <a href=\"/metrics\">/metrics</a> · <a href=\"/healthz\">/healthz</a> · \
         checkpoint sync: <code>/lean/v0/states/finalized</code></p></body></html>\n",
    );
    html
}

fn summary(html: &mut String, s: &Status) {
    let (class, word) = match (s.agreement, s.stale) {
        (true, false) => ("ok", "agreement"),
        (_, true) if s.last_success_ms > 0 => ("bad", "stale"),
        _ => ("bad", "no agreement"),
    };
    let _ = write!(
        html,
        "<p>Status: <span class=\"{class}\">{word}</span> · rule <code>{}</code>: \
         {} agreeing of {} required · {} disagreeing · {} failing</p>",
        escape(&s.rule),
        s.agreeing,
        s.required,
        s.disagreeing,
        s.failing
    );
    if let Some(e) = &s.last_error {
        let _ = write!(html, "<p class=\"warn\">{}</p>", escape(e));
    }
    let _ = write!(
        html,
        "<table><tr><th>finalized</th><td>slot {}</td><td><code>{}</code></td></tr>\
         <tr><th>justified</th><td>slot {}</td><td><code>{}</code></td></tr>\
         <tr><th>served State</th><td>slot {}</td><td>{} bytes</td></tr>\
         <tr><th>served block root</th><td>{} bytes</td><td><code>{}</code></td></tr>\
         <tr><th>served state root</th><td>{}</td><td><code>{}</code></td></tr></table>",
        s.finalized_slot,
        opt(s.finalized_root.as_deref()),
        s.justified_slot,
        opt(s.justified_root.as_deref()),
        opt(s.served_state_slot),
        s.served_state_bytes,
        s.served_block_bytes,
        opt(s.served_block_root.as_deref()),
        if s.served_pair_verified {
            "verified"
        } else {
            "unverified"
        },
        opt(s.served_state_root.as_deref()),
    );
    if s.served_contradicted {
        html.push_str("<p class=\"bad\">The served checkpoint is contradicted by a majority of upstreams.</p>");
    }
}

fn upstream_table(html: &mut String, rows: &[UpstreamEntry]) {
    html.push_str(
        "<h2>Upstreams</h2><table><tr><th>name</th><th>url</th><th>standing</th>\
         <th>head</th><th>justified</th><th>finalized</th><th>source</th>\
         <th>last error</th><th>latency</th></tr>",
    );
    for u in rows {
        let class = match u.standing {
            "agreeing" | "ahead" => "ok",
            "behind" | "unknown" => "warn",
            _ => "bad",
        };
        let error = match (&u.last_error_kind, &u.last_error) {
            (Some(k), Some(e)) => format!("<code>{}</code> {}", escape(k), escape(e)),
            _ => "-".to_string(),
        };
        let _ = write!(
            html,
            "<tr><td>{}</td><td><code>{}</code></td><td class=\"{class}\">{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{error}</td><td>{}</td></tr>",
            escape(&u.name),
            escape(&u.url),
            escape(u.standing),
            opt(u.head_slot),
            opt(u.last_justified_slot),
            opt(u.last_finalized_slot),
            escape(u.source),
            u.last_latency_ms
                .map_or_else(|| "-".to_string(), |ms| format!("{ms} ms")),
        );
    }
    html.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
