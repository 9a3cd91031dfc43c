//! `plantloop tui`: glue between the flags and [`plantloop_tui::run`].

use crate::{EXIT_BAD_INPUT, EXIT_FELL_SHORT};
use clap::Args;
use plantloop_sim::live::describe;
use plantloop_sim::scenario::Scenario;
use plantloop_tui::app::Speed;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct TuiArgs {
    /// The scenario file to watch.
    #[arg(value_name = "PATH")]
    path: PathBuf,
    /// Seed instead of the file's own.
    #[arg(long)]
    seed: Option<u64>,
    /// Simulated seconds per wall second (1 is real time), or `max` for as fast as the simulator
    /// goes; + and − change it while the view runs.
    #[arg(long, value_name = "X", default_value = "3600", value_parser = Speed::parse)]
    speed: Speed,
    /// Start paused (space starts the simulation).
    #[arg(long)]
    paused: bool,
    /// Write the run's trace as CloudEvents JSON Lines, faults injected from the view included
    /// (with the simulated time and event count at which each took effect, so the run can be
    /// replayed).
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
}

pub fn main(args: TuiArgs) -> ExitCode {
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn run(args: TuiArgs) -> Result<ExitCode, String> {
    if args.path.is_dir() {
        return Err(format!(
            "{}: is a folder; the live view runs one scenario file",
            args.path.display()
        ));
    }
    let scenario = Scenario::load(&args.path).map_err(|e| e.to_string())?;
    if !std::io::stdout().is_terminal() {
        return Err(
            "the live view needs a terminal, and stdout is not one (for a headless run use `plantloop run`)"
                .into(),
        );
    }
    let trace: Option<Box<dyn Write + Send>> = match &args.trace {
        Some(p) => Some(Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| format!("--trace {}: {e}", p.display()))?,
        ))),
        None => None,
    };
    let seed = args.seed.unwrap_or(scenario.seed);
    let summary = plantloop_tui::run(plantloop_tui::Options {
        scenario: scenario.clone(),
        seed,
        speed: args.speed,
        paused: args.paused,
        trace,
    })
    .map_err(|e| format!("live view: {e}"))?;

    let mut out = std::io::stdout().lock();
    let write = |out: &mut std::io::StdoutLock, s: String| {
        let _ = writeln!(out, "{s}");
    };
    for i in &summary.injections {
        write(
            &mut out,
            format!(
                "injected {} at {} (after event {})",
                describe(&i.fault, Some(&scenario)),
                i.at,
                i.after_events
            ),
        );
    }
    if let Some(e) = &summary.trace_error {
        eprintln!("warning: --trace: {e}");
    }
    if let Some(p) = &args.trace
        && !summary.injections.is_empty()
    {
        write(
            &mut out,
            format!(
                "the trace {} records the injected faults: `plantloop run {} --seed {seed} --replay {}` reproduces the run",
                p.display(),
                args.path.display(),
                p.display()
            ),
        );
    }
    match &summary.report {
        Some(report) => {
            let mut reproduce = format!(
                "plantloop run {} --seed {}",
                args.path.display(),
                report.seed
            );
            if let Some(p) = &args.trace
                && !summary.injections.is_empty()
            {
                reproduce.push_str(&format!(" --replay {}", p.display()));
            }
            crate::run::print_summary(&mut out, report, false, &reproduce)
                .map_err(|e| format!("stdout: {e}"))?;
            Ok(if report.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FELL_SHORT)
            })
        }
        None => {
            write(
                &mut out,
                format!(
                    "{} seed={}: left at {} of {} (the run did not reach its end; not judged)",
                    summary.scenario, summary.seed, summary.now, summary.end
                ),
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
