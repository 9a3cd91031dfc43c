//! Seeds to first failure: runs the default explore variations with one deliberate engine defect
//! switched on, from seed 0 up, and prints the first seed whose run fails and which invariants
//! failed. It measures whether `plantloop explore`'s default swarm finds each defect class.
//!
//! `cargo run --release -p plantloop-sim --example defect_hunt -- DEFECT [SEEDS_MAX] [JOBS] [BASE]
//! [OUT]` (DEFECT is an `EngineDefect` variant name, e.g. `ControlsUnsequenced`; `all` hunts each
//! of the wave-2 defects in turn). BASE is a scenario file to vary instead of the built-in base
//! (a targeted base; `-` for the built-in one); with OUT, the first failure is shrunk (with the defect still on) and written
//! there as a scenario file: the regression reproducer of the fix that removed the defect.

use plantloop_sim::explore::{default_base, failed_ids, shrink_with, vary};
use plantloop_sim::runner::{RunOptions, run};
use plantloop_sim::sabotage::{Defect, EngineDefect};
use plantloop_sim::scenario::Scenario;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

const DEFECTS: [(&str, EngineDefect); 6] = [
    ("ControlsUnsequenced", EngineDefect::ControlsUnsequenced),
    ("OrdersForgottenEarly", EngineDefect::OrdersForgottenEarly),
    (
        "BreakdownBeforePlacementLost",
        EngineDefect::BreakdownBeforePlacementLost,
    ),
    (
        "BreakdownFoldedIntoCompleted",
        EngineDefect::BreakdownFoldedIntoCompleted,
    ),
    (
        "HeldConfirmationsNotReplayed",
        EngineDefect::HeldConfirmationsNotReplayed,
    ),
    (
        "OrderResumedUnderOtherHold",
        EngineDefect::OrderResumedUnderOtherHold,
    ),
];

fn run_with(s: &Scenario, seed: u64, defect: EngineDefect) -> Vec<String> {
    failed_ids(&run(
        s.clone(),
        RunOptions {
            seed: Some(seed),
            defect: Some(Defect::Engine(defect)),
            ..RunOptions::default()
        },
    ))
}

fn hunt(
    base: &Scenario,
    defect: EngineDefect,
    seeds_max: u64,
    jobs: usize,
) -> Option<(u64, Vec<String>)> {
    let next = AtomicU64::new(0);
    let found: Mutex<Option<(u64, Vec<String>)>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    let best = found.lock().expect("not poisoned").as_ref().map(|f| f.0);
                    if seed >= seeds_max || best.is_some_and(|b| seed > b) {
                        return;
                    }
                    let ids = run_with(&vary(base, seed), seed, defect);
                    if !ids.is_empty() {
                        let mut f = found.lock().expect("not poisoned");
                        if f.as_ref().is_none_or(|(b, _)| seed < *b) {
                            *f = Some((seed, ids));
                        }
                    }
                }
            });
        }
    });
    found.into_inner().expect("not poisoned")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args.first().map(String::as_str).unwrap_or("all");
    let seeds_max: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let jobs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2);
    let base = match args.get(3).filter(|p| *p != "-") {
        Some(path) => {
            let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
            Scenario::from_str(&text, path).unwrap_or_else(|e| panic!("{e}"))
        }
        None => default_base(),
    };
    for (name, d) in DEFECTS {
        if which != "all" && which != name {
            continue;
        }
        let started = std::time::Instant::now();
        let Some((seed, ids)) = hunt(&base, d, seeds_max, jobs) else {
            println!("{name}: no failure in {seeds_max} seeds");
            continue;
        };
        println!(
            "{name}: first failure at seed {seed} ({} seeds), failed {ids:?}, {:.0}s",
            seed + 1,
            started.elapsed().as_secs_f64()
        );
        if let Some(out) = args.get(4) {
            let target = ids[0].clone();
            let (minimal, runs) = shrink_with(&vary(&base, seed), 400, |c| {
                c.validate().is_ok() && run_with(c, seed, d).contains(&target)
            });
            std::fs::write(out, minimal.to_toml_string()).unwrap_or_else(|e| panic!("{out}: {e}"));
            println!("  shrunk in {runs} runs to {out} ({target})");
        }
    }
}
