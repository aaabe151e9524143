//! Debian's headless Chromium driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`): JSON messages ended by NUL on fds 3 (to the
//! browser) and 4 (from it). No websocket, no driver, no npm: one socketpair
//! and `sh` to put its end on fds 3 and 4.
//!
//! The browser runs in its own process group, killed (by that group's id)
//! and reaped when [`Browser`] drops, with its profile directory removed.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::Proc;

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How long one DevTools command may take on a busy machine.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Flags for a root user on a machine with no network but loopback: without
/// the background-networking ones Chromium's own connections to the outside
/// are refused and logged, and a sandbox needs a non-root user.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--remote-debugging-pipe",
    "--window-size=1400,1300",
];

pub struct Browser {
    /// Some until dropped: killed (with its renderers) before the profile goes.
    proc: Option<Proc>,
    to: UnixStream,
    from: mpsc::Receiver<Value>,
    next_id: u64,
    /// Every event received, in order.
    pub events: Vec<Value>,
    profile: PathBuf,
}

fn reader(mut s: UnixStream) -> mpsc::Receiver<Value> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 64 * 1024];
        loop {
            let n = match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            while let Some(end) = buf.iter().position(|b| *b == 0) {
                let msg: Vec<u8> = buf.drain(..=end).collect();
                match serde_json::from_slice(&msg[..msg.len() - 1]) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                    Err(e) => eprintln!("cdp: unparsable message from the browser: {e}"),
                }
            }
        }
    });
    rx
}

impl Browser {
    /// Starts Chromium with a new empty profile under `scratch`.
    pub fn start(scratch: &Path) -> Browser {
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: scripts/install-deps.sh installs Debian's chromium"
        );
        let profile = scratch.join(format!("chromium-profile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("profile dir");
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        let theirs_out = theirs.try_clone().expect("dup socket");
        let mut args: Vec<String> = FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.push("about:blank".into());
        // The socket arrives as stdin and stdout; sh moves it to fds 3 and 4
        // and gives Chromium /dev/null instead, then execs it (same pid).
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("exec \"$0\" \"$@\" 3<&0 4>&1 0</dev/null 1>/dev/null")
            .arg(CHROMIUM)
            .args(&args)
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs_out)));
        // The browser's renderers are in its process group: the guard ends
        // them all.
        let proc = Proc::spawn_with_stdio("chromium", cmd);
        let from = reader(ours.try_clone().expect("dup socket"));
        Browser {
            proc: Some(proc),
            to: ours,
            from,
            next_id: 0,
            events: Vec::new(),
            profile,
        }
    }

    pub fn stderr(&self) -> String {
        self.proc.as_ref().map(Proc::stderr).unwrap_or_default()
    }

    /// Sends one command (to a page session when `session` is given) and
    /// waits for its answer, keeping the events that arrive meanwhile.
    pub fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).expect("json");
        bytes.push(0);
        self.to.write_all(&bytes).expect("write to chromium");
        let answer = |v: &Value| v.get("id").and_then(Value::as_u64) == Some(id);
        let v = self.receive_until(answer, &format!("an answer to {method}"), COMMAND_TIMEOUT);
        if let Some(e) = v.get("error") {
            panic!("{method} failed: {e}");
        }
        v["result"].clone()
    }

    /// Receives messages, keeping events, until one `done` accepts (that
    /// one is returned, not kept), or panics after `within`.
    fn receive_until(
        &mut self,
        done: impl Fn(&Value) -> bool,
        what: &str,
        within: Duration,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self.from.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "no {what} within {within:?}; chromium stderr:\n{}",
                    self.stderr()
                )
            });
            if done(&v) {
                return v;
            }
            self.events.push(v);
        }
    }

    /// Collects events that arrived without a command being answered.
    pub fn drain_events(&mut self) {
        while let Ok(v) = self.from.try_recv() {
            self.events.push(v);
        }
    }

    /// Waits for event `method` of page `session`, buffered or to come.
    pub fn wait_event(&mut self, session: &str, method: &str, within: Duration) -> Value {
        let is = |v: &Value| v["method"] == method && v["sessionId"] == session;
        if let Some(v) = self.events.iter().find(|v| is(v)) {
            return v.clone();
        }
        let v = self.receive_until(is, method, within);
        self.events.push(v.clone());
        v
    }

    /// Opens a tab on about:blank and returns its flat session id.
    pub fn new_page(&mut self) -> String {
        let target = self.call(None, "Target.createTarget", json!({ "url": "about:blank" }));
        let id = target["targetId"].as_str().expect("targetId").to_string();
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({ "targetId": id, "flatten": true }),
        );
        attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string()
    }

    /// Evaluates `expr` in the page and returns its value (promises awaited).
    pub fn eval(&mut self, session: &str, expr: &str) -> Value {
        let r = self.call(
            Some(session),
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("evaluating {expr:?} threw: {e}");
        }
        r["result"]["value"].clone()
    }

    /// A PNG of the whole page.
    pub fn screenshot(&mut self, session: &str) -> Vec<u8> {
        let r = self.call(
            Some(session),
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true }),
        );
        base64_decode(r["data"].as_str().expect("screenshot data"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The guard kills the browser's process group, renderers included.
        drop(self.proc.take());
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Standard base64 (the screenshot's encoding), padding optional.
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let data: Vec<u8> = s.bytes().filter(|c| *c != b'=' && *c != b'\n').collect();
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    for chunk in data.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c) << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len() - 1]);
    }
    out
}

#[test]
fn base64_decodes_what_browsers_send() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGk="), b"hi");
    assert_eq!(base64_decode("YWJj"), b"abc");
}
