//! The `leanpoint` binary: parse the command line, set up logging, run.

use std::process::ExitCode;

use clap::Parser;
use leanpoint::config::{Cli, Command, Config, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => serve(&cli.serve),
        Some(Command::Demo(args)) => leanpoint::sim::demo_main(&cli.serve, args),
        Some(Command::Sim(args)) => leanpoint::sim::sim_main(args),
        Some(Command::ConvertValidatorConfig(args)) => leanpoint::convert::main(args),
    }
}

/// Installs the tracing subscriber. Upstream URLs never reach a log line
/// (events carry upstream names), so the format needs no redaction.
pub fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
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
    init_logging(&config.log_level, config.log_format);
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
