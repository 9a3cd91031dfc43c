//! `plantloop`: the command line (spec/cli.md). Thin glue over the crates: it parses flags, loads
//! files, runs, prints and maps results to exit codes (0 held, 1 fell short, 2 unusable input).

mod explore;
mod mocks;
mod output;
mod run;
mod tui;

use clap::{Parser, Subcommand};

/// The simulator and the mock servers allocate many small strings (ids, keys, ledger entries);
/// mimalloc does that markedly cheaper than the system allocator (ARCHITECTURE.md § Dependencies).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

/// Simulation and conformance testbed for manufacturing workflow integration.
#[derive(Parser)]
#[command(name = "plantloop", version, about, long_about = None)]
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
    }
}
