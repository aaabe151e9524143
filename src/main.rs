//! The `leanpoint` binary: parse the command line, run the subcommand.

use std::process::ExitCode;

use leanpoint::cli::{Cli, Command};
use leanpoint::commands;

fn main() -> ExitCode {
    let cli = match Cli::try_parse_with_sources(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match cli.command {
        None => commands::serve::main(&cli.serve),
        Some(Command::Demo(args)) => commands::demo::main(&cli.serve, args),
        Some(Command::Sim(args)) => commands::sim::main(args),
        Some(Command::ConvertValidatorConfig(args)) => commands::convert::main(args),
    }
}
