//! Runs the engine benchmark's workload `RUNS` times (default 5; first argument), for profilers and
//! instruction counts, and prints the fastest and the median run in source events per second.
//! Each run gets a fresh primed engine and its own copy of the events, made before any run starts,
//! so that a profile of the runs (`perf record`, or callgrind's inclusive count of
//! `workload::drive`) is the engine's work alone.

use plantloop_benches::workload::{EVENTS, drive, primed, workload};
use std::hint::black_box;

/// The allocator of the engine bench and of the `plantloop` binary, so that profiles match them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let runs: u32 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("runs: a number"))
        .unwrap_or(5);
    let events = workload(EVENTS, 42);
    // Copies and engines made before the runs, so that a profile of the runs is the engine's.
    let mut runs: Vec<_> = (0..runs).map(|_| (primed(), events.clone())).collect();
    let mut seconds: Vec<f64> = runs
        .iter_mut()
        .map(|(e, batch)| {
            let start = std::time::Instant::now();
            black_box(drive(e, std::mem::take(batch), 1_000_000));
            start.elapsed().as_secs_f64()
        })
        .collect();
    if seconds.is_empty() {
        return;
    }
    seconds.sort_by(f64::total_cmp);
    let rate = |s: f64| EVENTS as f64 / s / 1e3;
    eprintln!(
        "{} runs of {EVENTS} source events: fastest {:.0} K/s, median {:.0} K/s",
        seconds.len(),
        rate(seconds[0]),
        rate(seconds[seconds.len() / 2]),
    );
}
