//! The real `leanpoint` binary as a child process: started on `--port 0`,
//! its address read from its own "leanpoint listening" log line, killed with
//! its process group when the guard drops.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use serde_json::Value;

use super::fs::TempDir;
use super::http::{request, Resp, DEFAULT_LIMIT};
use super::process::{leanpoint_command, run_command_to_exit, Exit, Proc};
use super::sys::{fd_count, fds, Fd};
use super::wait::{wait_until, Timing, START_WITHIN};

/// What to start. Always `--bind 127.0.0.1 --port 0` (or the same in the
/// environment, see [`Builder::env_only`]).
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
    /// `n` upstreams `dead_1`.. on closed ports of 127.0.0.1, polled fast
    /// ([`Timing::REFUSED`]): every poll is refused at once, so counters move
    /// and nothing ever agrees. For tests of the listener, not consensus.
    pub fn refused_upstreams(mut self, n: usize) -> Builder {
        for i in 1..=n {
            let url = format!("http://127.0.0.1:{}", super::sys::dead_port());
            self = self.upstream(&format!("dead_{i}"), &url);
        }
        self.timing(Timing::REFUSED)
    }

    /// Adds an upstream to the generated upstreams file.
    pub fn upstream(mut self, name: &str, url: &str) -> Builder {
        self.upstreams.push((name.to_string(), url.to_string()));
        self
    }

    /// Uses this upstreams file instead of a generated one.
    pub fn upstreams_file(mut self, path: impl AsRef<Path>) -> Builder {
        self.upstreams_file = Some(path.as_ref().to_path_buf());
        self
    }

    /// Extra command-line arguments (a repeated flag: the last one wins).
    pub fn args<S: AsRef<str>>(mut self, args: &[S]) -> Builder {
        self.args
            .extend(args.iter().map(|s| s.as_ref().to_string()));
        self
    }

    /// The four poll timing flags of a preset.
    pub fn timing(self, timing: Timing) -> Builder {
        self.args(&timing.args())
    }

    /// An environment variable for the process (`LEANPOINT_*` from the
    /// test's own environment are never inherited).
    pub fn env(mut self, key: &str, value: &str) -> Builder {
        self.envs.push((key.to_string(), value.to_string()));
        self
    }

    /// Bind address, port and upstreams file go in `LEANPOINT_BIND_ADDR`,
    /// `LEANPOINT_BIND_PORT` and `LEANPOINT_UPSTREAMS_CONFIG` instead of
    /// flags, so a configuration can be given by the environment alone.
    pub fn env_only(mut self) -> Builder {
        self.env_only = true;
        self
    }

    /// Starts leanpoint with soft and hard RLIMIT_NOFILE set to `n`, so it
    /// lives its whole life, start-up raise included, under that limit.
    pub fn nofile(mut self, n: u64) -> Builder {
        self.nofile = Some(n);
        self
    }

    /// Starts leanpoint and waits for its listening line.
    pub fn spawn(self) -> Leanpoint {
        let dir = TempDir::new();
        let config = match (&self.upstreams_file, self.upstreams.is_empty()) {
            (Some(p), _) => Some(p.clone()),
            (None, false) => Some(dir.upstreams(&self.upstreams)),
            (None, true) => None,
        };
        let mut proc = Proc::spawn("leanpoint", self.command(config.as_deref()));
        let addr = wait_listening(&mut proc);
        Leanpoint {
            proc,
            addr,
            _dir: dir,
        }
    }

    fn command(&self, config: Option<&Path>) -> Command {
        let mut cmd = leanpoint_command();
        if self.env_only {
            cmd.env("LEANPOINT_BIND_ADDR", "127.0.0.1")
                .env("LEANPOINT_BIND_PORT", "0");
            if let Some(p) = config {
                cmd.env("LEANPOINT_UPSTREAMS_CONFIG", p);
            }
        } else {
            cmd.args(["--bind", "127.0.0.1", "--port", "0"]);
            if let Some(p) = config {
                cmd.arg("--upstreams-config").arg(p);
            }
        }
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

/// The address in a "leanpoint listening" line, text (`addr=IP:PORT`) or
/// JSON (`"fields":{"addr":...}`) format.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    if !line.contains("leanpoint listening") {
        return None;
    }
    if let Ok(v) = serde_json::from_str::<Value>(line) {
        return v["fields"]["addr"].as_str()?.parse().ok();
    }
    let at = line.find("addr=")? + "addr=".len();
    line[at..].split_whitespace().next()?.parse().ok()
}

fn wait_listening(proc: &mut Proc) -> SocketAddr {
    match proc.find_stderr(listening_addr, START_WITHIN) {
        Some(addr) => addr,
        None => panic!(
            "leanpoint did not report listening within {START_WITHIN:?} (exit {:?}); stderr:\n{}",
            proc.exited(),
            proc.stderr()
        ),
    }
}

/// A running leanpoint. Killed (and reaped) on drop; when the test is
/// panicking, its stderr is printed first.
pub struct Leanpoint {
    pub proc: Proc,
    pub addr: SocketAddr,
    _dir: TempDir,
}

impl Leanpoint {
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Everything leanpoint wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.proc.stderr()
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
                    .is_none_or(|t| t.local_port != self.port() || t.state == 0x0A)
            })
            .collect()
    }

    /// Some(status) once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.proc.exited()
    }

    /// GET `path` with extra headers, answered completely within `limit`.
    pub fn try_get_within(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        limit: Duration,
    ) -> Result<Resp, String> {
        request(self.addr, "GET", path, headers, b"", limit)
    }

    /// GET `path` with extra headers (new connection, 10 s deadline).
    pub fn try_get(&self, path: &str, headers: &[(&str, &str)]) -> Result<Resp, String> {
        self.try_get_within(path, headers, DEFAULT_LIMIT)
    }

    /// GET `path` answered within `limit`; panics with the log tail if not.
    pub fn get_within(&self, path: &str, limit: Duration) -> Resp {
        self.try_get_within(path, &[], limit).unwrap_or_else(|e| {
            panic!(
                "GET {path}: {e}\nleanpoint log tail:\n{}",
                self.proc.stderr_tail(20)
            )
        })
    }

    /// GET `path`; panics if no complete response arrives.
    pub fn get(&self, path: &str) -> Resp {
        self.get_within(path, DEFAULT_LIMIT)
    }

    /// GET `path` as JSON.
    pub fn json(&self, path: &str) -> Value {
        self.get(path).json()
    }

    /// GET /metrics as text.
    pub fn metrics(&self) -> String {
        self.metrics_within(DEFAULT_LIMIT)
    }

    /// GET /metrics as text, answered within `limit` with 200.
    pub fn metrics_within(&self, limit: Duration) -> String {
        let r = self.get_within("/metrics", limit);
        assert_eq!(r.status, 200, "/metrics: {}", r.text());
        r.text()
    }

    /// GET `path` as JSON, answered within `limit` with 200.
    pub fn json_ok(&self, path: &str, limit: Duration) -> Value {
        let r = self.get_within(path, limit);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r.json()
    }

    /// The `/api/upstreams` entry of upstream `name`.
    pub fn upstream(&self, name: &str) -> Value {
        find_upstream(&self.json("/api/upstreams"), name)
    }

    /// Waits until GET `path` answers with status `code`; returns that response.
    pub fn wait_code(&self, path: &str, code: u16, within: Duration) -> Resp {
        wait_until(within, &format!("GET {path} -> {code}"), || {
            let r = self.try_get(path, &[])?;
            if r.status == code {
                Ok(r)
            } else {
                Err(format!("HTTP {}: {}", r.status, r.text()))
            }
        })
    }

    /// Waits until `pred` holds for the JSON at `path`; returns that JSON.
    pub fn wait_json(
        &self,
        path: &str,
        what: &str,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        wait_until(within, what, || {
            let r = self.try_get(path, &[])?;
            let v: Value = serde_json::from_slice(&r.body)
                .map_err(|e| format!("HTTP {} not JSON: {e}: {}", r.status, r.text()))?;
            if pred(&v) {
                Ok(v)
            } else {
                Err(v.to_string())
            }
        })
    }

    /// Checks `holds` on every look until every upstream was polled `rounds`
    /// more times; returns the last /api/upstreams. Bounded (90 s) so a
    /// poller that stops fails the test instead of hanging it.
    pub fn hold_for_polls(&self, rounds: u64, mut holds: impl FnMut()) -> Value {
        let target = min_polls(&self.json("/api/upstreams")) + rounds;
        wait_until(
            Duration::from_secs(90),
            &format!("every upstream polled {rounds} more times"),
            || {
                holds();
                let all = self.json("/api/upstreams");
                match min_polls(&all) {
                    n if n >= target => Ok(all),
                    n => Err(format!("fewest polls {n}, want {target}")),
                }
            },
        )
    }

    /// Waits until `pred` holds for the `/api/upstreams` entry of `name`;
    /// returns that entry.
    pub fn wait_upstream(
        &self,
        name: &str,
        what: &str,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let all = self.wait_json("/api/upstreams", what, within, |a| {
            a["upstreams"]
                .as_array()
                .is_some_and(|us| us.iter().any(|u| u["name"] == name && pred(u)))
        });
        find_upstream(&all, name)
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

/// Runs `leanpoint args` (plus `--bind 127.0.0.1 --port 0`) until it exits;
/// panics if it is still running after `within`.
pub fn run_to_exit_env(args: &[&str], envs: &[(&str, &str)], within: Duration) -> Exit {
    let mut cmd = leanpoint_command();
    cmd.args(["--bind", "127.0.0.1", "--port", "0"])
        .args(args)
        .envs(envs.iter().copied());
    run_command_to_exit("leanpoint", cmd, within)
}

/// [`run_to_exit_env`] without extra environment.
pub fn run_to_exit(args: &[&str], within: Duration) -> Exit {
    run_to_exit_env(args, &[], within)
}

/// The fewest polls of any upstream in an /api/upstreams answer.
pub fn min_polls(upstreams: &Value) -> u64 {
    upstreams["upstreams"]
        .as_array()
        .and_then(|us| us.iter().filter_map(|u| u["polls"].as_u64()).min())
        .unwrap_or(0)
}
