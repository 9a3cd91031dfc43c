//! `plantloop run`.

use crate::{EXIT_BAD_INPUT, EXIT_FELL_SHORT};
use clap::Args;
use plantloop_sim::report::Report;
use plantloop_sim::runner::{self, RunOptions};
use plantloop_sim::scenario::Scenario;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args)]
pub struct RunArgs {
    /// Scenario files or folders (a folder runs every *.toml in it, sorted).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Seed for every scenario, instead of each file's own.
    #[arg(long)]
    seed: Option<u64>,
    /// Write the report as JSON (one object, or an array when several scenarios run).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write JUnit XML: one testcase per scenario × invariant.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write every event that crosses the core as CloudEvents JSON Lines.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Print only failures and the final line.
    #[arg(long)]
    quiet: bool,
}

/// Expands folders into their `*.toml` files, sorted.
pub fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: cannot read folder: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(format!(
                    "{}: no *.toml scenario files in this folder",
                    p.display()
                ));
            }
            out.extend(files);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            return Err(format!("{}: no such file or folder", p.display()));
        }
    }
    Ok(out)
}

/// Loads every file; the first error is input that cannot be used.
pub fn load_all(files: &[PathBuf]) -> Result<Vec<(PathBuf, Scenario)>, String> {
    let mut out: Vec<(PathBuf, Scenario)> = Vec::new();
    for f in files {
        let s = Scenario::load(f).map_err(|e| e.to_string())?;
        if let Some((other, _)) = out.iter().find(|(_, o)| o.name == s.name) {
            return Err(format!(
                "{}:1: scenario.name: {:?} is already the name of {}; names are unique within a suite",
                f.display(),
                s.name,
                other.display()
            ));
        }
        out.push((f.clone(), s));
    }
    Ok(out)
}

fn create(path: &Path, flag: &str) -> Result<std::fs::File, String> {
    std::fs::File::create(path).map_err(|e| format!("--{flag} {}: {e}", path.display()))
}

pub fn main(args: RunArgs) -> ExitCode {
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_FELL_SHORT),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn run(args: RunArgs) -> Result<bool, String> {
    let files = scenario_files(&args.paths)?;
    let scenarios = load_all(&files)?;
    // Open outputs before running, so a bad path fails fast.
    let mut json = args
        .json
        .as_deref()
        .map(|p| create(p, "json"))
        .transpose()?;
    let mut junit = args
        .junit
        .as_deref()
        .map(|p| create(p, "junit"))
        .transpose()?;
    let trace = args
        .trace
        .as_deref()
        .map(|p| create(p, "trace"))
        .transpose()?;
    let interactive = std::io::stderr().is_terminal() && !args.quiet;
    let mut reports = Vec::new();
    let mut out = std::io::stdout().lock();
    for (path, scenario) in scenarios {
        let trace_writer: Option<Box<dyn Write + Send>> = match &trace {
            Some(f) => Some(Box::new(std::io::BufWriter::new(
                f.try_clone().map_err(|e| format!("--trace: {e}"))?,
            ))),
            None => None,
        };
        let progress: Option<Box<dyn FnMut(f64)>> = if interactive {
            let bar = indicatif::ProgressBar::new(1000).with_style(
                indicatif::ProgressStyle::with_template(
                    "{msg:32} [{bar:40}] {percent:>3}% {elapsed}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_message(scenario.name.clone());
            Some(Box::new(move |f: f64| {
                bar.set_position((f * 1000.0) as u64);
                if f >= 1.0 {
                    bar.finish_and_clear();
                }
            }))
        } else {
            None
        };
        // `RunOptions` gains a field when sim's `sabotage` feature is on (a workspace build with
        // sim's tests unifies it in), so the update is needed in one build and not in the other.
        #[allow(clippy::needless_update)]
        let options = RunOptions {
            seed: args.seed,
            trace: trace_writer,
            progress,
            ..RunOptions::default()
        };
        let report = runner::run(scenario, options);
        print_summary(&mut out, &path, &report, args.quiet).map_err(|e| format!("stdout: {e}"))?;
        reports.push(report);
    }
    let failed = reports.iter().filter(|r| !r.passed).count();
    let _ = writeln!(
        out,
        "{} scenario(s): {} passed, {} failed",
        reports.len(),
        reports.len() - failed,
        failed
    );
    if let Some(f) = &mut json {
        let v = if reports.len() == 1 {
            serde_json::to_value(&reports[0])
        } else {
            serde_json::to_value(&reports)
        }
        .expect("reports serialize");
        serde_json::to_writer_pretty(&mut *f, &v).map_err(|e| format!("--json: {e}"))?;
        f.write_all(b"\n").map_err(|e| format!("--json: {e}"))?;
    }
    if let Some(f) = &mut junit {
        write_junit(f, &reports).map_err(|e| format!("--junit: {e}"))?;
    }
    Ok(failed == 0)
}

fn ms(v: u64) -> String {
    if v >= 120_000 {
        format!("{:.1}m", v as f64 / 60_000.0)
    } else if v >= 1_000 {
        format!("{:.2}s", v as f64 / 1000.0)
    } else {
        format!("{v}ms")
    }
}

/// The readable summary of one run.
pub fn print_summary(
    out: &mut impl Write,
    path: &Path,
    r: &Report,
    quiet: bool,
) -> std::io::Result<()> {
    let verdict = if r.passed { "PASS" } else { "FAIL" };
    if quiet && r.passed {
        return Ok(());
    }
    writeln!(
        out,
        "{verdict} {}  seed={}  {}d{}h simulated, {} events, {:.2}s",
        r.scenario,
        r.seed,
        r.sim.duration_s / 86_400,
        r.sim.duration_s % 86_400 / 3_600,
        r.sim.events,
        r.sim.wall_s
    )?;
    let c = &r.counts;
    writeln!(
        out,
        "  units {} · inspections {} · NCs {} · holds {} · releases {} · work orders {} · line stops {} · cost postings {} · master data {}",
        c.units,
        c.inspections,
        c.nonconformances,
        c.holds,
        c.releases,
        c.work_orders,
        c.line_stops,
        c.cost_postings,
        c.master_data_records
    )?;
    writeln!(
        out,
        "  dead letters {} · retries {} · duplicates absorbed {} · core crashes {}",
        c.dead_letters, c.retries, c.duplicates_absorbed, c.core_crashes
    )?;
    writeln!(
        out,
        "  {:<14}{:>8}{:>9}{:>9}{:>9}",
        "latency", "count", "p50", "p99", "max"
    )?;
    for (name, l) in [
        ("critical", &r.latency.critical),
        ("transactional", &r.latency.transactional),
        ("bulk", &r.latency.bulk),
    ] {
        writeln!(
            out,
            "  {:<14}{:>8}{:>9}{:>9}{:>9}",
            name,
            l.count,
            ms(l.p50_ms),
            ms(l.p99_ms),
            ms(l.max_ms)
        )?;
    }
    for i in &r.invariants {
        if i.passed {
            writeln!(out, "  ok   {} ({} checked)", i.id, i.checked)?;
        } else {
            writeln!(
                out,
                "  FAIL {} ({} of {} checked)",
                i.id, i.violations_total, i.checked
            )?;
            for v in i.violations.iter().take(3) {
                writeln!(out, "       {v}")?;
            }
        }
    }
    for s in &r.shortfalls {
        writeln!(out, "  FAIL expect.min {s}")?;
    }
    if !r.passed {
        writeln!(
            out,
            "  reproduce: plantloop run {} --seed {}",
            path.display(),
            r.seed
        )?;
    }
    writeln!(out, "  trace_hash {}", r.trace_hash)?;
    Ok(())
}

fn write_junit(f: &mut std::fs::File, reports: &[Report]) -> Result<(), String> {
    use quick_junit::{NonSuccessKind, Report as JReport, TestCase, TestCaseStatus, TestSuite};
    let mut j = JReport::new("plantloop");
    for r in reports {
        let mut suite = TestSuite::new(r.scenario.clone());
        for i in &r.invariants {
            let status = if i.passed {
                TestCaseStatus::success()
            } else {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(format!(
                    "{} violation(s); reproduce with --seed {}",
                    i.violations_total, r.seed
                ));
                s.set_description(
                    i.violations
                        .iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join("\n"),
                );
                s
            };
            let mut tc = TestCase::new(i.id.clone(), status);
            tc.set_classname(r.scenario.clone());
            suite.add_test_case(tc);
        }
        if !r.shortfalls.is_empty() {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(r.shortfalls.join("; "));
            let mut tc = TestCase::new("expect.min", s);
            tc.set_classname(r.scenario.clone());
            suite.add_test_case(tc);
        }
        j.add_test_suite(suite);
    }
    let xml = j.to_string().map_err(|e| e.to_string())?;
    f.write_all(xml.as_bytes()).map_err(|e| e.to_string())
}
