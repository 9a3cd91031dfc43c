//! Runs one scenario end to end and builds its report: the world through `duration` and `drain`,
//! then the checker.

use crate::checker;
use crate::report::{Counts, Report, SimFigures};
use crate::scenario::Scenario;
use crate::world::World;
use plantloop_core::model::LatencyClass;
use plantloop_core::time::{Duration, Instant};
use plantloop_mocks::PostingKind;

/// How to run.
#[derive(Default)]
pub struct RunOptions {
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// Receives every event crossing the core as CloudEvents JSON Lines.
    pub trace: Option<Box<dyn std::io::Write + Send>>,
    /// Called with the fraction of simulated time done, about a hundred times per run.
    pub progress: Option<Box<dyn FnMut(f64)>>,
    /// A deliberate defect to run with (feature `sabotage`, for the checker's own tests).
    #[cfg(feature = "sabotage")]
    pub defect: Option<crate::sabotage::Defect>,
    /// Leaves the report's latency per plant and per workflow empty: explore judges thousands of
    /// seeds by their verdicts alone and need not pay for figures nobody reads.
    pub without_breakdowns: bool,
}

/// Runs `scenario` and judges it. `wall_s` is the only field that is not reproducible.
pub fn run(scenario: Scenario, opts: RunOptions) -> Report {
    let started = std::time::Instant::now();
    let seed = opts.seed.unwrap_or(scenario.seed);
    let mut world = World::new(scenario, seed, opts.trace);
    #[cfg(feature = "sabotage")]
    if let Some(d) = opts.defect {
        world.sabotage(d);
    }
    world.start();
    let total = world.duration_end() + world.scenario.drain;
    if let Some(mut progress) = opts.progress {
        let step = Duration::from_micros((total.as_micros() / 100).max(1));
        let mut t = Instant::ZERO;
        while t < total {
            t = (t + step).min(total);
            world.run_until(t);
            progress(t.as_micros() as f64 / total.as_micros().max(1) as f64);
        }
    }
    let trace_hash = world.finish();
    world.mark_unacknowledged();
    let truth = world.ground_truth();
    let figures = if opts.without_breakdowns {
        checker::LatencyFigures {
            classes: checker::latencies(&truth),
            ..Default::default()
        }
    } else {
        checker::latency_figures(&truth)
    };
    let wall_s = started.elapsed().as_secs_f64();
    report_with(&world, &truth, seed, trace_hash, wall_s, figures)
}

/// The report of a finished world.
pub fn report(w: &World, seed: u64, trace_hash: String, wall_s: f64) -> Report {
    let truth = w.ground_truth();
    let figures = checker::latency_figures(&truth);
    report_with(w, &truth, seed, trace_hash, wall_s, figures)
}

fn report_with(
    w: &World,
    truth: &checker::GroundTruth<'_>,
    seed: u64,
    trace_hash: String,
    wall_s: f64,
    figures: checker::LatencyFigures,
) -> Report {
    let latency = figures.classes;
    let invariants = checker::check(truth, &latency);
    let stats = w.engine().map(|e| e.stats().clone()).unwrap_or_default();
    let erp = w.erp.ledger();
    let integ = |l: &plantloop_mocks::Ledger, k: PostingKind| {
        l.of_kind(k)
            .filter(|e| e.origin == plantloop_mocks::Origin::Integration)
            .count() as u64
    };
    let counts = Counts {
        units: w.plant.units(),
        inspections: w.counts.inspections,
        nonconformances: w.qms.ledger().count(PostingKind::NcCreated) as u64,
        holds: integ(erp, PostingKind::HoldPosted),
        releases: integ(erp, PostingKind::HoldReleased),
        work_orders: integ(w.cmms.ledger(), PostingKind::WorkOrderCreated),
        line_stops: w
            .mes
            .iter()
            .map(|m| integ(m.ledger(), PostingKind::StationStopped))
            .sum(),
        cost_postings: integ(erp, PostingKind::CostPosted),
        master_data_records: [erp, w.qms.ledger(), w.cmms.ledger()]
            .iter()
            .map(|l| l.count(PostingKind::MasterDataPublished) as u64)
            .sum(),
        dead_letters: w.engine().map_or(0, |e| e.dead_letters().count() as u64),
        dead_letters_replayed: stats.dead_letters_replayed,
        retries: stats.retries,
        duplicates_absorbed: stats.duplicates_absorbed,
        core_crashes: w.counts.core_crashes,
    };
    let mut shortfalls = Vec::new();
    for (count, min) in &w.scenario.expect.min {
        let got = counts.get(count.as_str()).unwrap_or(0);
        if got < *min {
            shortfalls.push(format!("{}: {got} < {min}", count.as_str()));
        }
    }
    for c in LatencyClass::ALL {
        if let Some(floor) = w.scenario.expect.latency_min.p99(c) {
            let got = latency.by_index(c.index()).p99_ms;
            if got < floor.as_millis() {
                shortfalls.push(format!(
                    "latency_min.{}_p99: {} < {floor}",
                    c.as_str(),
                    Duration::from_millis(got)
                ));
            }
        }
    }
    let passed = invariants.iter().all(|i| i.passed) && shortfalls.is_empty();
    Report {
        scenario: w.scenario.name.clone(),
        seed,
        passed,
        sim: SimFigures {
            duration_s: (w.scenario.duration + w.scenario.drain).as_secs(),
            events: w.events_processed(),
            wall_s,
        },
        trace_hash,
        counts,
        latency,
        latency_by_plant: figures.by_plant,
        latency_by_workflow: figures.by_workflow,
        invariants,
        shortfalls,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}
