//! `plantloop completions SHELL`: a completion script from the command tree (clap_complete).

use crate::EXIT_BAD_INPUT;
use crate::output::is_closed_pipe;
use clap::Args;
use clap_complete::Shell;
use std::io::Write;
use std::process::ExitCode;

#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_name = "SHELL")]
    shell: Shell,
}

pub fn main(args: CompletionsArgs) -> ExitCode {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut crate::command(), "plantloop", &mut script);
    let mut out = std::io::stdout().lock();
    match out.write_all(&script).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: stdout: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}
