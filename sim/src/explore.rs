//! Swarm exploration (`plantloop explore`): one random variation of a base scenario per seed, each
//! run and judged on every invariant; a failure is shrunk to a minimal reproducing scenario.
//!
//! # Swarm testing
//! [`vary`] derives everything from the seed alone: topology size, cycle times, breakdowns, drifts,
//! master-data releases, personalities, and a fault *mix*: each fault kind is switched on or off per
//! seed, and the kinds that are on get their own intensity and timing. Different seeds stress
//! different combinations, instead of every run seeing a thin layer of every fault (the swarm
//! testing idea of Groce et al., as TigerBeetle's simulator uses it).
//!
//! The variation's run seed is the exploration seed, so `plantloop run` of a written reproducer
//! replays the very run that failed.
//!
//! # What is judged
//! Every invariant the base selects. Variations carry no `expect.min` (a random variation need not
//! form an NC). Their latency objective is the base's (or, for the built-in base, 5 s critical and
//! 2 min transactional) plus an allowance for the faults the variation injects: the total length of
//! its fault windows plus the engine's retry and dead-letter probe intervals. The core must deliver
//! within that once faults heal; bulk is not judged (its p99 depends on release size, not on the core).
//!
//! # Shrinking
//! [`shrink`] removes and reduces parts of a failing scenario greedily (faults, drifts, master data,
//! plants, lines, stations, duration, intensities, personalities), keeping each change under which
//! the same invariant still fails with the same seed, until no change does or the run budget is
//! spent.
//!
//! # Determinism
//! The outcome of each seed depends on the seed and the base only; results are reported in seed
//! order whatever the number of worker threads.

use crate::kernel::{SeedTree, SimRng};
use crate::report::Report;
use crate::runner::{RunOptions, run};
use crate::scenario::{
    Drift, Expect, Fault, Inspection, Machines, Maintenance, MasterData, MasterDataKind, Orders,
    PartCost, Personality, PlantSpec, Scenario, Slo, Systems, Window,
};
use plantloop_core::model::{PartId, PlantId, StationId, System};
use plantloop_core::money::Money;
use plantloop_core::time::{Duration, Instant};
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Most lines per plant in a variation.
const VARY_LINES_MAX: u32 = 4;
/// Most stations per line in a variation.
const VARY_STATIONS_MAX: u32 = 8;
/// Most plants in a variation.
const VARY_PLANTS_MAX: usize = 3;
/// Most random drifts added to a variation.
const VARY_DRIFTS_MAX: u64 = 3;
/// Most instances of one enabled fault kind.
const VARY_FAULTS_PER_KIND_MAX: u64 = 2;
/// Longest random fault window.
const VARY_WINDOW_MAX: Duration = Duration::from_hours(6);
/// Largest random master-data release.
const VARY_MASTERDATA_COUNT_MAX: u64 = 2_000;
/// Largest random alarm storm.
const VARY_STORM_EVENTS_MAX: u64 = 5_000;
/// Chance that a fault kind is switched on for a seed.
const VARY_FAULT_KIND_P: f64 = 0.4;
/// Chance that one of the stress modes of [`stress`] is switched on for a seed.
const VARY_STRESS_P: f64 = 0.3;
/// Default bound on the runs one shrink may spend.
pub const SHRINK_RUNS_MAX: u32 = 400;
/// Latency allowance beyond fault windows: the engine's longest retry backoff, its dead-letter
/// probe interval and the edge and resend caps, rounded up.
const SLO_FAULT_SLACK: Duration = Duration::from_mins(10);

/// The built-in base: small topologies and one simulated day, the default of `plantloop explore`.
pub fn default_base() -> Scenario {
    let text = r#"
[scenario]
name = "explore"
description = "Built-in base of plantloop explore: a small plant, one simulated day."
seed = 0
duration = "1d"
drain = "1d"

[[plant]]
id = "P1"
lines = 2
stations_per_line = 4
cycle_time = "60s"
inspection = { sample_rate = 1.0, defect_rate = 0.0005 }
machines = { mtbf = "100h", mttr = "40m" }
orders = { size = 200, material = "ASSY-100" }
maintenance = { labor_rate = 85.0, parts = [ { part = "TORQUE-HEAD", unit_cost = 412.50 }, { part = "SPINDLE-BEARING", unit_cost = 97.35 } ] }

[expect]
invariants = ["all"]
slo = { critical_p99 = "5s", transactional_p99 = "2m" }
"#;
    Scenario::from_str(text, "(built-in explore base)").expect("the built-in base is valid")
}

/// Which part of a seed range this runner takes (`--shard K/M`, 1-based `K`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This runner's shard, 1..=count.
    pub index: u64,
    /// Number of shards.
    pub count: u64,
}

impl Shard {
    /// Parses `K/M` with 1 ≤ K ≤ M.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let (k, m) = s
            .split_once('/')
            .ok_or_else(|| format!("expected K/M (like 2/4), got {s:?}"))?;
        let index: u64 = k
            .trim()
            .parse()
            .map_err(|_| format!("shard index {k:?} is not a positive integer"))?;
        let count: u64 = m
            .trim()
            .parse()
            .map_err(|_| format!("shard count {m:?} is not a positive integer"))?;
        if count == 0 || index == 0 || index > count {
            return Err(format!("shard {index}/{count}: need 1 <= K <= M"));
        }
        Ok(Shard { index, count })
    }

    /// This shard's contiguous part of the `n` seeds from `start`: the shards of one range cover it
    /// exactly once.
    pub fn range(&self, start: u64, n: u64) -> Range<u64> {
        let cut = |k: u64| start + ((n as u128 * k as u128) / self.count as u128) as u64;
        cut(self.index - 1)..cut(self.index)
    }
}

// ---- variation ----------------------------------------------------------------------------------

fn pick<T: Copy>(rng: &mut SimRng, items: &[T]) -> T {
    items[rng.below(items.len() as u64) as usize]
}

/// A uniform integer in `lo..=hi`.
fn between(rng: &mut SimRng, lo: u64, hi: u64) -> u64 {
    lo + rng.below(hi - lo + 1)
}

/// A duration in `lo..=hi`, whole milliseconds (so it writes and reads back exactly).
fn dur_between(rng: &mut SimRng, lo: Duration, hi: Duration) -> Duration {
    Duration::from_millis(between(
        rng,
        lo.as_millis(),
        hi.as_millis().max(lo.as_millis()),
    ))
}

/// A duration spread log-uniformly over `lo..=hi`: short and long both common. A `hi` below `lo`
/// (a base shorter than the range a knob wants) gives `lo`.
fn dur_log(rng: &mut SimRng, lo: Duration, hi: Duration) -> Duration {
    let hi = hi.max(lo);
    let (a, b) = (lo.as_millis().max(1) as f64, hi.as_millis().max(1) as f64);
    let ms = (a.ln() + rng.uniform() * (b.ln() - a.ln())).exp();
    Duration::from_millis((ms as u64).clamp(lo.as_millis(), hi.as_millis()))
}

/// A probability in `lo..hi`, rounded to 1/1000 (so files stay readable).
fn prob(rng: &mut SimRng, lo: f64, hi: f64) -> f64 {
    ((lo + rng.uniform() * (hi - lo)) * 1000.0).round() / 1000.0
}

/// `a - b`, zero if `b` is longer.
fn minus(a: Duration, b: Duration) -> Duration {
    Duration::from_micros(a.as_micros().saturating_sub(b.as_micros()))
}

/// A window inside `[0, duration)`, at most `max` long.
fn window(rng: &mut SimRng, duration: Duration, max: Duration) -> Window {
    let start = dur_between(
        rng,
        Duration::ZERO,
        minus(duration, Duration::from_secs(60)),
    );
    let room = minus(duration, start);
    let length = dur_log(rng, Duration::from_secs(1), max.min(room));
    Window {
        start: Instant::ZERO + start,
        length,
    }
}

/// The latency objective of a variation: the base objective plus the faults' total window length
/// and [`SLO_FAULT_SLACK`]; critical and transactional only.
pub fn fault_tolerant_slo(base: &Slo, faults: &[Fault]) -> Slo {
    let faulted = faults
        .iter()
        .map(|f| match f {
            Fault::EndpointLatency {
                active, latency, ..
            } => active.length + latency.saturating_mul(2),
            Fault::Reorder { active, window, .. } => active.length + *window,
            f => f.window().length,
        })
        .fold(Duration::ZERO, |a, b| a + b);
    let allowance = if faults.is_empty() {
        Duration::ZERO
    } else {
        faulted + SLO_FAULT_SLACK
    };
    Slo {
        critical_p99: base.critical_p99.map(|d| d + allowance),
        transactional_p99: base.transactional_p99.map(|d| d + allowance),
        bulk_p99: None,
    }
}

/// The variation of `base` for `seed`: a pure function of the two.
pub fn vary(base: &Scenario, seed: u64) -> Scenario {
    let tree = SeedTree::new(seed).child("explore/vary");
    let mut rng = tree.derive("knobs");
    let duration = base.duration;
    let template = &base.plants[0];

    // Topology.
    let plants_max = (base.plants.len() + 1).min(VARY_PLANTS_MAX) as u64;
    let n_plants = between(&mut rng, 1, plants_max) as usize;
    let mut plants = Vec::with_capacity(n_plants);
    for i in 0..n_plants {
        let t = base.plants.get(i).unwrap_or(template);
        let id = if i < base.plants.len() {
            t.id.clone()
        } else {
            // `PX<n>`, from n = i + 1 up to the first id no plant of the base or this variation
            // has (a base may itself be a variation with PX plants).
            (i + 1..)
                .map(|n| PlantId::new(format!("PX{n}")).expect("valid plant id"))
                .find(|id| {
                    !base.plants.iter().any(|p| p.id == *id)
                        && !plants.iter().any(|p: &PlantSpec| p.id == *id)
                })
                .expect("a free plant id")
        };
        let cycle_ms = t.cycle_time.as_millis() as f64 * (0.5 + 1.5 * rng.uniform());
        let machines = rng.bernoulli(0.75).then(|| Machines {
            mtbf: dur_log(
                &mut rng,
                Duration::from_hours(12),
                Duration::from_hours(500),
            ),
            mttr: dur_log(&mut rng, Duration::from_mins(5), Duration::from_hours(3)),
        });
        let mut parts = t.maintenance.parts.clone();
        if parts.is_empty() || rng.bernoulli(0.3) {
            parts.push(PartCost {
                part: PartId::new(format!("SPARE-{}", rng.below(100))).expect("valid part"),
                unit_cost: Money::from_cents(between(&mut rng, 1, 200_000) as i64),
            });
            parts.dedup_by(|a, b| a.part == b.part);
        }
        plants.push(PlantSpec {
            wan: t.wan,
            id,
            lines: between(&mut rng, 1, VARY_LINES_MAX.min(t.lines * 2).max(1) as u64) as u32,
            stations_per_line: between(
                &mut rng,
                2.min(t.stations_per_line) as u64,
                VARY_STATIONS_MAX.min(t.stations_per_line * 2).max(2) as u64,
            ) as u32,
            cycle_time: Duration::from_millis((cycle_ms as u64).max(1_000)),
            inspection: Inspection {
                sample_rate: if rng.bernoulli(0.8) {
                    1.0
                } else {
                    prob(&mut rng, 0.2, 1.0)
                },
                defect_rate: prob(&mut rng, 0.0, 0.003),
            },
            machines,
            orders: Orders {
                size: between(&mut rng, 20, 1_000) as u32,
                material: t.orders.material.clone(),
            },
            maintenance: Maintenance {
                labor_rate: Money::from_cents(between(&mut rng, 0, 20_000) as i64),
                parts,
            },
        });
    }
    let stations: Vec<StationId> = plants.iter().flat_map(|p| p.station_ids()).collect();
    let plant_ids: Vec<PlantId> = plants.iter().map(|p| p.id.clone()).collect();

    // Drifts: the base's that still have a station, plus random ones.
    let mut drifts: Vec<Drift> = base
        .drifts
        .iter()
        .filter(|d| stations.contains(&d.station))
        .cloned()
        .collect();
    for _ in 0..between(&mut rng, 0, VARY_DRIFTS_MAX) {
        drifts.push(Drift {
            station: pick(&mut rng, &stations.iter().collect::<Vec<_>>()).clone(),
            at: Instant::ZERO
                + dur_between(
                    &mut rng,
                    Duration::ZERO,
                    Duration::from_micros(duration.as_micros() * 4 / 5),
                ),
            defect_rate: prob(&mut rng, 0.1, 0.7),
        });
    }

    // Personalities.
    let mut personality = || {
        if rng.bernoulli(0.5) {
            Personality::Modern
        } else {
            pick(&mut rng, &Personality::ALL)
        }
    };
    let systems = Systems {
        erp: personality(),
        qms: personality(),
        cmms: personality(),
        mes: personality(),
    };

    // Faults: the base's that still apply, plus a swarm mix.
    let mut frng = tree.derive("faults");
    let mut faults: Vec<Fault> = base
        .faults
        .iter()
        .filter(|f| f.plant().is_none_or(|p| plant_ids.contains(p)))
        .filter(|_| frng.bernoulli(0.5))
        .cloned()
        .collect();
    let systems_all = [System::Erp, System::Qms, System::Cmms, System::Mes];
    for kind in 0..crate::scenario::FAULT_KINDS.len() {
        if !frng.bernoulli(VARY_FAULT_KIND_P) {
            continue;
        }
        for _ in 0..between(&mut frng, 1, VARY_FAULTS_PER_KIND_MAX) {
            let system = pick(&mut frng, &systems_all);
            let plant = pick(&mut frng, &plant_ids.iter().collect::<Vec<_>>()).clone();
            let active = window(&mut frng, duration, VARY_WINDOW_MAX);
            faults.push(match kind {
                0 => Fault::WanOutage { plant, active },
                1 => Fault::EndpointErrors {
                    system,
                    active,
                    rate: prob(&mut frng, 0.05, 0.7),
                },
                2 => Fault::EndpointOutage { system, active },
                3 => Fault::EndpointThrottle {
                    system,
                    active,
                    limit_per_s: between(&mut frng, 1, 20) as u32,
                },
                4 => Fault::EndpointLatency {
                    system,
                    active,
                    latency: dur_log(
                        &mut frng,
                        Duration::from_millis(20),
                        Duration::from_secs(10),
                    ),
                },
                5 => Fault::DuplicateDelivery {
                    system,
                    active,
                    probability: prob(&mut frng, 0.05, 0.6),
                },
                6 => Fault::Reorder {
                    system,
                    active,
                    window: dur_log(
                        &mut frng,
                        Duration::from_millis(100),
                        Duration::from_mins(5),
                    ),
                },
                7 => {
                    let downtime =
                        dur_log(&mut frng, Duration::from_secs(1), Duration::from_mins(30));
                    let at = dur_between(&mut frng, Duration::ZERO, minus(duration, downtime));
                    Fault::CoreCrash {
                        at: Instant::ZERO + at,
                        downtime,
                    }
                }
                _ => {
                    let over = dur_log(&mut frng, Duration::from_secs(10), Duration::from_mins(30));
                    let at = dur_between(&mut frng, Duration::ZERO, minus(duration, over));
                    Fault::AlarmStorm {
                        plant,
                        at: Instant::ZERO + at,
                        events: between(&mut frng, 10, VARY_STORM_EVENTS_MAX) as u32,
                        over,
                    }
                }
            });
        }
    }

    // Master data: the base's, plus up to two random releases.
    let mut mrng = tree.derive("masterdata");
    let mut masterdata = base.masterdata.clone();
    for _ in 0..between(&mut mrng, 0, 2) {
        masterdata.push(MasterData {
            at: Instant::ZERO
                + dur_between(
                    &mut mrng,
                    Duration::ZERO,
                    minus(duration, Duration::from_secs(1)),
                ),
            kind: pick(
                &mut mrng,
                &[
                    MasterDataKind::Material,
                    MasterDataKind::Asset,
                    MasterDataKind::InspectionSpec,
                ],
            ),
            count: between(&mut mrng, 1, VARY_MASTERDATA_COUNT_MAX) as u32,
        });
    }

    let mut systems = systems;
    stress(
        &tree,
        duration,
        &mut plants,
        &mut systems,
        &mut drifts,
        &mut faults,
    );
    let slo = fault_tolerant_slo(&base.expect.slo, &faults);
    Scenario {
        name: format!("{}-seed-{seed}", base.name),
        description: format!(
            "Variation of {} for seed {seed} (plantloop explore).",
            base.name
        ),
        seed,
        duration,
        drain: base.drain,
        systems,
        network: base.network,
        service: base.service,
        plants,
        drifts,
        faults,
        masterdata,
        expect: Expect {
            invariants: base.expect.invariants.clone(),
            slo,
            min: Default::default(),
            // A variation's load differs from the base's: no floor holds for it.
            latency_min: Default::default(),
        },
    }
}

/// A window that starts at `start` (clamped inside the run) and lasts `length` at most, ending
/// before `duration`.
fn window_at(start: Duration, length: Duration, duration: Duration) -> Window {
    let start = start.min(minus(duration, Duration::from_secs(60)));
    Window {
        start: Instant::ZERO + start,
        length: length
            .min(minus(duration, start))
            .max(Duration::from_secs(1)),
    }
}

/// The stress modes of a variation, each switched on for some seeds: the combinations where
/// workflows interleave (several drifting stations on one line, small orders, short times
/// between breakdowns, QMS and CMMS events reordered, MES and ERP failing around releases, core
/// crashes with a legacy MES, asset master data that arrives late). They draw from a stream of
/// their own, so a seed whose modes are all off varies as it did before they existed.
fn stress(
    tree: &SeedTree,
    duration: Duration,
    plants: &mut [PlantSpec],
    systems: &mut Systems,
    drifts: &mut Vec<Drift>,
    faults: &mut Vec<Fault>,
) {
    let mut rng = tree.derive("stress");
    let hours = Duration::from_hours;
    let mins = Duration::from_mins;
    if rng.bernoulli(VARY_STRESS_P) {
        // Small orders: a suspect range spans many orders.
        for p in plants.iter_mut() {
            p.orders.size = between(&mut rng, 1, 8) as u32;
        }
    }
    if rng.bernoulli(VARY_STRESS_P) {
        // Machines that break often: a new breakdown soon after a repair.
        for p in plants.iter_mut() {
            p.machines = Some(Machines {
                mtbf: dur_log(&mut rng, hours(1), hours(8)),
                mttr: dur_log(&mut rng, mins(5), hours(1)),
            });
        }
    }
    if rng.bernoulli(VARY_STRESS_P) {
        // Several drifts on one line, some at the same station: NCs that overlap in time,
        // in orders and at stations.
        let p = &plants[rng.below(plants.len() as u64) as usize];
        let line = between(&mut rng, 1, u64::from(p.lines)) as u32;
        let mut at = dur_between(
            &mut rng,
            Duration::ZERO,
            Duration::from_micros(duration.as_micros() * 3 / 5),
        );
        for _ in 0..between(&mut rng, 2, 4) {
            let station = between(&mut rng, 1, u64::from(p.stations_per_line)) as u32;
            drifts.push(Drift {
                station: p.station_id(line, station),
                at: Instant::ZERO + at.min(minus(duration, mins(1))),
                defect_rate: prob(&mut rng, 0.2, 0.8),
            });
            at = at + dur_log(&mut rng, mins(10), hours(3));
        }
    }
    if rng.bernoulli(VARY_STRESS_P) {
        // QMS and CMMS events reordered: dispositions, completions and breakdowns overtake.
        for system in [System::Qms, System::Cmms] {
            if rng.bernoulli(0.7) {
                let length = dur_log(&mut rng, hours(1), duration);
                let start = dur_between(&mut rng, Duration::ZERO, minus(duration, length));
                faults.push(Fault::Reorder {
                    system,
                    active: window_at(start, length, duration),
                    window: dur_log(&mut rng, mins(1), hours(2)),
                });
            }
        }
    }
    if rng.bernoulli(VARY_STRESS_P / 2.0) {
        // Asset master data late: CMMS's placements reach the core after the first breakdowns.
        faults.push(Fault::Reorder {
            system: System::Cmms,
            active: window_at(
                Duration::ZERO,
                dur_log(&mut rng, mins(10), hours(3)),
                duration,
            ),
            window: dur_log(&mut rng, mins(10), hours(2)),
        });
        let p = &mut plants[0];
        p.machines = Some(Machines {
            mtbf: dur_log(&mut rng, mins(30), hours(3)),
            mttr: dur_log(&mut rng, mins(5), hours(1)),
        });
    }
    if rng.bernoulli(VARY_STRESS_P / 2.0) {
        systems.mes = Personality::Legacy;
    }
    if rng.bernoulli(VARY_STRESS_P) {
        // MES and ERP failing, and the core crashing, where releases happen: a few hours after
        // each drift starts (NC, repair, disposition).
        let starts: Vec<Duration> = drifts
            .iter()
            .map(|d| d.at.saturating_since(Instant::ZERO))
            .collect();
        for at in starts {
            let start = at + dur_between(&mut rng, mins(30), hours(4));
            let active = window_at(start, dur_log(&mut rng, mins(1), hours(2)), duration);
            let system = if rng.bernoulli(0.75) {
                System::Mes
            } else {
                System::Erp
            };
            faults.push(if rng.bernoulli(0.6) {
                Fault::EndpointErrors {
                    system,
                    active,
                    rate: prob(&mut rng, 0.3, 0.95),
                }
            } else {
                Fault::EndpointOutage { system, active }
            });
            if rng.bernoulli(0.5) {
                let at = at + dur_between(&mut rng, mins(30), hours(5));
                let downtime = dur_log(&mut rng, Duration::from_secs(1), mins(10))
                    .min(minus(duration, Duration::from_secs(1)));
                faults.push(Fault::CoreCrash {
                    at: Instant::ZERO + at.min(minus(duration, downtime)),
                    downtime,
                });
            }
        }
    }
}

// ---- running ------------------------------------------------------------------------------------

/// The ids of the invariants a report failed, in report order (`expect.min` shortfalls as `min`).
pub fn failed_ids(r: &Report) -> Vec<String> {
    let mut ids: Vec<String> = r
        .invariants
        .iter()
        .filter(|i| !i.passed)
        .map(|i| i.id.clone())
        .collect();
    if !r.shortfalls.is_empty() {
        ids.push("min".into());
    }
    ids
}

/// Runs `s` with `seed` (no trace, no progress).
pub fn run_seed(s: &Scenario, seed: u64) -> Report {
    run(
        s.clone(),
        RunOptions {
            seed: Some(seed),
            without_breakdowns: true,
            ..RunOptions::default()
        },
    )
}

/// One change [`shrink`] may try.
fn shrink_candidates(s: &Scenario) -> Vec<Scenario> {
    let mut out = Vec::new();
    let with = |f: &dyn Fn(&mut Scenario)| {
        let mut c = s.clone();
        f(&mut c);
        c
    };
    // Remove one element of each list.
    for i in 0..s.faults.len() {
        out.push(with(&|c| {
            c.faults.remove(i);
        }));
    }
    for i in 0..s.drifts.len() {
        out.push(with(&|c| {
            c.drifts.remove(i);
        }));
    }
    for i in 0..s.masterdata.len() {
        out.push(with(&|c| {
            c.masterdata.remove(i);
        }));
    }
    // Fewer plants, lines, stations.
    if s.plants.len() > 1 {
        for i in 0..s.plants.len() {
            out.push(with(&|c| {
                let gone = c.plants.remove(i).id;
                c.faults.retain(|f| f.plant() != Some(&gone));
                retain_existing_stations(c);
            }));
        }
    }
    for i in 0..s.plants.len() {
        let p = &s.plants[i];
        for lines in [1, p.lines / 2, p.lines.saturating_sub(1)] {
            if lines >= 1 && lines < p.lines {
                out.push(with(&|c| {
                    c.plants[i].lines = lines;
                    retain_existing_stations(c);
                }));
            }
        }
        for n in [
            1,
            p.stations_per_line / 2,
            p.stations_per_line.saturating_sub(1),
        ] {
            if n >= 1 && n < p.stations_per_line {
                out.push(with(&|c| {
                    c.plants[i].stations_per_line = n;
                    retain_existing_stations(c);
                }));
            }
        }
        if p.machines.is_some() {
            out.push(with(&|c| c.plants[i].machines = None));
        }
    }
    // Shorter duration.
    if s.duration >= Duration::from_mins(20) {
        let half = Duration::from_millis(s.duration.as_millis() / 2);
        out.push(with(&|c| cut_duration(c, half)));
    }
    // Milder faults and smaller releases.
    for i in 0..s.masterdata.len() {
        if s.masterdata[i].count > 1 {
            out.push(with(&|c| c.masterdata[i].count /= 2));
        }
    }
    for i in 0..s.faults.len() {
        match s.faults[i] {
            Fault::AlarmStorm { events, .. } if events > 1 => out.push(with(&|c| {
                if let Fault::AlarmStorm { events, .. } = &mut c.faults[i] {
                    *events /= 2;
                }
            })),
            _ => {}
        }
    }
    // Modern personalities.
    for sys in [System::Erp, System::Qms, System::Cmms, System::Mes] {
        if s.systems.get(sys) != Personality::Modern {
            out.push(with(&|c| {
                let p = match sys {
                    System::Erp => &mut c.systems.erp,
                    System::Qms => &mut c.systems.qms,
                    System::Cmms => &mut c.systems.cmms,
                    System::Mes => &mut c.systems.mes,
                };
                *p = Personality::Modern;
            }));
        }
    }
    out
}

fn retain_existing_stations(c: &mut Scenario) {
    let plants = c.plants.clone();
    c.drifts
        .retain(|d| plants.iter().any(|p| p.has_station(d.station.as_str())));
}

/// Shortens `c` to `d`, dropping what starts after it and clipping windows to it.
fn cut_duration(c: &mut Scenario, d: Duration) {
    let end = Instant::ZERO + d;
    c.duration = d;
    c.drifts.retain(|x| x.at < end);
    c.masterdata.retain(|m| m.at < end);
    c.faults.retain_mut(|f| match f {
        Fault::CoreCrash { at, downtime } => *at + *downtime <= end,
        Fault::AlarmStorm { at, over, .. } => *at + *over <= end,
        Fault::WanOutage { active, .. }
        | Fault::EndpointErrors { active, .. }
        | Fault::EndpointOutage { active, .. }
        | Fault::EndpointThrottle { active, .. }
        | Fault::EndpointLatency { active, .. }
        | Fault::DuplicateDelivery { active, .. }
        | Fault::Reorder { active, .. } => {
            if active.start >= end {
                return false;
            }
            active.length = active.length.min(end.saturating_since(active.start));
            true
        }
    });
}

/// The size of a scenario for shrinking: smaller is simpler.
pub fn complexity(s: &Scenario) -> u64 {
    let stations: u64 = s
        .plants
        .iter()
        .map(|p| u64::from(p.lines * p.stations_per_line))
        .sum();
    let personalities = [System::Erp, System::Qms, System::Cmms, System::Mes]
        .iter()
        .filter(|x| s.systems.get(**x) != Personality::Modern)
        .count() as u64;
    s.faults.len() as u64 * 100
        + s.drifts.len() as u64 * 100
        + s.masterdata.len() as u64 * 100
        + s.plants.len() as u64 * 100
        + stations * 10
        + personalities * 10
        + s.duration.as_secs() / 3600
}

/// Shrinks `s`, which fails `target` with `seed`, greedily: keeps each change under which
/// `target` still fails, until none does or `runs_max` runs are spent. Returns the smallest
/// failing scenario found and the runs spent.
pub fn shrink(s: &Scenario, seed: u64, target: &str, runs_max: u32) -> (Scenario, u32) {
    let fails = |c: &Scenario| {
        c.validate().is_ok() && failed_ids(&run_seed(c, seed)).iter().any(|i| i == target)
    };
    shrink_with(s, runs_max, fails)
}

/// [`shrink`] with any failure predicate.
pub fn shrink_with(
    s: &Scenario,
    runs_max: u32,
    mut fails: impl FnMut(&Scenario) -> bool,
) -> (Scenario, u32) {
    let mut cur = s.clone();
    let mut runs = 0;
    'outer: loop {
        for c in shrink_candidates(&cur) {
            if runs >= runs_max {
                break 'outer;
            }
            runs += 1;
            if fails(&c) {
                cur = c;
                continue 'outer;
            }
        }
        break;
    }
    (cur, runs)
}

/// How to explore.
#[derive(Clone, Debug)]
pub struct ExploreOptions {
    /// First seed.
    pub start: u64,
    /// Number of seeds (before sharding).
    pub seeds: u64,
    /// This runner's shard of the seed range.
    pub shard: Option<Shard>,
    /// Worker threads, at least 1.
    pub jobs: usize,
    /// Shrink failures (else the unshrunk variation is the reproducer).
    pub shrink: bool,
    /// Run budget of one shrink.
    pub shrink_runs_max: u32,
}

impl Default for ExploreOptions {
    fn default() -> Self {
        ExploreOptions {
            start: 0,
            seeds: 100,
            shard: None,
            jobs: 1,
            shrink: true,
            shrink_runs_max: SHRINK_RUNS_MAX,
        }
    }
}

/// One failing seed.
#[derive(Clone, Debug)]
pub struct ExploreFailure {
    /// The seed (variation and run).
    pub seed: u64,
    /// Failed invariant ids of the variation, in report order.
    pub failed: Vec<String>,
    /// The first violation of the first failed invariant, for the summary.
    pub first_violation: Option<serde_json::Value>,
    /// The variation as generated.
    pub scenario: Scenario,
    /// The shrunk reproducer (equal to `scenario` when shrinking is off or found nothing smaller).
    pub minimal: Scenario,
    /// Runs the shrink spent.
    pub shrink_runs: u32,
}

/// What an exploration found.
#[derive(Clone, Debug, Default)]
pub struct ExploreSummary {
    /// The seeds this runner ran.
    pub seeds: Range<u64>,
    /// Seeds whose variation passed.
    pub passed: u64,
    /// Failures in seed order.
    pub failures: Vec<ExploreFailure>,
    /// Kernel events over all runs (not shrink runs).
    pub events: u64,
}

/// Progress of an exploration: seeds done, seeds in all, failures so far.
#[derive(Clone, Copy, Debug)]
pub struct ExploreProgress {
    pub done: u64,
    pub total: u64,
    pub failed: u64,
}

/// Explores the seeds of `opts` around `base` on `opts.jobs` threads, calling `progress` after each
/// seed (from worker threads).
pub fn explore(
    base: &Scenario,
    opts: &ExploreOptions,
    progress: &(dyn Fn(ExploreProgress) + Sync),
) -> ExploreSummary {
    let seeds = match opts.shard {
        Some(s) => s.range(opts.start, opts.seeds),
        None => opts.start..opts.start.saturating_add(opts.seeds),
    };
    let total = seeds.end - seeds.start;
    let next = AtomicU64::new(seeds.start);
    let done = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let passed = AtomicU64::new(0);
    let events = AtomicU64::new(0);
    let failures = Mutex::new(Vec::new());
    let jobs = opts.jobs.max(1).min(total.max(1) as usize);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end {
                        break;
                    }
                    let scenario = vary(base, seed);
                    let report = run_seed(&scenario, seed);
                    events.fetch_add(report.sim.events, Ordering::Relaxed);
                    let ids = failed_ids(&report);
                    if ids.is_empty() {
                        passed.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                        let first_violation = report
                            .invariants
                            .iter()
                            .find(|i| !i.passed)
                            .and_then(|i| i.violations.first().cloned());
                        let (minimal, shrink_runs) = if opts.shrink {
                            shrink(&scenario, seed, &ids[0], opts.shrink_runs_max)
                        } else {
                            (scenario.clone(), 0)
                        };
                        failures.lock().expect("no worker panics holding it").push(
                            ExploreFailure {
                                seed,
                                failed: ids,
                                first_violation,
                                scenario,
                                minimal,
                                shrink_runs,
                            },
                        );
                    }
                    let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                    progress(ExploreProgress {
                        done: d,
                        total,
                        failed: failed.load(Ordering::Relaxed),
                    });
                }
            });
        }
    });
    let mut failures = failures.into_inner().expect("no worker panicked");
    failures.sort_by_key(|f| f.seed);
    ExploreSummary {
        seeds,
        passed: passed.into_inner(),
        failures,
        events: events.into_inner(),
    }
}

/// proptest strategies of scenarios (feature `proptest`): a variation per seed, with the topology,
/// the fault mix and the duration as separate values so that proptest shrinks them towards a
/// small plant with few faults.
#[cfg(feature = "proptest")]
pub mod strategy {
    use super::*;
    use proptest::prelude::*;

    /// Scenarios around `base`: each a valid variation (see [`vary`]), cut down to at most the
    /// drawn number of plants, lines and stations, only the drawn fault kinds, and at most the
    /// drawn duration.
    pub fn scenarios(base: Scenario) -> impl Strategy<Value = Scenario> {
        let kinds = crate::scenario::FAULT_KINDS.len();
        (
            0..=crate::scenario::SEED_MAX,
            1..=VARY_PLANTS_MAX,
            1..=VARY_LINES_MAX,
            1..=VARY_STATIONS_MAX,
            0u32..(1 << kinds),
            1u64..=base.duration.as_secs().div_ceil(3600).max(1),
        )
            .prop_map(move |(seed, plants, lines, stations, mask, hours)| {
                let mut s = vary(&base, seed);
                s.plants.truncate(plants);
                for p in &mut s.plants {
                    p.lines = p.lines.min(lines);
                    p.stations_per_line = p.stations_per_line.min(stations);
                }
                let ids: Vec<PlantId> = s.plants.iter().map(|p| p.id.clone()).collect();
                s.faults.retain(|f| {
                    let kind = crate::scenario::FAULT_KINDS
                        .iter()
                        .position(|k| *k == f.kind())
                        .expect("a known kind");
                    mask & (1 << kind) != 0 && f.plant().is_none_or(|p| ids.contains(p))
                });
                retain_existing_stations(&mut s);
                let d = Duration::from_hours(hours).min(s.duration);
                cut_duration(&mut s, d);
                s.expect.slo = fault_tolerant_slo(&base.expect.slo, &s.faults);
                s
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_range_once() {
        for m in 1..7u64 {
            let mut all = Vec::new();
            for k in 1..=m {
                all.extend(Shard { index: k, count: m }.range(10, 23));
            }
            assert_eq!(all, (10..33).collect::<Vec<_>>(), "m = {m}");
        }
        assert!(Shard::parse("0/3").is_err());
        assert!(Shard::parse("4/3").is_err());
        assert!(Shard::parse("3").is_err());
        assert_eq!(Shard::parse("2/3"), Ok(Shard { index: 2, count: 3 }));
    }

    #[test]
    fn a_seed_is_judged_as_a_full_run_judges_it() {
        // Explore skips the latency breakdowns; verdicts, class figures and hash stay the same.
        let s = vary(&default_base(), 7);
        let quick = run_seed(&s, 7);
        let full = crate::runner::run(
            s,
            RunOptions {
                seed: Some(7),
                ..RunOptions::default()
            },
        );
        assert!(quick.latency_by_plant.is_empty() && quick.latency_by_workflow.is_empty());
        assert!(!full.latency_by_plant.is_empty() && !full.latency_by_workflow.is_empty());
        assert_eq!(quick.latency, full.latency);
        assert_eq!(quick.invariants, full.invariants);
        assert_eq!(quick.trace_hash, full.trace_hash);
    }

    #[test]
    fn variations_are_valid_and_a_function_of_the_seed() {
        let base = default_base();
        for seed in 0..200 {
            let v = vary(&base, seed);
            if let Err(e) = v.validate() {
                panic!("seed {seed}: {e}\n{}", v.to_toml_string());
            }
            assert_eq!(v, vary(&base, seed));
        }
    }

    #[test]
    fn variations_of_a_short_base_are_valid() {
        // A base shorter than the ranges the stress modes draw from (an hour of reordering, say),
        // whose plant is named like the plants variations add.
        let mut base = default_base();
        base.duration = Duration::from_mins(45);
        base.plants[0].id = PlantId::new("PX2").expect("valid");
        base.drifts.clear();
        for seed in 0..300 {
            let v = vary(&base, seed);
            if let Err(e) = v.validate() {
                panic!("seed {seed}: {e}\n{}", v.to_toml_string());
            }
        }
    }

    #[test]
    fn seeds_differ_in_their_fault_mix() {
        let base = default_base();
        let mixes: std::collections::BTreeSet<Vec<&str>> = (0..50)
            .map(|s| {
                let mut k: Vec<&str> = vary(&base, s).faults.iter().map(Fault::kind).collect();
                k.sort();
                k.dedup();
                k
            })
            .collect();
        assert!(mixes.len() > 20, "{} distinct mixes", mixes.len());
    }

    #[test]
    fn shrink_keeps_only_what_the_failure_needs() {
        // A failure that needs exactly one endpoint-outage on QMS: everything else goes.
        let base = default_base();
        let s = (0..)
            .map(|seed| vary(&base, seed))
            .find(|v| {
                v.faults.len() >= 3
                    && v.faults
                        .iter()
                        .any(|f| matches!(f, Fault::EndpointOutage { .. }))
            })
            .expect("some seed has an outage among other faults");
        let needs = |c: &Scenario| {
            c.faults
                .iter()
                .any(|f| matches!(f, Fault::EndpointOutage { .. }))
        };
        let (min, runs) = shrink_with(&s, 1_000, needs);
        assert!(runs > 0);
        assert_eq!(min.faults.len(), 1, "{}", min.to_toml_string());
        assert!(needs(&min));
        assert!(min.drifts.is_empty() && min.masterdata.is_empty());
        assert_eq!(min.plants.len(), 1);
        assert_eq!(min.plants[0].lines * min.plants[0].stations_per_line, 1);
        assert!(min.validate().is_ok());
    }
}
