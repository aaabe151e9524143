//! The real `leanpoint` binary as a child process, killed when the guard drops.

use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::client::{client, get_with, wait_until, Response};
use super::sys::{fd_count, fds, free_port, listens, Fd, TempDir};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_leanpoint");

/// Timing flags for tests that only need polls to be quick.
pub const FAST: &[&str] = &[
    "--poll-ms",
    "100",
    "--timeout-ms",
    "1000",
    "--connect-timeout-ms",
    "500",
    "--stale-ms",
    "5000",
];

/// How long leanpoint may take to start listening on a busy machine.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// An upstreams file in the Zig leanpoint's format.
pub fn upstreams_json(upstreams: &[(String, String)]) -> String {
    let list: Vec<Value> = upstreams
        .iter()
        .map(|(name, url)| serde_json::json!({"name": name, "url": url, "path": "/status"}))
        .collect();
    serde_json::json!({ "upstreams": list }).to_string()
}

/// What to start. Always adds `--bind 127.0.0.1 --port <free port>`.
#[derive(Default)]
pub struct Builder {
    upstreams: Vec<(String, String)>,
    upstreams_file: Option<PathBuf>,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    env_only: bool,
    nofile: Option<u64>,
}

impl Builder {
    /// Adds an upstream to the generated upstreams file.
    pub fn upstream(mut self, name: &str, url: &str) -> Builder {
        self.upstreams.push((name.to_string(), url.to_string()));
        self
    }

    /// Uses this upstreams file instead of a generated one.
    pub fn upstreams_file(mut self, path: &Path) -> Builder {
        self.upstreams_file = Some(path.to_path_buf());
        self
    }

    /// Extra command-line arguments (a repeated flag: the last one wins).
    pub fn args(mut self, args: &[&str]) -> Builder {
        self.args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    /// An environment variable for the process (`LEANPOINT_*` from the
    /// test's own environment are never inherited).
    pub fn env(mut self, key: &str, value: &str) -> Builder {
        self.envs.push((key.to_string(), value.to_string()));
        self
    }

    /// Starts without `--bind 127.0.0.1 --port <port>` on the command line:
    /// they go in `LEANPOINT_BIND_ADDR` / `LEANPOINT_BIND_PORT` instead, so
    /// a configuration can be given by the environment alone.
    pub fn env_only(mut self) -> Builder {
        self.env_only = true;
        self
    }

    /// Starts leanpoint with soft and hard RLIMIT_NOFILE set to `n`.
    pub fn nofile(mut self, n: u64) -> Builder {
        self.nofile = Some(n);
        self
    }

    /// Starts leanpoint and waits until it listens; retries on another port
    /// if the free port was taken in between.
    pub async fn spawn(self) -> Leanpoint {
        let dir = TempDir::new();
        let config = match (&self.upstreams_file, self.upstreams.is_empty()) {
            (Some(p), _) => Some(p.clone()),
            (None, false) => Some(dir.write("upstreams.json", &upstreams_json(&self.upstreams))),
            (None, true) => None,
        };
        for attempt in 0..5 {
            let port = free_port();
            let stderr_path = dir.path().join(format!("stderr-{attempt}.log"));
            let mut cmd = self.command(port, config.as_deref(), &stderr_path);
            let mut child = cmd.spawn().expect("spawning leanpoint");
            match wait_listening(&mut child, port).await {
                Ok(()) => {
                    return Leanpoint {
                        child,
                        port,
                        stderr_path,
                        client: client(Duration::from_secs(5)),
                        _dir: dir,
                    }
                }
                Err(status) => {
                    let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                    if status.is_some() && log.contains("cannot bind") {
                        continue;
                    }
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "leanpoint did not start listening on {port} ({status:?}); stderr:\n{log}"
                    );
                }
            }
        }
        panic!("leanpoint could not bind a free port in 5 attempts");
    }

    fn command(&self, port: u16, config: Option<&Path>, stderr: &Path) -> Command {
        let mut cmd = if self.env_only {
            let mut cmd = Command::new(BIN);
            scrub_and_wire(&mut cmd, stderr);
            cmd.env("LEANPOINT_BIND_ADDR", "127.0.0.1")
                .env("LEANPOINT_BIND_PORT", port.to_string());
            if let Some(p) = config {
                cmd.env("LEANPOINT_UPSTREAMS_CONFIG", p);
            }
            cmd
        } else {
            let mut cmd = base_command(port, stderr);
            if let Some(p) = config {
                cmd.arg("--upstreams-config").arg(p);
            }
            cmd
        };
        cmd.args(&self.args);
        cmd.envs(self.envs.iter().map(|(k, v)| (k, v)));
        if let Some(n) = self.nofile {
            // SAFETY: runs in the forked child before exec, where only
            // async-signal-safe work is allowed: one raw setrlimit system
            // call (rustix neither allocates nor takes locks), a captured
            // u64, an error conversion that allocates nothing.
            unsafe {
                cmd.pre_exec(move || {
                    let limit = rustix::process::Rlimit {
                        current: Some(n),
                        maximum: Some(n),
                    };
                    rustix::process::setrlimit(rustix::process::Resource::Nofile, limit)
                        .map_err(std::io::Error::from)
                });
            }
        }
        cmd
    }
}

/// `leanpoint --bind 127.0.0.1 --port <port>` with stderr to `stderr` and
/// no `LEANPOINT_*` variables inherited (they would change the defaults).
fn base_command(port: u16, stderr: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()]);
    scrub_and_wire(&mut cmd, stderr);
    cmd
}

/// Removes inherited `LEANPOINT_*`, ties the child's life to the test's, and
/// sends stderr to `stderr`.
fn scrub_and_wire(cmd: &mut Command, stderr: &Path) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("LEANPOINT_") {
            cmd.env_remove(k);
        }
    }
    // SAFETY: runs in the forked child before exec, where only
    // async-signal-safe work is allowed: one raw prctl system call (rustix
    // neither allocates nor takes locks), an error conversion that allocates
    // nothing. SIGKILL when the spawning thread dies, so a leanpoint never
    // outlives a test process killed before its guards drop (SIGPIPE from
    // `cargo test | head`, a timeout); the guards still kill and wait.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)
        });
    }
    let file = File::create(stderr).expect("creating the stderr log");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(file));
}

/// Ok once `child` itself listens on `port`; Err(exit status) if it exited,
/// Err(None) at the start timeout.
async fn wait_listening(child: &mut Child, port: u16) -> Result<(), Option<ExitStatus>> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Some(status));
        }
        if listens(child.id(), port) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(None);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A running leanpoint. Killed (and reaped) on drop; when the test is
/// panicking, its stderr is printed first.
pub struct Leanpoint {
    child: Child,
    port: u16,
    stderr_path: PathBuf,
    client: reqwest::Client,
    _dir: TempDir,
}

impl Leanpoint {
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Everything leanpoint wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Open fds of the process now.
    pub fn fd_count(&self) -> usize {
        fd_count(self.pid())
    }

    /// Open fds of the process, TCP sockets resolved.
    pub fn fds(&self) -> Vec<Fd> {
        fds(self.pid())
    }

    /// Open fds that are not inbound connections to leanpoint's own port
    /// (those are bounded by --max-connections, not by upstreams).
    pub fn fds_without_inbound(&self) -> Vec<Fd> {
        self.fds()
            .into_iter()
            .filter(|f| {
                f.tcp
                    .is_none_or(|t| t.local_port != self.port || t.state == 0x0A)
            })
            .collect()
    }

    /// Some(status) once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// GET `path` (new connection, 5 s timeout) with extra headers.
    pub async fn try_get(&self, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<Response> {
        get_with(&self.client, &self.url(path), headers).await
    }

    /// GET `path`; panics if no complete response arrives.
    pub async fn get(&self, path: &str) -> Response {
        self.try_get(path, &[])
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e:#}"))
    }

    /// GET `path` as JSON.
    pub async fn json(&self, path: &str) -> Value {
        self.get(path).await.json()
    }

    /// GET /metrics as text.
    pub async fn metrics(&self) -> String {
        let r = self.get("/metrics").await;
        assert_eq!(r.status, 200, "/metrics: {}", r.text());
        r.text()
    }

    /// The `/api/upstreams` entry of upstream `name`.
    pub async fn upstream(&self, name: &str) -> Value {
        let all = self.json("/api/upstreams").await;
        find_upstream(&all, name)
    }

    /// Waits until GET `path` answers with status `code`; returns that response.
    pub async fn wait_code(&self, path: &str, code: u16, timeout: Duration) -> Response {
        let what = format!("GET {path} -> {code}");
        wait_until(&what, timeout, async || {
            let r = self.try_get(path, &[]).await.map_err(|e| e.to_string())?;
            if r.status == code {
                Ok(r)
            } else {
                Err(format!("HTTP {}: {}", r.status, r.text()))
            }
        })
        .await
    }

    /// Waits until `pred` holds for the JSON at `path`; returns that JSON.
    pub async fn wait_json(
        &self,
        path: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        wait_until(what, timeout, async || {
            let r = self.try_get(path, &[]).await.map_err(|e| e.to_string())?;
            let v: Value = serde_json::from_slice(&r.body)
                .map_err(|e| format!("HTTP {} not JSON: {e}: {}", r.status, r.text()))?;
            if pred(&v) {
                Ok(v)
            } else {
                Err(v.to_string())
            }
        })
        .await
    }
}

/// The entry named `name` in an /api/upstreams document.
pub fn find_upstream(all: &Value, name: &str) -> Value {
    all["upstreams"]
        .as_array()
        .and_then(|a| a.iter().find(|u| u["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no upstream {name:?} in {all}"))
}

impl Drop for Leanpoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.stderr();
            let tail: Vec<&str> = log.lines().rev().take(200).collect();
            eprintln!(
                "--- leanpoint (port {}) stderr, last {} lines ---",
                self.port,
                tail.len()
            );
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// How a run that should end by itself ended.
#[derive(Debug)]
pub struct Exit {
    pub status: ExitStatus,
    pub stderr: String,
}

/// Runs leanpoint with `args` (plus bind and a free port) until it exits;
/// kills it and panics if it is still running after `timeout`.
pub fn run_to_exit(args: &[&str], timeout: Duration) -> Exit {
    run_to_exit_env(args, &[], timeout)
}

/// [`run_to_exit`] with environment variables `envs` set.
pub fn run_to_exit_env(args: &[&str], envs: &[(&str, &str)], timeout: Duration) -> Exit {
    let dir = TempDir::new();
    let stderr_path = dir.path().join("stderr.log");
    let mut child = base_command(free_port(), &stderr_path)
        .args(args)
        .envs(envs.iter().copied())
        .spawn()
        .expect("spawning leanpoint");
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "leanpoint {args:?} still running after {timeout:?}; stderr:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Exit {
        status,
        stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
    }
}
