//! The command line: every clap struct of the `leanpoint` binary, and where
//! each value came from.
//!
//! - `serve`: the service's flags and `LEANPOINT_*` variables (the Zig
//!   leanpoint's names first) and their defaults;
//! - `devnet`: `leanpoint sim` and `leanpoint demo`;
//! - `convert`: `leanpoint convert-validator-config`;
//! - `sources`: default, environment or command line, per value.
//!
//! Only parsing lives here. `config` turns the service's values into a
//! checked `Config`; `commands` runs each subcommand.

use std::ffi::OsString;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

pub mod convert;
pub mod devnet;
pub mod serve;
pub mod sources;

pub use serve::{LogFormat, ServeArgs};
pub use sources::Sources;

/// Command line of the `leanpoint` binary. Without a subcommand it serves.
#[derive(Parser, Debug)]
#[command(
    name = "leanpoint",
    version,
    about = "Checkpoint-sync provider and Prometheus-native monitor for Lean Ethereum devnets",
    // A repeated flag takes its last value, as in the Zig leanpoint: wrapper
    // scripts append overrides to a base command line.
    args_override_self = true
)]
pub struct Cli {
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run leanpoint against an embedded simulated devnet (no external nodes needed).
    Demo(devnet::DemoArgs),
    /// Run only the simulated devnet (N simulated lean upstreams with fault injection).
    Sim(devnet::SimArgs),
    /// Turn lean-quickstart's validator-config.yaml into an upstreams.json (stdout or OUTPUT).
    ConvertValidatorConfig(convert::ConvertArgs),
}

impl Cli {
    /// Parses `argv` like `try_parse_from`, and also records where each
    /// value came from (see [`Sources`]). A leading `leanpoint` argument is
    /// the binary's own name given again (`docker run IMAGE leanpoint
    /// --upstreams-config ...`, the Zig image's usage, where the name is part
    /// of the command; also as `/usr/local/bin/leanpoint`): it is dropped.
    pub fn try_parse_with_sources<I, T>(argv: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let mut argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
        if argv.get(1).is_some_and(|a| {
            std::path::Path::new(a).file_name() == Some(std::ffi::OsStr::new("leanpoint"))
        }) {
            argv.remove(1);
        }
        let cmd = Cli::command();
        let matches = cmd.clone().try_get_matches_from(argv)?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        cli.serve.sources = Sources::from_matches(&cmd, &matches);
        Ok(cli)
    }
}
