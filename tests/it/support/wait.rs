//! Waiting on conditions with deadlines (never bare sleeps), and the named
//! timing presets every suite uses instead of numbers of its own.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// How long a condition a test waits for may take on two busy cores.
pub const WAIT: Duration = Duration::from_secs(30);
/// How long a run that must end by itself (bad configuration) may take.
pub const EXIT_WITHIN: Duration = Duration::from_secs(20);
/// How long leanpoint or the sim may take to start on a busy machine.
pub const START_WITHIN: Duration = Duration::from_secs(30);
/// The public listener must answer a new connection within this, whatever
/// the upstreams do.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(1);

/// A poll timing preset: leanpoint's four timing flags.
#[derive(Clone, Copy, Debug)]
pub struct Timing(&'static [&'static str]);

impl Timing {
    /// Quick polls against well-behaved upstreams.
    pub const FAST: Timing = Timing(&[
        "--poll-ms",
        "100",
        "--timeout-ms",
        "1000",
        "--connect-timeout-ms",
        "500",
        "--stale-ms",
        "5000",
    ]);
    /// Short deadlines, so hung and dripping upstreams cost little time.
    pub const FAULTS: Timing = Timing(&[
        "--poll-ms",
        "200",
        "--timeout-ms",
        "500",
        "--connect-timeout-ms",
        "250",
        "--stale-ms",
        "5000",
    ]);

    /// `--poll-ms ... --stale-ms ...`.
    pub fn args(self) -> &'static [&'static str] {
        self.0
    }
}

/// What a check returns: done (with a value) or not yet (with a reason).
pub trait Outcome<T> {
    fn outcome(self) -> Result<T, String>;
}

impl<T> Outcome<T> for Option<T> {
    fn outcome(self) -> Result<T, String> {
        self.ok_or_else(|| "not yet".to_string())
    }
}

impl<T, E: Display> Outcome<T> for Result<T, E> {
    fn outcome(self) -> Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

impl Outcome<()> for bool {
    fn outcome(self) -> Result<(), String> {
        if self {
            Ok(())
        } else {
            Err("false".to_string())
        }
    }
}

/// Calls `check` every 25 ms until it is done, or panics after `within`
/// with `what` and the last reason `check` gave.
pub fn wait_until<T, O: Outcome<T>>(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> O,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        let reason = match check().outcome() {
            Ok(v) => return v,
            Err(reason) => reason,
        };
        if Instant::now() >= deadline {
            panic!("timed out after {within:?} waiting for {what}; last: {reason}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
