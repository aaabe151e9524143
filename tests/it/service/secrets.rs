//! No secret reaches any output of the real binary. Credentials go in every
//! place an operator can put them (URL userinfo, query and path, headers,
//! the environment, the upstreams file); upstreams fail in every way,
//! including one that reflects its request (headers and all) into the
//! fields leanpoint parses. Then every output is searched for them: text and
//! JSON logs, /status, /api/upstreams, /metrics, the page, the probes,
//! `--help`, and configuration errors.

use std::sync::Arc;
use std::time::Duration;

use crate::support::fixtures::{FORK_CHOICE, STATE};
use crate::support::metrics::upstream_errors;
use crate::support::raw_upstream::{json_response, RawUpstream};
use crate::support::BIN;
use crate::support::{dead_port, run_to_exit, wait_until, Leanpoint, Mode, SimUpstream, TempDir};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

const USER: &str = "aliceUSERsecret";
const PASS: &str = "PASSsecret7781";
const QUERY: &str = "QUERYsecret4412";
const PATH: &str = "PATHsecret9923";
const HEADER: &str = "HEADERsecret5531";
const BEARER: &str = "BEARERsecret3301";
const ENV: &str = "ENVsecret8812";

/// `USER:PASS` as a Basic token: what reqwest sends for URL userinfo.
fn basic() -> String {
    let pair = format!("{USER}:{PASS}");
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = pair.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= c.len() {
                char::from(T[(n >> (18 - 6 * i)) as usize & 63])
            } else {
                '='
            });
        }
    }
    out
}

/// Every secret, and the parts an excerpt would start with.
fn needles() -> Vec<String> {
    let mut n: Vec<String> = [USER, PASS, QUERY, PATH, HEADER, BEARER, ENV]
        .iter()
        .map(|s| s.to_string())
        .collect();
    n.push(basic());
    n.push(basic()[..10].to_string());
    n.push("apikey".to_string());
    n
}

fn assert_clean(what: &str, text: &str) {
    for needle in needles() {
        assert!(
            !text.contains(&needle),
            "{what} leaks {needle:?}:\n{}",
            excerpt(text, &needle)
        );
    }
}

fn excerpt(text: &str, needle: &str) -> String {
    let at = text.find(needle).unwrap_or(0);
    let start = text[..at]
        .char_indices()
        .rev()
        .nth(200)
        .map_or(0, |(i, _)| i);
    text[start..].chars().take(400).collect()
}

/// `http://USER:PASS@127.0.0.1:PORT/PATH?apikey=QUERY`.
fn secret_url(port: u16) -> String {
    format!("http://{USER}:{PASS}@127.0.0.1:{port}/{PATH}?apikey={QUERY}")
}

/// A fork_choice whose `head` and finalized root are the request head it
/// answers: everything leanpoint sent, Authorization included.
fn reflect_root(head: &str) -> Vec<u8> {
    json_response(
        json!({"nodes": [], "head": head, "justified": {"slot": 1, "root": head},
               "finalized": {"slot": 1, "root": head}})
        .to_string()
        .as_bytes(),
    )
}

/// A 200 whose Content-Type is the request's Authorization value.
fn reflect_content_type(head: &str) -> Vec<u8> {
    let auth = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        })
        .map_or(String::new(), |(_, v)| v.trim().to_string());
    format!("HTTP/1.1 200 OK\r\nContent-Type: text/{auth}\r\nContent-Length: 2\r\n\r\n{{}}")
        .into_bytes()
}

/// A fork_choice where a slot is the request line (serde's invalid type).
fn reflect_slot(head: &str) -> Vec<u8> {
    let line = head.lines().next().unwrap_or("");
    // Written out, not json!: the slot must be the first field parsed.
    let body = format!(r#"{{"justified": {{"slot": {}}}}}"#, json!(line));
    json_response(body.as_bytes())
}

fn status(code: u16) -> Vec<u8> {
    format!("HTTP/1.1 {code} Bad\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\nnothing")
        .into_bytes()
}

fn big_head(_: &str) -> Vec<u8> {
    let mut r = b"HTTP/1.1 200 OK\r\nX-Pad: ".to_vec();
    r.extend(std::iter::repeat_n(b'a', 600_000));
    r.extend_from_slice(b"\r\n\r\n");
    r
}

struct Upstreams {
    raws: Vec<(&'static str, RawUpstream)>,
    fakes: Vec<SimUpstream>,
    file: serde_json::Value,
}

fn upstreams() -> Upstreams {
    type Responder = fn(&str) -> Vec<u8>;
    let raw: [(&str, Responder); 7] = [
        ("reflect-root", reflect_root),
        ("reflect-type", reflect_content_type),
        ("reflect-slot", reflect_slot),
        ("status", |_| status(500)),
        ("garbage", |_| b"NOT HTTP AT ALL\r\n\r\n".to_vec()),
        ("big-head", big_head),
        ("huge-body", |_| json_response(&vec![b'"'; 200_000])),
    ];
    let mut raws = Vec::new();
    let mut list = Vec::new();
    for (name, f) in raw {
        let r = RawUpstream::start(Arc::new(f));
        list.push(json!({"name": name, "url": secret_url(r.port()),
                          "headers": {"X-Api-Key": HEADER, "Authorization": format!("Bearer {BEARER}")}}));
        raws.push((name, r));
    }
    let hang = SimUpstream::start(Mode::AcceptHang);
    let half = SimUpstream::start(Mode::HalfClose);
    for (name, port) in [
        ("hang", hang_port(&hang)),
        ("half", hang_port(&half)),
        ("dead", dead_port()),
    ] {
        // An unknown key made of a secret too: it is warned about, unshown.
        list.push(
            json!({"name": name, "url": secret_url(port), "headers": {"X-Api-Key": HEADER},
                          format!("apikey={QUERY}"): 1}),
        );
    }
    // Two good ones (no path prefix: the fixtures serve /lean/v0/...), so
    // there is an agreement, a State and a full page to search too.
    let mut fakes = vec![hang, half];
    for name in ["good1", "good2"] {
        let f = SimUpstream::start(Mode::Fixture("advanced"));
        let port = hang_port(&f);
        list.push(json!({"name": name, "url": format!("http://{USER}:{PASS}@127.0.0.1:{port}/?apikey={QUERY}"),
                          "headers": {"X-Api-Key": HEADER}}));
        fakes.push(f);
    }
    Upstreams {
        raws,
        fakes,
        file: json!({"upstreams": list}),
    }
}

fn hang_port(f: &SimUpstream) -> u16 {
    f.url()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

/// Every HTTP output of `lp` (each route the router has, and an unmatched
/// path that leanpoint does not proxy), concatenated.
fn http_outputs(lp: &Leanpoint) -> String {
    let mut all = String::new();
    for path in leanpoint::http::routes::ROUTES
        .into_iter()
        .chain([FORK_CHOICE])
    {
        all.push_str(&lp.get(path).text());
    }
    all
}

#[test]
fn no_secret_reaches_logs_pages_json_or_metrics() {
    let ups = upstreams();
    let dir = TempDir::new();
    let path = dir.write("upstreams.json", ups.file.to_string());
    let base = [
        "--poll-ms",
        "500",
        "--timeout-ms",
        "1500",
        "--connect-timeout-ms",
        "500",
        "--stale-ms",
        "10000",
        "--max-body-bytes",
        "65536",
        "--agreement",
        "count:2",
    ];
    // Debug and trace: the libraries' own logs (hyper, reqwest) included.
    let text = Leanpoint::builder()
        .upstreams_file(&path)
        .args(&base)
        .args(&["--log-level", "debug"])
        .spawn();
    let jsonl = Leanpoint::builder()
        .upstreams_file(&path)
        .args(&base)
        .args(&["--log-format", "json", "--log-level", "trace"])
        .spawn();
    let kinds = [
        ("reflect-root", "decode"),
        ("reflect-type", "content_type"),
        ("reflect-slot", "decode"),
        ("status", "http_status"),
        ("garbage", "protocol"),
        ("big-head", "head_too_large"),
        ("huge-body", "body_too_large"),
        ("hang", "timeout"),
        ("half", "closed"),
        ("dead", "refused"),
    ];
    // Counted by the metrics even where a failure only makes the upstream
    // fall back (an unusable fork_choice or checkpoint).
    for lp in [&text, &jsonl] {
        for (name, kind) in kinds {
            wait_until(WAIT, &format!("{name} failing with {kind}"), || {
                let m = lp.metrics();
                let n = upstream_errors(&m, name, kind);
                if n.is_some_and(|n| n >= 2.0) {
                    Ok(())
                } else {
                    Err(format!("{n:?}"))
                }
            });
        }
        lp.wait_code(STATE, 200, WAIT);
    }
    // The reflection really carried the secrets: the test would catch a leak.
    let (_, reflector) = &ups.raws[0];
    let heads = reflector.heads().join("\n");
    assert!(
        heads.contains(BEARER)
            && heads.contains(HEADER)
            && heads.contains(QUERY)
            && heads.contains(PATH)
    );
    // And its text reached the logs, scrubbed: the request line as an excerpt.
    let log = text.stderr();
    assert!(
        log.contains("\"GET /***/lean"),
        "the reflected request line, scrubbed:\n{}",
        log.lines()
            .filter(|l| l.contains("reflect-slot"))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );

    assert_clean("HTTP outputs (text-log instance)", &http_outputs(&text));
    assert_clean("HTTP outputs (json-log instance)", &http_outputs(&jsonl));
    assert!(
        text.stderr().contains("(a key of 22 bytes): unknown field"),
        "the secret key is warned about"
    );
    assert_clean("text log", &text.stderr());
    assert_clean("JSON log", &jsonl.stderr());
    assert!(
        jsonl.stderr().lines().any(|l| l.starts_with('{')),
        "JSON log lines"
    );
    assert!(
        text.stderr().contains("upstream poll failed"),
        "the failures were logged"
    );
    drop(ups.fakes);
}

#[test]
fn userinfo_and_a_configured_authorization_send_one_header_the_configured_one() {
    let r = RawUpstream::start(Arc::new(reflect_root));
    let only_url = RawUpstream::start(Arc::new(reflect_root));
    let public = RawUpstream::start(Arc::new(reflect_root));
    let dir = TempDir::new();
    let file = json!({"upstreams": [
        {"name": "both", "url": secret_url(r.port()), "headers": {"Authorization": format!("Bearer {BEARER}")}},
        {"name": "url-only", "url": secret_url(only_url.port())},
        {"name": "public-path", "url": format!("http://127.0.0.1:{}/node/3", public.port()), "url_path_public": true},
    ]});
    let path = dir.write("upstreams.json", file.to_string());
    let lp = Leanpoint::builder()
        .upstreams_file(&path)
        .timing(crate::support::Timing::FAST)
        .spawn();
    wait_until(WAIT, "both upstreams asked", || {
        if !r.heads().is_empty() && !only_url.heads().is_empty() {
            Ok(())
        } else {
            Err("no request yet".to_string())
        }
    });
    let auth_lines = |head: &str| -> Vec<String> {
        head.lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("authorization:"))
            .map(str::to_string)
            .collect()
    };
    for head in r.heads() {
        assert_eq!(
            auth_lines(&head),
            [format!("authorization: Bearer {BEARER}")],
            "{head}"
        );
    }
    // The path is shown only where the operator marked it public.
    let ups = lp.json("/api/upstreams");
    let url_of = |name: &str| crate::support::find_upstream(&ups, name)["url"].clone();
    assert_eq!(url_of("both"), format!("http://127.0.0.1:{}", r.port()));
    assert_eq!(
        url_of("public-path"),
        format!("http://127.0.0.1:{}/node/3", public.port())
    );
    for head in only_url.heads() {
        assert_eq!(
            auth_lines(&head),
            [format!("authorization: Basic {}", basic())],
            "{head}"
        );
    }
    drop(lp);
}

#[test]
fn help_never_prints_env_values() {
    let out = std::process::Command::new(BIN)
        .arg("--help")
        .env(
            "LEANPOINT_LEAN_URL",
            format!("http://{USER}:{ENV}@127.0.0.1:1/{PATH}?apikey={QUERY}"),
        )
        .env("LEANPOINT_UPSTREAMS_CONFIG", format!("/etc/{ENV}.json"))
        .env("LEANPOINT_LOG_LEVEL", ENV)
        .output()
        .expect("leanpoint --help");
    assert!(out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("LEANPOINT_LEAN_URL"),
        "the env var names stay documented"
    );
    assert_clean("--help", &text);
}

#[test]
fn configuration_errors_name_the_field_never_the_value() {
    let dir = TempDir::new();
    let ok_url = format!("http://127.0.0.1:{}", dead_port());
    // Under the 4 MiB file cap (a 10 MB file is refused by size).
    let long = "x".repeat(3 * 1024 * 1024);
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (
            json!({"upstreams": [{"name": "a", "url": ok_url, "headers": {format!("Authorization: Bearer {BEARER}"): "x"}}]}),
            "headers",
        ),
        (
            json!({"upstreams": [{"name": "a", "url": ok_url, "headers": format!("Bearer {BEARER}")}]}),
            "invalid type",
        ),
        (
            json!({"upstreams": [{"name": "a", "url": ok_url, "headers": {"Authorization": format!("Bearer {BEARER}\u{1}")}}]}),
            "headers",
        ),
        (
            json!({"upstreams": [{"name": "a", "url": format!("ftp://{USER}:{PASS}@h/{PATH}?apikey={QUERY}")}]}),
            "url",
        ),
        (
            json!({"upstreams": [{"name": "a", "url": format!("http://{USER}:{PASS}@[{PATH}?apikey={QUERY}")}]}),
            "url",
        ),
        (
            json!({"upstreams": [{"name": "a", "url": format!("{BEARER}:{PASS}")}]}),
            "scheme",
        ),
        (
            json!({"upstreams": [{"name": "a", "url": secret_url(1), "headers": {"X-Api-Key": HEADER, "x-api-key": HEADER}}]}),
            "twice",
        ),
        (
            json!({"upstreams": [{"name": long, "url": ok_url}]}),
            "name",
        ),
        (
            json!({"upstreams": [{"name": "a", "url": ok_url, "headers": {"X-Api-Key": long.repeat(4)}}]}),
            "byte limit",
        ),
        (
            json!({"upstreams": [{"name": "a", "url": ok_url, "headers": {"X-Api-Key": long}}]}),
            "headers",
        ),
        (
            json!({"upstreams": [{"name": "a", "url": 5, "headers": {"X-Api-Key": HEADER}}]}),
            "url",
        ),
    ];
    for (i, (file, says)) in cases.iter().enumerate() {
        let p = dir.write(&format!("bad-{i}.json"), file.to_string());
        let exit = run_to_exit(
            &["--upstreams-config", &p.to_string_lossy()],
            Duration::from_secs(20),
        );
        assert_eq!(
            exit.status.code(),
            Some(2),
            "case {i}: {}",
            exit.stderr.chars().take(400).collect::<String>()
        );
        assert!(
            exit.stderr.contains(says),
            "case {i}: {}",
            exit.stderr.chars().take(400).collect::<String>()
        );
        assert!(
            exit.stderr.len() < 400 && exit.stderr.lines().count() == 1,
            "case {i}: one short line, got {} bytes",
            exit.stderr.len()
        );
        assert_clean(&format!("config error {i}"), &exit.stderr);
    }
    // The same from flags and the environment.
    let url = format!("ftp://{USER}:{PASS}@h/{PATH}?apikey={QUERY}");
    let exit = run_to_exit(&["--lean-url", &url], Duration::from_secs(20));
    assert_eq!(exit.status.code(), Some(2), "{}", exit.stderr);
    assert_clean("--lean-url error", &exit.stderr);
}
