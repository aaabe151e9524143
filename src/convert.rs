//! lean-quickstart validator-config.yaml to upstreams.json. (Being written.)

/// `leanpoint convert-validator-config` arguments.
#[derive(clap::Args, Debug)]
pub struct ConvertArgs {}

pub fn main(_args: ConvertArgs) -> std::process::ExitCode {
    std::process::ExitCode::FAILURE
}
