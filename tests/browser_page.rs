//! The real status page in Debian's headless Chromium against `leanpoint
//! demo` (a simulated devnet with a hung, a lagging and a forked node).
//!
//! Not part of plain `cargo test` (`test = false`): scripts/test.sh runs it
//! in its own step once scripts/install-deps.sh has installed chromium. It
//! proves the page redraws itself without a reload (the finalized slot
//! moves, the timeline grows, a node broken at run time shows as failing),
//! that the standings it shows are those of /api/upstreams, that every
//! request it makes goes to 127.0.0.1, and that the browser logs no error.
//! It saves a screenshot to target/artifacts/status-page.png.

mod browser_support;
mod sim_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use browser_support::cdp::Browser;
use serde_json::{json, Value};
use sim_support::{http, spawn, wait_for};

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

#[test]
fn status_page_updates_itself_in_headless_chromium() {
    let demo = spawn(&[
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
    let lines = demo.lines_until(|l| l.starts_with("Ctrl-C stops"), Duration::from_secs(30));
    let find = |needle: &str| -> String {
        lines
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} line in {lines:#?}"))
            .to_string()
    };
    let page_url = find("status page")
        .split_whitespace()
        .last()
        .expect("url")
        .to_string();
    let base = page_url.trim_end_matches('/').to_string();
    let admin = find("/admin/node/0/behaviour")
        .split_whitespace()
        .last()
        .expect("admin url")
        .trim_end_matches("/node/0/behaviour")
        .to_string();
    wait_for("the demo to serve", Duration::from_secs(30), || {
        let (code, _, body) = http("GET", &format!("{base}/status"), "");
        let v: Value = serde_json::from_slice(&body).ok()?;
        (code == 200 && v["serving"] == json!(true)).then_some(())
    });

    std::fs::create_dir_all(ARTIFACTS).expect("artifacts dir");
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
    b.call(Some(&page), "Page.navigate", json!({ "url": page_url }));
    wait_page(
        &mut b,
        &page,
        "the script's first redraw",
        "document.getElementById('live')?.textContent.startsWith('live') === true",
        Duration::from_secs(30),
    );
    let slot_expr = "document.getElementById('finalized-slot').textContent";
    let rows_expr = "document.querySelectorAll('#timeline tbody tr').length";
    let first_slot = page_u64(&mut b, &page, slot_expr);
    let first_rows = page_u64(&mut b, &page, rows_expr);
    // A reload would make a new window object and lose this.
    b.eval(&page, "window.leanpointTestMark = 'same document'; true");

    wait_page(
        &mut b,
        &page,
        "a later finalized slot and a longer timeline, in the same document",
        &format!(
            "Number({slot_expr}) > {first_slot} && {rows_expr} > {first_rows} \
             && window.leanpointTestMark === 'same document'"
        ),
        Duration::from_secs(30),
    );

    // Break the lagging node at run time: the page must show it failing.
    let (code, _, _) = http("POST", &format!("{admin}/node/6/behaviour"), "accept-hang");
    assert_eq!(code, 200, "the simulator's admin API switched node 6");
    wait_page(
        &mut b,
        &page,
        "node 6 shown as failing",
        "document.querySelector('#upstreams tr[data-name=\"node-6-lagging-3\"] [data-standing]')\
           ?.textContent === 'failing' && window.leanpointTestMark === 'same document'",
        Duration::from_secs(30),
    );

    // The standings shown are those of /api/upstreams (both move; retry
    // until one redraw and one answer agree).
    let deadline = Instant::now() + Duration::from_secs(30);
    let shown = loop {
        let shown = page_standings(&mut b, &page);
        let api = api_standings(&base);
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
    let latencies = b.eval(
        &page,
        "Array.from(document.querySelectorAll('#upstreams tbody tr')).map(tr => tr.cells[9].textContent)",
    );
    for l in latencies.as_array().expect("latencies") {
        let l = l.as_str().expect("text");
        assert!(
            [" µs", " ms", " s"].iter().any(|u| l.ends_with(u)),
            "latency {l:?} has no unit"
        );
    }
    assert!(
        page_u64(
            &mut b,
            &page,
            "document.querySelectorAll('#plot svg path').length"
        ) > 8,
        "the slot plot is drawn"
    );

    let png = b.screenshot(&page);
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let shot = format!("{ARTIFACTS}/status-page.png");
    std::fs::write(&shot, &png).expect("write screenshot");
    println!("screenshot: {shot}");

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
            "Page.frameNavigated" if p["frame"].get("parentId").is_none() => navigations += 1,
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
