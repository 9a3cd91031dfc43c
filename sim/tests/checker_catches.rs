//! The checker can fail: for each invariant id, a small scenario run against a deliberately broken
//! engine, mock or edge agent (feature `sabotage`) is reported by exactly that invariant, while the
//! same scenario without the defect passes every invariant.

use plantloop_sim::explore::failed_ids;
use plantloop_sim::report::{InvariantResult, Report};
use plantloop_sim::runner::{RunOptions, run};
use plantloop_sim::sabotage::{Defect, EngineDefect};
use plantloop_sim::scenario::Scenario;

/// One plant, one line of four stations, a tool drifting at station 2 from 2 h: one NC, its
/// containment, repair, disposition and release, with parts and labour costs.
const BASE: &str = r#"
[scenario]
name = "catches"
seed = 7
duration = "12h"
drain = "1d"

[[plant]]
id = "P1"
lines = 1
stations_per_line = 4
cycle_time = "60s"
inspection = { sample_rate = 1.0, defect_rate = 0.0 }
orders = { size = 300, material = "ASSY-100" }
maintenance = { labor_rate = 85.0, parts = [ { part = "TORQUE-HEAD", unit_cost = 412.50 } ] }

[[drift]]
station = "P1-L1-S2"
at = "2h"
defect_rate = 0.5

"#;

/// The objectives of a fault-free run.
const SLO: &str = r#"slo = { critical_p99 = "5s", transactional_p99 = "2m" }"#;

fn scenario(extra: &str, slo: &str) -> Scenario {
    scenario_with_plant("", extra, slo)
}

/// [`BASE`] with `plant` added to its plant table (machines, or orders in place of BASE's),
/// `extra` tables after it, and objectives `slo`.
fn scenario_with_plant(plant: &str, extra: &str, slo: &str) -> Scenario {
    let mut base = BASE.replace(
        "cycle_time = \"60s\"\n",
        &format!("cycle_time = \"60s\"\n{plant}\n"),
    );
    if plant.contains("orders =") {
        base = base.replace("orders = { size = 300, material = \"ASSY-100\" }\n", "");
    }
    let text = format!("{base}\n{extra}\n[expect]\ninvariants = [\"all\"]\n{slo}\n");
    Scenario::from_str(&text, "catches.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn run_with(s: &Scenario, defect: Option<Defect>) -> Report {
    run(
        s.clone(),
        RunOptions {
            defect,
            ..RunOptions::default()
        },
    )
}

/// Runs `extra` on top of [`BASE`] without and with `defect`: the first passes everything, the
/// second fails exactly `id`, with violations that name what broke.
fn catches(extra: &str, defect: Defect, id: &str) -> Report {
    catches_with_slo(extra, SLO, defect, id)
}

/// [`catches`] with other latency objectives.
fn catches_with_slo(extra: &str, slo: &str, defect: Defect, id: &str) -> Report {
    let (clean, broken) = control_and_broken(&scenario(extra, slo), defect, &[id]);
    assert!(clean.counts.nonconformances >= 1 && clean.counts.releases >= 1);
    broken
}

/// Runs `s` without and with `defect`: the first passes every invariant, the second fails exactly
/// `ids` (a defect whose damage several invariants see names them all), each with violations that
/// name what broke.
fn catches_exactly(s: &Scenario, defect: Defect, ids: &[&str]) -> Report {
    control_and_broken(s, defect, ids).1
}

/// [`catches_exactly`], returning the control run too.
fn control_and_broken(s: &Scenario, defect: Defect, ids: &[&str]) -> (Report, Report) {
    let failing = |r: &Report| -> Vec<InvariantResult> {
        r.invariants.iter().filter(|i| !i.passed).cloned().collect()
    };
    let clean = run_with(s, None);
    assert!(
        failed_ids(&clean).is_empty(),
        "the control run fails {:?} (seed={}): {:#?}",
        failed_ids(&clean),
        clean.seed,
        failing(&clean)
    );
    let broken = run_with(s, Some(defect));
    assert_eq!(
        failed_ids(&broken),
        ids,
        "{defect:?} (seed={}): {:#?}",
        broken.seed,
        failing(&broken)
    );
    for verdict in failing(&broken) {
        assert!(!verdict.violations.is_empty() && verdict.violations_total >= 1);
    }
    (clean, broken)
}

fn violation(r: &Report, id: &str) -> serde_json::Value {
    r.invariants
        .iter()
        .find(|i| i.id == id)
        .expect("judged")
        .violations[0]
        .clone()
}

#[test]
fn catches_no_duplicate_postings() {
    // A legacy ERP ignores idempotency keys; MES delivers confirmations twice. Without ingress
    // dedupe, the second copy is posted again (and ERP counts those units twice).
    let s = scenario(
        r#"
[systems]
erp = "legacy"

[[fault]]
kind = "duplicate-delivery"
system = "mes"
probability = 0.5
"#,
        SLO,
    );
    let r = catches_exactly(
        &s,
        Defect::Engine(EngineDefect::NoIngressDedupe),
        &["no-duplicate-postings", "inventory-accuracy"],
    );
    let v = violation(&r, "no-duplicate-postings");
    assert_eq!(v["system"], "erp");
    assert!(v["count"].as_u64().unwrap() >= 2, "{v}");
}

#[test]
fn catches_hold_before_release() {
    let r = catches(
        "",
        Defect::Engine(EngineDefect::ReleaseWithoutDisposition),
        "hold-before-release",
    );
    let v = violation(&r, "hold-before-release");
    assert!(v["release_at_s"].as_f64().is_some(), "{v}");
    assert!(
        v["disposition_at_s"].is_null() || !v["open_work_orders"].as_array().unwrap().is_empty(),
        "{v}"
    );
}

#[test]
fn catches_containment() {
    let r = catches(
        "",
        Defect::Engine(EngineDefect::WorkOrderAsBreakdown),
        "containment",
    );
    let v = violation(&r, "containment");
    assert_eq!(v["emergency_work_orders"], 0, "{v}");
    assert_eq!(v["station"], "P1-L1-S2");
}

#[test]
fn catches_no_production_while_stopped() {
    let r = catches(
        "",
        Defect::MesStopNotEnforced,
        "no-production-while-stopped",
    );
    let v = violation(&r, "no-production-while-stopped");
    assert_eq!(v["station"], "P1-L1-S2");
    assert!(v["units_in_span"].as_u64().unwrap() >= 1, "{v}");
}

#[test]
fn catches_cost_capture() {
    let r = catches(
        "",
        Defect::Engine(EngineDefect::PartsCostDropped),
        "cost-capture",
    );
    let v = violation(&r, "cost-capture");
    assert_eq!(v["erp_parts"], "0.00", "{v}");
    assert_ne!(v["cmms_parts"], "0.00", "{v}");
}

#[test]
fn catches_no_lost_events() {
    // A 4-hour WAN outage: the edge must buffer everything MES emits meanwhile (and the
    // objectives allow for the outage). The confirmations it drops never reach ERP either.
    let s = scenario(
        r#"
[[fault]]
kind = "wan-outage"
plant = "P1"
at = "4h"
for = "4h"
"#,
        r#"slo = { critical_p99 = "5h", transactional_p99 = "5h" }"#,
    );
    let r = catches_exactly(
        &s,
        Defect::EdgeDropsWhenFull { capacity: 5 },
        &["no-lost-events", "inventory-accuracy"],
    );
    let v = violation(&r, "no-lost-events");
    assert!(
        v["event"].as_str().unwrap().starts_with("/plants/P1/mes#"),
        "{v}"
    );
}

#[test]
fn catches_causal_order() {
    let r = catches(
        "",
        Defect::Engine(EngineDefect::MaintenanceRecordedEarly),
        "causal-order",
    );
    let v = violation(&r, "causal-order");
    assert_eq!(v["effect"], "maintenance recorded in QMS", "{v}");
}

#[test]
fn catches_audit_chain() {
    let r = catches(
        "",
        Defect::Engine(EngineDefect::AuditUnchained),
        "audit-chain",
    );
    let v = violation(&r, "audit-chain");
    assert!(v["audit_seq"].as_u64().is_some(), "{v}");
}

#[test]
fn catches_master_data_monotonic() {
    // Twelve placement versions for four stations: every consumer must end on version 4.
    let r = catches(
        r#"
[[masterdata]]
at = "1h"
kind = "asset"
count = 12
"#,
        Defect::Engine(EngineDefect::MasterDataStuckOnFirst),
        "master-data-monotonic",
    );
    let v = violation(&r, "master-data-monotonic");
    assert_eq!(v["kind"], "asset", "{v}");
}

#[test]
fn catches_slo() {
    // A throttled MES and a big material release just before the NC: the stop must overtake the
    // bulk backlog.
    let r = catches(
        r#"
[[fault]]
kind = "endpoint-throttle"
system = "mes"
limit_per_s = 20

[[masterdata]]
at = "1h55m"
kind = "material"
count = 20000
"#,
        Defect::Engine(EngineDefect::BulkFirst),
        "slo",
    );
    let v = violation(&r, "slo");
    assert_eq!(v["class"], "critical", "{v}");
}

#[test]
fn catches_a_journal_that_is_not_replayed_after_a_crash() {
    // The core crashes after the NC was contained and restarts without replaying its journal: it
    // forgets the containment, so the approved disposition never releases the hold (no-lost-events),
    // and its audit chain starts over (audit-chain).
    let s = scenario(
        r#"
[[fault]]
kind = "core-crash"
at = "3h"
downtime = "1m"
"#,
        SLO,
    );
    let broken = catches_exactly(
        &s,
        Defect::Engine(EngineDefect::NoJournalReplay),
        &["no-lost-events", "audit-chain", "inventory-accuracy"],
    );
    let v = violation(&broken, "no-lost-events");
    assert_eq!(v["holds_not_released"][0], "H-NC-000001", "{v}");
}

#[test]
fn catches_a_station_resumed_while_another_nc_keeps_it_stopped() {
    // The regression found by explore (seed 4503): a second NC forms at a station the first one
    // stopped. An engine that resumes the station at the first release restarts it while the
    // second NC still awaits its disposition and repair: a release before its time.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scenarios/regressions/second-nc-at-a-stopped-station.toml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let s = Scenario::from_str(&text, path).unwrap_or_else(|e| panic!("{e}"));
    let broken = catches_exactly(
        &s,
        Defect::Engine(EngineDefect::ResumeWhileContained),
        &["hold-before-release"],
    );
    let v = violation(&broken, "hold-before-release");
    assert_eq!(v["station"], "P1-L2-S2", "{v}");
    assert!(
        v["resume_at_s"].as_f64().unwrap() > v["hold_at_s"].as_f64().unwrap(),
        "{v}"
    );
}

/// Objectives that allow for events reordered by up to an hour.
const SLO_REORDERED: &str = r#"slo = { critical_p99 = "2h", transactional_p99 = "3h" }"#;

#[test]
fn catches_repairs() {
    // Machines that break often and CMMS events that arrive late: a new breakdown overtakes the
    // completion of the station's previous work order. An engine that ends a breakdown only at
    // that completion folds the new one into the old order, and no technician comes.
    let s = scenario_with_plant(
        r#"machines = { mtbf = "90m", mttr = "15m" }"#,
        r#"
[[fault]]
kind = "reorder"
system = "cmms"
window = "40m"
"#,
        SLO_REORDERED,
    );
    let r = catches_exactly(
        &s,
        Defect::Engine(EngineDefect::BreakdownFoldedIntoCompleted),
        &["repairs"],
    );
    let v = violation(&r, "repairs");
    assert!(v["station"].as_str().unwrap().starts_with("P1-L1-"), "{v}");
}

#[test]
fn catches_inventory_accuracy() {
    // ERP fails often while the NC forms: a confirmation retried across the hold's posting is
    // refused by ERP (its serials are held) and dead-lettered. An engine that does not send it
    // again after the release leaves ERP short of those units; the letter is stranded too.
    let s = scenario(
        r#"
[[fault]]
kind = "endpoint-errors"
system = "erp"
at = "1h50m"
for = "2h"
rate = 0.8
"#,
        SLO_REORDERED,
    );
    // A seed where a confirmation is refused while the hold is in force (found by trying seeds).
    let s = Scenario { seed: 16, ..s };
    let r = catches_exactly(
        &s,
        Defect::Engine(EngineDefect::HeldConfirmationsNotReplayed),
        &["inventory-accuracy", "no-stranded-events"],
    );
    let v = violation(&r, "inventory-accuracy");
    assert!(v["not_confirmed_units"].as_u64().unwrap() >= 1, "{v}");
}

#[test]
fn catches_order_status() {
    // Two drifting stations on one line, one big order: two NCs hold the same order. An engine
    // that resumes the order at the first release sets it going under the second NC's hold.
    let s = scenario_with_plant(
        r#"orders = { size = 2000, material = "ASSY-100" }"#,
        r#"
[[drift]]
station = "P1-L1-S3"
at = "2h"
defect_rate = 0.9
"#,
        SLO,
    );
    // Both drift hard from the same takt, so both NCs form before the first stop halts the line.
    let drifts = (s.drifts.iter())
        .map(|d| plantloop_sim::scenario::Drift {
            defect_rate: 1.0,
            ..d.clone()
        })
        .collect();
    let s = Scenario { drifts, ..s };
    let r = catches_exactly(
        &s,
        Defect::Engine(EngineDefect::OrderResumedUnderOtherHold),
        &["order-status"],
    );
    let v = violation(&r, "order-status");
    assert_eq!(v["status"], "Resumed", "{v}");
}

#[test]
fn catches_no_stranded_events() {
    // CMMS's asset placements reach the core late, after the first breakdowns. An engine that
    // dead-letters such a breakdown and never applies it once the placement arrives leaves the
    // station down (repairs) and the letter stranded.
    let s = scenario_with_plant(
        r#"machines = { mtbf = "30m", mttr = "15m" }"#,
        r#"
[[fault]]
kind = "reorder"
system = "cmms"
at = "0s"
for = "30m"
window = "2h"
"#,
        SLO_REORDERED,
    );
    let r = catches_exactly(
        &s,
        Defect::Engine(EngineDefect::BreakdownBeforePlacementLost),
        &["repairs", "no-stranded-events"],
    );
    let v = violation(&r, "no-stranded-events");
    assert!(v["placement_published_at_s"].as_f64().is_some(), "{v}");
}

#[test]
fn catches_a_containment_that_forgets_orders() {
    // Orders of two units and a slow drift: the NC's suspect serials span more orders than a
    // registry keeping eight per line remembers, so only some are held.
    let s = scenario_with_plant(r#"orders = { size = 2, material = "ASSY-100" }"#, "", SLO);
    let s = Scenario {
        drifts: vec![plantloop_sim::scenario::Drift {
            defect_rate: 0.06,
            ..s.drifts[0].clone()
        }],
        ..s
    };
    let r = catches_exactly(
        &s,
        Defect::Engine(EngineDefect::OrdersForgottenEarly),
        &["containment"],
    );
    let v = violation(&r, "containment");
    assert_eq!(v["holds_cover_serials"], false, "{v}");
}

#[test]
fn each_regression_of_the_wave_2_fixes_fails_with_its_defect_alone() {
    // Every reproducer explore found for an engine fix still reproduces it: it passes with the
    // fixed engine and fails with that one defect switched back on.
    let cases: [(&str, EngineDefect, &[&str]); 6] = [
        (
            "controls-raced-by-a-second-nc-at-one-station",
            EngineDefect::ControlsUnsequenced,
            &["order-status"],
        ),
        (
            "nc-spanning-more-orders-than-remembered",
            EngineDefect::OrdersForgottenEarly,
            &["containment"],
        ),
        (
            "breakdown-before-its-asset-placement",
            EngineDefect::BreakdownBeforePlacementLost,
            &["repairs", "no-stranded-events"],
        ),
        (
            "breakdown-overtaking-the-last-completion",
            EngineDefect::BreakdownFoldedIntoCompleted,
            &["repairs"],
        ),
        (
            "confirmation-refused-while-held",
            EngineDefect::HeldConfirmationsNotReplayed,
            &["inventory-accuracy", "no-stranded-events"],
        ),
        (
            "order-held-by-two-ncs",
            EngineDefect::OrderResumedUnderOtherHold,
            &["order-status"],
        ),
    ];
    for (name, defect, ids) in cases {
        let path = format!(
            "{}/../scenarios/regressions/{name}.toml",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let s = Scenario::from_str(&text, &path).unwrap_or_else(|e| panic!("{e}"));
        // The invariants that fail; the run may also fall short of its `expect.min` (fewer holds
        // or work orders posted), which follows from them.
        let broken = run_with(&s, Some(Defect::Engine(defect)));
        let failed: Vec<String> = (failed_ids(&broken).into_iter())
            .filter(|i| i != "min")
            .collect();
        assert_eq!(failed, ids, "{name} with {defect:?}");
        assert!(failed_ids(&run_with(&s, None)).is_empty(), "{name}");
    }
}
