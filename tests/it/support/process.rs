//! The one process guard: a child in its own process group, its stdout and
//! stderr read line by line (so no pipe fills up and blocks it), the whole
//! group killed and the child reaped on drop, its output shown when the
//! test is panicking.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The leanpoint binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_leanpoint");

/// `leanpoint` with no `LEANPOINT_*` or `RUST_LOG` inherited from the test's
/// environment (they would change the defaults under test).
pub fn leanpoint_command() -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("LEANPOINT_") {
            cmd.env_remove(k);
        }
    }
    cmd.env_remove("RUST_LOG");
    cmd
}

/// Output lines of one stream: all of them so far, and the ones not taken yet.
struct Stream {
    lines: Mutex<mpsc::Receiver<String>>,
    log: Arc<Mutex<Vec<String>>>,
    pump: Option<JoinHandle<()>>,
}

impl Stream {
    fn pump(r: impl Read + Send + 'static) -> Stream {
        let (tx, lines) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let pump = std::thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                sink.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(line.clone());
                let _ = tx.send(line);
            }
        });
        Stream {
            lines: Mutex::new(lines),
            log,
            pump: Some(pump),
        }
    }

    fn rx(&self) -> std::sync::MutexGuard<'_, mpsc::Receiver<String>> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn text(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }

    /// Lines up to and including the first one `stop` accepts.
    fn until(
        &self,
        stop: impl Fn(&str) -> bool,
        within: Duration,
    ) -> Result<Vec<String>, Vec<String>> {
        let deadline = Instant::now() + within;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx().recv_timeout(left) {
                Ok(line) => {
                    let done = stop(&line);
                    lines.push(line);
                    if done {
                        return Ok(lines);
                    }
                }
                Err(_) => return Err(lines),
            }
        }
    }
}

/// A running child process, killed with its process group on drop.
pub struct Proc {
    name: String,
    child: Child,
    stdout: Stream,
    stderr: Stream,
}

impl Proc {
    /// Starts `cmd` (named `name` in messages) with piped output, in a
    /// process group of its own, killed if the spawning thread dies first.
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        Proc::spawn_with_stdio(name, cmd)
    }

    /// [`Proc::spawn`] with stdin and stdout as the caller set them (a
    /// socket, say); only stderr is piped and read.
    pub fn spawn_with_stdio(name: &str, mut cmd: Command) -> Proc {
        cmd.stderr(Stdio::piped()).process_group(0);
        // SAFETY: runs in the forked child before exec, where only
        // async-signal-safe work is allowed: one raw prctl system call
        // (rustix neither allocates nor takes locks), an error conversion
        // that allocates nothing. SIGKILL when the spawning thread dies, so
        // a child never outlives a test process killed before its guards
        // drop (SIGPIPE from `cargo test | head`, a timeout).
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))
                .map_err(std::io::Error::from)
            });
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = match child.stdout.take() {
            Some(out) => Stream::pump(out),
            None => Stream::pump(std::io::empty()),
        };
        let stderr = Stream::pump(child.stderr.take().expect("stderr piped"));
        Proc {
            name: name.to_string(),
            child,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the child wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Everything the child wrote to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    /// The last `n` stderr lines, for failure messages.
    pub fn stderr_tail(&self, n: usize) -> String {
        let log = self.stderr.log.lock().unwrap_or_else(|p| p.into_inner());
        log[log.len().saturating_sub(n)..].join("\n")
    }

    /// Stdout lines up to and including the first one `stop` accepts;
    /// panics with both streams after `within`.
    pub fn stdout_until(&self, stop: impl Fn(&str) -> bool, within: Duration) -> Vec<String> {
        self.stdout.until(stop, within).unwrap_or_else(|seen| {
            panic!(
                "{}: no expected stdout line within {within:?}; stdout so far: {seen:#?}; stderr:\n{}",
                self.name,
                self.stderr()
            )
        })
    }

    /// The first stderr line (not taken yet) that `pred` accepts.
    pub fn stderr_line(&self, pred: impl Fn(&str) -> bool, within: Duration) -> String {
        match self.stderr.until(pred, within) {
            Ok(mut lines) => lines.pop().unwrap_or_default(),
            Err(seen) => panic!(
                "{}: no expected stderr line within {within:?}: {seen:#?}",
                self.name
            ),
        }
    }

    /// The first stderr line (not taken yet) `pick` finds something in;
    /// None after `within` or once the process exited without one.
    pub fn find_stderr<T>(
        &mut self,
        pick: impl Fn(&str) -> Option<T>,
        within: Duration,
    ) -> Option<T> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let next = self.stderr.rx().recv_timeout(Duration::from_millis(100));
            match next {
                Ok(line) => {
                    if let Some(v) = pick(&line) {
                        return Some(v);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                Err(mpsc::RecvTimeoutError::Timeout) if self.exited().is_some() => {
                    // Lines written just before the exit may still be in the pipe.
                    if let Some(p) = self.stderr.pump.take() {
                        let _ = p.join();
                    }
                    let rest: Vec<String> = self.stderr.rx().try_iter().collect();
                    return rest.iter().find_map(|l| pick(l));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
        None
    }

    /// Some(status) once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for the process to exit by itself; Err(self) after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.exited() {
                // The output is complete once the pumps saw EOF.
                for s in [&mut self.stdout, &mut self.stderr] {
                    if let Some(p) = s.pump.take() {
                        let _ = p.join();
                    }
                }
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` to the child alone.
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid() as i32).expect("child pid");
        let _ = rustix::process::kill_process(pid, signal);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- {} (pid {}) stderr, last 200 lines ---\n{}",
                self.name,
                self.child.id(),
                self.stderr_tail(200)
            );
        }
    }
}

/// How a run that should end by itself ended.
#[derive(Debug)]
pub struct Exit {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` until it exits; kills it and panics if it is still running
/// after `within`.
pub fn run_command_to_exit(name: &str, cmd: Command, within: Duration) -> Exit {
    let mut proc = Proc::spawn(name, cmd);
    match proc.wait_exit(within) {
        Some(status) => Exit {
            status,
            stdout: proc.stdout(),
            stderr: proc.stderr(),
        },
        None => panic!(
            "{name} still running after {within:?}; stderr:\n{}",
            proc.stderr()
        ),
    }
}
