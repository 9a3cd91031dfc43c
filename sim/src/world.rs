//! The simulation driver: one deterministic world in which the plant model, the mock systems of
//! record and the real integration engine (behind its journal) exchange events and calls over
//! modelled links with latency and faults.
//!
//! Everything advances through the kernel's one event queue. Time, randomness (streams derived from
//! the run's seed) and I/O reach the engine only from here.
//!
//! Topology: MES sits at each plant and reaches the core over that plant's WAN link; its events go
//! through the plant's edge agent, which buffers them durably while the link is down and forwards
//! them in order on reconnect. ERP, QMS and CMMS sit beside the core.

use crate::kernel::{EventId, Kernel, SeedTree, SimRng};
use crate::plant::{Plant, RunningOrder, takt};
use crate::scenario::{self, Scenario};
use plantloop_core::audit::AuditRecord;
use plantloop_core::call::{Call, CallId, EventRef, IdempotencyKey, Outcome, Request};
use plantloop_core::durable::DurableEngine;
use plantloop_core::engine::{Ack, Config, Input};
use plantloop_core::event::Event;
use plantloop_core::journal::MemoryJournal;
use plantloop_core::model::*;
use plantloop_core::time::{Duration, Instant};
use plantloop_mocks::Personality;
use plantloop_mocks::cmms::Cmms;
use plantloop_mocks::erp::Erp;
use plantloop_mocks::fault::{FaultAction, FaultInjector, FaultProfile, FaultRule};
use plantloop_mocks::mes::{Mes, MesConfig};
use plantloop_mocks::qms::{NcRule, Qms};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rustc_hash::FxHashMap;
use std::collections::VecDeque;

/// One-way latency between the core and a system beside it.
const LAN_LATENCY: Duration = Duration::from_millis(2);
/// One-way latency of a plant's WAN link.
const WAN_LATENCY: Duration = Duration::from_millis(40);
/// Service time of a system of record per call.
const SERVICE_TIME: Duration = Duration::from_millis(15);
/// A sender that got no acknowledgement tries again after this (doubling, capped).
const RESEND_BASE: Duration = Duration::from_secs(2);
const RESEND_CAP: Duration = Duration::from_secs(60);
/// Events one plant's edge agent buffers at most during a WAN outage; beyond it the edge refuses
/// and the source keeps the event and offers it again after [`RESEND_BASE`].
const EDGE_BUFFER_EVENTS_MAX: usize = 2_000_000;
/// Edge agents forward buffered events this far apart, in order.
const EDGE_SPACING: Duration = Duration::from_millis(1);
/// The characteristic every station inspects.
pub const CHARACTERISTIC: &str = "torque";
/// Journal records between engine snapshots.
const SNAPSHOT_EVERY: u64 = 50_000;

/// Kernel events.
#[derive(Debug)]
enum Ev {
    Takt(u32),
    Breakdown(u32),
    DriftStart(u32),
    TechArrives(Box<WorkOrderId>),
    RepairDone(Box<WorkOrderId>),
    Approve(Box<NcId>),
    /// A source event reaches the core's ingress.
    Deliver(u64),
    /// A call reaches its target.
    CallArrives(u64),
    /// A reply reaches the core.
    ReplyArrives(Box<(CallId, u32, Outcome)>),
    EngineTimer,
    Wan {
        plant: u32,
        down: bool,
    },
    CoreCrash {
        downtime: Duration,
    },
    CoreRestart,
    MasterData(u32),
    /// The end of `duration`: plants go idle, MES confirms its open batches.
    EndOfDuration,
    Alarm {
        storm: u32,
        left: u32,
    },
}

/// A fault injected while the simulation runs (from the live view), recorded in the trace. The
/// kinds and their fields mirror the scenario's `[[fault]]` kinds of the same names.
#[derive(Clone, Debug, PartialEq)]
pub enum Injected {
    WanOutage { plant: usize, duration: Duration },
    CoreCrash { downtime: Duration },
    EndpointOutage { system: System, duration: Duration },
}

/// A source event on its way to the core.
#[derive(Debug)]
struct Flight {
    event: Event,
    /// The plant whose edge it goes through (MES events), if any.
    plant: Option<usize>,
    attempts: u32,
}

/// What the world remembers of every event a source system emitted: ground truth for
/// `no-lost-events` and for latencies.
#[derive(Clone, Debug)]
pub struct Emitted {
    pub at: Instant,
    pub event_type: &'static str,
    pub acked: bool,
    /// Still in an edge buffer at the end.
    pub buffered: bool,
    /// The station a breakdown, alarm or NC event is about: what it needs master data for.
    pub station: Option<StationId>,
}

/// What the world remembers of a call key: the event that started it and its class.
#[derive(Clone, Debug)]
pub struct KeyOrigin {
    pub origin: EventRef,
    pub class: LatencyClass,
    pub request: &'static str,
}

/// Counters the world keeps (the rest comes from ledgers and the engine).
#[derive(Clone, Debug, Default)]
pub struct WorldCounts {
    pub inspections: u64,
    pub core_crashes: u64,
    pub events_delivered: u64,
    /// `events_delivered` per latency class (the event's `latencyclass`), indexed by
    /// [`LatencyClass::index`]: the live view's event rates.
    pub events_delivered_by_class: [u64; 3],
    pub calls_sent: u64,
    pub calls_dropped: u64,
    pub edge_buffered_max: u64,
    pub injected_faults: u64,
}

/// Per-system knobs from `[systems]` and the faults.
struct Target {
    faults: FaultInjector,
    /// Extra outage windows injected live.
    outage_until: Instant,
}

/// The simulated world of one run.
pub struct World {
    pub scenario: Scenario,
    pub seed: u64,
    kernel: Kernel<Ev>,
    pub plant: Plant,
    pub erp: Erp,
    pub qms: Qms,
    pub cmms: Cmms,
    /// One MES per plant.
    pub mes: Vec<Mes>,
    core: Option<DurableEngine<MemoryJournal>>,
    /// The journal while the core is down.
    crashed_journal: Option<MemoryJournal>,
    engine_config: Config,
    engine_seed: u64,
    engine_timer: Option<(Instant, EventId)>,
    flights: FxHashMap<u64, Flight>,
    next_flight: u64,
    edge_buffers: Vec<VecDeque<u64>>,
    /// Deliberate defect: the edge drops events beyond this many (feature `sabotage`).
    #[cfg(feature = "sabotage")]
    edge_drop_capacity: Option<usize>,
    calls_in_transit: FxHashMap<u64, Call>,
    next_transit: u64,
    targets: [Target; 4],
    /// The audit log as the core's audit sink stored it.
    pub audit: Vec<AuditRecord>,
    pub emitted: FxHashMap<EventRef, Emitted>,
    pub key_origins: FxHashMap<IdempotencyKey, KeyOrigin>,
    /// Every production confirmation MES emitted (ground truth for `no-lost-events`).
    pub confirmations_emitted: Vec<(EventRef, ProductionConfirmation)>,
    pub counts: WorldCounts,
    rng_plant: SimRng,
    rng_net: ChaCha8Rng,
    rng_people: SimRng,
    cmms_cursor: usize,
    /// Work order → the station it is for and when the technician started.
    repairs: FxHashMap<WorkOrderId, (usize, Instant)>,
    hash: blake3::Hasher,
    trace: Option<Box<dyn std::io::Write + Send>>,
    trace_error: Option<String>,
    /// Scenario faults by start time (only when a trace is written), and how many of them the
    /// trace has recorded so far.
    fault_starts: Vec<(Instant, u32)>,
    faults_recorded: usize,
    duration_end: Instant,
    /// Faults stop at the end of `duration`.
    draining: bool,
}

/// The mock fault rules of one system from the scenario's `[[fault]]` tables.
fn fault_rules(s: &Scenario, system: System) -> Vec<FaultRule> {
    use plantloop_mocks::fault::Fault as F;
    let mut rules = Vec::new();
    for f in &s.faults {
        if f.system() != Some(system) {
            continue;
        }
        let fault = match *f {
            scenario::Fault::EndpointErrors { rate, .. } => F::EndpointErrors { rate, status: 503 },
            scenario::Fault::EndpointOutage { .. } => F::EndpointOutage,
            scenario::Fault::EndpointThrottle { limit_per_s, .. } => F::EndpointThrottle {
                limit_per_s,
                burst: None,
            },
            scenario::Fault::EndpointLatency { latency, .. } => F::EndpointLatency {
                latency: plantloop_mocks::fault::Latency::Fixed(latency),
            },
            scenario::Fault::DuplicateDelivery { probability, .. } => {
                F::DuplicateDelivery { probability }
            }
            scenario::Fault::Reorder { window, .. } => F::Reorder { window },
            _ => continue,
        };
        let w = f.window();
        rules.push(FaultRule::during(
            fault,
            w.start.saturating_since(Instant::ZERO),
            w.length,
        ));
    }
    rules
}

fn personality(p: scenario::Personality) -> Personality {
    match p {
        scenario::Personality::Modern => Personality::Modern,
        scenario::Personality::Legacy => Personality::Legacy,
        scenario::Personality::Saas => Personality::Saas,
    }
}

/// RFC 3339 time of a simulated instant, counting from 2026-01-01T00:00:00Z.
pub fn rfc3339(at: Instant) -> String {
    const EPOCH_DAYS: i64 = 20_454; // 2026-01-01 in days since 1970-01-01
    let ms = at.as_millis();
    let days = EPOCH_DAYS + (ms / 86_400_000) as i64;
    let rem = ms % 86_400_000;
    // Civil date from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1_000 % 60,
        rem % 1_000
    )
}

impl World {
    /// Builds the world of `scenario` for `seed`. `trace` receives every event that crosses the
    /// core as CloudEvents JSON Lines.
    pub fn new(
        scenario: Scenario,
        seed: u64,
        trace: Option<Box<dyn std::io::Write + Send>>,
    ) -> World {
        let seeds = SeedTree::new(seed);
        let specs: Vec<(PlantId, u32, u32)> = scenario
            .plants
            .iter()
            .map(|p| (p.id.clone(), p.lines, p.stations_per_line))
            .collect();
        let plant = Plant::build(&specs);
        let sys = &scenario.systems;
        let mut engine_config = Config::default();
        for (s, p) in [
            (System::Erp, sys.erp),
            (System::Qms, sys.qms),
            (System::Cmms, sys.cmms),
            (System::Mes, sys.mes),
        ] {
            engine_config.target_mut(s).honours_idempotency_key =
                personality(p) != Personality::Legacy;
        }
        let mes: Vec<Mes> = plant
            .plants
            .iter()
            .map(|pi| {
                let stations: Vec<StationId> = plant.lines[pi.lines.clone()]
                    .iter()
                    .flat_map(|l| {
                        plant.stations[l.stations.clone()]
                            .iter()
                            .map(|s| s.id.clone())
                    })
                    .collect();
                Mes::new(
                    personality(sys.mes),
                    pi.id.clone(),
                    MesConfig::default(),
                    stations,
                )
            })
            .collect();
        let targets = System::ALL.map(|s| Target {
            faults: FaultInjector::new(FaultProfile::new(fault_rules(&scenario, s))),
            outage_until: Instant::ZERO,
        });
        let engine_seed = u64::from_le_bytes(
            seeds.derive_seed("engine")[..8]
                .try_into()
                .expect("8 bytes"),
        );
        let (core, _) = DurableEngine::open(
            MemoryJournal::new(),
            engine_config.clone(),
            engine_seed,
            SNAPSHOT_EVERY,
        )
        .expect("a fresh in-memory journal opens");
        let duration_end = Instant::ZERO + scenario.duration;
        let edge_buffers = vec![VecDeque::new(); plant.plants.len()];
        World {
            seed,
            kernel: Kernel::with_queue_len_max(50_000_000),
            erp: Erp::new(personality(sys.erp)),
            qms: Qms::new(personality(sys.qms), NcRule::default()),
            cmms: Cmms::new(personality(sys.cmms)),
            mes,
            core: Some(core),
            crashed_journal: None,
            engine_config,
            engine_seed,
            engine_timer: None,
            flights: FxHashMap::default(),
            next_flight: 1,
            edge_buffers,
            #[cfg(feature = "sabotage")]
            edge_drop_capacity: None,
            calls_in_transit: FxHashMap::default(),
            next_transit: 1,
            targets,
            audit: Vec::new(),
            emitted: FxHashMap::default(),
            key_origins: FxHashMap::default(),
            confirmations_emitted: Vec::new(),
            counts: WorldCounts::default(),
            rng_plant: seeds.derive("plant"),
            rng_net: ChaCha8Rng::from_seed(seeds.derive_seed("network")),
            rng_people: seeds.derive("people"),
            cmms_cursor: 0,
            repairs: FxHashMap::default(),
            hash: blake3::Hasher::new(),
            trace,
            trace_error: None,
            fault_starts: Vec::new(),
            faults_recorded: 0,
            duration_end,
            draining: false,
            plant,
            scenario,
        }
    }

    // ---- public driving API ----------------------------------------------------------------------

    /// Turns on a deliberate defect (feature `sabotage`, for the checker's own tests). Call it
    /// before [`World::start`].
    #[cfg(feature = "sabotage")]
    pub fn sabotage(&mut self, defect: crate::sabotage::Defect) {
        use crate::sabotage::Defect;
        match defect {
            Defect::Engine(d) => {
                self.engine_config.defect = Some(d);
                let (core, _) = DurableEngine::open(
                    MemoryJournal::new(),
                    self.engine_config.clone(),
                    self.engine_seed,
                    SNAPSHOT_EVERY,
                )
                .expect("a fresh in-memory journal opens");
                self.core = Some(core);
            }
            Defect::MesStopNotEnforced => {
                for m in &mut self.mes {
                    m.sabotage_stop_not_enforced();
                }
            }
            Defect::EdgeDropsWhenFull { capacity } => self.edge_drop_capacity = Some(capacity),
        }
    }

    /// Schedules the run's opening: master data, first orders, drifts, faults, breakdowns.
    pub fn start(&mut self) {
        let now = Instant::ZERO;
        // Master data the core needs to enrich events: asset placements, materials, specs.
        let placements: Vec<AssetPlacement> = self
            .plant
            .stations
            .iter()
            .map(|s| AssetPlacement {
                asset: s.asset.clone(),
                station: s.id.clone(),
                line: self.plant.lines[s.line].id.clone(),
                plant: self.plant.plants[s.plant].id.clone(),
            })
            .collect();
        self.cmms.publish_assets(now, placements);
        let mut materials: Vec<MaterialId> = self
            .scenario
            .plants
            .iter()
            .map(|p| p.orders.material.clone())
            .collect();
        materials.sort();
        materials.dedup();
        for m in materials {
            self.erp.publish_material(
                now,
                Material {
                    id: m.clone(),
                    description: format!("assembly {m}"),
                    unit: "EA".into(),
                },
            );
        }
        for s in 0..self.plant.stations.len() {
            let st = &self.plant.stations[s];
            let spec = InspectionSpec {
                characteristic: CharacteristicId::new(CHARACTERISTIC).expect("valid"),
                station: st.id.clone(),
                lower_milli: 11_500,
                upper_milli: 12_500,
            };
            let key = RecordKey::new(format!("SPEC-{}", st.id)).expect("valid");
            self.qms.publish_inspection_spec(now, key, spec);
        }
        for l in 0..self.plant.lines.len() {
            self.release_next_order(l, now);
        }
        for s in 0..self.plant.stations.len() {
            self.schedule_breakdown(s);
        }
        for (i, d) in self.scenario.drifts.iter().enumerate() {
            self.kernel.schedule_at(d.at, Ev::DriftStart(i as u32));
        }
        if self.trace.is_some() {
            let mut starts: Vec<(Instant, u32)> = (self.scenario.faults.iter().enumerate())
                .map(|(i, f)| (f.window().start, i as u32))
                .collect();
            starts.sort_unstable();
            self.fault_starts = starts;
        }
        for (i, f) in self.scenario.faults.iter().enumerate() {
            match f {
                scenario::Fault::WanOutage { plant, active } => {
                    if let Some(p) = self.plant.plant_index(plant) {
                        self.kernel.schedule_at(
                            active.start,
                            Ev::Wan {
                                plant: p as u32,
                                down: true,
                            },
                        );
                        self.kernel.schedule_at(
                            active.end(),
                            Ev::Wan {
                                plant: p as u32,
                                down: false,
                            },
                        );
                    }
                }
                scenario::Fault::CoreCrash { at, downtime } => {
                    self.kernel.schedule_at(
                        *at,
                        Ev::CoreCrash {
                            downtime: *downtime,
                        },
                    );
                }
                scenario::Fault::AlarmStorm { at, events, .. } if *events > 0 => {
                    self.kernel.schedule_at(
                        *at,
                        Ev::Alarm {
                            storm: i as u32,
                            left: *events,
                        },
                    );
                }
                _ => {}
            }
        }
        self.kernel
            .schedule_at(self.duration_end, Ev::EndOfDuration);
        for (i, m) in self.scenario.masterdata.iter().enumerate() {
            self.kernel.schedule_at(m.at, Ev::MasterData(i as u32));
        }
        self.collect_all_events(now);
    }

    /// The simulated time.
    pub fn now(&self) -> Instant {
        self.kernel.now()
    }

    /// Kernel events processed so far.
    pub fn events_processed(&self) -> u64 {
        self.kernel.events_delivered()
    }

    /// The end of the fault phase.
    pub fn duration_end(&self) -> Instant {
        self.duration_end
    }

    /// True while the core is down (crashed, not yet restarted).
    pub fn core_down(&self) -> bool {
        self.core.is_none()
    }

    /// The engine, when the core is up.
    pub fn engine(&self) -> Option<&plantloop_core::engine::Engine> {
        self.core.as_ref().map(|c| c.engine())
    }

    /// Until when an operator-injected outage ([`Injected::EndpointOutage`]) silences `system`,
    /// if one is active now.
    pub fn endpoint_outage_until(&self, system: System) -> Option<Instant> {
        let until = self.targets[system.index()].outage_until;
        (until > self.kernel.now()).then_some(until)
    }

    /// Events waiting in each plant's edge buffer.
    pub fn edge_buffered(&self, plant: usize) -> usize {
        self.edge_buffers.get(plant).map_or(0, VecDeque::len)
    }

    /// Processes one kernel event with time ≤ `until`. Returns false when there is none.
    pub fn step(&mut self, until: Instant) -> bool {
        if !self.draining
            && self
                .kernel
                .peek_time()
                .is_none_or(|t| t >= self.duration_end)
            && until >= self.duration_end
        {
            self.begin_drain();
        }
        match self.kernel.pop_until(until) {
            Some((now, ev)) => {
                if !self.draining && now >= self.duration_end {
                    self.begin_drain();
                }
                self.record_scenario_faults(now);
                self.dispatch(now, ev);
                true
            }
            None => {
                self.kernel.advance_to(until);
                false
            }
        }
    }

    /// Runs until `until` (inclusive) or until nothing is left to do.
    pub fn run_until(&mut self, until: Instant) {
        while self.step(until) {}
    }

    /// Injects a fault now, between two kernel events (the live view's controls). It takes effect
    /// at once and goes into the trace with the simulated time and the number of kernel events
    /// processed before it, which is all a replay needs to inject it at the same point
    /// ([`crate::live::Injection`]).
    pub fn inject(&mut self, fault: Injected) {
        let now = self.kernel.now();
        self.apply_injected(fault, now);
    }

    /// Finishes the run: flushes MES batches, stops at the end of the drain, returns the trace hash.
    pub fn finish(&mut self) -> String {
        let end = self.duration_end + self.scenario.drain;
        self.run_until(end);
        self.hash.update(b"end");
        for s in &self.plant.stations {
            for sp in s.all_spans() {
                self.hash.update(&sp.first_at.as_micros().to_le_bytes());
                self.hash.update(&sp.units.to_le_bytes());
            }
        }
        for l in [self.erp.ledger(), self.qms.ledger(), self.cmms.ledger()] {
            self.hash.update(&(l.len() as u64).to_le_bytes());
        }
        for m in &self.mes {
            self.hash.update(&(m.ledger().len() as u64).to_le_bytes());
        }
        if let Some(t) = &mut self.trace {
            let _ = t.flush();
        }
        self.hash.finalize().to_hex().to_string()
    }

    /// An error writing the trace, if one happened.
    pub fn trace_error(&self) -> Option<&str> {
        self.trace_error.as_deref()
    }

    fn begin_drain(&mut self) {
        self.draining = true;
        for t in &mut self.targets {
            t.faults = FaultInjector::new(FaultProfile::none());
            t.outage_until = Instant::ZERO;
        }
    }

    // ---- dispatch --------------------------------------------------------------------------------

    fn dispatch(&mut self, now: Instant, ev: Ev) {
        match ev {
            Ev::Takt(l) => self.takt(l as usize, now),
            Ev::Breakdown(s) => self.breakdown(s as usize, now),
            Ev::DriftStart(i) => {
                let d = &self.scenario.drifts[i as usize];
                if let Some(s) = self.plant.station_index(&d.station) {
                    let st = &mut self.plant.stations[s];
                    st.drift = d.defect_rate;
                    st.drift_since = Some(now);
                }
            }
            Ev::TechArrives(wo) => self.technician_arrives(*wo, now),
            Ev::RepairDone(wo) => self.repair_done(*wo, now),
            Ev::Approve(nc) => {
                let u = self.rng_people.uniform();
                let decision = if u < 0.9 {
                    DispositionDecision::Release
                } else if u < 0.97 {
                    DispositionDecision::Rework
                } else {
                    DispositionDecision::Scrap
                };
                let _ = self
                    .qms
                    .approve_disposition(now, &nc, decision, "quality-engineer");
                self.collect_events(System::Qms, None, now);
            }
            Ev::Deliver(f) => self.deliver(f, now),
            Ev::CallArrives(t) => self.call_arrives(t, now),
            Ev::ReplyArrives(r) => {
                let (call, attempt, outcome) = *r;
                if self.core.is_some() {
                    self.hash.update(b"reply");
                    self.hash.update(&call.0.to_le_bytes());
                    self.hash.update(&attempt.to_le_bytes());
                    self.trace_reply(now, call, attempt, &outcome);
                    self.engine_input(
                        now,
                        Input::Reply {
                            call,
                            attempt,
                            outcome,
                        },
                    );
                }
            }
            Ev::EngineTimer => {
                self.engine_timer = None;
                if self.core.is_some() {
                    self.engine_input(now, Input::Tick);
                }
            }
            Ev::Wan { plant, down } => self.set_wan(plant as usize, down, now),
            Ev::CoreCrash { downtime } => self.crash_core(now, downtime),
            Ev::CoreRestart => self.restart_core(now),
            Ev::MasterData(i) => self.release_master_data(i as usize, now),
            Ev::EndOfDuration => {
                for p in 0..self.mes.len() {
                    self.mes[p].flush(now);
                    self.collect_events(System::Mes, Some(p), now);
                }
            }
            Ev::Alarm { storm, left } => self.alarm(storm as usize, left, now),
        }
    }

    /// Writes a trace record for each scenario fault that began at or before `now`, before the
    /// event at `now` is processed: injected and scenario faults read alike in a trace. Records
    /// only: the faults act through their own events and the mocks' fault rules, and the trace hash
    /// (which the scenario already determines them for) does not include them.
    fn record_scenario_faults(&mut self, now: Instant) {
        while let Some(&(start, i)) = self.fault_starts.get(self.faults_recorded)
            && start <= now
        {
            self.faults_recorded += 1;
            let f = &self.scenario.faults[i as usize];
            let window = f.window();
            let mut data = serde_json::json!({
                "at_us": start.as_micros(),
                "for": window.length.to_string(),
                "for_us": window.length.as_micros(),
            });
            if let Some(plant) = f.plant() {
                data["plant"] = plant.to_string().into();
            }
            if let Some(system) = f.system() {
                data["system"] = system.as_str().into();
            }
            match f {
                scenario::Fault::EndpointErrors { rate, .. } => data["rate"] = (*rate).into(),
                scenario::Fault::EndpointThrottle { limit_per_s, .. } => {
                    data["limit_per_s"] = (*limit_per_s).into()
                }
                scenario::Fault::EndpointLatency { latency, .. } => {
                    data["latency"] = latency.to_string().into()
                }
                scenario::Fault::DuplicateDelivery { probability, .. } => {
                    data["probability"] = (*probability).into()
                }
                scenario::Fault::Reorder { window, .. } => {
                    data["window"] = window.to_string().into()
                }
                scenario::Fault::AlarmStorm { events, .. } => data["events"] = (*events).into(),
                _ => {}
            }
            let kind = f.kind();
            self.write_trace(serde_json::json!({
                "specversion": "1.0",
                "id": format!("scenario-fault-{}", i + 1),
                "source": "/plantloop/sim/scenario",
                "type": format!("com.plantloop.sim.fault.{kind}.v1"),
                "time": rfc3339(start),
                "datacontenttype": "application/json",
                "data": data,
            }));
        }
    }

    fn apply_injected(&mut self, f: Injected, now: Instant) {
        self.counts.injected_faults += 1;
        let after_events = self.kernel.events_delivered();
        let (kind, mut data) = match &f {
            Injected::WanOutage { plant, duration } => {
                let p = *plant;
                if p < self.plant.plants.len() {
                    self.set_wan(p, true, now);
                    self.kernel.schedule_at(
                        now + *duration,
                        Ev::Wan {
                            plant: p as u32,
                            down: false,
                        },
                    );
                }
                (
                    "wan-outage",
                    serde_json::json!({ "plant": self.plant.plants.get(p).map(|x| x.id.to_string()), "for": duration.to_string(), "for_us": duration.as_micros() }),
                )
            }
            Injected::CoreCrash { downtime } => {
                self.crash_core(now, *downtime);
                (
                    "core-crash",
                    serde_json::json!({ "downtime": downtime.to_string(), "downtime_us": downtime.as_micros() }),
                )
            }
            Injected::EndpointOutage { system, duration } => {
                self.targets[system.index()].outage_until = now + *duration;
                (
                    "endpoint-outage",
                    serde_json::json!({ "system": system.as_str(), "for": duration.to_string(), "for_us": duration.as_micros() }),
                )
            }
        };
        data["at_us"] = now.as_micros().into();
        data["after_events"] = after_events.into();
        self.hash.update(b"inject");
        self.hash.update(kind.as_bytes());
        self.write_trace(serde_json::json!({
            "specversion": "1.0",
            "id": format!("fault-{}", self.counts.injected_faults),
            "source": "/plantloop/sim/operator",
            "type": format!("com.plantloop.sim.fault.{kind}.v1"),
            "time": rfc3339(now),
            "datacontenttype": "application/json",
            "data": data,
        }));
    }

    // ---- plant -----------------------------------------------------------------------------------

    fn release_next_order(&mut self, line: usize, now: Instant) {
        let l = &mut self.plant.lines[line];
        let pi = l.plant;
        let spec = &self.scenario.plants[pi];
        let n = l.orders_released;
        l.orders_released += 1;
        let size = u64::from(spec.orders.size.max(1));
        let first = l.serial_base + n * size;
        let order = ProductionOrder {
            id: OrderId::new(format!("PO-{}-{:05}", l.id, n + 1)).expect("valid"),
            material: spec.orders.material.clone(),
            line: l.id.clone(),
            plant: self.plant.plants[pi].id.clone(),
            serials: SerialRange::new(first, first + size - 1).expect("size ≥ 1"),
        };
        l.order = Some(RunningOrder {
            order: order.clone(),
            dispatched: false,
            next_serial: first,
        });
        let _ = self.erp.release_order(now, order);
        self.collect_events(System::Erp, None, now);
    }

    fn start_line_if_ready(&mut self, line: usize, now: Instant) {
        if now < self.duration_end
            && !self.plant.lines[line].running
            && self.plant.line_can_run(line)
        {
            self.plant.lines[line].running = true;
            let d = takt(
                self.scenario.plants[self.plant.lines[line].plant].cycle_time,
                self.rng_plant.uniform(),
            );
            self.kernel.schedule_at(now + d, Ev::Takt(line as u32));
        }
    }

    fn takt(&mut self, line: usize, now: Instant) {
        if now >= self.duration_end || !self.plant.line_can_run(line) {
            self.plant.halt_line(line);
            return;
        }
        let pi = self.plant.lines[line].plant;
        let spec = &self.scenario.plants[pi];
        let (sample_rate, defect_rate, cycle) = (
            spec.inspection.sample_rate,
            spec.inspection.defect_rate,
            spec.cycle_time,
        );
        let range = self.plant.lines[line].stations.clone();
        let n = range.len();
        // Every station processes the unit in front of it.
        for pos in 0..n {
            let Some(serial) = self.plant.lines[line].wip[pos] else {
                continue;
            };
            let si = range.start + pos;
            let st = &mut self.plant.stations[si];
            st.record_processing(now);
            if st.drift > 0.0 {
                st.suspect_first.get_or_insert(serial);
                st.suspect_last = Some(serial);
            }
            if self.rng_plant.bernoulli(sample_rate) {
                st.inspections += 1;
                self.counts.inspections += 1;
                let p = (defect_rate + st.drift).min(1.0);
                if self.rng_plant.bernoulli(p) {
                    st.failures += 1;
                    let result = InspectionResult {
                        id: InspectionId::new(format!("I-{serial}-{pos}")).expect("valid"),
                        station: st.id.clone(),
                        serial,
                        characteristic: CharacteristicId::new(CHARACTERISTIC).expect("valid"),
                        passed: false,
                    };
                    if self.qms.record_inspection(now, &result).is_some() {
                        self.collect_events(System::Qms, None, now);
                    }
                }
            }
        }
        // Units move one station on; the last one leaves the line.
        let last_station = range.end - 1;
        if let Some(serial) = self.plant.lines[line].wip[n - 1].take() {
            let order = self.plant.lines[line]
                .order
                .as_ref()
                .map(|o| (o.order.id.clone(), o.order.material.clone()));
            if let Some((oid, mat)) = order {
                let sid = self.plant.stations[last_station].id.clone();
                let _ = self.mes[pi].unit_completed(now, &sid, serial, &oid, &mat, true);
                self.plant.lines[line].record_produced(&oid, serial);
            }
            self.plant.lines[line].units_completed += 1;
        }
        let l = &mut self.plant.lines[line];
        l.wip.rotate_right(1);
        if let Some(o) = &mut l.order
            && o.dispatched
            && o.next_serial <= o.order.serials.last()
        {
            l.wip[0] = Some(o.next_serial);
            o.next_serial += 1;
        }
        let order_done = l.wip.iter().all(Option::is_none)
            && l.order
                .as_ref()
                .is_some_and(|o| o.next_serial > o.order.serials.last());
        if order_done {
            let oid = l
                .order
                .as_ref()
                .map(|o| o.order.id.clone())
                .expect("checked");
            self.mes[pi].end_order(now, &oid);
            self.release_next_order(line, now);
        }
        self.collect_events(System::Mes, Some(pi), now);
        if self.plant.line_can_run(line) {
            let d = takt(cycle, self.rng_plant.uniform());
            self.kernel.schedule_at(now + d, Ev::Takt(line as u32));
        } else {
            self.plant.halt_line(line);
        }
    }

    fn schedule_breakdown(&mut self, s: usize) {
        let pi = self.plant.stations[s].plant;
        let Some(machines) = &self.scenario.plants[pi].machines else {
            return;
        };
        let mtbf = machines.mtbf;
        if mtbf.is_zero() {
            return;
        }
        let d = self.rng_plant.exponential(mtbf);
        let at = self.kernel.now() + d;
        if at < self.duration_end {
            self.kernel.schedule_at(at, Ev::Breakdown(s as u32));
        }
    }

    fn breakdown(&mut self, s: usize, now: Instant) {
        let st = &mut self.plant.stations[s];
        if st.down {
            return;
        }
        st.down = true;
        st.breakdowns += 1;
        st.breakdown_log.push((now, None));
        let pi = st.plant;
        let code = format!("E{:03}", 100 + st.breakdowns % 900);
        let id = st.id.clone();
        let _ = self.mes[pi].machine_down(now, &id, Some(code));
        self.collect_events(System::Mes, Some(pi), now);
    }

    /// New work orders in CMMS get a technician.
    fn dispatch_technicians(&mut self, now: Instant) {
        let entries = self.cmms.ledger().entries();
        let mut new = Vec::new();
        for e in &entries[self.cmms_cursor..] {
            if let plantloop_mocks::Posting::WorkOrderCreated(wo) = &e.posting {
                new.push((wo.id.clone(), wo.station.clone()));
            }
        }
        self.cmms_cursor = entries.len();
        for (wo, station) in new {
            if let Some(s) = self.plant.station_index(&station) {
                self.plant.stations[s].technicians_sent.push(now);
            }
            let response = self.rng_people.exponential(Duration::from_mins(10));
            self.kernel
                .schedule_at(now + response, Ev::TechArrives(Box::new(wo)));
        }
    }

    fn technician_arrives(&mut self, wo: WorkOrderId, now: Instant) {
        if self.cmms.start_work(now, &wo).is_err() {
            return;
        }
        let Some(rec) = self.cmms.work_order(&wo) else {
            return;
        };
        let Some(s) = self.plant.station_index(&rec.work_order.station) else {
            return;
        };
        let mttr = self.scenario.plants[self.plant.stations[s].plant]
            .machines
            .map_or(Duration::from_mins(40), |m| m.mttr);
        let repair = self
            .rng_people
            .exponential(mttr)
            .max(Duration::from_mins(1));
        self.repairs.insert(wo.clone(), (s, now));
        self.kernel
            .schedule_at(now + repair, Ev::RepairDone(Box::new(wo)));
    }

    fn repair_done(&mut self, wo: WorkOrderId, now: Instant) {
        let Some((s, started)) = self.repairs.remove(&wo) else {
            return;
        };
        let pi = self.plant.stations[s].plant;
        let maint = &self.scenario.plants[pi].maintenance;
        let mut parts = Vec::new();
        if !maint.parts.is_empty() {
            let i = self.rng_people.below(maint.parts.len() as u64) as usize;
            let p = &maint.parts[i];
            parts.push(SparePartUsage {
                part: p.part.clone(),
                quantity: 1,
                unit_cost: p.unit_cost,
            });
        }
        let minutes = now.saturating_since(started).as_secs().div_ceil(60).max(1) as u32;
        let labour = vec![LabourEntry {
            technician: TechnicianId::new(format!("T-{}", self.plant.plants[pi].id))
                .expect("valid"),
            minutes,
            rate_per_hour: maint.labor_rate,
        }];
        let nc = self
            .cmms
            .work_order(&wo)
            .and_then(|r| r.work_order.nc.clone());
        let st = &mut self.plant.stations[s];
        let root_cause = if st.drift > 0.0 {
            "worn tool replaced"
        } else if st.down {
            "machine fault repaired"
        } else {
            "no fault found"
        };
        if self
            .cmms
            .complete_work(now, &wo, root_cause, parts, labour)
            .is_err()
        {
            return;
        }
        st.drift = 0.0;
        st.drift_since = None;
        let was_down = st.down;
        st.down = false;
        if was_down && let Some((_, up)) = st.breakdown_log.last_mut() {
            *up = Some(now);
        }
        let id = st.id.clone();
        if was_down {
            let _ = self.mes[pi].machine_up(now, &id);
            self.schedule_breakdown(s);
        }
        self.collect_events(System::Cmms, None, now);
        self.collect_events(System::Mes, Some(pi), now);
        let line = self.plant.stations[s].line;
        self.start_line_if_ready(line, now);
        if let Some(nc) = nc {
            let delay =
                Duration::from_mins(20) + self.rng_people.exponential(Duration::from_mins(30));
            self.kernel
                .schedule_at(now + delay, Ev::Approve(Box::new(nc)));
        }
    }

    fn alarm(&mut self, storm: usize, left: u32, now: Instant) {
        let Some(scenario::Fault::AlarmStorm {
            plant,
            events,
            over,
            ..
        }) = self.scenario.faults.get(storm).cloned()
        else {
            return;
        };
        let Some(pi) = self.plant.plant_index(&plant) else {
            return;
        };
        let lines = self.plant.plants[pi].lines.clone();
        let first = self.plant.lines[lines.start].stations.start;
        let last = self.plant.lines[lines.end - 1].stations.end;
        let s = first + self.rng_plant.below((last - first) as u64) as usize;
        let severity = if self.rng_plant.bernoulli(0.7) {
            AlarmSeverity::Info
        } else {
            AlarmSeverity::Warning
        };
        let station = self.plant.stations[s].id.clone();
        let _ = self.mes[pi].raise_alarm(
            now,
            Alarm {
                station,
                code: format!("A{}", left % 97),
                severity,
            },
        );
        self.collect_events(System::Mes, Some(pi), now);
        if left > 1 {
            let gap = Duration::from_micros(over.as_micros() / u64::from(events.max(1)));
            self.kernel.schedule_at(
                now + gap,
                Ev::Alarm {
                    storm: storm as u32,
                    left: left - 1,
                },
            );
        }
    }

    fn release_master_data(&mut self, i: usize, now: Instant) {
        let m = self.scenario.masterdata[i];
        match m.kind {
            scenario::MasterDataKind::Material => {
                for n in 0..m.count {
                    let id = MaterialId::new(format!("MAT-{i}-{n:06}")).expect("valid");
                    self.erp.publish_material(
                        now,
                        Material {
                            id,
                            description: format!("item {n}"),
                            unit: "EA".into(),
                        },
                    );
                }
                self.collect_events(System::Erp, None, now);
            }
            scenario::MasterDataKind::Asset => {
                // New versions of the real placements, round robin: consumers must end on the newest.
                let n_st = self.plant.stations.len();
                for n in 0..m.count as usize {
                    let s = &self.plant.stations[n % n_st];
                    let p = AssetPlacement {
                        asset: s.asset.clone(),
                        station: s.id.clone(),
                        line: self.plant.lines[s.line].id.clone(),
                        plant: self.plant.plants[s.plant].id.clone(),
                    };
                    self.cmms.publish_asset(now, p);
                }
                self.collect_events(System::Cmms, None, now);
            }
            scenario::MasterDataKind::InspectionSpec => {
                let n_st = self.plant.stations.len();
                for n in 0..m.count as usize {
                    let s = &self.plant.stations[n % n_st];
                    let spec = InspectionSpec {
                        characteristic: CharacteristicId::new(CHARACTERISTIC).expect("valid"),
                        station: s.id.clone(),
                        lower_milli: 11_500 - (n / n_st) as i64,
                        upper_milli: 12_500 + (n / n_st) as i64,
                    };
                    let key = RecordKey::new(format!("SPEC-{}", s.id)).expect("valid");
                    self.qms.publish_inspection_spec(now, key, spec);
                }
                self.collect_events(System::Qms, None, now);
            }
        }
    }

    // ---- network ---------------------------------------------------------------------------------

    fn set_wan(&mut self, plant: usize, down: bool, now: Instant) {
        if self.plant.plants[plant].wan_down == down {
            return;
        }
        self.plant.plants[plant].wan_down = down;
        self.hash
            .update(if down { b"wan-down" } else { b"wan-up--" });
        if !down {
            // The edge forwards what it buffered, in order.
            let mut buffered: Vec<u64> = self.edge_buffers[plant].drain(..).collect();
            buffered.sort_unstable();
            for (i, f) in buffered.into_iter().enumerate() {
                let at = now + WAN_LATENCY + EDGE_SPACING.saturating_mul(i as u64);
                self.kernel.schedule_at(at, Ev::Deliver(f));
            }
        }
    }

    /// Drains a system's outbox into flights towards the core.
    fn collect_events(&mut self, system: System, plant: Option<usize>, now: Instant) {
        loop {
            let ev = match system {
                System::Erp => self.erp.poll_event(),
                System::Qms => self.qms.poll_event(),
                System::Cmms => self.cmms.poll_event(),
                System::Mes => plant.and_then(|p| self.mes[p].poll_event()),
            };
            let Some(ev) = ev else { break };
            self.emit(system, plant, ev, now);
        }
    }

    fn collect_all_events(&mut self, now: Instant) {
        for s in [System::Erp, System::Qms, System::Cmms] {
            self.collect_events(s, None, now);
        }
        for p in 0..self.mes.len() {
            self.collect_events(System::Mes, Some(p), now);
        }
    }

    fn emit(&mut self, system: System, plant: Option<usize>, event: Event, now: Instant) {
        if let plantloop_core::event::EventData::ProductionConfirmed(c) = &event.data {
            self.confirmations_emitted
                .push((event.event_ref(), c.clone()));
        }
        use plantloop_core::event::EventData as D;
        let station = match &event.data {
            D::MachineStateChanged(m) => Some(m.station.clone()),
            D::AlarmRaised(a) => Some(a.station.clone()),
            D::NonconformanceCreated(nc) => Some(nc.station.clone()),
            _ => None,
        };
        self.emitted.insert(
            event.event_ref(),
            Emitted {
                at: now,
                event_type: event.event_type().name(),
                acked: false,
                buffered: false,
                station,
            },
        );
        let decision = self.targets[system.index()]
            .faults
            .decide_event(now, &mut self.rng_net);
        let base = if plant.is_some() {
            WAN_LATENCY
        } else {
            LAN_LATENCY
        };
        let dup = decision.duplicate.map(|d| (event.clone(), d));
        self.launch(event, plant, now + base + decision.delay);
        if let Some((copy, d)) = dup {
            self.launch(copy, plant, now + base + d + Duration::from_millis(1));
        }
    }

    fn launch(&mut self, event: Event, plant: Option<usize>, at: Instant) {
        let id = self.next_flight;
        self.next_flight += 1;
        self.flights.insert(
            id,
            Flight {
                event,
                plant,
                attempts: 0,
            },
        );
        if let Some(p) = plant
            && self.plant.plants[p].wan_down
        {
            self.buffer_at_edge(p, id);
            return;
        }
        self.kernel.schedule_at(at, Ev::Deliver(id));
    }

    fn buffer_at_edge(&mut self, plant: usize, flight: u64) {
        #[cfg(feature = "sabotage")]
        if let Some(cap) = self.edge_drop_capacity
            && self.edge_buffers[plant].len() >= cap
        {
            self.flights.remove(&flight);
            return;
        }
        if self.edge_buffers[plant].len() >= EDGE_BUFFER_EVENTS_MAX {
            // Full: the source keeps the event and offers it again later.
            let at = self.kernel.now() + RESEND_BASE;
            self.kernel.schedule_at(at, Ev::Deliver(flight));
            return;
        }
        self.edge_buffers[plant].push_back(flight);
        self.counts.edge_buffered_max = self
            .counts
            .edge_buffered_max
            .max(self.edge_buffers[plant].len() as u64);
    }

    fn deliver(&mut self, f: u64, now: Instant) {
        let Some(flight) = self.flights.get_mut(&f) else {
            return;
        };
        if let Some(p) = flight.plant
            && self.plant.plants[p].wan_down
        {
            // Cut off in transit: the edge still has it (it was never acknowledged).
            self.buffer_at_edge(p, f);
            return;
        }
        if self.core.is_none() {
            flight.attempts += 1;
            let backoff = RESEND_BASE
                .saturating_mul(1 << flight.attempts.min(5))
                .min(RESEND_CAP);
            self.kernel.schedule_at(now + backoff, Ev::Deliver(f));
            return;
        }
        let flight = self.flights.remove(&f).expect("present");
        let r = flight.event.event_ref();
        self.hash.update(b"event");
        self.hash.update(r.source().as_bytes());
        self.hash.update(r.id().as_bytes());
        if self.trace.is_some() {
            let mut ce = flight.event.to_cloudevent();
            ce["time"] = rfc3339(now).into();
            self.write_trace(ce);
        }
        self.counts.events_delivered += 1;
        self.counts.events_delivered_by_class[flight.event.class.index()] += 1;
        let ack = self.engine_input(now, Input::Event(flight.event.clone()));
        match ack {
            Some(Ack::Accepted | Ack::Duplicate) => {
                if let Some(e) = self.emitted.get_mut(&r) {
                    e.acked = true;
                }
            }
            Some(Ack::RetryAfter(d)) => {
                let id = self.next_flight;
                self.next_flight += 1;
                self.flights.insert(
                    id,
                    Flight {
                        attempts: flight.attempts + 1,
                        ..flight
                    },
                );
                self.kernel.schedule_at(now + d, Ev::Deliver(id));
            }
            _ => {}
        }
    }

    // ---- the core --------------------------------------------------------------------------------

    /// Journals and handles one input, syncs (group commit), then releases outputs.
    fn engine_input(&mut self, now: Instant, input: Input) -> Option<Ack> {
        let core = self.core.as_mut()?;
        let ack = core
            .handle(now, input)
            .expect("the in-memory journal does not fail");
        core.sync().expect("the in-memory journal does not fail");
        self.release_outputs(now);
        Some(ack)
    }

    fn release_outputs(&mut self, now: Instant) {
        loop {
            let Some(core) = self.core.as_mut() else {
                return;
            };
            let Some(call) = core.engine_mut().poll_command() else {
                break;
            };
            self.send_call(call, now);
        }
        while let Some(r) = self.core.as_mut().and_then(|c| c.engine_mut().poll_audit()) {
            self.hash.update(&r.hash.to_hex());
            self.audit.push(r);
        }
        self.arm_engine_timer(now);
    }

    fn arm_engine_timer(&mut self, now: Instant) {
        let Some(at) = self.core.as_ref().and_then(|c| c.engine().poll_timeout()) else {
            return;
        };
        let at = at.max(now);
        if let Some((t, _)) = self.engine_timer
            && t <= at
        {
            return;
        }
        if let Some((_, id)) = self.engine_timer.take() {
            self.kernel.cancel(id);
        }
        let id = self.kernel.schedule_at(at, Ev::EngineTimer);
        self.engine_timer = Some((at, id));
    }

    fn send_call(&mut self, call: Call, now: Instant) {
        self.counts.calls_sent += 1;
        self.hash.update(b"call");
        self.hash.update(&call.id.0.to_le_bytes());
        self.hash.update(&call.attempt.to_le_bytes());
        self.hash.update(call.key.as_str().as_bytes());
        if call.request.is_posting() {
            self.key_origins
                .entry(call.key.clone())
                .or_insert_with(|| KeyOrigin {
                    origin: call.origin.clone(),
                    class: call.class,
                    request: call.request.name(),
                });
        }
        if self.trace.is_some() {
            self.trace_call(now, &call);
        }
        let latency = match call.target {
            System::Mes => WAN_LATENCY,
            _ => LAN_LATENCY,
        };
        // A call to a plant whose WAN link is down never arrives.
        if call.target == System::Mes
            && self
                .mes_plants(&call.request)
                .iter()
                .any(|p| self.plant.plants[*p].wan_down)
        {
            self.counts.calls_dropped += 1;
            return;
        }
        let id = self.next_transit;
        self.next_transit += 1;
        self.calls_in_transit.insert(id, call);
        self.kernel.schedule_at(now + latency, Ev::CallArrives(id));
    }

    /// The plants a MES request goes to: the station's or order's plant, or all for master data
    /// and lookups.
    fn mes_plants(&self, r: &Request) -> Vec<usize> {
        let one = match r {
            Request::ControlStation(c) => self
                .plant
                .station_index(&c.station)
                .map(|s| self.plant.stations[s].plant),
            Request::DispatchOrder(o) => self.plant.plant_index(&o.plant),
            _ => None,
        };
        match one {
            Some(p) => vec![p],
            None => (0..self.plant.plants.len()).collect(),
        }
    }

    fn call_arrives(&mut self, t: u64, now: Instant) {
        let Some(call) = self.calls_in_transit.remove(&t) else {
            return;
        };
        let target = &mut self.targets[call.target.index()];
        let decision = if target.outage_until > now {
            plantloop_mocks::fault::FaultDecision {
                delay: Duration::ZERO,
                action: FaultAction::NoAnswer,
            }
        } else {
            target.faults.decide(now, &mut self.rng_net)
        };
        let applies = decision.reaches_system();
        let mut reply = None;
        if applies {
            let r = self.apply_to_target(&call, now);
            if decision.action == FaultAction::Pass {
                reply = Some(r.outcome());
            }
        } else {
            reply = match decision.action {
                FaultAction::Throttle { retry_after } => Some(Outcome::Throttled { retry_after }),
                FaultAction::ServerError { status } => Some(Outcome::Unavailable { status }),
                FaultAction::ErrorBody => Some(plantloop_mocks::Reply::error_body().outcome()),
                _ => None,
            };
        }
        if let Some(outcome) = reply {
            let back = match call.target {
                System::Mes => WAN_LATENCY,
                _ => LAN_LATENCY,
            };
            let at = now + SERVICE_TIME + decision.delay + back;
            self.kernel.schedule_at(
                at,
                Ev::ReplyArrives(Box::new((call.id, call.attempt, outcome))),
            );
        }
    }

    fn apply_to_target(&mut self, call: &Call, now: Instant) -> plantloop_mocks::Reply {
        let key = Some(&call.key);
        match call.target {
            System::Erp => {
                let r = self.erp.apply(now, key, &call.request);
                self.collect_events(System::Erp, None, now);
                r
            }
            System::Qms => {
                let r = self.qms.apply(now, key, &call.request);
                self.collect_events(System::Qms, None, now);
                r
            }
            System::Cmms => {
                let r = self.cmms.apply(now, key, &call.request);
                self.collect_events(System::Cmms, None, now);
                self.dispatch_technicians(now);
                r
            }
            System::Mes => {
                // A call for every plant (master data, lookups) fans out through the core's MES
                // gateway, which answers like a proxy: the first plant's failure (a throttled
                // SaaS MES, say) if any, so that the core retries; plants that took it already
                // absorb the retry by its key.
                let plants = self.mes_plants(&call.request);
                let mut last = None;
                let mut found = None;
                let mut failed = None;
                for p in plants {
                    let r = self.mes[p].apply(now, key, &call.request);
                    if let Request::LookupPosting { .. } = call.request
                        && r.receipt().is_some()
                    {
                        found = Some(r.clone());
                    }
                    if !r.is_success() && failed.is_none() {
                        failed = Some(r.clone());
                    }
                    last = Some(r);
                    self.after_mes_call(p, &call.request, now);
                    self.collect_events(System::Mes, Some(p), now);
                }
                let lookup = matches!(call.request, Request::LookupPosting { .. });
                let first = if lookup { found } else { failed };
                first
                    .or(last)
                    .unwrap_or_else(|| plantloop_mocks::Reply::invalid("station", "no plant"))
            }
        }
    }

    /// The plant obeys MES the instant MES applies a command.
    fn after_mes_call(&mut self, p: usize, request: &Request, now: Instant) {
        match request {
            Request::ControlStation(c) => {
                if let Some(s) = self.plant.station_index(&c.station) {
                    let stopped = self.mes[p].is_stopped(&c.station);
                    if stopped && !self.plant.stations[s].stopped {
                        // Whatever the station makes from now on is a new span: the checker sees
                        // exactly whether a unit was made while it was stopped.
                        self.plant.stations[s].close_span();
                    }
                    self.plant.stations[s].stopped = stopped;
                    let line = self.plant.stations[s].line;
                    if !stopped {
                        self.start_line_if_ready(line, now);
                    }
                }
            }
            Request::DispatchOrder(o) => {
                if let Some(l) = self.plant.line_index(&o.line)
                    && self.mes[p].is_dispatched(&o.id)
                {
                    if let Some(ro) = &mut self.plant.lines[l].order
                        && ro.order.id == o.id
                    {
                        ro.dispatched = true;
                    }
                    self.start_line_if_ready(l, now);
                }
            }
            _ => {}
        }
    }

    fn crash_core(&mut self, now: Instant, downtime: Duration) {
        let Some(core) = self.core.take() else { return };
        let mut journal = core.into_journal();
        journal.crash();
        self.crashed_journal = Some(journal);
        self.counts.core_crashes += 1;
        if let Some((_, id)) = self.engine_timer.take() {
            self.kernel.cancel(id);
        }
        self.hash.update(b"crash");
        self.kernel.schedule_at(now + downtime, Ev::CoreRestart);
    }

    fn restart_core(&mut self, now: Instant) {
        let Some(journal) = self.crashed_journal.take() else {
            return;
        };
        let (core, recovery) = DurableEngine::open(
            journal,
            self.engine_config.clone(),
            self.engine_seed,
            SNAPSHOT_EVERY,
        )
        .expect("the in-memory journal recovers");
        self.hash.update(&recovery.replayed.to_le_bytes());
        self.core = Some(core);
        self.release_outputs(now);
    }

    // ---- trace -----------------------------------------------------------------------------------

    fn write_trace(&mut self, v: serde_json::Value) {
        if let Some(t) = &mut self.trace
            && self.trace_error.is_none()
        {
            let r = serde_json::to_writer(&mut *t, &v)
                .map_err(|e| e.to_string())
                .and_then(|_| t.write_all(b"\n").map_err(|e| e.to_string()));
            if let Err(e) = r {
                self.trace_error = Some(e);
            }
        }
    }

    fn trace_call(&mut self, now: Instant, call: &Call) {
        let v = serde_json::json!({
            "specversion": "1.0",
            "id": format!("{}.{}", call.id, call.attempt),
            "source": "/plantloop/core",
            "type": format!("com.plantloop.core.call.{}.v1", call.request.name()),
            "time": rfc3339(now),
            "datacontenttype": "application/json",
            "subject": call.target.as_str(),
            "causationid": call.origin.to_string(),
            "latencyclass": call.class.as_str(),
            "data": { "target": call.target, "key": call.key, "attempt": call.attempt, "request": call.request },
        });
        self.write_trace(v);
    }

    fn trace_reply(&mut self, now: Instant, call: CallId, attempt: u32, outcome: &Outcome) {
        if self.trace.is_none() {
            return;
        }
        let v = serde_json::json!({
            "specversion": "1.0",
            "id": format!("{call}.{attempt}.reply"),
            "source": "/plantloop/core",
            "type": "com.plantloop.core.reply.v1",
            "time": rfc3339(now),
            "datacontenttype": "application/json",
            "data": { "call": call, "attempt": attempt, "outcome": format!("{outcome:?}") },
        });
        self.write_trace(v);
    }

    /// Events still waiting in edge buffers or in flight (not yet acknowledged) at the end.
    pub fn mark_unacknowledged(&mut self) {
        for buf in &self.edge_buffers {
            for f in buf {
                if let Some(fl) = self.flights.get(f)
                    && let Some(e) = self.emitted.get_mut(&fl.event.event_ref())
                {
                    e.buffered = true;
                }
            }
        }
    }
}
