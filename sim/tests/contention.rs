//! Priority under contention (issue 13): the library scenario `contention-saas-master-data`
//! saturates SaaS systems (rate limit plus finite service slots) with a large master-data release
//! during an alarm storm and two containments. Critical stays within its objective while bulk
//! waits minutes; an outbox that stops putting critical first fails the run.

use plantloop_sim::report::Report;
use plantloop_sim::runner::{RunOptions, run};
use plantloop_sim::sabotage::{Defect, EngineDefect};
use plantloop_sim::scenario::Scenario;
use std::path::Path;

fn scenario() -> Scenario {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/contention-saas-master-data.toml");
    Scenario::load(path).unwrap_or_else(|e| panic!("{e}"))
}

fn run_with(defect: Option<Defect>) -> Report {
    run(
        scenario(),
        RunOptions {
            defect,
            ..RunOptions::default()
        },
    )
}

#[test]
fn critical_stays_within_its_objective_while_bulk_waits() {
    let r = run_with(None);
    assert!(r.passed, "{r:#?}");
    let slo = scenario().expect.slo;
    let critical = &r.latency.critical;
    assert!(critical.count >= 5, "{critical:?}");
    assert!(
        critical.p99_ms <= slo.critical_p99.unwrap().as_millis(),
        "{critical:?}"
    );
    // The contention is real: bulk waits minutes, a hundred times the critical p99.
    let bulk = &r.latency.bulk;
    assert!(bulk.p99_ms >= 120_000, "{bulk:?}");
    assert!(
        bulk.p99_ms >= 100 * critical.p99_ms,
        "{bulk:?} {critical:?}"
    );
}

#[test]
fn an_outbox_that_sends_bulk_first_fails_the_objective() {
    let r = run_with(Some(Defect::Engine(EngineDefect::BulkFirst)));
    assert!(!r.passed);
    let slo = r.invariants.iter().find(|i| i.id == "slo").unwrap();
    assert!(!slo.passed, "{slo:?}");
    assert!(
        slo.violations.iter().any(|v| v["class"] == "critical"),
        "{slo:?}"
    );
    assert!(
        r.latency.critical.p99_ms > 5_000,
        "{:?}",
        r.latency.critical
    );
}

/// `expect.latency_min` is judged: the same scenario without its load (no master-data release)
/// falls short of its bulk floor.
#[test]
fn a_run_without_the_load_falls_short_of_the_latency_floor() {
    let mut s = scenario();
    s.masterdata.clear();
    s.expect.min.clear();
    let r = run(s, RunOptions::default());
    assert!(!r.passed);
    assert!(
        r.shortfalls
            .iter()
            .any(|s| s.starts_with("latency_min.bulk_p99")),
        "{:?}",
        r.shortfalls
    );
}
