//! The real status page in Debian's headless Chromium against `leanpoint
//! demo` (a simulated devnet with a hung, a lagging and a forked node).
//!
//! Not part of plain `cargo test` (`test = false`): scripts/test.sh runs it
//! in its own step once scripts/install-deps.sh has installed chromium. It
//! proves the page redraws itself without a reload (the finalized slot
//! moves, the timeline grows, a node broken at run time shows as failing),
//! that the standings it shows are those of /api/upstreams, that it reads
//! with scripts disabled (the server's render alone), that every
//! request it makes goes to 127.0.0.1, and that the browser logs no error.
//! It saves a screenshot to target/artifacts/status-page.png.

mod browser_support;
#[path = "it/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use browser_support::cdp::Browser;
use serde_json::{json, Value};
use support::http::http;
use support::sim::spawn;
use support::wait_until;

const ARTIFACTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/artifacts");

/// Evaluates `expr` every 200 ms until it is true, or panics with `what`.
fn wait_page(b: &mut Browser, page: &str, what: &str, expr: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if b.eval(page, expr) == json!(true) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for the page: {what}; body text:\n{}",
            b.eval(page, "document.body.innerText")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn page_u64(b: &mut Browser, page: &str, expr: &str) -> u64 {
    let v = b.eval(page, expr);
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{expr} is not a number: {v}"))
}

/// name -> (standing word, its element's class) as the page shows them.
fn page_standings(b: &mut Browser, page: &str) -> BTreeMap<String, (String, String)> {
    let v = b.eval(
        page,
        "Array.from(document.querySelectorAll('#upstreams tbody tr')).map(tr => {\
           const s = tr.querySelector('[data-standing]');\
           return [tr.dataset.name, s.textContent, s.className];\
         })",
    );
    v.as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            let s = |i: usize| r[i].as_str().expect("text").to_string();
            (s(0), (s(1), s(2)))
        })
        .collect()
}

fn api_standings(base: &str) -> BTreeMap<String, String> {
    let (code, _, body) = http("GET", &format!("{base}/api/upstreams"), "");
    assert_eq!(code, 200);
    let v: Value = serde_json::from_slice(&body).expect("json");
    v["upstreams"]
        .as_array()
        .expect("upstreams")
        .iter()
        .map(|u| {
            let s = |k: &str| u[k].as_str().expect(k).to_string();
            (s("name"), s("standing"))
        })
        .collect()
}

/// The host of an http(s)/ws(s) URL; None for other schemes.
fn host(url: &str) -> Option<&str> {
    let rest = ["http://", "https://", "ws://", "wss://"]
        .iter()
        .find_map(|s| url.strip_prefix(s))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    Some(match host_port.rfind(':') {
        Some(at) if !host_port.ends_with(']') => &host_port[..at],
        _ => host_port,
    })
}

#[test]
fn host_parses_urls() {
    assert_eq!(host("http://127.0.0.1:5555/status"), Some("127.0.0.1"));
    assert_eq!(host("https://example.org/x"), Some("example.org"));
    assert_eq!(host("http://[::1]:80/"), Some("[::1]"));
    assert_eq!(host("data:,"), None);
}

/// A running `leanpoint demo` with 1 s slots: its page URL and the
/// simulator's admin URL.
struct Demo {
    _proc: support::Proc,
    base: String,
    admin: String,
}

fn start_demo() -> Demo {
    let proc = spawn(&[
        "--log-level",
        "warn",
        "demo",
        "--port",
        "0",
        "--slot-ms",
        "1000",
        "--poll-ms",
        "500",
        "--timeout-ms",
        "400",
    ]);
    let lines = proc.stdout_until(|l| l.starts_with("Ctrl-C stops"), Duration::from_secs(30));
    let last_word = |needle: &str| -> String {
        let line = lines.iter().find(|l| l.contains(needle));
        let line = line.unwrap_or_else(|| panic!("no {needle:?} line in {lines:#?}"));
        line.split_whitespace().last().expect("a word").to_string()
    };
    let base = last_word("status page").trim_end_matches('/').to_string();
    let admin = last_word("/admin/node/0/behaviour")
        .trim_end_matches("/node/0/behaviour")
        .to_string();
    wait_until(Duration::from_secs(30), "the demo to serve", || {
        let (code, _, body) = http("GET", &format!("{base}/status"), "");
        let v: Value = serde_json::from_slice(&body).ok()?;
        (code == 200 && v["serving"] == json!(true)).then_some(())
    });
    Demo {
        _proc: proc,
        base,
        admin,
    }
}

const SLOT: &str = "document.getElementById('finalized-slot').textContent";
const TIMELINE_ROWS: &str = "document.querySelectorAll('#timeline tbody tr').length";
const SAME_DOCUMENT: &str = "window.leanpointTestMark === 'same document'";

/// The finalized slot moves and the timeline grows, in the same document.
fn assert_updates_without_reload(b: &mut Browser, page: &str) {
    let first_slot = page_u64(b, page, SLOT);
    let first_rows = page_u64(b, page, TIMELINE_ROWS);
    // A reload would make a new window object and lose this.
    b.eval(page, "window.leanpointTestMark = 'same document'; true");
    wait_page(
        b,
        page,
        "a later finalized slot and a longer timeline, in the same document",
        &format!(
            "Number({SLOT}) > {first_slot} && {TIMELINE_ROWS} > {first_rows} && {SAME_DOCUMENT}"
        ),
        Duration::from_secs(30),
    );
}

/// The standings shown are those of /api/upstreams, each drawn with its
/// own class. Both move: retry until one redraw and one answer agree.
fn assert_standings_match_api(b: &mut Browser, page: &str, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let shown = loop {
        let shown = page_standings(b, page);
        let api = api_standings(base);
        let words: BTreeMap<String, String> = shown
            .iter()
            .map(|(n, (w, _))| (n.clone(), w.clone()))
            .collect();
        if words == api {
            break shown;
        }
        assert!(
            Instant::now() < deadline,
            "page standings {words:?} never matched /api/upstreams {api:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(shown.len(), 8, "{shown:?}");
    for (name, (word, class)) in &shown {
        assert!(
            class.split(' ').any(|c| c == format!("st-{word}")),
            "{name}: standing {word} drawn with class {class}"
        );
    }
    assert_eq!(shown["node-0-healthy"].0, "agreeing");
    assert_eq!(shown["node-5-accept-hang"].0, "failing");
    assert_eq!(shown["node-6-lagging-3"].0, "failing", "broken at run time");
}

fn assert_latencies_have_units(b: &mut Browser, page: &str) {
    let latencies = b.eval(
        page,
        "Array.from(document.querySelectorAll('#upstreams tbody tr')).map(tr => tr.cells[9].textContent)",
    );
    for l in latencies.as_array().expect("latencies") {
        let l = l.as_str().expect("text");
        assert!(
            [" µs", " ms", " s"].iter().any(|u| l.ends_with(u)),
            "latency {l:?} has no unit"
        );
    }
}

/// With scripts disabled the server's render alone has the header, every
/// upstream row with its standing, and the timeline.
fn assert_readable_without_javascript(b: &mut Browser, base: &str) {
    let page = b.new_page();
    b.call(Some(&page), "Page.enable", json!({}));
    let off = json!({ "value": true });
    b.call(Some(&page), "Emulation.setScriptExecutionDisabled", off);
    b.call(
        Some(&page),
        "Page.navigate",
        json!({ "url": format!("{base}/") }),
    );
    b.wait_event(&page, "Page.loadEventFired", Duration::from_secs(30));
    let doc = b.call(Some(&page), "DOM.getDocument", json!({ "depth": 0 }));
    let root = doc["root"]["nodeId"].clone();
    // Only with scripting off is a <noscript>'s content parsed into elements.
    let q = json!({ "nodeId": root, "selector": "noscript > meta[http-equiv=refresh]" });
    let found = b.call(Some(&page), "DOM.querySelector", q);
    assert_ne!(found["nodeId"], json!(0), "scripts were disabled");
    let html = b.call(Some(&page), "DOM.getOuterHTML", json!({ "nodeId": root }));
    let html = html["outerHTML"].as_str().expect("html");
    assert!(
        html.contains(">static page<"),
        "the script did not run: {html}"
    );
    assert!(html.contains(">SERVING<"), "{html}");
    assert_eq!(html.matches("data-standing=").count(), 8, "{html}");
    assert!(
        html.contains("data-standing=\"failing\">failing<"),
        "{html}"
    );
    assert!(html.contains("required)</td></tr>"), "the timeline: {html}");
}

/// Every request of the live page went to 127.0.0.1 (its own ones among
/// them), the browser logged no error, and the page navigated once.
fn assert_events(b: &mut Browser, page: &str, base: &str) {
    b.drain_events();
    let mut urls = Vec::new();
    let mut errors = Vec::new();
    let mut navigations = 0;
    for e in &b.events {
        let p = &e["params"];
        match e["method"].as_str().unwrap_or("") {
            "Network.requestWillBeSent" => {
                urls.push(p["request"]["url"].as_str().unwrap_or("").to_string())
            }
            "Runtime.consoleAPICalled"
                if matches!(p["type"].as_str(), Some("error" | "assert")) =>
            {
                errors.push(p.to_string())
            }
            "Runtime.exceptionThrown" => errors.push(p.to_string()),
            "Log.entryAdded" if p["entry"]["level"] == "error" => errors.push(p.to_string()),
            "Page.frameNavigated"
                if e["sessionId"] == page && p["frame"].get("parentId").is_none() =>
            {
                navigations += 1
            }
            _ => {}
        }
    }
    assert!(errors.is_empty(), "the browser logged errors: {errors:#?}");
    assert_eq!(navigations, 1, "the page navigated once and never reloaded");
    for path in [
        "/",
        "/status.js",
        "/status",
        "/api/upstreams",
        "/api/history?after=",
    ] {
        assert!(
            urls.iter().any(|u| u.starts_with(&format!("{base}{path}"))),
            "no request for {path} in {urls:#?}"
        );
    }
    for u in &urls {
        assert!(
            u.starts_with("data:") || host(u) == Some("127.0.0.1"),
            "a request left 127.0.0.1: {u}"
        );
    }
    println!("{} requests, all to 127.0.0.1", urls.len());
}

#[test]
fn status_page_updates_itself_in_headless_chromium() {
    let demo = start_demo();
    let mut b = Browser::start(&std::env::temp_dir());
    let page = b.new_page();
    for domain in [
        "Network.enable",
        "Runtime.enable",
        "Log.enable",
        "Page.enable",
    ] {
        b.call(Some(&page), domain, json!({}));
    }
    b.call(
        Some(&page),
        "Page.navigate",
        json!({ "url": format!("{}/", demo.base) }),
    );
    wait_page(
        &mut b,
        &page,
        "the script's first redraw",
        "document.getElementById('live')?.textContent.startsWith('live') === true",
        Duration::from_secs(30),
    );
    assert_updates_without_reload(&mut b, &page);

    // Break the lagging node at run time: the page must show it failing.
    let url = format!("{}/node/6/behaviour", demo.admin);
    assert_eq!(http("POST", &url, "accept-hang").0, 200, "node 6 switched");
    wait_page(
        &mut b,
        &page,
        "node 6 shown as failing",
        &format!(
            "document.querySelector('#upstreams tr[data-name=\"node-6-lagging-3\"] [data-standing]')\
               ?.textContent === 'failing' && {SAME_DOCUMENT}"
        ),
        Duration::from_secs(30),
    );
    assert_standings_match_api(&mut b, &page, &demo.base);
    assert_latencies_have_units(&mut b, &page);
    let paths = page_u64(
        &mut b,
        &page,
        "document.querySelectorAll('#plot svg path').length",
    );
    assert!(paths > 8, "the slot plot is drawn: {paths} paths");

    std::fs::create_dir_all(ARTIFACTS).expect("artifacts dir");
    let png = b.screenshot(&page);
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let shot = format!("{ARTIFACTS}/status-page.png");
    std::fs::write(&shot, &png).expect("write screenshot");
    println!("screenshot: {shot}");
    assert_readable_without_javascript(&mut b, &demo.base);
    assert_events(&mut b, &page, &demo.base);
}
