//! The DES kernel alone on the plain machine fail/repair/inspect model, for the comparison with SimPy
//! that issue 4 asks for (≥ 20× SimPy's events/s). The same model in SimPy is
//! `benches/simpy/machine_model.py`; keep the two in step.
//!
//! Model (identical parameters on both sides):
//! - `MACHINES` = 100 machines, each an independent cycle:
//! - process one unit: exponential time, mean `PROCESS_MEAN` = 60 s → event "unit done";
//! - then inspect it: constant `INSPECT_TIME` = 5 s, defective with p = `DEFECT_RATE` = 0.01 → event
//!   "inspection done";
//! - a breakdown process per machine fires after exponential time, mean `MTBF` = 10 h (event
//!   "failure"); if the machine is processing, the unit is interrupted (its pending "unit done" is
//!   cancelled) and repaired for exponential time, mean `MTTR` = 40 min (event "repair done"), after
//!   which the unit resumes with its remaining processing time. Failures that fire while the machine
//!   inspects or is already broken are counted and otherwise ignored;
//! - `HORIZON` = 7 days of simulated time, `SEED` = 42.
//!
//! Events = units + inspections + failures fired + repairs, which is exactly the number of events
//! the kernel delivers. Run with `cargo bench -p plantloop-benches --bench kernel`; criterion's
//! `thrpt` line is events/s.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use plantloop_core::time::{Duration, Instant};
use plantloop_sim::kernel::{EventId, Kernel, SeedTree, SimRng};
use std::hint::black_box;

const MACHINES: u32 = 100;
const PROCESS_MEAN: Duration = Duration::from_secs(60);
const INSPECT_TIME: Duration = Duration::from_secs(5);
const DEFECT_RATE: f64 = 0.01;
const MTBF: Duration = Duration::from_hours(10);
const MTTR: Duration = Duration::from_mins(40);
const HORIZON: Instant = Instant::from_secs(7 * 86_400);
const SEED: u64 = 42;

#[derive(Clone, Copy, Debug)]
enum Kind {
    UnitDone,
    InspectionDone,
    Failure,
    RepairDone,
}

#[derive(Clone, Copy, Debug)]
struct Event {
    machine: u32,
    kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Processing,
    Inspecting,
    Broken,
}

struct Machine {
    state: State,
    /// The pending "unit done" while processing, to cancel on a failure.
    unit_done: Option<(EventId, Instant)>,
    /// Processing time left on the interrupted unit while broken.
    remaining: Duration,
    work: SimRng,
    breakdowns: SimRng,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Stats {
    events: u64,
    units: u64,
    inspections: u64,
    defects: u64,
    failures: u64,
    interruptions: u64,
    repairs: u64,
}

fn run(seed: u64) -> Stats {
    let tree = SeedTree::new(seed);
    let mut k: Kernel<Event> = Kernel::with_queue_len_max(4 * MACHINES as usize);
    let mut machines: Vec<Machine> = (0..MACHINES)
        .map(|m| Machine {
            state: State::Processing,
            unit_done: None,
            remaining: Duration::ZERO,
            work: tree.derive(&format!("machine/{m}/work")),
            breakdowns: tree.derive(&format!("machine/{m}/breakdowns")),
        })
        .collect();
    for (i, m) in machines.iter_mut().enumerate() {
        let machine = i as u32;
        let d = m.work.exponential(PROCESS_MEAN);
        let at = k.now() + d;
        m.unit_done = Some((
            k.schedule_at(
                at,
                Event {
                    machine,
                    kind: Kind::UnitDone,
                },
            ),
            at,
        ));
        k.schedule_in(
            m.breakdowns.exponential(MTBF),
            Event {
                machine,
                kind: Kind::Failure,
            },
        );
    }
    let mut s = Stats::default();
    while let Some((now, ev)) = k.pop_until(HORIZON) {
        s.events += 1;
        let machine = ev.machine;
        let m = &mut machines[machine as usize];
        match ev.kind {
            Kind::UnitDone => {
                s.units += 1;
                m.unit_done = None;
                m.state = State::Inspecting;
                k.schedule_in(
                    INSPECT_TIME,
                    Event {
                        machine,
                        kind: Kind::InspectionDone,
                    },
                );
            }
            Kind::InspectionDone => {
                s.inspections += 1;
                if m.work.bernoulli(DEFECT_RATE) {
                    s.defects += 1;
                }
                m.state = State::Processing;
                let at = now + m.work.exponential(PROCESS_MEAN);
                m.unit_done = Some((
                    k.schedule_at(
                        at,
                        Event {
                            machine,
                            kind: Kind::UnitDone,
                        },
                    ),
                    at,
                ));
            }
            Kind::Failure => {
                s.failures += 1;
                if m.state == State::Processing {
                    s.interruptions += 1;
                    let (id, at) = m
                        .unit_done
                        .take()
                        .expect("a processing machine has a unit in work");
                    assert!(k.cancel(id));
                    m.remaining = at - now;
                    m.state = State::Broken;
                    k.schedule_in(
                        m.work.exponential(MTTR),
                        Event {
                            machine,
                            kind: Kind::RepairDone,
                        },
                    );
                }
                k.schedule_in(
                    m.breakdowns.exponential(MTBF),
                    Event {
                        machine,
                        kind: Kind::Failure,
                    },
                );
            }
            Kind::RepairDone => {
                s.repairs += 1;
                m.state = State::Processing;
                let at = now + m.remaining;
                m.unit_done = Some((
                    k.schedule_at(
                        at,
                        Event {
                            machine,
                            kind: Kind::UnitDone,
                        },
                    ),
                    at,
                ));
            }
        }
    }
    assert_eq!(s.events, k.events_delivered());
    s
}

fn machine_model(c: &mut Criterion) {
    let stats = run(SEED);
    assert_eq!(stats, run(SEED), "the model is deterministic");
    eprintln!("machine model, {MACHINES} machines, 7 days, seed {SEED}: {stats:?}");
    let mut g = c.benchmark_group("kernel");
    g.throughput(Throughput::Elements(stats.events));
    g.sample_size(20);
    g.bench_function("machine_model_100x7d", |b| {
        b.iter(|| black_box(run(black_box(SEED))))
    });
    g.finish();
}

criterion_group!(benches, machine_model);
criterion_main!(benches);
