//! Runs the engine benchmark's workload `RUNS` times (default 5; first argument), for profilers and
//! instruction counts: `perf stat -e instructions:u target/release/examples/engine_profile 5`,
//! minus the same with `0` (the set-up only), divided by runs × events, is instructions per event.

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
    for _ in 0..runs {
        let mut e = primed();
        black_box(drive(&mut e, events.clone(), 1_000_000));
    }
}
