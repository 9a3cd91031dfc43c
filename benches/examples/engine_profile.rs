//! Runs the engine benchmark's workload `RUNS` times (default 5; first argument), as the `engine`
//! bench does, and prints the fastest and the median run in source events per second. For
//! profilers: the engine's work is what happens under `workload::drive` (callgrind's inclusive
//! count of it, or the samples of `perf record` whose stack holds it); the rest is set-up and the
//! copies of the events.

use plantloop_benches::workload::{CHUNK, EVENTS, drive_timed, primed, workload};
use std::hint::black_box;

/// The allocator of the engine bench and of the `plantloop` binary, so that profiles match them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("runs: a number"))
        .unwrap_or(5);
    let events = workload(EVENTS, 42);
    let mut seconds: Vec<f64> = (0..runs)
        .map(|_| {
            let mut e = primed();
            let (run, spent) = drive_timed(&mut e, &events, 1_000_000, CHUNK);
            black_box(run);
            spent.as_secs_f64()
        })
        .collect();
    if seconds.is_empty() {
        return;
    }
    seconds.sort_by(f64::total_cmp);
    let rate = |s: f64| EVENTS as f64 / s / 1e3;
    eprintln!(
        "{runs} runs of {EVENTS} source events: fastest {:.0} K/s, median {:.0} K/s",
        rate(seconds[0]),
        rate(seconds[runs / 2]),
    );
}
