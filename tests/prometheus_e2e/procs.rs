//! Child processes of the end-to-end test, each killed and reaped when its
//! guard drops (also on panic), and a scratch directory removed the same way.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// A running child with its output collected line by line.
pub struct Proc {
    name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pump(r: impl Read + Send + 'static, tx: mpsc::Sender<String>, log: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            log.lock().expect("log lock").push(line.clone());
            let _ = tx.send(line);
        }
    });
}

/// Starts `program args`, stdout and stderr both read (so neither pipe can
/// fill up and block the child).
pub fn spawn(name: &str, program: &str, args: &[String]) -> Proc {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs in the forked child before exec and only makes
    // one async-signal-safe syscall (prctl). It makes the kernel kill the
    // child if this test process dies without running the guards' Drop
    // (SIGKILL, abort), so no Prometheus or sim outlives the test.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name} ({program}): {e}"));
    let (tx, lines) = mpsc::channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    pump(
        child.stdout.take().expect("stdout piped"),
        tx.clone(),
        log.clone(),
    );
    pump(child.stderr.take().expect("stderr piped"), tx, log.clone());
    Proc {
        name: name.to_string(),
        child,
        lines,
        log,
    }
}

impl Proc {
    /// The first output line for which `pick` returns something, within `within`.
    pub fn wait_line<T>(&self, within: Duration, pick: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(v) = pick(&line) {
                        return v;
                    }
                }
                Err(_) => panic!(
                    "{}: expected line not seen within {within:?}; output:\n{}",
                    self.name,
                    self.log_tail()
                ),
            }
        }
    }

    /// The last lines of output, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log.lock().expect("log lock");
        let from = log.len().saturating_sub(40);
        log[from..].join("\n")
    }
}

/// A scratch directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `check` every 100 ms until it returns Ok, or fails with its last
/// error after `within`.
pub fn wait_for<T>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match check() {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => panic!("{what}: not within {within:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// `name` on PATH, or a panic that says how to get it.
pub fn which(name: &str) -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| {
            panic!(
                "{name} not found on PATH: run scripts/install-deps.sh (Debian package prometheus)"
            )
        })
}
