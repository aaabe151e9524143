//! `leanpoint convert-validator-config FILE [OUTPUT] [--docker]`:
//! lean-quickstart's validator-config.yaml to an upstreams.json.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::convert::ConvertArgs;
use crate::config::convert::{convert, upstreams_json};

fn run(path: &Path, docker: bool) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).context("cannot read")?;
    convert(&text, docker).map(|entries| upstreams_json(&entries))
}

/// Exit 2 when the file cannot be read or converted, 1 when the output
/// cannot be written.
pub fn main(args: ConvertArgs) -> ExitCode {
    let json = match run(&args.file, args.docker) {
        Ok(json) => json,
        Err(e) => {
            eprintln!(
                "leanpoint convert-validator-config: {}: {e:#}",
                args.file.display()
            );
            return ExitCode::from(2);
        }
    };
    let Some(out) = &args.output else {
        print!("{json}");
        return ExitCode::SUCCESS;
    };
    match write_whole(out, &json) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "leanpoint convert-validator-config: {}: cannot write: {e}",
                out.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// Writes `text` to `path` through a temporary file beside it and a rename,
/// so a failed write never leaves a half upstreams.json where a whole one was.
fn write_whole(path: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let result = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
