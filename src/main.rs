//! The `leanpoint` binary: parse the command line, set up logging, run.

use std::process::ExitCode;

use leanpoint::config::{Cli, Command, Config};

fn main() -> ExitCode {
    let cli = match Cli::try_parse_with_sources(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match cli.command {
        None => serve(&cli.serve),
        Some(Command::Demo(args)) => leanpoint::sim::demo_main(&cli.serve, args),
        Some(Command::Sim(args)) => leanpoint::sim::sim_main(args),
        Some(Command::ConvertValidatorConfig(args)) => leanpoint::convert::main(args),
    }
}

fn serve(args: &leanpoint::config::ServeArgs) -> ExitCode {
    let config = match Config::load(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("leanpoint: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    leanpoint::logging::init(&config.log_level, config.log_format);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("leanpoint: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(leanpoint::serve_until_signal(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("leanpoint: {e:#}");
            ExitCode::FAILURE
        }
    }
}
