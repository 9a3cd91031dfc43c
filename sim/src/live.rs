//! A run driven from outside, piece by piece: the simulator side of the live view.
//!
//! [`LiveRun`] owns a [`World`] and an [`Observer`] and offers the live view's commands: advance by
//! a number of kernel events or to a simulated time, single-step, inject a fault, observe, check
//! the invariants, finish. It never reads the wall clock: pacing (real time × k, a frame budget) is
//! the caller's business, and whatever the pacing, the same scenario, seed and injections give the
//! same run.
//!
//! # Injections and reproducibility
//! An injected fault takes effect between two kernel events. The world writes it to the trace like
//! every other fact of the run (`com.plantloop.sim.fault.<kind>.v1`, with the simulated time and the
//! number of kernel events processed before it), and [`Injection::from_trace`] reads it back. A
//! replay ([`LiveRun::replay`]) processes exactly that many events, moves the clock to the same
//! instant and injects the same fault, so it reaches the same trace hash as the live run.

use crate::observe::{Observation, Observer};
use crate::report::Report;
use crate::runner;
use crate::scenario::Scenario;
use crate::world::{Injected, World};
use plantloop_core::model::System;
use plantloop_core::time::{Duration, Instant};
use std::fmt;
use std::io::BufRead;

/// One injected fault and the point of the run at which it took effect.
#[derive(Clone, Debug, PartialEq)]
pub struct Injection {
    /// Simulated time.
    pub at: Instant,
    /// Kernel events processed before it.
    pub after_events: u64,
    pub fault: Injected,
}

/// A trace line that claims to be an injected fault but cannot be read back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("trace line {line}: {message}")]
pub struct TraceError {
    /// 1-based line of the trace file.
    pub line: usize,
    pub message: String,
}

/// Why an injection was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The drain lets retries converge: no new faults (spec/scenario.md).
    #[error("the run is draining (no new faults after `duration`)")]
    Draining,
    #[error("the run has ended")]
    Ended,
    #[error("plant #{0} does not exist")]
    NoSuchPlant(usize),
    #[error("the WAN link of {0} is already down")]
    WanAlreadyDown(String),
    #[error("the core is already down")]
    CoreAlreadyDown,
    #[error("{0} is already in an injected outage")]
    OutageAlreadyActive(System),
    #[error("a fault must last a positive time")]
    ZeroLength,
}

impl fmt::Display for Injection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", describe(&self.fault, None), self.at)
    }
}

/// A short description of a fault, naming the plant by id when the scenario is at hand.
pub fn describe(fault: &Injected, scenario: Option<&Scenario>) -> String {
    match fault {
        Injected::WanOutage { plant, duration } => {
            let name = scenario
                .and_then(|s| s.plants.get(*plant))
                .map_or_else(|| format!("plant #{plant}"), |p| p.id.to_string());
            format!("WAN outage on {name} for {duration}")
        }
        Injected::CoreCrash { downtime } => format!("core crash, down for {downtime}"),
        Injected::EndpointOutage { system, duration } => {
            format!("{} outage for {duration}", system.as_str().to_uppercase())
        }
    }
}

impl Injection {
    /// Reads every injected fault from a trace (CloudEvents JSON Lines as `--trace` writes them).
    /// Lines that are not injected faults (scenario faults included) are skipped; plant ids are resolved against `scenario`.
    pub fn from_trace(
        trace: impl BufRead,
        scenario: &Scenario,
    ) -> Result<Vec<Injection>, TraceError> {
        let mut out = Vec::new();
        for (i, line) in trace.lines().enumerate() {
            let err = |message: String| TraceError {
                line: i + 1,
                message,
            };
            let line = line.map_err(|e| err(e.to_string()))?;
            if !line.contains("com.plantloop.sim.fault.") {
                continue;
            }
            let v: serde_json::Value =
                serde_json::from_str(&line).map_err(|e| err(format!("not JSON: {e}")))?;
            // Scenario faults are recorded too (source `/plantloop/sim/scenario`); the scenario
            // file brings those back on its own.
            if v["source"] != "/plantloop/sim/operator" {
                continue;
            }
            let Some(kind) = v["type"]
                .as_str()
                .and_then(|t| t.strip_prefix("com.plantloop.sim.fault."))
                .and_then(|t| t.strip_suffix(".v1"))
            else {
                continue;
            };
            let data = &v["data"];
            let num = |key: &str| {
                data[key]
                    .as_u64()
                    .ok_or_else(|| err(format!("data.{key}: expected a non-negative integer")))
            };
            let us = |key: &str| num(key).map(Duration::from_micros);
            let fault = match kind {
                "wan-outage" => {
                    let id = data["plant"]
                        .as_str()
                        .ok_or_else(|| err("data.plant: expected a plant id".into()))?;
                    let plant = scenario
                        .plants
                        .iter()
                        .position(|p| p.id.as_str() == id)
                        .ok_or_else(|| {
                            err(format!("data.plant: {id:?} is not a plant of the scenario"))
                        })?;
                    Injected::WanOutage {
                        plant,
                        duration: us("for_us")?,
                    }
                }
                "core-crash" => Injected::CoreCrash {
                    downtime: us("downtime_us")?,
                },
                "endpoint-outage" => {
                    let name = data["system"].as_str().unwrap_or_default();
                    let system = System::parse(name).ok_or_else(|| {
                        err(format!(
                            "data.system: {name:?} is not one of erp, qms, cmms, mes"
                        ))
                    })?;
                    Injected::EndpointOutage {
                        system,
                        duration: us("for_us")?,
                    }
                }
                other => return Err(err(format!("type: unknown injected fault kind {other:?}"))),
            };
            out.push(Injection {
                at: Instant::from_micros(num("at_us")?),
                after_events: num("after_events")?,
                fault,
            });
        }
        Ok(out)
    }
}

/// A run driven piece by piece. See the module documentation.
pub struct LiveRun {
    world: World,
    observer: Observer,
    injections: Vec<Injection>,
    report: Option<Report>,
}

impl LiveRun {
    /// Builds and starts the world of `scenario` for `seed`; `trace` receives the run's trace.
    pub fn new(
        scenario: Scenario,
        seed: u64,
        trace: Option<Box<dyn std::io::Write + Send>>,
    ) -> LiveRun {
        let mut world = World::new(scenario, seed, trace);
        world.start();
        let observer = Observer::new(&world);
        LiveRun {
            world,
            observer,
            injections: Vec::new(),
            report: None,
        }
    }

    /// Runs `scenario` with `injections` applied at the points they record, to the end: the same
    /// trace hash as the live run they came from.
    pub fn replay(
        scenario: Scenario,
        seed: u64,
        injections: &[Injection],
        trace: Option<Box<dyn std::io::Write + Send>>,
    ) -> Result<LiveRun, String> {
        let mut run = LiveRun::new(scenario, seed, trace);
        for inj in injections {
            while run.world.events_processed() < inj.after_events {
                if !run.world.step(inj.at) {
                    return Err(format!(
                        "{inj}: the run had processed only {} events by then",
                        run.world.events_processed()
                    ));
                }
            }
            if run.world.now() < inj.at && run.world.step(inj.at) {
                return Err(format!("{inj}: another event is due before it"));
            }
            run.inject(inj.fault.clone())
                .map_err(|e| format!("{inj}: {e}"))?;
        }
        run.finish();
        Ok(run)
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    /// The simulated time.
    pub fn now(&self) -> Instant {
        self.world.now()
    }

    /// The end of the run: `duration` + `drain`.
    pub fn end(&self) -> Instant {
        self.world.duration_end() + self.world.scenario.drain
    }

    /// The run has ended and was judged.
    pub fn is_finished(&self) -> bool {
        self.report.is_some()
    }

    /// The report, once finished.
    pub fn report(&self) -> Option<&Report> {
        self.report.as_ref()
    }

    /// The faults injected so far, in order.
    pub fn injections(&self) -> &[Injection] {
        &self.injections
    }

    /// Processes at most `events_max` kernel events with time ≤ `until` (capped at the end of the
    /// run; a `until` in the past counts as now). When fewer were due, the clock moves to `until`. Returns the events processed. When
    /// the clock reaches the end, the run finishes (processing whatever else is due then) and is
    /// judged.
    pub fn advance(&mut self, until: Instant, events_max: u64) -> u64 {
        if self.report.is_some() {
            return 0;
        }
        // Never backwards: a target in the past only processes what is due now.
        let until = until.min(self.end()).max(self.world.now());
        let mut n = 0;
        while n < events_max {
            if !self.world.step(until) {
                break;
            }
            n += 1;
        }
        if self.world.now() >= self.end() {
            self.finish();
        }
        n
    }

    /// Runs to `until` (capped at the end of the run).
    pub fn run_until(&mut self, until: Instant) {
        self.advance(until, u64::MAX);
    }

    /// Processes the next kernel event, wherever it is before the end. Returns false when there
    /// was none (the run then finishes).
    pub fn step(&mut self) -> bool {
        if self.report.is_some() {
            return false;
        }
        let end = self.end();
        let stepped = self.world.step(end);
        if !stepped || self.world.now() >= end {
            // Finishing processes whatever else is due at the end.
            self.finish();
        }
        stepped
    }

    /// Injects `fault` now. Refused during the drain (no new faults), after the end, and when the
    /// fault is already in effect.
    pub fn inject(&mut self, fault: Injected) -> Result<(), Refusal> {
        if self.report.is_some() {
            return Err(Refusal::Ended);
        }
        if self.world.now() >= self.world.duration_end() {
            return Err(Refusal::Draining);
        }
        match &fault {
            Injected::WanOutage { plant, duration } => {
                let p = self
                    .world
                    .plant
                    .plants
                    .get(*plant)
                    .ok_or(Refusal::NoSuchPlant(*plant))?;
                if p.wan_down {
                    return Err(Refusal::WanAlreadyDown(p.id.to_string()));
                }
                if duration.is_zero() {
                    return Err(Refusal::ZeroLength);
                }
            }
            Injected::CoreCrash { downtime } => {
                if self.world.core_down() {
                    return Err(Refusal::CoreAlreadyDown);
                }
                if downtime.is_zero() {
                    return Err(Refusal::ZeroLength);
                }
            }
            Injected::EndpointOutage { system, duration } => {
                if self.world.endpoint_outage_until(*system).is_some() {
                    return Err(Refusal::OutageAlreadyActive(*system));
                }
                if duration.is_zero() {
                    return Err(Refusal::ZeroLength);
                }
            }
        }
        self.injections.push(Injection {
            at: self.world.now(),
            after_events: self.world.events_processed(),
            fault: fault.clone(),
        });
        self.world.inject(fault);
        Ok(())
    }

    /// A snapshot of the run now.
    pub fn observe(&mut self) -> Observation {
        self.observer.observe(&self.world)
    }

    /// Runs the invariant checker now (O(run)); later observations carry its result. After the
    /// end, the report's verdicts stand.
    pub fn check_invariants(&mut self) {
        if self.report.is_none() {
            self.observer.check(&self.world);
        }
    }

    /// Runs to the end of the drain, judges the run and returns its report (`wall_s` is 0: a live
    /// run's wall time is the viewer's, not the simulator's).
    pub fn finish(&mut self) -> &Report {
        if self.report.is_none() {
            let hash = self.world.finish();
            self.world.mark_unacknowledged();
            let report = runner::report(&self.world, self.world.seed, hash, 0.0);
            self.observer.set_final(&report, self.world.now());
            self.report = Some(report);
        }
        self.report.as_ref().expect("set above")
    }
}
