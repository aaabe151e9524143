//! Property tests ("fuzzing" inside `cargo test`, bounded) of every parser
//! of untrusted input: the upstream decoders and the upstreams file.
//!
//! For any input, a parser returns (never panics), and an error is bounded
//! and echoes no more than an excerpt of what it was given: a secret placed
//! past the excerpt never appears. Case counts are fixed so the whole file
//! costs seconds; a failure prints the shrunk input.
//!
//! To fuzz another decoder, add it to [`DECODERS`].

use std::path::PathBuf;

use leanpoint::lean::api;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, FileFailurePersistence};

/// Bytes of the fixtures, the seeds mutated below.
fn fixture(folder: &str, file: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lean-api")
        .join(folder)
        .join(file);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Longest error a decoder may return: the 256-byte message bound and a
/// prefix naming the body.
const MAX_ERROR: usize = 320;

/// A marker that must never be echoed when it sits past the excerpt.
const SECRET: &str = "SECRETxMARKERx7731";

type Decoder = fn(&[u8]) -> Result<(), String>;

/// Every decoder of upstream bytes, with the fixture it is seeded from.
const DECODERS: &[(&str, Decoder, &str, &str)] = &[
    (
        "fork_choice",
        |b| {
            api::parse_fork_choice(b)
                .map(drop)
                .map_err(|e| e.to_string())
        },
        "advanced",
        "fork_choice.json",
    ),
    (
        "checkpoint",
        |b| {
            api::parse_checkpoint(b)
                .map(drop)
                .map_err(|e| e.to_string())
        },
        "advanced",
        "checkpoints_justified.json",
    ),
    (
        "state_header",
        |b| {
            api::parse_state_header(b)
                .map(drop)
                .map_err(|e| e.to_string())
        },
        "advanced",
        "states_finalized.ssz",
    ),
    (
        "state",
        |b| api::validate_state(b).map(drop).map_err(|e| e.to_string()),
        "advanced",
        "states_finalized.ssz",
    ),
];

fn runner(cases: u32) -> RunnerConfig {
    RunnerConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..RunnerConfig::default()
    }
}

/// A seed with some bytes replaced, some cut and some inserted.
fn mutated(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = seed.len();
    (
        prop::collection::vec((0..len.max(1), any::<u8>()), 0..8),
        0..=len,
        prop::collection::vec(any::<u8>(), 0..16),
        0..=len,
    )
        .prop_map(move |(flips, cut, insert, at)| {
            let mut b = seed.clone();
            for (i, v) in flips {
                if let Some(x) = b.get_mut(i) {
                    *x = v;
                }
            }
            b.truncate(cut.max(1));
            let at = at.min(b.len());
            b.splice(at..at, insert);
            b
        })
}

/// A JSON text value, possibly huge or full of escapes, with the secret
/// past the excerpt.
fn hostile_string() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["\"", "\\", "<script>", "a", "\u{1}", "é", "0x"]),
        25usize..4000,
    )
        .prop_map(|(unit, n)| format!("{}{SECRET}", unit.repeat(n)))
}

/// A fork_choice or checkpoint shape with one field replaced by `value`.
fn json_with(value: serde_json::Value, slot: usize) -> Vec<u8> {
    let mut fc: serde_json::Value =
        serde_json::from_slice(&fixture("advanced", "fork_choice.json")).expect("fixture");
    let targets = [
        "/head",
        "/justified/root",
        "/justified/slot",
        "/finalized/root",
        "/nodes/0/root",
        "/nodes/0/slot",
        "/nodes",
    ];
    if let Some(v) = fc.pointer_mut(targets[slot % targets.len()]) {
        *v = value;
    }
    serde_json::to_vec(&fc).expect("json")
}

fn check(name: &str, result: Result<(), String>) -> Result<(), TestCaseError> {
    if let Err(e) = result {
        prop_assert!(e.len() <= MAX_ERROR, "{name}: {} bytes: {e}", e.len());
        prop_assert!(!e.contains(SECRET), "{name} echoed past the excerpt: {e}");
        prop_assert!(!e.contains('\n'), "{name}: one line: {e}");
    }
    Ok(())
}

#[test]
fn decoders_survive_arbitrary_bytes() {
    proptest!(runner(256), |(bytes in prop::collection::vec(any::<u8>(), 0..2048))| {
        for (name, decode, _, _) in DECODERS {
            check(name, decode(&bytes))?;
        }
    });
}

#[test]
fn decoders_survive_mutated_fixtures() {
    for (name, decode, folder, file) in DECODERS {
        proptest!(runner(192), |(bytes in mutated(fixture(folder, file)))| {
            check(name, decode(&bytes))?;
        });
    }
}

#[test]
fn json_decoders_excerpt_hostile_strings() {
    proptest!(runner(128), |(s in hostile_string(), slot in 0usize..7)| {
        let body = json_with(serde_json::Value::String(s.clone()), slot);
        for (name, decode, _, _) in DECODERS.iter().filter(|d| d.2 == "advanced" && !d.3.ends_with(".ssz")) {
            let r = decode(&body);
            check(name, r.clone())?;
        }
        let cp = serde_json::json!({"slot": s, "root": s}).to_string();
        check("checkpoint", api::parse_checkpoint(cp.as_bytes()).map(drop).map_err(|e| e.to_string()))?;
    });
}

/// One upstreams-file entry with secrets in the URL, headers, and a
/// mistyped header name; fields sometimes of the wrong type or missing.
fn entry() -> impl Strategy<Value = serde_json::Value> {
    let url = prop::sample::select(vec![
        format!("http://u:{SECRET}@127.0.0.1:9/{SECRET}?apikey={SECRET}"),
        format!("ftp://u:{SECRET}@h/"),
        format!("http://u:{SECRET}@[::1"),
        format!("{SECRET}"),
        "http://127.0.0.1:9".to_string(),
    ]);
    let header = prop::sample::select(vec![
        (format!("Authorization: Bearer {SECRET}"), "x".to_string()),
        ("Authorization".to_string(), format!("Bearer {SECRET}")),
        ("X-Key".to_string(), format!("{SECRET}\u{1}")),
        ("X-Key".to_string(), format!("{SECRET}\n")),
    ]);
    (url, prop::collection::vec(header, 0..3), 0u8..6, "[a-z_]{1,12}").prop_map(
        |(url, headers, shape, name)| {
            let h: serde_json::Map<String, serde_json::Value> =
                headers.into_iter().map(|(k, v)| (k, v.into())).collect();
            match shape {
                0 => serde_json::json!({"name": name, "url": url, "headers": h}),
                1 => serde_json::json!({"name": name, "url": url, "headers": format!("Bearer {SECRET}")}),
                2 => serde_json::json!({"name": name, "url": [url]}),
                3 => serde_json::json!({"name": name, "url": url, format!("k{SECRET}"): 1}),
                4 => serde_json::json!({"name": name, "url": url, "path": 7}),
                _ => serde_json::json!({"name": name, "url": url}),
            }
        },
    )
}

#[test]
fn the_upstreams_file_parser_never_echoes_values() {
    let dir = std::env::temp_dir().join(format!("lp-fuzz-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("upstreams.json");
    proptest!(runner(160), |(entries in prop::collection::vec(entry(), 0..4), cut in any::<prop::sample::Index>(), truncate in any::<bool>())| {
        let mut text = serde_json::json!({"upstreams": entries}).to_string();
        if truncate {
            let at = cut.index(text.len().max(1));
            while !text.is_char_boundary(at.min(text.len())) { text.pop(); }
            text.truncate(at.min(text.len()));
        }
        std::fs::write(&path, &text).expect("write");
        if let Err(e) = leanpoint::config::load_upstreams_file(&path) {
            let shown = e.to_string();
            prop_assert!(!shown.contains(SECRET), "echoed: {shown}");
            prop_assert!(shown.len() < 512 && !shown.contains('\n'), "one bounded line: {shown}");
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}
