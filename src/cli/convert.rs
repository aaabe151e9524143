//! Flags of `leanpoint convert-validator-config`.

use std::path::PathBuf;

/// `leanpoint convert-validator-config` arguments.
#[derive(clap::Args, Debug)]
pub struct ConvertArgs {
    /// lean-quickstart's validator-config.yaml.
    pub file: PathBuf,
    /// Write the upstreams.json here instead of stdout (replaced whole, only when the conversion succeeds).
    pub output: Option<PathBuf>,
    /// Address every node as host.docker.internal (leanpoint in Docker, nodes on the host).
    #[arg(long)]
    pub docker: bool,
}
