//! The simulated lean devnet. (Being written.)

/// `leanpoint demo` arguments.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {}

/// `leanpoint sim` arguments.
#[derive(clap::Args, Debug)]
pub struct SimArgs {}

pub fn demo_main(_serve: &crate::config::ServeArgs, _args: DemoArgs) -> std::process::ExitCode {
    std::process::ExitCode::FAILURE
}

pub fn sim_main(_args: SimArgs) -> std::process::ExitCode {
    std::process::ExitCode::FAILURE
}
