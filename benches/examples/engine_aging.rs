//! Runs one engine through `EVENTS` events of the engine bench's workload (default 3 M; first
//! argument) with a dedupe window of `WINDOW` entries (default 500 K; second argument) and prints
//! its rate, in K source events per second, over each 200 K of them. The bench measures a freshly
//! primed engine; this shows what happens as one ages: once the window is full every event also
//! expires one, containments and completed work orders pile up, and the indexes outgrow the caches.
//! A rate that keeps falling after the window has filled is a cost that grows with the engine's age.

use plantloop_benches::workload::{CHUNK, drive_timed, primed_with, workload};
use plantloop_core::engine::Config;

/// The allocator of the engine bench and of the `plantloop` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .map(|a| a.parse().expect("a number"))
            .unwrap_or(default)
    };
    let (events, window) = (arg(1, 3_000_000), arg(2, 500_000));
    let workload = workload(events, 42);
    let mut engine = primed_with(Config {
        dedupe_entries_max: window,
        ..Config::default()
    });
    const BATCH: usize = 200_000;
    let rates: Vec<String> = workload
        .chunks(BATCH)
        .enumerate()
        .map(|(i, part)| {
            let t0 = 1_000_000 + (i * BATCH) as u64 * 1_000;
            let (_, spent) = drive_timed(&mut engine, part, t0, CHUNK);
            format!("{:.0}", part.len() as f64 / spent.as_secs_f64() / 1e3)
        })
        .collect();
    println!(
        "{events} events, window of {window}: K source events/s per 200 K: {}",
        rates.join(" ")
    );
}
