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

/// A poll timing preset: leanpoint's four timing flags, in milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub poll_ms: u64,
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub stale_ms: u64,
}

const fn timing(poll_ms: u64, timeout_ms: u64, connect_timeout_ms: u64, stale_ms: u64) -> Timing {
    Timing {
        poll_ms,
        timeout_ms,
        connect_timeout_ms,
        stale_ms,
    }
}

impl Timing {
    /// Quick polls against well-behaved upstreams.
    pub const FAST: Timing = timing(100, 1000, 500, 5000);
    /// Short deadlines, so hung and dripping upstreams cost little time.
    pub const FAULTS: Timing = timing(200, 500, 250, 5000);
    /// Quick polls with a stale window far longer than any test, so an
    /// agreement once reached stays fresh throughout.
    pub const STEADY: Timing = timing(100, 1000, 500, 60_000);
    /// Quick polls, deadlines short enough that a dripping or hung request
    /// ends well inside a test.
    pub const SHORT_DEADLINES: Timing = timing(100, 500, 200, 10_000);
    /// [`Timing::SHORT_DEADLINES`] polled once a second: every timed-out
    /// request is followed by an idle gap.
    pub const IDLE_GAPS: Timing = timing(1000, 500, 200, 10_000);
    /// Polls that fail fast against refused upstreams, and a stale window
    /// that ages out quickly.
    pub const REFUSED: Timing = timing(200, 150, 100, 1000);
    /// What a real Prometheus scrapes: a hung upstream times out inside one
    /// scrape interval.
    pub const SCRAPED: Timing = timing(250, 200, 100, 2000);

    /// `--poll-ms ... --stale-ms ...`.
    pub fn args(self) -> Vec<String> {
        [
            ("--poll-ms", self.poll_ms),
            ("--timeout-ms", self.timeout_ms),
            ("--connect-timeout-ms", self.connect_timeout_ms),
            ("--stale-ms", self.stale_ms),
        ]
        .into_iter()
        .flat_map(|(flag, ms)| [flag.to_string(), ms.to_string()])
        .collect()
    }

    /// [`Timing::args`] followed by `extra`.
    pub fn with(self, extra: &[&str]) -> Vec<String> {
        let mut args = self.args();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
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
