//! Helpers for the tests/http_*.rs suites: an `AppState` with an agreed
//! checkpoint and a served State, a minimal blocking HTTP/1.1 client over a
//! real socket, the real `leanpoint` binary with a kill-on-drop guard, and
//! deadline-bounded waiting.
#![allow(dead_code)] // each test crate uses a different subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod oneshot;

use bytes::Bytes;
use clap::Parser;
use leanpoint::agreement::{Agreement, Decision, Vote};
use leanpoint::cli::Cli;
use leanpoint::config::Config;
use leanpoint::lean::api::{Checkpoint, Root};
use leanpoint::service::{AppState, ServedState};

/// Advanced fixture: finalized slot 9 and justified slot 10 roots.
pub const FINALIZED_ROOT: &str =
    "0x910fbdd40c1da21c7dd93fc14d3de1bd5e0093ce3eab1472b8f6096da0760a21";
pub const JUSTIFIED_ROOT: &str =
    "0x88c4239a55e0f0d9c76be0f3ad17c5764f9a6ee6d145deb9042f6cc15622f3d7";

pub fn fixture(path: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lean-api")
        .join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

/// A fresh path in the temp dir, unique per process and call.
pub fn temp_path(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "leanpoint-http-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Writes an upstreams file with the given (name, url) pairs.
pub fn upstreams_file(entries: &[(&str, &str)]) -> PathBuf {
    let list: Vec<_> = entries
        .iter()
        .map(|(n, u)| serde_json::json!({"name": n, "url": u, "path": "/status"}))
        .collect();
    let p = temp_path("upstreams.json");
    std::fs::write(&p, serde_json::json!({ "upstreams": list }).to_string())
        .expect("write upstreams file");
    p
}

/// Five upstreams on closed ports: every poll is refused at once.
pub fn dead_upstreams_file() -> PathBuf {
    let urls: Vec<(String, String)> = (1..=5)
        .map(|i| (format!("dead_{i}"), format!("http://127.0.0.1:{i}")))
        .collect();
    let refs: Vec<(&str, &str)> = urls.iter().map(|(n, u)| (n.as_str(), u.as_str())).collect();
    upstreams_file(&refs)
}

pub fn config(extra: &[&str]) -> Config {
    let mut argv = vec!["leanpoint"];
    argv.extend_from_slice(extra);
    let cli = Cli::try_parse_from(argv).expect("test flags parse");
    Config::load(&cli.serve).expect("test config is valid")
}

pub fn build(extra: &[&str]) -> Arc<AppState> {
    leanpoint::service::build(config(extra)).expect("build AppState")
}

/// Applies a decision in which every upstream agrees on the advanced
/// fixture's checkpoints (finalized 9, justified 10).
pub fn agree(state: &AppState) {
    let finalized_root = Root::from_hex(FINALIZED_ROOT).expect("root");
    let justified = Checkpoint {
        slot: 10,
        root: Root::from_hex(JUSTIFIED_ROOT).expect("root"),
    };
    let n = state.upstreams.len();
    let vote = Vote {
        finalized_slot: 9,
        finalized_root: Some(finalized_root),
        justified: Some(justified),
        evidence: Default::default(),
    };
    let decision = Decision {
        agreed: Some(Agreement {
            finalized_slot: 9,
            finalized_root: Some(finalized_root),
            justified: Some(justified),
            supporters: (0..n).collect(),
        }),
        responding: n,
        required: n / 2 + 1,
        conflict: false,
        standings: vec![leanpoint::agreement::Standing::Agreeing; n],
        wanted: Vec::new(),
        impossible: Vec::new(),
        served_contradicted: false,
    };
    state.apply(&decision, &vec![Some(vote); n]);
}

/// Installs `bytes` as the served finalized State at slot 9.
pub fn serve_state(state: &AppState, bytes: Bytes) {
    state.install_state(ServedState {
        slot: 9,
        root: Some(Root::from_hex(FINALIZED_ROOT).expect("root")),
        bytes,
        etag: format!("\"{FINALIZED_ROOT}\""),
        block: None,
        state_root: None,
        genesis_time: 0,
        fetched_from: "test".to_string(),
        fetched_at_ms: 0,
    });
}

/// Agreement plus the fixture State: what a healthy leanpoint serves.
pub fn agreed_with_fixture(extra: &[&str]) -> Arc<AppState> {
    let state = build(extra);
    agree(&state);
    serve_state(
        &state,
        Bytes::from(fixture("advanced/states_finalized.ssz")),
    );
    state
}

/// Polls `f` every 25 ms until it returns Some, or panics after `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One request on a new connection (`Connection: close`), read to the end.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    parse_response(&raw)
}

pub fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, &[])
}

/// Parses a response whose body runs to the end of `raw` (Connection: close).
pub fn parse_response(raw: &[u8]) -> Resp {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

/// Value of an unlabelled sample (or an exact `name{labels}`) in metrics text.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

/// The real binary, killed (and reaped) when dropped.
pub struct Leanpoint {
    pub child: Child,
    pub addr: SocketAddr,
    /// Every stderr line, for failure messages.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Leanpoint {
    /// Starts `leanpoint --bind 127.0.0.1 --port 0 --log-format json <args>`
    /// and waits for its "listening" line to learn the port.
    pub fn start(args: &[&str]) -> Leanpoint {
        Leanpoint::start_with_nofile(args, None)
    }

    /// [`Leanpoint::start`] with RLIMIT_NOFILE (soft and hard) set to
    /// `nofile` before exec, so the process lives its whole life, start-up
    /// raise included, under that limit (the incident's was 1024).
    pub fn start_with_nofile(args: &[&str], nofile: Option<u64>) -> Leanpoint {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_leanpoint"));
        cmd.args(["--bind", "127.0.0.1", "--port", "0", "--log-format", "json"])
            .args(args)
            .env("LEANPOINT_LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(limit) = nofile {
            use std::os::unix::process::CommandExt;
            let rlimit = rustix::process::Rlimit {
                current: Some(limit),
                maximum: Some(limit),
            };
            // SAFETY: the closure runs between fork and exec and only makes
            // the setrlimit system call: no allocation, no locks.
            unsafe {
                cmd.pre_exec(move || {
                    rustix::process::setrlimit(rustix::process::Resource::Nofile, rlimit)
                        .map_err(std::io::Error::from)
                });
            }
        }
        let mut child = cmd.spawn().expect("spawn leanpoint");
        let stderr = child.stderr.take().expect("stderr piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        // Drain stderr for the child's whole life so it never blocks on a
        // full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = listening_addr(&line) {
                    let _ = tx.send(addr);
                }
                sink.lock().expect("log lock").push(line);
            }
        });
        let mut guard = Leanpoint {
            child,
            addr: "127.0.0.1:0".parse().expect("addr"),
            log,
        };
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => guard.addr = addr,
            Err(_) => panic!(
                "leanpoint did not report listening; log:\n{}",
                guard.log_text()
            ),
        }
        guard
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        self.log.lock().expect("log lock").join("\n")
    }

    pub fn metrics(&self) -> String {
        let r = get(self.addr, "/metrics");
        assert_eq!(r.status, 200, "/metrics: {}", r.text());
        r.text()
    }
}

impl Drop for Leanpoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn listening_addr(line: &str) -> Option<SocketAddr> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = v.get("fields")?;
    if fields.get("message")?.as_str()? != "leanpoint listening" {
        return None;
    }
    fields.get("addr")?.as_str()?.parse().ok()
}

/// Open fds of process `pid`, counted from outside.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}
