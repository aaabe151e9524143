//! Bad configuration stops the binary at once with one line that names the
//! file or flag and the field; it never panics. The Zig leanpoint's own
//! upstreams file still loads.

use std::time::Duration;

use crate::support::{run_to_exit, Leanpoint, TempDir};

const EXIT_WITHIN: Duration = Duration::from_secs(20);

/// Runs with `args`; asserts a non-zero exit with exactly one stderr line
/// that contains every `needle`.
fn assert_rejected(what: &str, args: &[&str], needles: &[&str]) {
    let exit = run_to_exit(args, EXIT_WITHIN);
    let text = exit.stderr.trim();
    assert!(
        !exit.status.success(),
        "{what}: exit {:?}, stderr: {text}",
        exit.status
    );
    assert!(!text.contains("panicked"), "{what}: panicked: {text}");
    assert_eq!(text.lines().count(), 1, "{what}: not one line: {text}");
    for needle in needles {
        assert!(text.contains(needle), "{what}: {needle:?} not in {text:?}");
    }
}

/// Writes `contents` as upstreams file `name`, runs with it, and asserts
/// the rejection names the file and every `needle`. Returns the file (and
/// the directory that holds it, removed when dropped).
fn assert_file_rejected(
    what: &str,
    name: &str,
    contents: &str,
    needles: &[&str],
) -> (TempDir, String) {
    let dir = TempDir::new();
    let p = dir.write(name, contents).display().to_string();
    let mut all = vec![p.as_str()];
    all.extend_from_slice(needles);
    assert_rejected(what, &["--upstreams-config", &p], &all);
    (dir, p)
}

/// A valid upstreams file with command-line `flags`: rejected as by
/// [`assert_rejected`]. Its node need not exist: the flag checks come first.
fn assert_flags_rejected(what: &str, flags: &[&str], needles: &[&str]) {
    let dir = TempDir::new();
    let p = dir.write(
        "ok.json",
        r#"{"upstreams":[{"name":"a","url":"http://127.0.0.1:9","path":"/status"}]}"#,
    );
    let p = p.display().to_string();
    let mut args = vec!["--upstreams-config", p.as_str()];
    args.extend_from_slice(flags);
    assert_rejected(what, &args, needles);
}

#[test]
fn unparsable_json_names_the_file() {
    assert_file_rejected(
        "unparsable JSON",
        "broken.json",
        r#"{"upstreams": [{"name": "a", "url": "#,
        &["upstreams", "invalid JSON"],
    );
}

#[test]
fn duplicate_names_name_both_entries() {
    assert_file_rejected(
        "duplicate names",
        "dup.json",
        r#"{"upstreams":[{"name":"zeam_0","url":"http://127.0.0.1:5052"},{"name":"zeam_0","url":"http://127.0.0.1:5053"}]}"#,
        &["upstreams[1].name", "duplicates upstreams[0].name"],
    );
}

#[test]
fn empty_name_is_rejected() {
    assert_file_rejected(
        "empty name",
        "empty-name.json",
        r#"{"upstreams":[{"name":"  ","url":"http://127.0.0.1:5052"}]}"#,
        &["upstreams[0].name", "empty"],
    );
}

#[test]
fn non_http_url_is_rejected_without_echoing_it() {
    let (_dir, p) = assert_file_rejected(
        "ftp URL",
        "ftp.json",
        r#"{"upstreams":[{"name":"a","url":"http://127.0.0.1:5052"},{"name":"b","url":"ftp://user:s3cret@127.0.0.1/"}]}"#,
        &["upstreams[1].url", "ftp"],
    );
    let exit = run_to_exit(&["--upstreams-config", &p], EXIT_WITHIN);
    assert!(
        !exit.stderr.contains("s3cret"),
        "credentials echoed: {}",
        exit.stderr
    );
}

#[test]
fn zero_timeout_names_the_flag() {
    assert_flags_rejected(
        "zero timeout",
        &["--timeout-ms", "0"],
        &["command line", "--timeout-ms", "greater than 0"],
    );
}

#[test]
fn connect_timeout_above_total_names_both_flags() {
    assert_flags_rejected(
        "connect timeout > total",
        &["--timeout-ms", "100", "--connect-timeout-ms", "200"],
        &["command line", "--connect-timeout-ms", "--timeout-ms"],
    );
}

#[test]
fn empty_upstreams_list_is_rejected() {
    assert_file_rejected(
        "empty list",
        "none.json",
        r#"{"upstreams":[]}"#,
        &["upstreams", "no upstreams"],
    );
}

#[test]
fn missing_file_names_the_path() {
    let dir = TempDir::new();
    let p = dir.path().join("does-not-exist.json").display().to_string();
    assert_rejected(
        "missing file",
        &["--upstreams-config", &p],
        &[&p, "cannot read"],
    );
}

#[test]
fn the_zig_example_file_loads_and_serves() {
    let path = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/lean-quickstart/upstreams.zig-example.json"
    ));
    // Its upstreams are localhost ports where nothing (or anything) may
    // listen; leanpoint must start and answer either way.
    let lp = Leanpoint::builder()
        .upstreams_file(path)
        .timing(crate::support::Timing::FAST)
        .spawn();
    let status = lp.get("/status");
    assert_eq!(status.status, 200, "{}", status.text());
    let all = lp.json("/api/upstreams");
    let names: Vec<&str> = all["upstreams"]
        .as_array()
        .expect("upstreams")
        .iter()
        .filter_map(|u| u["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "zeam_0",
            "ream_0",
            "qlean_0",
            "lantern_0",
            "lighthouse_0",
            "grandine_0"
        ]
    );
}
