//! Prints the engine's footprint over a long run: entries per table and the snapshot's size, once
//! per `EVERY` simulated days, to show that retention keeps memory flat after warm-up.
//!
//! `cargo run --release -p plantloop-sim --example footprint -- FILE [EVERY_DAYS]`

use plantloop_core::durable::encode_snapshot;
use plantloop_core::time::{Duration, Instant};
use plantloop_sim::scenario::Scenario;
use plantloop_sim::world::World;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: footprint FILE [EVERY_DAYS]");
        std::process::exit(2);
    };
    let every: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(2)
    });
    let scenario = Scenario::from_str(&text, &path).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let seed = scenario.seed;
    let mut w = World::new(scenario, seed, None);
    w.start();
    let end = w.duration_end();
    println!(
        "| day | containments | work-order links | completions | dead letters | orders | dedupe entries | open calls | timers | snapshot KiB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let step = Duration::from_hours(24 * every);
    let mut t = Instant::ZERO;
    while t < end {
        t = (t + step).min(end);
        w.run_until(t);
        let Some(e) = w.engine() else {
            continue; // the core is down at this instant
        };
        let f = e.footprint();
        let kib = encode_snapshot(e).map_or(0, |b| b.len() / 1024);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            t.as_millis() / 86_400_000,
            f.containments,
            f.work_order_links,
            f.completions,
            f.dead_letters,
            f.orders,
            f.dedupe_entries,
            f.open_calls,
            f.timers,
            kib
        );
    }
    let s = w.engine().map(|e| e.stats().clone()).unwrap_or_default();
    println!(
        "\nforgotten: {} containments, {} completions, {} orders; {} dead letters evicted",
        s.containments_forgotten, s.completions_forgotten, s.orders_evicted, s.dead_letters_evicted
    );
}
