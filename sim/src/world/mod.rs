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

mod network;
mod plant_model;
mod trace;

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
pub use trace::rfc3339;

/// Calls waiting for a system's service slots at most; beyond it the system answers 503 at once
/// (a full accept queue), so a saturated system cannot grow a run without bound.
const SERVICE_QUEUE_MAX: usize = 100_000;
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
const SNAPSHOT_EVERY: u64 = 5_000;

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
    /// A system finishes serving a call: its effect is recorded now.
    ServiceDone(u64),
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
    /// The plant (index into `plant.plants`) the event is about, when it is about one (master
    /// data is not): latency per plant.
    pub plant: Option<u32>,
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

/// A latency distribution ready to draw from (`scenario::LatencyDist` with its σ worked out).
#[derive(Clone, Copy, Debug)]
struct Spread {
    median: Duration,
    sigma: f64,
    cap: Duration,
}

impl Spread {
    fn of(d: scenario::LatencyDist) -> Spread {
        Spread {
            median: d.median,
            sigma: d.sigma(),
            cap: d.cap(),
        }
    }

    /// One draw; a constant spread draws nothing from the stream.
    #[inline]
    fn draw(&self, rng: &mut SimRng) -> Duration {
        if self.sigma == 0.0 {
            return self.median;
        }
        rng.lognormal(self.median, self.sigma).min(self.cap)
    }
}

/// One system of record as a server: `concurrency` slots, and the calls waiting for one, first
/// come first served.
struct Server {
    time: Spread,
    concurrency: u32,
    busy: u32,
    queue: VecDeque<u64>,
}

/// The modelled network and the systems' capacity (`[network]`, `[service]`, plants' `wan`).
struct Links {
    lan: Spread,
    /// Per plant.
    wan: Vec<Spread>,
    /// Per system, in [`System::index`] order.
    servers: [Server; 4],
    /// Source events on one link arrive in the order sent: when the last one sent arrives, per
    /// system beside the core (LAN, by [`System::index`]) and per plant (WAN).
    lan_last: [Instant; 4],
    wan_last: Vec<Instant>,
    /// The stream every latency and service time is drawn from.
    rng: SimRng,
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
    /// Calls that reached their system, waiting for or in service, with their fault decision.
    calls_in_service: FxHashMap<u64, (Call, plantloop_mocks::fault::FaultDecision)>,
    next_transit: u64,
    links: Links,
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
        let links = Links {
            lan: Spread::of(scenario.network.lan),
            wan: (0..scenario.plants.len())
                .map(|i| Spread::of(scenario.wan(i)))
                .collect(),
            servers: System::ALL.map(|s| {
                let v = scenario.service[s.index()];
                Server {
                    time: Spread::of(v.time),
                    concurrency: v.concurrency,
                    busy: 0,
                    queue: VecDeque::new(),
                }
            }),
            lan_last: [Instant::ZERO; 4],
            wan_last: vec![Instant::ZERO; scenario.plants.len()],
            rng: seeds.derive("latency"),
        };
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
            calls_in_service: FxHashMap::default(),
            next_transit: 1,
            links,
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
            Ev::ServiceDone(t) => self.service_done(t, now),
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
