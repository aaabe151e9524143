//! Where each service flag's value came from: built-in default, a
//! `LEANPOINT_*` environment variable, or the command line.
//!
//! Two things need it. Defaults the user did not set follow the values they
//! did set (a connect timeout never above `--timeout-ms`), so a Zig
//! leanpoint command line that sets one timing alone still starts. And a
//! value that cannot work is refused in the words the user used: the flag
//! when they typed a flag, the variable when they exported one.

use std::collections::HashMap;

use clap::parser::ValueSource;
use clap::ArgMatches;

/// Origin shown for a value given as a flag.
pub const COMMAND_LINE: &str = "command line";
/// Origin shown for a value given as a `LEANPOINT_*` variable.
pub const ENVIRONMENT: &str = "environment";

#[derive(Clone, Debug)]
struct Given {
    /// None: not given and no default.
    source: Option<ValueSource>,
    long: Option<String>,
    env: Option<String>,
}

/// The source of every argument of one parse. Empty when the arguments were
/// parsed without it (`Cli::try_parse_from`): then every value counts as
/// set by the user, which refuses rather than adjusts.
#[derive(Clone, Debug, Default)]
pub struct Sources(HashMap<String, Given>);

impl Sources {
    pub(super) fn from_matches(cmd: &clap::Command, matches: &ArgMatches) -> Sources {
        let map = cmd
            .get_arguments()
            .map(|a| {
                let id = a.get_id().as_str().to_string();
                let given = Given {
                    source: matches.value_source(&id),
                    long: a.get_long().map(str::to_string),
                    env: a.get_env().map(|e| e.to_string_lossy().into_owned()),
                };
                (id, given)
            })
            .collect();
        Sources(map)
    }

    /// True unless the value of argument `id` is clap's default.
    pub fn explicit(&self, id: &str) -> bool {
        match self.0.get(id) {
            Some(g) => g.source.is_some_and(|s| s != ValueSource::DefaultValue),
            None => true,
        }
    }

    /// `(origin, field)` for a message about argument `id`: the variable's
    /// name when it came from the environment, else the flag.
    pub fn name(&self, id: &str) -> (&'static str, String) {
        let flag = |g: Option<&Given>| match g.and_then(|g| g.long.clone()) {
            Some(long) => format!("--{long}"),
            None => format!("--{}", id.replace('_', "-")),
        };
        match self.0.get(id) {
            Some(g) if g.source == Some(ValueSource::EnvVariable) => match &g.env {
                Some(env) => (ENVIRONMENT, env.clone()),
                None => (ENVIRONMENT, flag(Some(g))),
            },
            g => (COMMAND_LINE, flag(g)),
        }
    }

    /// The field alone, as [`Sources::name`] gives it.
    pub fn field(&self, id: &str) -> String {
        self.name(id).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;

    fn sources(argv: &[&str]) -> Sources {
        let mut full = vec!["leanpoint"];
        full.extend_from_slice(argv);
        Cli::try_parse_with_sources(full)
            .expect("parse")
            .serve
            .sources
    }

    #[test]
    fn default_flag_and_unknown() {
        let s = sources(&["--timeout-ms", "200"]);
        assert!(s.explicit("timeout_ms"));
        assert!(!s.explicit("connect_timeout_ms"));
        assert!(!s.explicit("upstreams_config"));
        assert_eq!(
            s.name("timeout_ms"),
            (COMMAND_LINE, "--timeout-ms".to_string())
        );
        assert!(Sources::default().explicit("timeout_ms"));
    }

    #[test]
    fn a_repeated_flag_takes_the_last_value() {
        let cli =
            Cli::try_parse_with_sources(["leanpoint", "--poll-ms", "100", "--poll-ms", "200"])
                .expect("repeats parse");
        assert_eq!(cli.serve.poll_ms, 200);
    }

    #[test]
    fn a_leading_binary_name_is_dropped() {
        let cli =
            Cli::try_parse_with_sources(["leanpoint", "leanpoint", "--port", "7"]).expect("parse");
        assert_eq!(cli.serve.port, 7);
        assert!(cli.command.is_none());
    }
}
