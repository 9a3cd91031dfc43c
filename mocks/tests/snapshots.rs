//! Snapshots of representative replies, events and ledger entries, as the HTTP layer and the
//! checker will see them. Update with `INSTA_UPDATE=always cargo test -p plantloop-mocks`.

mod common;

use common::*;
use plantloop_core::call::Request;
use plantloop_core::*;
use plantloop_mocks::erp::Erp;
use plantloop_mocks::fault::{Fault, FaultInjector, FaultProfile, FaultRule, Latency};
use plantloop_mocks::qms::{NcRule, Qms};
use plantloop_mocks::{Personality, RateLimit};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn erp() -> Erp {
    let mut e = Erp::new(Personality::Saas);
    e.release_order(t(0), order("PO-1", 1, 100)).unwrap();
    e
}

#[test]
fn replies() {
    let mut e = erp();
    let hold = Request::PostHold(hold("H-1", "PO-1", 10, 20));
    let created = e.apply(t(1), Some(&key("W1/NC-000001/hold")), &hold);
    let replayed = e.apply(t(2), Some(&key("W1/NC-000001/hold")), &hold);
    let key_reuse = e.apply(
        t(2),
        Some(&key("W1/NC-000001/hold")),
        &Request::PostHold(hold_for("H-2")),
    );
    let held = e.apply(
        t(3),
        None,
        &Request::ConfirmProduction(confirmation("PO-1", 15, 24)),
    );
    let unheld = e.apply(
        t(4),
        None,
        &Request::ReleaseHold {
            hold: hold_id("H-9"),
            decision: DispositionDecision::Release,
        },
    );
    let invalid = e.apply(t(5), None, &Request::PostHold(hold_for_serials(90, 120)));
    let wrong_system = e.apply(
        t(6),
        None,
        &Request::CreateWorkOrder(work_order("WO-1", "A-S3", "P1-L1-S3", None)),
    );
    let lookup = e.apply(
        t(7),
        None,
        &Request::LookupPosting {
            key: key("W1/NC-000001/hold"),
        },
    );
    let missing = e.apply(
        t(7),
        None,
        &Request::LookupPosting {
            key: key("W1/NC-000009/hold"),
        },
    );
    e.set_rate_limit(Some(RateLimit { per_s: 4, burst: 1 }));
    e.apply(t(8), None, &Request::LookupPosting { key: key("x") });
    let throttled = e.apply(t(8), None, &Request::LookupPosting { key: key("x") });
    insta::assert_json_snapshot!(
        "replies",
        serde_json::json!({
            "created": created,
            "replayed": replayed,
            "key_reuse": key_reuse,
            "held_serials": held,
            "release_unheld": unheld,
            "invalid_field": invalid,
            "wrong_system": wrong_system,
            "lookup_found": lookup,
            "lookup_missing": missing,
            "throttled": throttled,
        })
    );
    insta::assert_debug_snapshot!(
        "outcomes",
        [
            &created,
            &key_reuse,
            &held,
            &wrong_system,
            &lookup,
            &throttled
        ]
        .map(|r| r.outcome())
    );
}

fn hold_for(id: &str) -> Hold {
    hold(id, "PO-1", 30, 40)
}

fn hold_for_serials(first: u64, last: u64) -> Hold {
    hold("H-3", "PO-1", first, last)
}

#[test]
fn nc_created_event_and_ledger() {
    let mut q = Qms::new(Personality::Modern, NcRule::default());
    for i in 0..3 {
        q.record_inspection(t(10 * i), &inspection(i, "P1-L1-S3", 1000 + i, false));
    }
    let ev = q.poll_event().unwrap();
    insta::assert_json_snapshot!("nc_created_cloudevent", ev.to_cloudevent());
    insta::assert_json_snapshot!("qms_ledger", q.ledger().entries());
}

#[test]
fn erp_ledger_entries() {
    let mut e = erp();
    e.apply(
        t(1),
        Some(&key("W1/NC-000001/hold")),
        &Request::PostHold(hold("H-1", "PO-1", 10, 20)),
    );
    e.apply(
        t(2),
        Some(&key("W3/NC-000001/release")),
        &Request::ReleaseHold {
            hold: hold_id("H-1"),
            decision: DispositionDecision::Rework,
        },
    );
    e.apply(
        t(3),
        Some(&key("W2/WO-1/labour")),
        &Request::PostCost(CostPosting {
            work_order: wo_id("WO-1"),
            kind: CostKind::Labour,
            amount: Money::from_cents(5_667),
        }),
    );
    insta::assert_json_snapshot!("erp_ledger", e.ledger().entries());
}

#[test]
fn fault_decisions_for_seed_42() {
    let profile = FaultProfile::new(vec![
        FaultRule::always(Fault::EndpointLatency {
            latency: Latency::LogNormal {
                median: plantloop_core::Duration::from_millis(200),
                sigma: 0.5,
            },
        }),
        FaultRule::always(Fault::EndpointErrors {
            rate: 0.2,
            status: 503,
        }),
        FaultRule::always(Fault::AckThenTimeout { probability: 0.1 }),
        FaultRule::always(Fault::ErrorBody { probability: 0.1 }),
        FaultRule::always(Fault::DuplicateDelivery { probability: 0.3 }),
        FaultRule::always(Fault::Reorder { window: secs(30) }),
    ]);
    let mut inj = FaultInjector::new(profile);
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let decisions: Vec<_> = (0..10)
        .map(|i| {
            let now = t(i);
            (inj.decide(now, &mut rng), inj.decide_event(now, &mut rng))
        })
        .collect();
    // Pinned across machines and versions: a change here changes every simulation's trace.
    insta::assert_json_snapshot!("fault_decisions_seed_42", decisions);
}
