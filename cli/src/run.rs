//! `plantloop run`.

use crate::output::{Human, Sink, check_one_stdout, is_closed_pipe};
use crate::{EXIT_BAD_INPUT, EXIT_FELL_SHORT};
use clap::Args;
use plantloop_sim::live::{Injection, LiveRun};
use plantloop_sim::report::Report;
use plantloop_sim::runner::{self, RunOptions};
use plantloop_sim::scenario::{self, Scenario};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args)]
pub struct RunArgs {
    /// Scenario files or folders (a folder runs every *.toml in it and in its subfolders, sorted
    /// by path).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Seed for every scenario, instead of each file's own.
    #[arg(long)]
    seed: Option<u64>,
    /// Write the report as JSON (one object, or an array when several scenarios run); `-` is
    /// stdout, and the summary then goes to stderr.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write JUnit XML, one testcase per scenario × invariant; `-` is stdout, and the summary
    /// then goes to stderr.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write every event that crosses the core as CloudEvents JSON Lines; `-` is stdout, and the
    /// summary then goes to stderr.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Re-run one scenario with the faults injected from the live view that TRACE records (a
    /// `plantloop tui --trace` file); give the live run's --seed if it had one.
    #[arg(long, value_name = "TRACE")]
    replay: Option<PathBuf>,
    /// Print only failing scenarios, and of those only the failing invariants.
    #[arg(long)]
    quiet: bool,
}

/// How deep `run FOLDER` descends into subfolders.
pub const FOLDER_DEPTH_MAX: usize = 16;

/// Expands folders into their `*.toml` files and those of their subfolders, sorted by path.
/// Folders whose names start with `.` are skipped, and symbolic links to folders not followed.
pub fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files = Vec::new();
            walk(p, 0, &mut files)?;
            files.sort();
            if files.is_empty() {
                return Err(format!(
                    "{}: no *.toml scenario files in this folder or its subfolders",
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

fn walk(dir: &Path, depth: usize, files: &mut Vec<PathBuf>) -> Result<(), String> {
    if depth > FOLDER_DEPTH_MAX {
        return Err(format!(
            "{}: folders nested deeper than {FOLDER_DEPTH_MAX} levels",
            dir.display()
        ));
    }
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: cannot read folder: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: cannot read folder: {e}", dir.display()))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if kind.is_dir() {
            if !hidden {
                walk(&path, depth + 1, files)?;
            }
        } else if path.extension().is_some_and(|x| x == "toml") && path.is_file() {
            files.push(path);
        }
    }
    Ok(())
}

/// Loads every file; the first error is input that cannot be used. Two files with one scenario
/// name are refused at the second one's `scenario.name` line.
pub fn load_all(files: &[PathBuf]) -> Result<Vec<(PathBuf, Scenario)>, String> {
    let mut out: Vec<(PathBuf, Scenario)> = Vec::new();
    for f in files {
        let s = Scenario::load(f).map_err(|e| e.to_string())?;
        if let Some((other, _)) = out.iter().find(|(_, o)| o.name == s.name) {
            let line_in = |p: &Path| {
                std::fs::read_to_string(p)
                    .ok()
                    .and_then(|t| scenario::name_line(&t))
                    .unwrap_or(1)
            };
            return Err(format!(
                "{}:{}: scenario.name: {:?} is already the name of {}:{}; names are unique within a suite",
                f.display(),
                line_in(f),
                s.name,
                other.display(),
                line_in(other),
            ));
        }
        out.push((f.clone(), s));
    }
    Ok(out)
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

/// Reads the operator's injections for `--replay`.
fn injections(path: &Path, scenario: &Scenario) -> Result<Vec<Injection>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("--replay {}: {e}", path.display()))?;
    Injection::from_trace(std::io::BufReader::new(f), scenario)
        .map_err(|e| format!("--replay {}: {e}", path.display()))
}

fn run(args: RunArgs) -> Result<bool, String> {
    let stdout_taken = check_one_stdout(&[
        ("json", args.json.as_ref()),
        ("junit", args.junit.as_ref()),
        ("trace", args.trace.as_ref()),
    ])?;
    let files = scenario_files(&args.paths)?;
    let scenarios = load_all(&files)?;
    let replay = match &args.replay {
        Some(p) => {
            if scenarios.len() != 1 {
                return Err(format!(
                    "--replay {}: replays one scenario file, and {} were given",
                    p.display(),
                    scenarios.len()
                ));
            }
            Some(injections(p, &scenarios[0].1)?)
        }
        None => None,
    };
    // Open outputs before running, so a bad path fails fast.
    let json = args
        .json
        .as_deref()
        .map(|p| Sink::open(p, "json"))
        .transpose()?;
    let junit = args
        .junit
        .as_deref()
        .map(|p| Sink::open(p, "junit"))
        .transpose()?;
    let trace = args
        .trace
        .as_deref()
        .map(|p| Sink::open(p, "trace"))
        .transpose()?;
    // Only a file still wants the run once stdout is closed.
    let files_wanted = [&json, &junit, &trace]
        .iter()
        .any(|s| matches!(s, Some(Sink::File(_))));
    let interactive = std::io::stderr().is_terminal() && !args.quiet;
    let mut reports = Vec::new();
    let mut out = Human::new(stdout_taken);
    for (path, scenario) in scenarios {
        let trace_writer = trace.as_ref().map(|t| t.writer("trace")).transpose()?;
        let report = match &replay {
            Some(injections) => {
                let seed = args.seed.unwrap_or(scenario.seed);
                let mut live =
                    LiveRun::replay(scenario, seed, injections, trace_writer).map_err(|e| {
                        format!(
                            "--replay {}: {e} (was the live run's seed {seed}?)",
                            args.replay.as_deref().expect("replaying").display()
                        )
                    })?;
                live.finish().clone()
            }
            None => run_one(scenario, args.seed, trace_writer, interactive),
        };
        let replay_flag = args
            .replay
            .as_ref()
            .map(|t| format!(" --replay {}", t.display()))
            .unwrap_or_default();
        let reproduce = format!(
            "plantloop run {} --seed {}{replay_flag}",
            path.display(),
            report.seed
        );
        print_summary(&mut out, &report, args.quiet, &reproduce)
            .map_err(|e| format!("stdout: {e}"))?;
        reports.push(report);
        if out.is_closed() && !files_wanted {
            // `| head`: nobody reads on; end quietly with the verdict so far.
            return Ok(reports.iter().all(|r| r.passed));
        }
    }
    let failed = reports.iter().filter(|r| !r.passed).count();
    if !args.quiet || failed > 0 {
        let _ = writeln!(
            out,
            "{} scenario(s): {} passed, {} failed",
            reports.len(),
            reports.len() - failed,
            failed
        );
    }
    let _ = out.flush();
    if let Some(sink) = &json {
        let v = if reports.len() == 1 {
            serde_json::to_value(&reports[0])
        } else {
            serde_json::to_value(&reports)
        }
        .expect("reports serialize");
        let mut text = serde_json::to_string_pretty(&v).expect("values serialize");
        text.push('\n');
        write_out(sink, "json", text.as_bytes())?;
    }
    if let Some(sink) = &junit {
        write_out(sink, "junit", junit_xml(&reports)?.as_bytes())?;
    }
    Ok(failed == 0)
}

/// Writes `bytes` to the sink of `--flag`; a closed stdout is not an error.
fn write_out(sink: &Sink, flag: &str, bytes: &[u8]) -> Result<(), String> {
    let mut w = sink.writer(flag)?;
    match w.write_all(bytes).and_then(|()| w.flush()) {
        Err(e) if is_closed_pipe(&e) && matches!(sink, Sink::Stdout) => Ok(()),
        r => r.map_err(|e| format!("--{flag}: {e}")),
    }
}

fn run_one(
    scenario: Scenario,
    seed: Option<u64>,
    trace: Option<Box<dyn Write + Send>>,
    interactive: bool,
) -> Report {
    let progress: Option<Box<dyn FnMut(f64)>> = if interactive {
        let bar = indicatif::ProgressBar::new(1000).with_style(
            indicatif::ProgressStyle::with_template("{msg:32} [{bar:40}] {percent:>3}% {elapsed}")
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
        seed,
        trace,
        progress,
        ..RunOptions::default()
    };
    runner::run(scenario, options)
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

/// The readable summary of one run; a failure names the command that `reproduce`s it. `quiet`:
/// nothing for a passing run, and for a failing one its first line, the failing invariants and
/// shortfalls, and how to reproduce it.
pub fn print_summary(
    out: &mut impl Write,
    r: &Report,
    quiet: bool,
    reproduce: &str,
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
    if !quiet {
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
            "  {:<14}{:>8}{:>9}{:>9}{:>9}{:>9}",
            "latency", "count", "p50", "p95", "p99", "max"
        )?;
        for (name, l) in [
            ("critical", &r.latency.critical),
            ("transactional", &r.latency.transactional),
            ("bulk", &r.latency.bulk),
        ] {
            writeln!(
                out,
                "  {:<14}{:>8}{:>9}{:>9}{:>9}{:>9}",
                name,
                l.count,
                ms(l.p50_ms),
                ms(l.p95_ms),
                ms(l.p99_ms),
                ms(l.max_ms)
            )?;
        }
        let groups: Vec<(&String, &plantloop_sim::report::Latencies)> = r
            .latency_by_plant
            .iter()
            .chain(r.latency_by_workflow.iter())
            .collect();
        if !groups.is_empty() {
            writeln!(
                out,
                "  {:<14}{:>16}{:>16}{:>16}",
                "p99 (count)", "critical", "transactional", "bulk"
            )?;
        }
        for (name, l) in groups {
            let cell = |c: &plantloop_sim::report::ClassLatency| {
                if c.count == 0 {
                    "-".to_owned()
                } else {
                    format!("{} ({})", ms(c.p99_ms), c.count)
                }
            };
            writeln!(
                out,
                "  {:<14}{:>16}{:>16}{:>16}",
                name,
                cell(&l.critical),
                cell(&l.transactional),
                cell(&l.bulk)
            )?;
        }
    }
    for i in &r.invariants {
        if i.passed {
            if !quiet {
                writeln!(out, "  ok   {} ({} checked)", i.id, i.checked)?;
            }
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
        writeln!(out, "  reproduce: {reproduce}")?;
    }
    if !quiet {
        writeln!(out, "  trace_hash {}", r.trace_hash)?;
    }
    Ok(())
}

fn junit_xml(reports: &[Report]) -> Result<String, String> {
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
    j.to_string().map_err(|e| format!("--junit: {e}"))
}
