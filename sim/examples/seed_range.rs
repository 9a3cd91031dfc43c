//! Runs the default explore variations of a seed range, one after the other on one thread, and
//! prints the kernel events: a fixed workload for profiling the simulator
//! (`perf record ./target/release/examples/seed_range 0 100`).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let base = plantloop_sim::explore::default_base();
    let a: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(0);
    let b: u64 = std::env::args()
        .nth(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(100);
    let mut ev = 0;
    for seed in a..b {
        let s = plantloop_sim::explore::vary(&base, seed);
        ev += plantloop_sim::explore::run_seed(&s, seed).sim.events;
    }
    println!("{ev}");
}
