//! The engine's throughput on a mixed workload, in memory, on one core.
//!
//! A plant of 3 lines × 10 stations, primed with asset master data and one production order per
//! line, receives a stream of source events shaped like a production day: 60% production
//! confirmations (W6, with a new order released every 1,000 serials of a line), 20% machine
//! alarms (mostly info and warnings, which are filtered; a fault opens a breakdown work order,
//! W4, repaired 500 events later with parts and labour, W2, and its downtime classified), 6%
//! machine state changes, 4% material master-data versions (W5), one nonconformance per 1,000
//! events (contained, W1, which parks the confirmations of its order behind the hold; repaired,
//! W2, and dispositioned, W3, 500 events later), and 10% duplicates re-sent by their sources.
//! The driver answers every call at once with a success (so each event's saga runs to its end)
//! and drains the audit records.
//!
//! - `engine/mixed`: throughput in **source events** per second of a freshly primed engine; every
//!   reply the driver hands back is extra work inside the measured loop (printed once, with
//!   counts). Events reach the engine as an ingress parser hands them over: copies made 100 at a
//!   time just before they are handled, and not timed (`workload::drive_timed`).
//! - `engine/ingress-parse`: `parse_event` on the same events as CloudEvents JSON, for scale.
//!
//! Run with `cargo bench -p plantloop-benches --bench engine -- --warm-up-time 1 --measurement-time 3`.
//! On a machine shared with other work, wall-clock figures swing; the instruction count does not:
//! `valgrind --tool=callgrind --toggle-collect='plantloop_benches::workload::drive'
//! target/release/examples/engine_profile 1` counts the engine's work in one run of the workload.

use std::hint::black_box;
use std::time::Duration as WallDuration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use plantloop_benches::workload::{CHUNK, EVENTS, drive_timed, primed, workload};
use plantloop_core::event::{Event, parse_event};

/// The allocator of the `plantloop` binary, which runs this engine, so that the figures are what
/// its users get.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn engine(c: &mut Criterion) {
    let events = workload(EVENTS, 42);
    {
        let mut e = primed();
        let (run, _) = drive_timed(&mut e, &events, 1_000_000, CHUNK);
        let s = e.stats();
        println!(
            "engine/mixed workload: {} events, {} replies; accepted {}, duplicates {}, \
             calls {}, alarms filtered {}, confirmations parked {}, dead letters {}, open calls {}",
            run.events,
            run.replies,
            s.events_accepted,
            s.duplicates_absorbed,
            s.calls_done,
            s.alarms_filtered,
            s.confirmations_parked,
            s.dead_letters,
            e.open_calls(),
        );
        assert!(e.is_idle(), "every saga ran to its end");
        assert_eq!(s.dead_letters, 0);
    }

    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.sample_size(10);
    g.bench_function("mixed", |b| {
        b.iter_custom(|iters| {
            let mut total = WallDuration::ZERO;
            for _ in 0..iters {
                let mut e = primed();
                let (run, spent) = drive_timed(&mut e, &events, 1_000_000, CHUNK);
                black_box(run);
                total += spent;
            }
            total
        })
    });

    let json: Vec<Vec<u8>> = events
        .iter()
        .take(20_000)
        .map(Event::to_json_bytes)
        .collect();
    g.throughput(Throughput::Elements(json.len() as u64));
    g.bench_function("ingress-parse", |b| {
        b.iter(|| {
            for j in &json {
                black_box(parse_event(j).unwrap());
            }
        })
    });
    g.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
