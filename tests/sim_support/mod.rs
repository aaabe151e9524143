//! Shared by the sim_* integration tests: start the real `leanpoint` binary,
//! read its discovery lines, kill it on drop, wait on conditions.

#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_leanpoint");

/// A spawned process, killed and reaped when dropped.
pub struct Proc {
    pub child: Child,
    pub stdout: mpsc::Receiver<String>,
    pub stderr: mpsc::Receiver<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pump(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Starts `leanpoint ARGS` with stdout and stderr captured line by line.
pub fn spawn(args: &[&str]) -> Proc {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn leanpoint");
    let stdout = pump(child.stdout.take().expect("stdout"));
    let stderr = pump(child.stderr.take().expect("stderr"));
    Proc {
        child,
        stdout,
        stderr,
    }
}

impl Proc {
    /// Stdout lines up to and including the first one `stop` accepts.
    pub fn lines_until(&self, stop: impl Fn(&str) -> bool, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    let done = stop(&line);
                    lines.push(line);
                    if done {
                        return lines;
                    }
                }
                Err(_) => panic!(
                    "no expected line within {within:?}; stdout so far: {lines:#?}; stderr: {:#?}",
                    self.stderr.try_iter().collect::<Vec<_>>()
                ),
            }
        }
    }
}

impl Proc {
    /// Waits for a stderr line `pred` accepts (the pump thread may still be
    /// delivering lines after the process exited). Panics with what came.
    pub fn stderr_line(&self, pred: impl Fn(&str) -> bool, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!("no expected stderr line within {within:?}: {seen:#?}"),
            }
        }
    }
}

/// One node of a running sim, from its discovery line.
#[derive(Clone, Debug)]
pub struct SimNode {
    pub name: String,
    pub url: String,
    pub behaviour: String,
}

impl SimNode {
    /// `host:port` of the node's URL.
    pub fn addr(&self) -> SocketAddr {
        host_port(&self.url)
    }

    /// The URL's path prefix (`/node/3` in single-port mode, else "").
    pub fn prefix(&self) -> String {
        let rest = self.url.trim_start_matches("http://");
        rest.find('/')
            .map(|at| rest[at..].to_string())
            .unwrap_or_default()
    }
}

pub fn host_port(url: &str) -> SocketAddr {
    let rest = url.trim_start_matches("http://");
    let hp = rest.split('/').next().expect("host:port");
    hp.parse().expect("host:port is an address")
}

/// A running `leanpoint sim`.
pub struct Sim {
    pub proc: Proc,
    pub admin: String,
    pub nodes: Vec<SimNode>,
}

/// Starts `leanpoint sim ARGS` and waits for its `sim-ready` line.
pub fn start_sim(args: &[&str]) -> Sim {
    let mut argv = vec!["sim", "--log-level", "warn"];
    argv.extend_from_slice(args);
    let proc = spawn(&argv);
    let lines = proc.lines_until(|l| l.starts_with("sim-ready "), Duration::from_secs(15));
    let mut admin = String::new();
    let mut nodes = Vec::new();
    for line in &lines {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["sim-admin", url] => admin = url.to_string(),
            ["sim-node", i, name, url, behaviour] => {
                assert_eq!(i.parse::<usize>().expect("index"), nodes.len(), "{line}");
                nodes.push(SimNode {
                    name: name.to_string(),
                    url: url.to_string(),
                    behaviour: behaviour.to_string(),
                });
            }
            _ => {}
        }
    }
    assert!(!admin.is_empty(), "no sim-admin line in {lines:#?}");
    let ready: usize = lines
        .last()
        .and_then(|l| l.strip_prefix("sim-ready "))
        .and_then(|n| n.parse().ok())
        .expect("sim-ready COUNT");
    assert_eq!(ready, nodes.len());
    Sim { proc, admin, nodes }
}

/// Polls `f` every 25 ms until it returns Some, or panics after `within`.
pub fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Connects (1 s deadline) and sends a GET for `path`.
pub fn raw_get(addr: SocketAddr, path: &str) -> TcpStream {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: sim\r\n\r\n").as_bytes())
        .expect("send request");
    s
}

/// A blocking HTTP exchange with std sockets only: (status, content type, body).
/// Uses `Connection: close` so the body ends at EOF.
pub fn http(method: &str, url: &str, body: &str) -> (u16, String, Vec<u8>) {
    let addr = host_port(url);
    let rest = url.trim_start_matches("http://");
    let path = rest.find('/').map(|at| &rest[at..]).unwrap_or("/");
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: sim\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head")
        + 4;
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let status = head[9..12].parse().expect("status");
    let ctype = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap_or("")
        .to_string();
    (status, ctype, raw[end..].to_vec())
}

/// A file under the temp dir, removed on drop.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(name: &str) -> TempFile {
        TempFile(
            std::env::temp_dir().join(format!("leanpoint-simtest-{}-{name}", std::process::id())),
        )
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
