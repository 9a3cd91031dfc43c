//! The engine's mixed workload: a plant of 3 lines × 10 stations and a stream of source events
//! shaped like a production day (see `benches/engine.rs` for the mix), plus a driver that answers
//! every call at once. Shared by the `engine` benchmark and the `engine_profile` example.

use plantloop_core::call::{Outcome, Request};
use plantloop_core::durable::DurableEngine;
use plantloop_core::engine::{Config, Engine, Input};
use plantloop_core::event::{Event, EventData, MachineStateChanged};
use plantloop_core::journal::{Journal, JournalError};
use plantloop_core::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;

/// Events in one run of the benchmark.
pub const EVENTS: usize = 200_000;
/// Events copied at a time just before they are handled ([`drive_timed`]): a parser's batch.
pub const CHUNK: usize = 100;
const LINES: u32 = 3;
const STATIONS_PER_LINE: u32 = 10;

fn station(line: u32, s: u32) -> String {
    format!("P1-L{line}-S{s}")
}

fn ev(system: &str, id: u64, data: EventData) -> Event {
    Event::new(format!("/plants/P1/{system}"), format!("e-{id}"), data)
}

const ORDER_SERIALS: u64 = 1_000;

fn order_event(id: u64, line: u32, k: u64) -> Event {
    ev(
        "erp",
        id,
        EventData::OrderReleased(ProductionOrder {
            id: OrderId::new(format!("O-{line}-{k}")).unwrap(),
            material: MaterialId::new("M-100").unwrap(),
            line: LineId::new(format!("P1-L{line}")).unwrap(),
            plant: PlantId::new("P1").unwrap(),
            serials: SerialRange::new((k - 1) * ORDER_SERIALS + 1, k * ORDER_SERIALS).unwrap(),
        }),
    )
}

/// Master data and the first order of each line.
fn priming() -> Vec<Event> {
    let mut v = vec![];
    let mut id = 0;
    for line in 1..=LINES {
        for s in 1..=STATIONS_PER_LINE {
            id += 1;
            let st = station(line, s);
            let p = AssetPlacement {
                asset: AssetId::new(format!("A-{st}")).unwrap(),
                station: StationId::new(&st).unwrap(),
                line: LineId::new(format!("P1-L{line}")).unwrap(),
                plant: PlantId::new("P1").unwrap(),
            };
            let r = MasterDataRecord::new(
                RecordKey::new(format!("A-{st}")).unwrap(),
                1,
                MasterDataPayload::Asset(p),
            )
            .unwrap();
            v.push(ev("cmms", id, EventData::MasterDataPublished(r)));
        }
        id += 1;
        v.push(order_event(id, line, 1));
    }
    v
}

fn completion(wo: &str, st: &str, nc: Option<String>) -> EventData {
    EventData::WorkOrderCompleted(WorkOrderCompletion {
        work_order: WorkOrderId::new(wo).unwrap(),
        asset: AssetId::new(format!("A-{st}")).unwrap(),
        station: StationId::new(st).unwrap(),
        root_cause: "worn torque head".into(),
        parts: vec![SparePartUsage {
            part: PartId::new("TORQUE-HEAD").unwrap(),
            quantity: 1,
            unit_cost: Money::from_cents(41_250),
        }],
        labour: vec![LabourEntry {
            technician: TechnicianId::new("T1").unwrap(),
            minutes: 40,
            rate_per_hour: Money::from_cents(8_500),
        }],
        nc: nc.map(|n| NcId::new(n).unwrap()),
    })
}

/// The mixed stream of `n` source events, reproducible from `seed`.
pub fn workload(n: usize, seed: u64) -> Vec<Event> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out: Vec<Event> = Vec::with_capacity(n);
    let mut id = 1_000u64;
    let lines = LINES as usize + 1;
    let mut next_serial = vec![1u64; lines];
    let mut order_k = vec![1u64; lines];
    let mut material_version = 1;
    let mut ncs = 0u64;
    // Follow-ups due at an index of the stream: (due, source, data).
    let mut due: Vec<(usize, &'static str, EventData)> = vec![];
    // Open breakdown work order per station, numbered as the engine numbers them (W4).
    let mut breakdown_seq = 0u64;
    let mut open_breakdowns: Vec<String> = vec![];
    let push = |out: &mut Vec<Event>, id: &mut u64, system: &str, data: EventData| {
        *id += 1;
        out.push(ev(system, *id, data));
    };
    while out.len() < n {
        if let Some(i) = due.iter().position(|d| d.0 <= out.len()) {
            let (_, system, data) = due.swap_remove(i);
            push(&mut out, &mut id, system, data);
            continue;
        }
        let line = rng.random_range(1..=LINES);
        let l = line as usize;
        let st = station(line, rng.random_range(1..=STATIONS_PER_LINE));
        let sid = StationId::new(&st).unwrap();
        let roll = rng.random_range(0..1_000u32);
        let (system, data) = match roll {
            // Production confirmations of 10 units; a new order when one is used up.
            0..=599 => {
                let first = next_serial[l];
                if first > order_k[l] * ORDER_SERIALS {
                    order_k[l] += 1;
                    id += 1;
                    out.push(order_event(id, line, order_k[l]));
                }
                next_serial[l] += 10;
                let data = EventData::ProductionConfirmed(ProductionConfirmation {
                    order: OrderId::new(format!("O-{line}-{}", order_k[l])).unwrap(),
                    station: sid,
                    material: MaterialId::new("M-100").unwrap(),
                    serials: SerialRange::new(first, first + 9).unwrap(),
                    good: 9,
                    scrap: 1,
                });
                ("mes", data)
            }
            // Alarms: info and warnings are filtered, a fault opens a breakdown work order
            // (unless one is open at the station), repaired 500 events later.
            600..=799 => {
                let severity = match roll {
                    600..=759 => AlarmSeverity::Info,
                    760..=794 => AlarmSeverity::Warning,
                    _ => AlarmSeverity::Fault,
                };
                if severity == AlarmSeverity::Fault && !open_breakdowns.contains(&st) {
                    breakdown_seq += 1;
                    open_breakdowns.push(st.clone());
                    let wo = format!("WO-BD-{breakdown_seq}");
                    due.push((out.len() + 500, "cmms", completion(&wo, &st, None)));
                    due.push((
                        out.len() + 501,
                        "cmms",
                        EventData::DowntimeClassified(DowntimeEvent {
                            station: sid.clone(),
                            started_at: Instant::from_secs(1),
                            ended_at: Some(Instant::from_secs(2)),
                            class: Some(DowntimeClass::Breakdown),
                        }),
                    ));
                }
                let data = EventData::AlarmRaised(Alarm {
                    station: sid,
                    code: "E-SPINDLE".into(),
                    severity,
                });
                ("mes", data)
            }
            800..=859 => {
                let data = EventData::MachineStateChanged(MachineStateChanged {
                    station: sid,
                    state: StationState::Running,
                    code: None,
                });
                ("mes", data)
            }
            860..=899 => {
                material_version += 1;
                let data = EventData::MasterDataPublished(
                    MasterDataRecord::new(
                        RecordKey::new("M-100").unwrap(),
                        material_version,
                        MasterDataPayload::Material(Material {
                            id: MaterialId::new("M-100").unwrap(),
                            description: format!("housing rev {material_version}"),
                            unit: "EA".into(),
                        }),
                    )
                    .unwrap(),
                );
                ("erp", data)
            }
            // A nonconformance on the last units of its line: contained (W1), the hold parks
            // later confirmations of its order; repaired (W2) and dispositioned (W3) 500 events
            // later.
            900 => {
                ncs += 1;
                let nc = format!("NC-{ncs}");
                let last = next_serial[l].saturating_sub(1).max(1);
                due.push((
                    out.len() + 500,
                    "cmms",
                    completion(&format!("WO-{nc}"), &st, Some(nc.clone())),
                ));
                due.push((
                    out.len() + 501,
                    "qms",
                    EventData::DispositionApproved(Disposition {
                        nc: NcId::new(&nc).unwrap(),
                        decision: DispositionDecision::Rework,
                        approved_by: "QE-7".into(),
                    }),
                ));
                let data = EventData::NonconformanceCreated(Nonconformance {
                    id: NcId::new(nc).unwrap(),
                    station: sid,
                    characteristic: CharacteristicId::new("torque").unwrap(),
                    serials: SerialRange::new(last.saturating_sub(4).max(1), last).unwrap(),
                    failures: 3,
                    asset_related: true,
                    severity: Severity::Major,
                });
                ("qms", data)
            }
            // Duplicates: an earlier event sent again by its source.
            _ => {
                if !out.is_empty() {
                    let k = rng.random_range(0..out.len());
                    out.push(out[k].clone());
                }
                continue;
            }
        };
        push(&mut out, &mut id, system, data);
        open_breakdowns.retain(|s| {
            // A breakdown is repaired once its completion has been emitted.
            due.iter().any(|d| {
                matches!(&d.2, EventData::WorkOrderCompleted(w) if w.station.as_str() == s && w.nc.is_none())
            })
        });
    }
    out.truncate(n);
    out
}

/// Counts of what one run did.
#[derive(Default, Debug)]
pub struct Run {
    pub events: u64,
    pub replies: u64,
}

/// Drives `engine` through `events`, answering every call at once; returns the counts.
pub fn drive(engine: &mut Engine, events: Vec<Event>, t0: u64) -> Run {
    let mut run = Run::default();
    let mut now = t0;
    let receipt = String::from("R-1");
    for e in events {
        now += 1_000;
        let t = Instant::from_micros(now);
        black_box(engine.handle(t, Input::Event(e)));
        run.events += 1;
        while let Some(call) = engine.poll_command() {
            let outcome = match call.request {
                Request::LookupPosting { .. } => Outcome::Found { receipt: None },
                _ => Outcome::Done {
                    receipt: receipt.clone(),
                },
            };
            engine.handle(
                t,
                Input::Reply {
                    call: call.id,
                    attempt: call.attempt,
                    outcome,
                },
            );
            run.replies += 1;
        }
        while let Some(r) = engine.poll_audit() {
            black_box(r);
        }
    }
    run
}

/// [`drive`] over copies of `events` made `chunk` at a time just before they are handled, as an
/// ingress parser hands fresh events over; returns the counts and the time spent in the engine
/// (the copies are not timed). Timestamps are those one [`drive`] over all of `events` gives.
pub fn drive_timed(
    engine: &mut Engine,
    events: &[Event],
    t0: u64,
    chunk: usize,
) -> (Run, std::time::Duration) {
    let chunk = chunk.max(1);
    let mut run = Run::default();
    let mut spent = std::time::Duration::ZERO;
    for (i, part) in events.chunks(chunk).enumerate() {
        let copies = part.to_vec();
        let start = std::time::Instant::now();
        let r = drive(engine, copies, t0 + (i * chunk) as u64 * 1_000);
        spent += start.elapsed();
        run.events += r.events;
        run.replies += r.replies;
    }
    (run, spent)
}

/// [`drive`] for an engine behind a journal, with group commit and the output commit rule: the
/// events of a group of `group` are handled, then the journal is synced and only then are the
/// calls those inputs produced answered; their replies are handled and synced in turn, until the
/// group's sagas have run to their end. Returns the counts and the number of syncs.
pub fn drive_durable<J: Journal>(
    de: &mut DurableEngine<J>,
    events: Vec<Event>,
    t0: u64,
    group: usize,
) -> Result<(Run, u64), JournalError> {
    let mut run = Run::default();
    let mut syncs = 0;
    let mut now = t0;
    let receipt = String::from("R-1");
    let mut calls = Vec::new();
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        now += 1_000;
        let t = Instant::from_micros(now);
        for e in events.by_ref().take(group) {
            black_box(de.handle(t, Input::Event(e))?);
            run.events += 1;
        }
        loop {
            de.sync()?;
            syncs += 1;
            while let Some(r) = de.engine_mut().poll_audit() {
                black_box(r);
            }
            calls.extend(std::iter::from_fn(|| de.engine_mut().poll_command()));
            if calls.is_empty() {
                break;
            }
            for call in calls.drain(..) {
                let outcome = match call.request {
                    Request::LookupPosting { .. } => Outcome::Found { receipt: None },
                    _ => Outcome::Done {
                        receipt: receipt.clone(),
                    },
                };
                de.handle(
                    t,
                    Input::Reply {
                        call: call.id,
                        attempt: call.attempt,
                        outcome,
                    },
                )?;
                run.replies += 1;
            }
        }
    }
    Ok((run, syncs))
}

/// An engine that has taken the plant's master data and first orders.
pub fn primed() -> Engine {
    primed_with(Config::default())
}

/// [`primed`] with `config`.
pub fn primed_with(config: Config) -> Engine {
    let mut e = Engine::new(config, 7);
    drive(&mut e, priming(), 0);
    e
}

/// [`primed`] behind `journal` (which must be empty), synced.
pub fn primed_durable<J: Journal>(journal: J) -> Result<DurableEngine<J>, JournalError> {
    let (mut de, _) =
        DurableEngine::open(journal, Config::default(), 7, 0).map_err(|e| match e {
            plantloop_core::durable::DurableError::Journal(j) => j,
            other => JournalError::Storage(other.to_string()),
        })?;
    drive_durable(&mut de, priming(), 0, 1_000)?;
    Ok(de)
}
