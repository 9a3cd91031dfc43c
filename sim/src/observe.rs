//! Observing a running world: the live view's (`plantloop tui`) picture of a simulation, taken
//! between kernel events.
//!
//! An [`Observer`] follows one [`World`] and turns it into [`Observation`]s: plain, owned snapshots
//! (station states, WAN links, the core's queues and counters, end-to-end latency per class, the
//! recent NC workflow timelines, the invariant status) that a consumer can send to another thread
//! and render without touching the simulation. Everything is read from the same ground truth the
//! checker uses (ledgers, the plant's physical record, what sources emitted); the observer never
//! changes the world, so observing does not change a run or its trace hash.
//!
//! Ledgers are append-only, so the observer reads each ledger entry once (it keeps a cursor per
//! ledger): the latency histograms and the workflow timelines grow incrementally and an observation
//! costs O(stations + new ledger entries), not O(run). The invariant checker, which judges whole
//! ledgers, is run on demand ([`Observer::check`]); the caller picks the cadence.

use crate::checker::{self, LatencyHistogram};
use crate::report::{ClassLatency, InvariantResult, Latencies, Report};
use crate::scenario::Fault;
use crate::world::World;
use plantloop_core::Money;
use plantloop_core::engine::Stats;
use plantloop_core::model::*;
use plantloop_core::time::{Duration, Instant};
use plantloop_mocks::{Ledger, Origin, Posting};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};

/// Timelines carried by one observation: the most recent ones.
pub const TIMELINES_KEPT_MAX: usize = 64;
/// Event rates are averaged over this much simulated time (or the span between two observations,
/// when that is longer).
pub const RATE_WINDOW: Duration = Duration::from_mins(5);
/// Rate samples kept, whatever their spacing.
const RATE_SAMPLES_MAX: usize = 256;

/// The invariants whose every violation is final the moment it happens: a prefix of the run that
/// breaks them cannot be repaired by what follows (a duplicate posting, a release before its hold,
/// a unit produced while stopped, effects out of causal order). The others (containment, cost
/// capture, no lost events, audit chain, master data, repairs, inventory accuracy, order status,
/// stranded events, SLO) are judged at the end of the drain;
/// while the run goes on, their shortfalls are work still under way.
pub const JUDGED_WHILE_RUNNING: [&str; 4] = [
    "no-duplicate-postings",
    "hold-before-release",
    "no-production-while-stopped",
    "causal-order",
];

/// Which part of the run the clock is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Before `duration`: plants run, faults fire.
    Faults,
    /// After `duration`: no new faults, plants idle, retries converge.
    Drain,
    /// The drain is over.
    Ended,
}

/// What a station is doing, from the plant's physical record.
#[derive(Clone, Debug, PartialEq)]
pub struct StationView {
    pub id: StationId,
    /// Its line is taking takts.
    pub running: bool,
    /// MES stopped it (a line-control command).
    pub stopped_by_mes: bool,
    /// Broken down, waiting for repair.
    pub down: bool,
    /// Tool wear makes it produce defects, since then.
    pub drifting_since: Option<Instant>,
    /// Units held in ERP by active holds raised for NCs at this station.
    pub units_on_hold: u64,
    pub processed: u64,
    pub failures: u64,
}

/// The one state a station is shown in, the most pressing first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StationState {
    Down,
    StoppedByMes,
    Drifting,
    OnHold,
    Running,
    Idle,
}

impl StationView {
    /// The most pressing of the station's states.
    pub fn state(&self) -> StationState {
        if self.down {
            StationState::Down
        } else if self.stopped_by_mes {
            StationState::StoppedByMes
        } else if self.drifting_since.is_some() {
            StationState::Drifting
        } else if self.units_on_hold > 0 {
            StationState::OnHold
        } else if self.running {
            StationState::Running
        } else {
            StationState::Idle
        }
    }
}

/// One line and its stations in flow order.
#[derive(Clone, Debug, PartialEq)]
pub struct LineView {
    pub id: LineId,
    pub running: bool,
    /// The production order on the line and how many of its units were started.
    pub order: Option<(OrderId, u64, u64)>,
    pub units_completed: u64,
    pub stations: Vec<StationView>,
}

/// One plant: its WAN link and lines.
#[derive(Clone, Debug, PartialEq)]
pub struct PlantView {
    pub id: PlantId,
    /// The plant's WAN link to the core is down (a scenario fault or an injected one).
    pub wan_down: bool,
    /// Events waiting in the plant's edge buffer for the link to come back.
    pub edge_buffered: usize,
    pub lines: Vec<LineView>,
}

/// One latency class: traffic, backlog and end-to-end latency against the scenario's SLO.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClassView {
    pub class: Option<LatencyClass>,
    /// Source events of this class delivered to the core so far.
    pub events: u64,
    /// Delivered per simulated second over [`RATE_WINDOW`].
    pub events_per_s: f64,
    /// Calls of this class waiting in the core's outbox (not yet sent).
    pub queued: u32,
    /// Source event → effect in the target's ledger, so far (the checker's figure, incrementally).
    pub latency: ClassLatency,
    /// `expect.slo` for this class, if set.
    pub slo_p99: Option<Duration>,
}

impl ClassView {
    /// The p99 so far exceeds the SLO.
    pub fn over_slo(&self) -> bool {
        self.slo_p99
            .is_some_and(|slo| Duration::from_millis(self.latency.p99_ms) > slo)
    }
}

/// One system of record as the core reaches it.
#[derive(Clone, Debug, PartialEq)]
pub struct SystemView {
    pub system: System,
    /// Calls waiting per class in the core's outbox for this target.
    pub queued: [u32; 3],
    pub in_flight: u32,
    pub breaker_open: bool,
    /// Dead letters of transient failures waiting for the target to answer again.
    pub parked_dead_letters: u32,
    /// An injected outage silences it until then.
    pub outage_until: Option<Instant>,
    /// Scenario faults active on it now (`endpoint-errors`, …).
    pub faults: Vec<&'static str>,
}

/// The integration core.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CoreView {
    /// Crashed and not yet restarted from its journal.
    pub down: bool,
    pub crashes: u64,
    /// The engine's counters (the last ones seen while it was up).
    pub stats: Stats,
    /// Dead letters in the queue now.
    pub dead_letters: u64,
    /// Calls not yet finished.
    pub open_calls: u64,
    pub audit_records: u64,
}

/// The steps of an NC's closed loop (W1 containment, W2 maintenance, W3 disposition → release),
/// in their causal order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// QMS raised the NC.
    Nc,
    /// ERP hold on the suspect serials.
    Hold,
    /// CMMS emergency work order.
    WorkOrder,
    /// MES stopped the station.
    Stop,
    /// CMMS completed the work order.
    Completion,
    /// ERP received the repair's cost.
    Cost,
    /// QMS approved a disposition.
    Disposition,
    /// ERP released the hold.
    Release,
    /// MES resumed the station.
    Resume,
}

impl Step {
    pub const ALL: [Step; 9] = [
        Step::Nc,
        Step::Hold,
        Step::WorkOrder,
        Step::Stop,
        Step::Completion,
        Step::Cost,
        Step::Disposition,
        Step::Release,
        Step::Resume,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Step::Nc => "nc",
            Step::Hold => "hold",
            Step::WorkOrder => "work order",
            Step::Stop => "stop",
            Step::Completion => "completion",
            Step::Cost => "cost",
            Step::Disposition => "disposition",
            Step::Release => "release",
            Step::Resume => "resume",
        }
    }
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One NC's workflow, with the simulated time at which each step landed in its system's ledger.
#[derive(Clone, Debug, PartialEq)]
pub struct Timeline {
    pub nc: NcId,
    pub station: StationId,
    pub serials: SerialRange,
    /// Only asset-related NCs go through containment and maintenance.
    pub asset_related: bool,
    /// When each [`Step`] first landed (index by [`Step::index`]).
    pub at: [Option<Instant>; 9],
    pub work_order: Option<WorkOrderId>,
    /// Parts and labour cost ERP received for the work order.
    pub cost: Money,
    pub decision: Option<DispositionDecision>,
}

impl Timeline {
    /// The latest step reached, in causal order.
    pub fn reached(&self) -> Step {
        Step::ALL
            .into_iter()
            .rev()
            .find(|s| self.at[s.index()].is_some())
            .unwrap_or(Step::Nc)
    }

    /// Every step of the loop landed.
    pub fn closed(&self) -> bool {
        self.at.iter().all(Option::is_some)
    }
}

/// One invariant's state.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Held,
    /// Broken for good: the count and the first violation (compact JSON naming ids and times).
    Violated {
        total: u64,
        first: String,
    },
    /// Judged at the end of the drain; this much is not converged yet (first item as JSON).
    Open {
        total: u64,
        first: String,
    },
}

/// One invariant as of the last check.
#[derive(Clone, Debug, PartialEq)]
pub struct InvariantView {
    pub id: String,
    pub checked: u64,
    pub verdict: Verdict,
}

/// The invariants as of the last check.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InvariantStatus {
    /// When the checker last ran; `None` before the first check.
    pub checked_at: Option<Instant>,
    /// The run is over and these are the report's verdicts.
    pub is_final: bool,
    pub items: Vec<InvariantView>,
}

impl InvariantStatus {
    /// From checker results: on a final check every violation counts; before, only those of
    /// [`JUDGED_WHILE_RUNNING`] do and the others are open.
    pub fn from_results(results: &[InvariantResult], at: Instant, is_final: bool) -> Self {
        let items = results
            .iter()
            .map(|r| {
                let verdict = if r.passed {
                    Verdict::Held
                } else {
                    let total = r.violations_total.max(r.violations.len() as u64);
                    let first = r
                        .violations
                        .first()
                        .map(|v| v.to_string())
                        .unwrap_or_default();
                    if is_final || JUDGED_WHILE_RUNNING.contains(&r.id.as_str()) {
                        Verdict::Violated { total, first }
                    } else {
                        Verdict::Open { total, first }
                    }
                };
                InvariantView {
                    id: r.id.clone(),
                    checked: r.checked,
                    verdict,
                }
            })
            .collect();
        InvariantStatus {
            checked_at: Some(at),
            is_final,
            items,
        }
    }

    /// The first broken invariant and its first violation.
    pub fn first_violation(&self) -> Option<(&str, &str)> {
        self.items.iter().find_map(|i| match &i.verdict {
            Verdict::Violated { first, .. } => Some((i.id.as_str(), first.as_str())),
            _ => None,
        })
    }

    /// Nothing is broken (open items may remain).
    pub fn green(&self) -> bool {
        self.first_violation().is_none()
    }
}

/// A snapshot of a world, owned and independent of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub scenario: String,
    pub seed: u64,
    pub now: Instant,
    /// The end of the fault phase (`duration`).
    pub duration_end: Instant,
    /// The end of the run (`duration` + `drain`).
    pub end: Instant,
    pub phase: Phase,
    /// Kernel events processed so far.
    pub events_processed: u64,
    pub plants: Vec<PlantView>,
    pub classes: [ClassView; 3],
    pub systems: [SystemView; 4],
    pub core: CoreView,
    /// The most recent NC timelines, newest first (at most [`TIMELINES_KEPT_MAX`]).
    pub timelines: Vec<Timeline>,
    /// NCs raised so far (there may be more than `timelines` holds).
    pub timelines_total: usize,
    pub invariants: InvariantStatus,
    /// Faults injected by an operator so far.
    pub injected_faults: u64,
}

impl Observation {
    /// Every station in plant → line → station order, with its plant and line.
    pub fn stations(&self) -> impl Iterator<Item = (&PlantView, &LineView, &StationView)> {
        self.plants.iter().flat_map(|p| {
            p.lines
                .iter()
                .flat_map(move |l| l.stations.iter().map(move |s| (p, l, s)))
        })
    }
}

/// A 64-bit fingerprint of an idempotency key, to remember which keys a ledger has seen without
/// copying them (a collision, ~1e-8 at a million keys, would drop one latency sample).
fn fingerprint(key: &str) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// Per-ledger state of the incremental reading.
#[derive(Default)]
struct Cursor {
    read: usize,
    keys_seen: FxHashSet<u64>,
}

/// Follows one world and builds [`Observation`]s of it. See the module documentation.
pub struct Observer {
    /// qms, cmms, erp, then one per plant's MES.
    cursors: Vec<Cursor>,
    latency: [LatencyHistogram; 3],
    timelines: Vec<Timeline>,
    by_nc: FxHashMap<String, usize>,
    by_work_order: FxHashMap<WorkOrderId, usize>,
    /// Active ERP holds: hold → (timeline, units).
    active_holds: FxHashMap<HoldId, (usize, u64)>,
    rate_samples: VecDeque<(Instant, [u64; 3])>,
    last_stats: Stats,
    invariants: InvariantStatus,
}

impl Observer {
    /// An observer of `w` (from any point of its run: it catches up on the first observation).
    pub fn new(w: &World) -> Observer {
        Observer {
            cursors: (0..3 + w.mes.len()).map(|_| Cursor::default()).collect(),
            latency: std::array::from_fn(|_| LatencyHistogram::new()),
            timelines: Vec::new(),
            by_nc: FxHashMap::default(),
            by_work_order: FxHashMap::default(),
            active_holds: FxHashMap::default(),
            rate_samples: VecDeque::new(),
            last_stats: Stats::default(),
            invariants: InvariantStatus::default(),
        }
    }

    /// Reads what happened since the last call and returns a snapshot of `w`.
    pub fn observe(&mut self, w: &World) -> Observation {
        self.catch_up(w);
        let now = w.now();
        let end = w.duration_end() + w.scenario.drain;
        let phase = if now < w.duration_end() {
            Phase::Faults
        } else if now < end {
            Phase::Drain
        } else {
            Phase::Ended
        };
        let rates = self.rates(now, w.counts.events_delivered_by_class);
        let engine = w.engine();
        if let Some(e) = engine {
            self.last_stats = e.stats().clone();
        }
        let queued = engine.map_or([0; 3], |e| e.queued());
        let lat = self.latencies();
        let classes = LatencyClass::ALL.map(|c| ClassView {
            class: Some(c),
            events: w.counts.events_delivered_by_class[c.index()],
            events_per_s: rates[c.index()],
            queued: queued[c.index()],
            latency: lat.by_index(c.index()).clone(),
            slo_p99: w.scenario.expect.slo.p99(c),
        });
        let systems = System::ALL.map(|s| {
            let h = engine.map(|e| e.target_health(s));
            SystemView {
                system: s,
                queued: h.map_or([0; 3], |h| h.queued),
                in_flight: h.map_or(0, |h| h.in_flight),
                breaker_open: h.is_some_and(|h| h.breaker_open),
                parked_dead_letters: h.map_or(0, |h| h.parked_dead_letters),
                outage_until: w.endpoint_outage_until(s),
                faults: if phase == Phase::Faults {
                    active_faults(&w.scenario.faults, s, now)
                } else {
                    Vec::new()
                },
            }
        });
        let core = CoreView {
            down: w.core_down(),
            crashes: w.counts.core_crashes,
            stats: self.last_stats.clone(),
            dead_letters: engine.map_or(0, |e| e.dead_letters().count() as u64),
            open_calls: engine.map_or(0, |e| e.open_calls() as u64),
            audit_records: w.audit.len() as u64,
        };
        Observation {
            scenario: w.scenario.name.clone(),
            seed: w.seed,
            now,
            duration_end: w.duration_end(),
            end,
            phase,
            events_processed: w.events_processed(),
            plants: self.plants(w),
            classes,
            systems,
            core,
            timelines: self
                .timelines
                .iter()
                .rev()
                .take(TIMELINES_KEPT_MAX)
                .cloned()
                .collect(),
            timelines_total: self.timelines.len(),
            invariants: self.invariants.clone(),
            injected_faults: w.counts.injected_faults,
        }
    }

    /// Runs the invariant checker over `w` as it is now (O(run): the caller decides how often) and
    /// keeps the result for the next observations. Before the end of the run only
    /// [`JUDGED_WHILE_RUNNING`] can turn red.
    pub fn check(&mut self, w: &World) -> &InvariantStatus {
        self.catch_up(w);
        let lat = self.latencies();
        let results = checker::check(&w.ground_truth(), &lat);
        self.invariants = InvariantStatus::from_results(&results, w.now(), false);
        &self.invariants
    }

    /// Takes the verdicts of the finished run's report.
    pub fn set_final(&mut self, report: &Report, at: Instant) {
        self.invariants = InvariantStatus::from_results(&report.invariants, at, true);
    }

    /// End-to-end latency per class from what the observer has read so far; after reading the
    /// whole run it equals [`checker::latencies`].
    pub fn latencies(&self) -> Latencies {
        checker::latencies_of(&self.latency.each_ref().map(|h| &h.0))
    }

    /// Events per simulated second per class over the rate window.
    fn rates(&mut self, now: Instant, counts: [u64; 3]) -> [f64; 3] {
        if self.rate_samples.back().is_none_or(|(t, _)| *t < now) {
            self.rate_samples.push_back((now, counts));
        }
        // Keep one sample at or before the window's start, so that the window is covered.
        while self.rate_samples.len() > RATE_SAMPLES_MAX
            || (self.rate_samples.len() > 2 && self.rate_samples[1].0 + RATE_WINDOW <= now)
        {
            self.rate_samples.pop_front();
        }
        let (Some((t0, c0)), Some((t1, c1))) =
            (self.rate_samples.front(), self.rate_samples.back())
        else {
            return [0.0; 3];
        };
        let span = t1.saturating_since(*t0).as_secs_f64();
        if span <= 0.0 {
            return [0.0; 3];
        }
        std::array::from_fn(|i| c1[i].saturating_sub(c0[i]) as f64 / span)
    }

    fn plants(&self, w: &World) -> Vec<PlantView> {
        let mut held = vec![0u64; w.plant.stations.len()];
        for (t, units) in self.active_holds.values() {
            if let Some(s) = w.plant.station_index(&self.timelines[*t].station) {
                held[s] += units;
            }
        }
        w.plant
            .plants
            .iter()
            .enumerate()
            .map(|(pi, p)| PlantView {
                id: p.id.clone(),
                wan_down: p.wan_down,
                edge_buffered: w.edge_buffered(pi),
                lines: w.plant.lines[p.lines.clone()]
                    .iter()
                    .map(|l| LineView {
                        id: l.id.clone(),
                        running: l.running,
                        order: l.order.as_ref().map(|o| {
                            let s = o.order.serials;
                            (
                                o.order.id.clone(),
                                o.next_serial.saturating_sub(s.first()),
                                s.len(),
                            )
                        }),
                        units_completed: l.units_completed,
                        stations: l
                            .stations
                            .clone()
                            .map(|si| {
                                let s = &w.plant.stations[si];
                                StationView {
                                    id: s.id.clone(),
                                    running: l.running,
                                    stopped_by_mes: s.stopped,
                                    down: s.down,
                                    drifting_since: s.drift_since,
                                    units_on_hold: held[si],
                                    processed: s.processed,
                                    failures: s.failures,
                                }
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect()
    }

    /// Reads every ledger entry added since the last call.
    fn catch_up(&mut self, w: &World) {
        // QMS first (NCs open timelines), then CMMS (work orders join them), then ERP and MES,
        // whose postings name NCs and work orders.
        let mut ledgers: Vec<&Ledger> = vec![w.qms.ledger(), w.cmms.ledger(), w.erp.ledger()];
        ledgers.extend(w.mes.iter().map(|m| m.ledger()));
        for (i, l) in ledgers.into_iter().enumerate() {
            let entries = l.entries();
            let from = self.cursors[i].read;
            for e in &entries[from..] {
                if e.origin == Origin::Integration
                    && let Some(key) = &e.key
                    && self.cursors[i].keys_seen.insert(fingerprint(key.as_str()))
                    && let Some(o) = w.key_origins.get(key)
                    && let Some(em) = w.emitted.get(&o.origin)
                {
                    let ms = e.at.saturating_since(em.at).as_millis().max(1);
                    self.latency[o.class.index()].record(ms);
                }
                self.follow(e.at, e.origin, &e.posting);
            }
            self.cursors[i].read = entries.len();
        }
    }

    /// Advances the NC timelines with one ledger entry.
    fn follow(&mut self, at: Instant, origin: Origin, posting: &Posting) {
        let integration = origin == Origin::Integration;
        let step = match posting {
            Posting::NcCreated(nc) => {
                if !self.by_nc.contains_key(nc.id.as_str()) {
                    self.by_nc
                        .insert(nc.id.as_str().to_owned(), self.timelines.len());
                    let mut t = Timeline {
                        nc: nc.id.clone(),
                        station: nc.station.clone(),
                        serials: nc.serials,
                        asset_related: nc.asset_related,
                        at: [None; 9],
                        work_order: None,
                        cost: Money::default(),
                        decision: None,
                    };
                    t.at[Step::Nc.index()] = Some(at);
                    self.timelines.push(t);
                }
                return;
            }
            Posting::HoldPosted(h) if integration => {
                if let Some(&t) = self.by_nc.get(h.nc.as_str()) {
                    self.active_holds
                        .entry(h.id.clone())
                        .or_insert((t, h.serials.len()));
                }
                self.by_nc.get(h.nc.as_str()).map(|t| (*t, Step::Hold))
            }
            Posting::HoldReleased { hold, nc, .. } if integration => {
                self.active_holds.remove(hold);
                self.by_nc.get(nc.as_str()).map(|t| (*t, Step::Release))
            }
            Posting::WorkOrderCreated(wo) if integration => wo.nc.as_ref().and_then(|nc| {
                let t = *self.by_nc.get(nc.as_str())?;
                self.by_work_order.entry(wo.id.clone()).or_insert(t);
                let tl = &mut self.timelines[t];
                tl.work_order.get_or_insert_with(|| wo.id.clone());
                Some((t, Step::WorkOrder))
            }),
            Posting::WorkOrderCompleted(c) => self
                .by_work_order
                .get(&c.work_order)
                .map(|t| (*t, Step::Completion)),
            Posting::CostPosted(c) if integration => {
                self.by_work_order.get(&c.work_order).map(|&t| {
                    let tl = &mut self.timelines[t];
                    tl.cost = tl.cost + c.amount;
                    (t, Step::Cost)
                })
            }
            Posting::DispositionApproved(d) => self.by_nc.get(d.nc.as_str()).map(|&t| {
                self.timelines[t].decision.get_or_insert(d.decision);
                (t, Step::Disposition)
            }),
            // Line controls name the NC they serve.
            Posting::StationStopped { nc: Some(nc), .. } if integration => {
                self.by_nc.get(nc.as_str()).map(|t| (*t, Step::Stop))
            }
            Posting::StationResumed { nc: Some(nc), .. } if integration => {
                self.by_nc.get(nc.as_str()).map(|t| (*t, Step::Resume))
            }
            _ => None,
        };
        if let Some((t, step)) = step {
            self.timelines[t].at[step.index()].get_or_insert(at);
        }
    }
}

/// The kinds of scenario faults active on `system` at `now`.
fn active_faults(faults: &[Fault], system: System, now: Instant) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = faults
        .iter()
        .filter(|f| f.system() == Some(system) && f.window().contains(now))
        .map(Fault::kind)
        .collect();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(id: &str, violations: Vec<serde_json::Value>) -> InvariantResult {
        InvariantResult {
            id: id.to_owned(),
            passed: violations.is_empty(),
            checked: 7,
            violations_total: violations.len() as u64,
            violations,
        }
    }

    #[test]
    fn while_running_only_safety_violations_are_red() {
        let results = vec![
            result("no-duplicate-postings", vec![]),
            result("containment", vec![json!({ "nc": "NC-1", "holds": 0 })]),
            result(
                "hold-before-release",
                vec![json!({ "hold": "H-1", "release_at_s": 5.0 }), json!({})],
            ),
        ];
        let running = InvariantStatus::from_results(&results, Instant::from_secs(9), false);
        assert_eq!(running.items[0].verdict, Verdict::Held);
        assert_eq!(
            running.items[1].verdict,
            Verdict::Open {
                total: 1,
                first: r#"{"holds":0,"nc":"NC-1"}"#.into()
            }
        );
        assert!(matches!(
            running.items[2].verdict,
            Verdict::Violated { total: 2, .. }
        ));
        assert_eq!(
            running.first_violation(),
            Some((
                "hold-before-release",
                r#"{"hold":"H-1","release_at_s":5.0}"#
            ))
        );
        assert!(!running.green());

        let open_only = InvariantStatus::from_results(&results[..2], Instant::from_secs(9), false);
        assert!(open_only.green(), "open work is not a violation yet");
        let at_end = InvariantStatus::from_results(&results[..2], Instant::from_secs(9), true);
        assert_eq!(at_end.first_violation().map(|v| v.0), Some("containment"));
    }

    #[test]
    fn station_state_shows_the_most_pressing() {
        let mut s = StationView {
            id: StationId::new("P1-L1-S1").unwrap(),
            running: true,
            stopped_by_mes: false,
            down: false,
            drifting_since: None,
            units_on_hold: 0,
            processed: 0,
            failures: 0,
        };
        assert_eq!(s.state(), StationState::Running);
        s.running = false;
        assert_eq!(s.state(), StationState::Idle);
        s.units_on_hold = 4;
        assert_eq!(s.state(), StationState::OnHold);
        s.drifting_since = Some(Instant::ZERO);
        assert_eq!(s.state(), StationState::Drifting);
        s.stopped_by_mes = true;
        assert_eq!(s.state(), StationState::StoppedByMes);
        s.down = true;
        assert_eq!(s.state(), StationState::Down);
    }
}
