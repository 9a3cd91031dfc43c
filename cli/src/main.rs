//! `plantloop`: the command line (spec/cli.md). Thin glue over the crates: it parses flags, loads
//! files, runs, prints and maps results to exit codes (0 held, 1 fell short, 2 unusable input).

mod completions;
mod explore;
mod init;
mod mocks;
mod output;
mod run;
mod serve;
mod tui;

use clap::{CommandFactory, Parser, Subcommand};

/// The simulator and the mock servers allocate many small strings (ids, keys, ledger entries);
/// mimalloc does that markedly cheaper than the system allocator (ARCHITECTURE.md § Dependencies).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

/// `--version`: the package version and the git commit it was built from (build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("PLANTLOOP_GIT_COMMIT"),
    ")"
);

/// Simulation and conformance testbed for manufacturing workflow integration.
#[derive(Parser)]
#[command(name = "plantloop", version = VERSION, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenario files (a folder runs every *.toml in it, sorted) and judge every invariant.
    Run(run::RunArgs),
    /// Explore random variations of a base scenario over a range of seeds; shrink failures.
    Explore(explore::ExploreArgs),
    /// Watch one scenario run live in the terminal; pause, change speed and inject faults.
    Tui(tui::TuiArgs),
    /// Serve the mock ERP, QMS, CMMS and MES over HTTP on 127.0.0.1 ports P..P+3 until interrupted.
    Mocks(mocks::MocksArgs),
    /// Run the integration core as a service over HTTP: CloudEvents in, calls out to the targets.
    Serve(serve::ServeArgs),
    /// Write a commented starter scenario and CI snippets (GitHub Actions, GitLab CI) into DIR.
    Init(init::InitArgs),
    /// Print a shell completion script for SHELL to stdout.
    Completions(completions::CompletionsArgs),
}

/// The whole command tree, for completions and the docs' tests.
pub fn command() -> clap::Command {
    Cli::command()
}

/// Exit code for input that could not be used (spec/cli.md).
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code for a run that finished and fell short.
pub const EXIT_FELL_SHORT: u8 = 1;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_BAD_INPUT } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Run(args) => run::main(args),
        Command::Explore(args) => explore::main(args),
        Command::Tui(args) => tui::main(args),
        Command::Mocks(args) => mocks::main(args),
        Command::Serve(args) => serve::main(args),
        Command::Init(args) => init::main(args),
        Command::Completions(args) => completions::main(args),
    }
}
