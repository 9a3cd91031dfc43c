//! `plantloop explore`: swarm exploration over seeds (spec/cli.md).

use crate::output::{Human, Sink, check_one_stdout, is_closed_pipe};
use crate::{EXIT_BAD_INPUT, EXIT_FELL_SHORT};
use clap::Args;
use plantloop_sim::explore::{
    self, ExploreFailure, ExploreOptions, ExploreProgress, ExploreSummary, SHRINK_RUNS_MAX, Shard,
};
use plantloop_sim::scenario::Scenario;
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args)]
pub struct ExploreArgs {
    /// Base scenario to vary (default: a built-in small plant over one simulated day).
    #[arg(long, value_name = "FILE")]
    scenario: Option<PathBuf>,
    /// Number of seeds to explore.
    #[arg(long, value_name = "N")]
    seeds: u64,
    /// First seed.
    #[arg(long, value_name = "S", default_value_t = 0)]
    start: u64,
    /// Worker threads (default: the machine's cores).
    #[arg(long, value_name = "J")]
    jobs: Option<usize>,
    /// Run only shard K of M of the seed range (1-based), to split it across CI runners.
    #[arg(long, value_name = "K/M", value_parser = parse_shard)]
    shard: Option<Shard>,
    /// Write a JSON summary; `-` is stdout, and the human summary then goes to stderr.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Folder for the minimal reproducing scenario files of failures.
    #[arg(long, value_name = "DIR", default_value = "explore-failures")]
    out: PathBuf,
    /// Write failures as found, without shrinking them.
    #[arg(long)]
    no_shrink: bool,
    /// Most runs one shrink may spend.
    #[arg(long, value_name = "N", default_value_t = SHRINK_RUNS_MAX)]
    shrink_runs: u32,
    /// Print only failures: nothing when every seed passed.
    #[arg(long)]
    quiet: bool,
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    Shard::parse(s)
}

pub fn main(args: ExploreArgs) -> ExitCode {
    match explore(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_FELL_SHORT),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn explore(args: ExploreArgs) -> Result<bool, String> {
    let base = match &args.scenario {
        Some(p) => Scenario::load(p).map_err(|e| e.to_string())?,
        None => explore::default_base(),
    };
    if args.seeds == 0 {
        return Err("--seeds: must be at least 1".into());
    }
    if args
        .start
        .checked_add(args.seeds - 1)
        .is_none_or(|last| last > plantloop_sim::scenario::SEED_MAX)
    {
        return Err(format!(
            "--start {} --seeds {}: seeds must stay within 0..={} (scenario files store them as TOML integers)",
            args.start,
            args.seeds,
            plantloop_sim::scenario::SEED_MAX
        ));
    }
    if args.jobs == Some(0) {
        return Err("--jobs: must be at least 1".into());
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let stdout_taken = check_one_stdout(&[("json", args.json.as_ref())])?;
    let json_sink = args
        .json
        .as_deref()
        .map(|p| Sink::open(p, "json"))
        .transpose()?;
    let opts = ExploreOptions {
        start: args.start,
        seeds: args.seeds,
        shard: args.shard,
        jobs,
        shrink: !args.no_shrink,
        shrink_runs_max: args.shrink_runs,
    };
    let interactive = std::io::stderr().is_terminal() && !args.quiet;
    let bar = interactive.then(|| {
        indicatif::ProgressBar::new(0).with_style(
            indicatif::ProgressStyle::with_template(
                "explore [{bar:40}] {pos}/{len} seeds {per_sec} {msg} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        )
    });
    let progress = |p: ExploreProgress| {
        if let Some(bar) = &bar {
            bar.set_length(p.total);
            bar.set_position(p.done);
            if p.failed > 0 {
                bar.set_message(format!("{} failing", p.failed));
            }
        }
    };
    let started = std::time::Instant::now();
    let summary = explore::explore(&base, &opts, &progress);
    let wall_s = started.elapsed().as_secs_f64();
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }

    let mut written = Vec::new();
    if !summary.failures.is_empty() {
        std::fs::create_dir_all(&args.out)
            .map_err(|e| format!("--out {}: {e}", args.out.display()))?;
        for f in &summary.failures {
            written.push(write_reproducer(&args.out, &base, f)?);
        }
    }
    let mut out = Human::new(stdout_taken);
    print_summary(&mut out, &args, &base, &summary, &written, jobs, wall_s)
        .and_then(|()| out.flush())
        .map_err(|e| format!("stdout: {e}"))?;
    if let Some(sink) = &json_sink {
        let v = summary_json(&args, &base, &summary, &written, jobs, wall_s);
        let mut text = serde_json::to_string_pretty(&v).expect("values serialize");
        text.push('\n');
        let mut w = sink.writer("json")?;
        match w.write_all(text.as_bytes()).and_then(|()| w.flush()) {
            Err(e) if is_closed_pipe(&e) => {}
            r => r.map_err(|e| format!("--json: {e}"))?,
        }
    }
    Ok(summary.failures.is_empty())
}

/// Writes the minimal reproducer of `f` into `dir`; returns its path.
fn write_reproducer(dir: &Path, base: &Scenario, f: &ExploreFailure) -> Result<PathBuf, String> {
    let mut s = f.minimal.clone();
    s.name = format!("explore-{}-seed-{}", base.name, f.seed);
    s.seed = f.seed;
    s.description = format!(
        "Found by plantloop explore (base {}, seed {}): fails {}. Shrunk in {} runs.",
        base.name,
        f.seed,
        f.failed.join(", "),
        f.shrink_runs
    );
    let path = dir.join(format!("{}.toml", s.name));
    std::fs::write(&path, s.to_toml_string())
        .map_err(|e| format!("--out {}: {e}", path.display()))?;
    Ok(path)
}

fn base_flag(args: &ExploreArgs) -> String {
    args.scenario
        .as_ref()
        .map(|p| format!(" --scenario {}", p.display()))
        .unwrap_or_default()
}

#[allow(clippy::too_many_arguments)]
fn print_summary(
    out: &mut impl Write,
    args: &ExploreArgs,
    base: &Scenario,
    s: &ExploreSummary,
    written: &[PathBuf],
    jobs: usize,
    wall_s: f64,
) -> std::io::Result<()> {
    for (f, path) in s.failures.iter().zip(written) {
        writeln!(
            out,
            "FAIL seed={}  {}  ({} -> {} faults, {} -> {} stations)",
            f.seed,
            f.failed.join(", "),
            f.scenario.faults.len(),
            f.minimal.faults.len(),
            stations(&f.scenario),
            stations(&f.minimal),
        )?;
        if let Some(v) = &f.first_violation {
            writeln!(out, "  first violation: {v}")?;
        }
        writeln!(out, "  minimal reproducer: {}", path.display())?;
        writeln!(out, "  reproduce with: plantloop run {}", path.display())?;
        writeln!(
            out,
            "  the unshrunk variation: plantloop explore{} --start {} --seeds 1 --no-shrink",
            base_flag(args),
            f.seed
        )?;
    }
    if args.quiet && s.failures.is_empty() {
        return Ok(());
    }
    let n = s.seeds.end - s.seeds.start;
    let shard = args
        .shard
        .map(|sh| format!(" (shard {}/{})", sh.index, sh.count))
        .unwrap_or_default();
    writeln!(
        out,
        "explored {n} seed(s) {}..{}{shard} around {}: {} passed, {} failed; {:.1}s on {jobs} thread(s), {:.0} seeds/min",
        s.seeds.start,
        s.seeds.end,
        base.name,
        s.passed,
        s.failures.len(),
        wall_s,
        n as f64 / wall_s.max(1e-9) * 60.0
    )
}

fn stations(s: &Scenario) -> u32 {
    s.plants.iter().map(|p| p.lines * p.stations_per_line).sum()
}

fn summary_json(
    args: &ExploreArgs,
    base: &Scenario,
    s: &ExploreSummary,
    written: &[PathBuf],
    jobs: usize,
    wall_s: f64,
) -> serde_json::Value {
    let n = s.seeds.end - s.seeds.start;
    json!({
        "base": base.name,
        "start": s.seeds.start,
        "end": s.seeds.end,
        "seeds": n,
        "shard": args.shard.map(|sh| format!("{}/{}", sh.index, sh.count)),
        "jobs": jobs,
        "passed": s.passed,
        "failed": s.failures.len(),
        "events": s.events,
        "wall_s": wall_s,
        "seeds_per_min": n as f64 / wall_s.max(1e-9) * 60.0,
        "failures": s.failures.iter().zip(written).map(|(f, path)| json!({
            "seed": f.seed,
            "failed": f.failed,
            "first_violation": f.first_violation,
            "reproducer": path.display().to_string(),
            "shrink_runs": f.shrink_runs,
            "command": format!("plantloop run {}", path.display()),
        })).collect::<Vec<_>>(),
    })
}
