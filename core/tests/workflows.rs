//! One test per workflow step (W1–W6), judged from the calls the engine makes and the fake targets'
//! ledgers.

mod support;

use plantloop_core::audit::AuditAction;
use plantloop_core::call::{Call, Request};
use plantloop_core::engine::{Ack, Config, DeadLetterReason, Input};
use plantloop_core::*;
use support::*;

/// A world that knows stations S1 (asset `PRESS-7`) and S2, and order O-1 (serials 1..=100) on the
/// line; returns it settled, with the index of the first call still to come.
fn plant() -> (World, usize) {
    let mut w = World::new(Config::default(), 7);
    w.send(asset_at("md-1", S1, "PRESS-7", 1));
    w.send(asset("md-2", S2, 1));
    w.send(order("o-1", "O-1", 1, 100));
    w.settle();
    let mark = w.calls.len();
    (w, mark)
}

fn since(w: &World, mark: usize) -> Vec<&Call> {
    w.calls[mark..].iter().map(|(_, c)| c).collect()
}

fn keys(calls: &[&Call]) -> Vec<String> {
    calls.iter().map(|c| c.key.0.to_string()).collect()
}

// ---- W1 -------------------------------------------------------------------------------------------

#[test]
fn w1_nc_holds_interrupts_opens_an_emergency_work_order_and_stops_the_station() {
    let (mut w, mark) = plant();
    w.send(nc_with(
        "nc-1",
        "NC-1",
        S1,
        12,
        15,
        true,
        Severity::Critical,
    ));
    w.settle();
    let calls = since(&w, mark);
    // The order's interruption follows its hold (one call at a time per order).
    assert_eq!(
        keys(&calls),
        [
            "w1/NC-1/hold",
            "w1/NC-1/work-order",
            "w1/NC-1/stop",
            "w1/NC-1/order-status"
        ]
    );
    assert!(calls.iter().all(|c| c.class == LatencyClass::Critical));
    assert!(calls.iter().all(|c| c.attempt == 1));
    assert!(
        calls
            .iter()
            .all(|c| c.origin.id() == "nc-1" && c.origin.source() == "/plants/P1/qms")
    );

    let Request::PostHold(h) = &calls[0].request else {
        panic!("{:?}", calls[0].request)
    };
    assert_eq!(calls[0].target, System::Erp);
    assert_eq!(h.order.as_str(), "O-1");
    assert_eq!(h.nc.as_str(), "NC-1");
    assert_eq!(h.material.as_str(), "M-100");
    // From the first suspect serial to the end of the running order.
    assert_eq!((h.serials.first(), h.serials.last()), (12, 100));

    assert_eq!(calls[3].target, System::Erp);
    let Request::SetOrderStatus { order, status, .. } = &calls[3].request else {
        panic!("{:?}", calls[3].request)
    };
    assert_eq!(
        (order.as_str(), *status),
        ("O-1", OrderStatus::QualityInterruption)
    );

    assert_eq!(calls[1].target, System::Cmms);
    let Request::CreateWorkOrder(wo) = &calls[1].request else {
        panic!("{:?}", calls[1].request)
    };
    assert_eq!(
        wo.asset.as_str(),
        "PRESS-7",
        "the asset comes from master data"
    );
    assert_eq!(wo.station.as_str(), S1);
    assert_eq!(wo.kind, WorkOrderKind::Emergency);
    assert_eq!(wo.severity, Severity::Critical);
    assert_eq!(wo.nc.as_ref().map(NcId::as_str), Some("NC-1"));
    assert!(wo.fault.contains("torque"), "{}", wo.fault);

    assert_eq!(calls[2].target, System::Mes);
    let Request::ControlStation(lc) = &calls[2].request else {
        panic!("{:?}", calls[2].request)
    };
    assert_eq!((lc.station.as_str(), lc.action), (S1, LineAction::Stop));

    // Exactly once each in the ledgers, and nothing else.
    assert_eq!(w.erp().keys(), ["w1/NC-1/hold", "w1/NC-1/order-status"]);
    assert_eq!(w.cmms().keys(), ["w1/NC-1/work-order"]);
    assert!(w.mes().keys().contains(&"w1/NC-1/stop".to_owned()));

    // The same NC again (same event, then re-sent under a new event id): no new call.
    let mark = w.calls.len();
    w.send(nc("nc-1", "NC-1", S1, 12, 15));
    w.send(nc("nc-1-again", "NC-1", S1, 12, 15));
    w.settle();
    assert_eq!(since(&w, mark).len(), 0);
    assert_eq!(
        w.acks[w.acks.len() - 2..],
        [
            ("nc-1".to_owned(), Ack::Duplicate),
            ("nc-1-again".to_owned(), Ack::Accepted)
        ]
    );
}

#[test]
fn w1_ignores_an_nc_that_is_not_asset_related() {
    let (mut w, mark) = plant();
    w.send(nc_with("nc-1", "NC-1", S1, 12, 15, false, Severity::Minor));
    w.settle();
    assert!(since(&w, mark).is_empty());
    assert!(w.engine().dead_letters().next().is_none());
}

#[test]
fn w1_holds_the_order_that_built_the_suspect_units() {
    // O-1 built serials 1..=100; O-2 (101..=200) was released to the line since. An NC on units
    // 90..=95 must hold them on O-1, not on O-2 (whose serials they are not).
    let (mut w, _) = plant();
    w.send(order("o-2", "O-2", 101, 200));
    w.settle();
    w.send(nc("nc-1", "NC-1", S1, 90, 95));
    w.settle();
    let Request::PostHold(h) = &w.erp().find("w1/NC-1/hold").unwrap().request else {
        panic!()
    };
    assert_eq!(h.order.as_str(), "O-1");
    assert_eq!((h.serials.first(), h.serials.last()), (90, 100));
    let Request::SetOrderStatus { order, .. } =
        &w.erp().find("w1/NC-1/order-status").unwrap().request
    else {
        panic!()
    };
    assert_eq!(order.as_str(), "O-1");

    // An NC on the running order holds to its end.
    w.send(nc("nc-2", "NC-2", S1, 150, 151));
    w.settle();
    let Request::PostHold(h) = &w.erp().find("w1/NC-2/hold").unwrap().request else {
        panic!()
    };
    assert_eq!(h.order.as_str(), "O-2");
    assert_eq!((h.serials.first(), h.serials.last()), (150, 200));
}

#[test]
fn w1_suspect_serials_running_into_the_next_order_get_one_hold_per_order() {
    // Found by `plantloop explore` (scenarios/regressions/hold-spanning-two-orders.toml): one hold
    // across two orders is refused by ERP, which holds inventory per order.
    let (mut w, _) = plant();
    w.send(order("o-2", "O-2", 101, 200));
    w.settle();
    let mark = w.calls.len();
    w.send(nc("nc-1", "NC-1", S1, 95, 105));
    w.settle();
    let calls = since(&w, mark);
    assert_eq!(
        keys(&calls),
        [
            "w1/NC-1/hold",
            "w1/NC-1/hold/2",
            "w1/NC-1/work-order",
            "w1/NC-1/stop",
            "w1/NC-1/order-status",
            "w1/NC-1/order-status/2"
        ]
    );
    let holds: Vec<(String, String, u64, u64)> = calls
        .iter()
        .filter_map(|c| match &c.request {
            Request::PostHold(h) => Some((
                h.id.to_string(),
                h.order.to_string(),
                h.serials.first(),
                h.serials.last(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        holds,
        [
            ("H-NC-1".into(), "O-1".into(), 95, 100),
            ("H2-NC-1".into(), "O-2".into(), 101, 200)
        ]
    );
    // Units of either order wait behind their hold.
    w.send(confirmation("c-1", "O-2", S1, 150, 160));
    w.settle();
    assert!(w.erp().find("w6/O-2/P1-L1-S1/150..=160").is_none());

    // W3 waits for both holds, then releases both and resumes both orders.
    w.send(completed("wo-1", "WO-NC-1", S1, None, vec![], vec![]));
    w.send(disposition("d-1", "NC-1", DispositionDecision::Release));
    w.settle();
    let erp = w.erp().keys();
    for k in [
        "w3/NC-1/release",
        "w3/NC-1/release/2",
        "w3/NC-1/order-status",
        "w3/NC-1/order-status/2",
        "w6/O-2/P1-L1-S1/150..=160",
    ] {
        assert!(erp.contains(&k.to_owned()), "{k} missing from {erp:?}");
    }
    assert!(w.erp().position("w3/NC-1/release/2") < w.erp().position("w6/O-2/P1-L1-S1/150..=160"));
    check_ledgers(&w);
}

#[test]
fn w1_a_refused_hold_sends_what_waits_behind_it_to_the_dead_letter_queue() {
    let (mut w, _) = plant();
    // ERP refuses the hold, two seconds after it was asked.
    w.set_policy(|c, _| {
        if c.request.name() == "post_hold" {
            Plan {
                latency: Duration::from_secs(2),
                ..Delivery::Conflict.into()
            }
        } else {
            Delivery::Done.into()
        }
    });
    w.send(nc("nc-1", "NC-1", S1, 12, 15));
    w.run_for(Duration::from_millis(500));
    w.send(confirmation("c-1", "O-1", S1, 11, 20)); // parked behind the pending hold
    w.run_for(Duration::from_millis(500));
    assert_eq!(w.engine().stats().confirmations_parked, 1);
    w.settle();
    let dead: Vec<(Option<String>, String)> = w
        .engine()
        .dead_letters()
        .map(|d| (d.key.as_ref().map(|k| k.0.to_string()), d.reason.describe()))
        .collect();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(dead[0].0.as_deref(), Some("w1/NC-1/hold"));
    assert!(dead[0].1.starts_with("refused with 409"), "{}", dead[0].1);
    assert_eq!(dead[1].0, None, "an event to apply again, not a call");
    assert_eq!(
        w.engine()
            .dead_letters()
            .nth(1)
            .map(|d| d.origin.id().to_string()),
        Some("c-1".to_owned())
    );
    assert!(
        dead[1].1.contains("hold of NC NC-1 that ERP refused"),
        "{}",
        dead[1].1
    );
    assert!(!w.engine().dead_letters().any(|d| d.reason.is_transient()));

    // The refused hold is not in force: later confirmations go through, and the parked one can be
    // replayed by an operator.
    w.send(confirmation("c-2", "O-1", S1, 21, 30));
    let id = w.engine().dead_letters().nth(1).map(|d| d.id).unwrap();
    w.settle();
    assert_eq!(w.input(Input::ReplayDeadLetter(id)), Some(Ack::Done));
    w.settle();
    let erp = w.erp().keys();
    assert!(
        erp.contains(&"w6/O-1/P1-L1-S1/21..=30".to_owned()),
        "{erp:?}"
    );
    assert!(
        erp.contains(&"w6/O-1/P1-L1-S1/11..=20".to_owned()),
        "{erp:?}"
    );
    check_ledgers(&w);
}

#[test]
fn w1_long_nc_ids_get_distinct_holds_and_work_orders() {
    let (mut w, _) = plant();
    let a = "N".repeat(ID_LEN_MAX);
    let b = format!("{}M", "N".repeat(ID_LEN_MAX - 1));
    w.send(nc("nc-a", &a, S1, 10, 11));
    w.send(nc("nc-b", &b, S1, 20, 21));
    w.settle();
    let hold = |nc: &str| match &w.erp().find(&format!("w1/{nc}/hold")).unwrap().request {
        Request::PostHold(h) => h.id.clone(),
        r => panic!("{r:?}"),
    };
    let wo = |nc: &str| match &w
        .cmms()
        .find(&format!("w1/{nc}/work-order"))
        .unwrap()
        .request
    {
        Request::CreateWorkOrder(wo) => wo.id.clone(),
        r => panic!("{r:?}"),
    };
    assert_ne!(hold(&a), hold(&b));
    assert_ne!(wo(&a), wo(&b));

    // The completion of each work order releases its own NC only.
    w.send(completed("wo-a", wo(&a).as_str(), S1, None, vec![], vec![]));
    w.send(disposition("d-a", &a, DispositionDecision::Release));
    w.send(disposition("d-b", &b, DispositionDecision::Release));
    w.settle();
    assert!(w.erp().find(&format!("w3/{a}/release")).is_some());
    assert!(w.erp().find(&format!("w3/{b}/release")).is_none());
}

#[test]
fn an_nc_for_an_unknown_station_waits_for_master_data() {
    let (mut w, mark) = plant();
    w.send(nc("nc-1", "NC-1", "P1-L1-S9", 12, 15));
    w.run_for(Duration::from_mins(30));
    assert!(since(&w, mark).is_empty());
    w.send(asset("md-9", "P1-L1-S9", 1));
    w.settle();
    assert!(w.erp().find("w1/NC-1/hold").is_some());
    let Request::CreateWorkOrder(wo) = &w.cmms().find("w1/NC-1/work-order").unwrap().request else {
        panic!()
    };
    assert_eq!(wo.asset.as_str(), "A-P1-L1-S9");
    assert!(w.engine().dead_letters().next().is_none());
}

#[test]
fn an_nc_waits_for_an_order_on_its_line() {
    let mut w = World::new(Config::default(), 1);
    w.send(asset("md-1", S1, 1));
    w.send(nc("nc-1", "NC-1", S1, 12, 15));
    w.run_for(Duration::from_mins(10));
    assert!(w.erp().find("w1/NC-1/hold").is_none());
    w.send(order("o-1", "O-1", 1, 100));
    w.settle();
    assert!(w.erp().find("w1/NC-1/hold").is_some());
}

#[test]
fn an_nc_for_an_unknown_station_dead_letters_after_the_enrichment_wait() {
    let (mut w, mark) = plant();
    let wait = w.engine().config().enrichment_wait;
    let t0 = w.now;
    w.send(nc("nc-1", "NC-1", "P1-L1-S9", 12, 15));
    w.run_until(t0 + Duration::from_micros(wait.as_micros() - 1_000_000));
    assert!(w.engine().dead_letters().next().is_none());
    w.settle();
    assert!(since(&w, mark).is_empty());
    let dls: Vec<_> = w.engine().dead_letters().collect();
    assert_eq!(dls.len(), 1);
    assert_eq!(dls[0].at, t0 + wait);
    assert_eq!(dls[0].origin.id(), "nc-1");
    assert_eq!(dls[0].request, None);
    let DeadLetterReason::Unprocessable { detail } = &dls[0].reason else {
        panic!("{:?}", dls[0].reason)
    };
    assert!(detail.contains("P1-L1-S9"), "{detail}");
    // Replayed while its cause is not fixed, it waits again, then comes back.
    let id = dls[0].id;
    assert_eq!(w.input(Input::ReplayDeadLetter(id)), Some(Ack::Done));
    assert_eq!(w.engine().dead_letters().count(), 0);
    let t1 = w.now;
    w.settle();
    let dls: Vec<_> = w.engine().dead_letters().collect();
    assert_eq!(dls.len(), 1);
    assert_eq!(dls[0].at, t1 + wait);
    assert!(since(&w, mark).is_empty());
    // Master data arriving now applies it without an operator: the NC is contained (an event
    // set aside for want of master data never waits for ever).
    w.send(asset("md-9", "P1-L1-S9", 1));
    w.settle();
    assert!(w.erp().find("w1/NC-1/hold").is_some());
    assert!(w.mes().find("w1/NC-1/stop").is_some());
    assert!(w.engine().dead_letters().next().is_none());
    let replayed = w
        .audit
        .iter()
        .filter(|r| r.action == AuditAction::Replayed)
        .count();
    assert_eq!(replayed, 2);
    // The hold's audit record still names the NC event as its origin.
    let rec = w
        .audit
        .iter()
        .find(|r| r.key.as_str() == "w1/NC-1/hold")
        .unwrap();
    assert_eq!(rec.origin.id(), "nc-1");
}

// ---- W2 -------------------------------------------------------------------------------------------

#[test]
fn w2_completion_records_maintenance_issues_parts_and_posts_costs_to_the_cent() {
    let (mut w, _) = plant();
    w.send(nc("nc-1", "NC-1", S1, 12, 15));
    w.settle();
    let mark = w.calls.len();
    w.send(completed(
        "wo-1",
        "WO-NC-1",
        S1,
        None, // the core knows which NC its work order is for
        vec![part("TORQUE-HEAD", 2, 41_250), part("SEAL", 3, 33)],
        vec![labour("T1", 40, 8_500), labour("T2", 25, 6_210)],
    ));
    w.settle();
    let mut calls = since(&w, mark);
    // QMS gets the maintenance facts; ERP the goods issues then the costs, in this order.
    calls.sort_by_key(|c| (c.target != System::Qms, c.key.0.contains("cost")));
    assert_eq!(
        keys(&calls),
        [
            "w2/WO-NC-1/maintenance",
            "w2/WO-NC-1/goods-issue/0",
            "w2/WO-NC-1/goods-issue/1",
            "w2/WO-NC-1/cost/parts",
            "w2/WO-NC-1/cost/labour",
        ]
    );
    assert!(calls.iter().all(|c| c.class == LatencyClass::Transactional));
    assert_eq!(calls[0].target, System::Qms);
    let Request::RecordMaintenance {
        nc,
        work_order,
        root_cause,
    } = &calls[0].request
    else {
        panic!()
    };
    assert_eq!(
        (nc.as_str(), work_order.as_str(), root_cause.as_str()),
        ("NC-1", "WO-NC-1", "worn torque head")
    );
    let issues: Vec<_> = calls[1..3]
        .iter()
        .map(|c| match &c.request {
            Request::PostGoodsMovement(g) => {
                assert_eq!(g.kind, MovementKind::GoodsIssue);
                assert_eq!(g.work_order.as_ref().unwrap().as_str(), "WO-NC-1");
                (g.material.as_str().to_owned(), g.quantity)
            }
            r => panic!("{r:?}"),
        })
        .collect();
    assert_eq!(
        issues,
        [("TORQUE-HEAD".to_owned(), 2), ("SEAL".to_owned(), 3)]
    );
    let costs: Vec<_> = calls[3..]
        .iter()
        .map(|c| match &c.request {
            Request::PostCost(p) => (p.kind, p.amount.cents()),
            r => panic!("{r:?}"),
        })
        .collect();
    // Parts: 2 × 412.50 + 3 × 0.33 = 825.99. Labour: 85.00/h × 40 min = 56.67 (56.666…),
    // 62.10/h × 25 min = 25.88 (25.875 half up): 82.55.
    assert_eq!(
        costs,
        [(CostKind::Parts, 82_599), (CostKind::Labour, 8_255)]
    );

    // The completion re-sent under another event id posts nothing again.
    let mark = w.calls.len();
    w.send(completed(
        "wo-1-again",
        "WO-NC-1",
        S1,
        None,
        vec![part("TORQUE-HEAD", 2, 41_250)],
        vec![],
    ));
    w.settle();
    assert!(since(&w, mark).is_empty());
}

#[test]
fn w2_completion_without_an_nc_posts_only_to_erp_and_skips_zero_costs() {
    let (mut w, mark) = plant();
    w.send(completed(
        "wo-1",
        "WO-PM-3",
        S2,
        None,
        vec![],
        vec![labour("T1", 30, 100)],
    ));
    w.settle();
    let calls = since(&w, mark);
    assert_eq!(keys(&calls), ["w2/WO-PM-3/cost/labour"]);
    let Request::PostCost(p) = &calls[0].request else {
        panic!()
    };
    assert_eq!(p.amount.cents(), 50);
}

// ---- W3 -------------------------------------------------------------------------------------------

fn released(w: &World) -> bool {
    w.erp().find("w3/NC-1/release").is_some()
}

#[test]
fn w3_waits_for_the_work_order_completion() {
    let (mut w, _) = plant();
    w.send(nc("nc-1", "NC-1", S1, 12, 15));
    w.settle();
    w.send(disposition("d-1", "NC-1", DispositionDecision::Release));
    w.settle();
    assert!(!released(&w), "released while the work order is open");
    assert_eq!(w.calls_named("release_hold").len(), 0);
    w.send(completed("wo-1", "WO-NC-1", S1, None, vec![], vec![]));
    w.settle();
    assert!(released(&w));
}

#[test]
fn w3_waits_for_the_hold_to_be_confirmed() {
    let (mut w, _) = plant();
    // ERP is down for the hold until t = 100 s.
    let t0 = w.now;
    w.set_policy(move |c, now| {
        if c.request.name() == "post_hold" && now < t0 + Duration::from_secs(100) {
            Delivery::Unavailable { posted: false }.into()
        } else {
            Delivery::Done.into()
        }
    });
    w.send(nc("nc-1", "NC-1", S1, 12, 15));
    w.run_for(Duration::from_secs(1));
    w.send(completed("wo-1", "WO-NC-1", S1, None, vec![], vec![]));
    w.send(disposition("d-1", "NC-1", DispositionDecision::Release));
    w.run_until(t0 + Duration::from_secs(99));
    assert!(w.erp().find("w1/NC-1/hold").is_none());
    assert!(!released(&w));
    assert_eq!(w.calls_named("release_hold").len(), 0);
    w.settle();
    let (hold, release) = (
        w.erp().position("w1/NC-1/hold").unwrap(),
        w.erp().position("w3/NC-1/release").unwrap(),
    );
    assert!(hold < release);
    check_ledgers(&w);
}

#[test]
fn w3_after_everything_releases_resumes_the_order_and_the_station() {
    let (mut w, _) = plant();
    w.send(nc("nc-1", "NC-1", S1, 12, 15));
    w.settle();
    w.send(completed("wo-1", "WO-NC-1", S1, None, vec![], vec![]));
    w.settle();
    let mark = w.calls.len();
    w.send(disposition("d-1", "NC-1", DispositionDecision::Rework));
    w.settle();
    let calls = since(&w, mark);
    // The order resumes once its hold is released (an order never runs before its inventory is
    // free); the station goes at once.
    assert_eq!(
        keys(&calls),
        ["w3/NC-1/release", "w3/NC-1/resume", "w3/NC-1/order-status"]
    );
    let Request::ReleaseHold { hold, decision } = &calls[0].request else {
        panic!()
    };
    assert_eq!(hold.as_str(), "H-NC-1");
    assert_eq!(*decision, DispositionDecision::Rework);
    let Request::SetOrderStatus { order, status, .. } = &calls[2].request else {
        panic!()
    };
    assert_eq!((order.as_str(), *status), ("O-1", OrderStatus::Resumed));
    let Request::ControlStation(lc) = &calls[1].request else {
        panic!()
    };
    assert_eq!((lc.station.as_str(), lc.action), (S1, LineAction::Resume));
    assert_eq!(calls[1].target, System::Mes);

    // The audit record of the release names the NC, the completion and the disposition.
    let rec = w
        .audit
        .iter()
        .find(|r| r.key.as_str() == "w3/NC-1/release")
        .unwrap();
    assert_eq!(rec.origin.id(), "d-1");
    let chain: Vec<_> = rec.causation.iter().map(|e| e.id()).collect();
    assert_eq!(chain, ["nc-1", "wo-1", "d-1"]);

    // A second disposition changes nothing.
    let mark = w.calls.len();
    w.send(disposition("d-2", "NC-1", DispositionDecision::Scrap));
    w.settle();
    assert!(since(&w, mark).is_empty());
    check_ledgers(&w);
}

#[test]
fn w3_a_station_stopped_for_two_ncs_resumes_only_when_both_are_released() {
    // Found by `plantloop explore` (scenarios/regressions/second-nc-at-a-stopped-station.toml):
    // releasing the first NC resumed the station while the second was still open.
    let (mut w, _) = plant();
    w.send(nc("nc-1", "NC-1", S1, 12, 15));
    w.send(nc("nc-2", "NC-2", S1, 40, 45));
    w.settle();
    w.send(completed("wo-1", "WO-NC-1", S1, None, vec![], vec![]));
    w.send(disposition("d-1", "NC-1", DispositionDecision::Release));
    w.settle();
    let mes = w.mes().keys();
    assert!(w.erp().find("w3/NC-1/release").is_some());
    assert!(!mes.contains(&"w3/NC-1/resume".to_owned()), "{mes:?}");
    assert!(!mes.iter().any(|k| k.ends_with("/resume")), "{mes:?}");

    w.send(completed("wo-2", "WO-NC-2", S1, None, vec![], vec![]));
    w.send(disposition("d-2", "NC-2", DispositionDecision::Release));
    w.settle();
    let mes = w.mes().keys();
    assert!(mes.contains(&"w3/NC-2/resume".to_owned()), "{mes:?}");
    assert!(w.erp().find("w3/NC-2/release").is_some());
    check_ledgers(&w);
}

#[test]
fn w3_only_unreleased_ncs_at_the_same_station_keep_it_stopped() {
    // NC-1 at S1 is released and resumed; NC-3 at S2 stays open; NC-2 at S1 comes later. Its
    // release resumes S1: neither a released NC at S1 nor an open one elsewhere holds it back.
    let (mut w, _) = plant();
    w.send(nc("nc-1", "NC-1", S1, 12, 15));
    w.send(nc("nc-3", "NC-3", S2, 60, 62));
    w.settle();
    w.send(completed("wo-1", "WO-NC-1", S1, None, vec![], vec![]));
    w.send(disposition("d-1", "NC-1", DispositionDecision::Release));
    w.settle();
    assert!(w.mes().find("w3/NC-1/resume").is_some());

    w.send(nc("nc-2", "NC-2", S1, 40, 45));
    w.settle();
    w.send(completed("wo-2", "WO-NC-2", S1, None, vec![], vec![]));
    w.send(disposition("d-2", "NC-2", DispositionDecision::Release));
    w.settle();
    assert!(w.mes().find("w3/NC-2/resume").is_some());
    assert!(w.mes().find("w3/NC-3/resume").is_none());
    check_ledgers(&w);
}

#[test]
fn w3_disposition_before_the_nc_waits_for_it() {
    let (mut w, mark) = plant();
    w.send(disposition("d-1", "NC-1", DispositionDecision::Release));
    w.send(completed(
        "wo-1",
        "WO-NC-1",
        S1,
        Some("NC-1"),
        vec![],
        vec![],
    ));
    w.settle();
    assert!(
        since(&w, mark)
            .iter()
            .all(|c| c.request.name() != "release_hold")
    );
    w.send(nc("nc-1", "NC-1", S1, 12, 15));
    w.settle();
    assert!(released(&w));
    check_ledgers(&w);
}

// ---- W4 -------------------------------------------------------------------------------------------

#[test]
fn w4_one_breakdown_work_order_per_station_while_one_is_open() {
    let (mut w, mark) = plant();
    w.send(alarm("a-1", S1, AlarmSeverity::Info));
    w.send(alarm("a-2", S1, AlarmSeverity::Warning));
    w.settle();
    assert!(since(&w, mark).is_empty());
    assert_eq!(w.engine().stats().alarms_filtered, 2);

    w.send(alarm("a-3", S1, AlarmSeverity::Fault));
    w.send(alarm("a-4", S1, AlarmSeverity::Fault));
    w.send(machine_down("m-1", S1));
    w.send(machine_down("m-2", S2));
    w.settle();
    let calls = since(&w, mark);
    assert_eq!(keys(&calls), ["w4/P1-L1-S1/1", "w4/P1-L1-S2/2"]);
    for (c, station, asset) in [(calls[0], S1, "PRESS-7"), (calls[1], S2, "A-P1-L1-S2")] {
        assert_eq!((c.target, c.class), (System::Cmms, LatencyClass::Critical));
        let Request::CreateWorkOrder(wo) = &c.request else {
            panic!()
        };
        assert_eq!(wo.kind, WorkOrderKind::Breakdown);
        assert_eq!((wo.station.as_str(), wo.asset.as_str()), (station, asset));
    }
    let Request::CreateWorkOrder(wo1) = &calls[0].request else {
        panic!()
    };
    assert_eq!(wo1.fault, "E-SPINDLE");

    // Once S1's work order is completed, the next fault opens a new one.
    let mark = w.calls.len();
    w.send(completed("c-1", wo1.id.as_str(), S1, None, vec![], vec![]));
    w.send_after(
        Duration::from_secs(1),
        alarm("a-5", S1, AlarmSeverity::Fault),
    );
    w.send_after(
        Duration::from_secs(1),
        alarm("a-6", S2, AlarmSeverity::Fault),
    );
    w.settle();
    assert_eq!(keys(&since(&w, mark)), ["w4/P1-L1-S1/3"]);
}

#[test]
fn w4_a_fault_at_an_unknown_station_waits_then_applies_when_its_placement_arrives() {
    let (mut w, mark) = plant();
    w.send(alarm("a-1", "P1-L9-S1", AlarmSeverity::Fault));
    w.settle();
    assert!(since(&w, mark).is_empty());
    let dl: Vec<_> = w.engine().dead_letters().collect();
    assert_eq!(dl.len(), 1);
    assert!(matches!(
        dl[0].reason,
        DeadLetterReason::Unprocessable { .. }
    ));
    // Once the station is known, the alarm is applied by itself: it opens its breakdown work
    // order.
    w.send(asset_at("md-9", "P1-L9-S1", "A-P1-L9-S1", 1));
    w.settle();
    assert!(w.engine().dead_letters().next().is_none());
    let wo: Vec<_> = w
        .calls_named("create_work_order")
        .into_iter()
        .filter(|c| c.key.as_str().starts_with("w4/P1-L9-S1/"))
        .collect();
    assert_eq!(wo.len(), 1);
    assert_eq!(wo[0].origin.id(), "a-1");
    let Request::CreateWorkOrder(order) = &wo[0].request else {
        panic!()
    };
    assert_eq!(order.asset.as_str(), "A-P1-L9-S1");
    assert!(w.engine().dead_letters().next().is_none());
}

// ---- W5 -------------------------------------------------------------------------------------------

fn md_versions(t: &Target, key: &str) -> Vec<u64> {
    t.ledger
        .iter()
        .filter_map(|p| match &p.request {
            Request::ApplyMasterData(r) if r.key.as_str() == key => Some(r.version),
            _ => None,
        })
        .collect()
}

#[test]
fn w5_master_data_never_goes_back_and_superseded_versions_are_skipped() {
    let (mut w, mark) = plant();
    // MES answers master data slowly, so that versions pile up behind the one in flight.
    w.set_policy(|c, _| Plan {
        delivery: Delivery::Done,
        latency: if c.target == System::Mes {
            Duration::from_secs(10)
        } else {
            Duration::from_millis(1)
        },
        duplicate_after: None,
    });
    w.send(material("m-1", "M-7", 1, "v1"));
    w.send_after(Duration::from_secs(1), material("m-2", "M-7", 2, "v2"));
    w.send_after(Duration::from_secs(2), material("m-3", "M-7", 3, "v3"));
    w.send_after(Duration::from_secs(3), material("m-0", "M-7", 2, "late v2"));
    w.settle();
    let calls = since(&w, mark);
    assert!(calls.iter().all(|c| c.class == LatencyClass::Bulk));
    assert_eq!(md_versions(w.mes(), "M-7"), [1, 3], "v2 superseded at MES");
    assert_eq!(md_versions(w.qms(), "M-7"), [1, 2, 3]);
    // Keys carry the version.
    assert!(w.mes().find("w5/mes/material/M-7/v3").is_some());

    // An older version after a newer one was applied is never sent.
    let mark = w.calls.len();
    w.send(material("m-4", "M-7", 1, "v1 again"));
    w.send(material("m-5", "M-7", 3, "v3 again"));
    w.settle();
    assert!(since(&w, mark).is_empty());
    assert!(w.engine().stats().master_data_superseded >= 3);
    check_ledgers(&w);
}

#[test]
fn w5_an_older_asset_placement_does_not_move_a_station_back() {
    let (mut w, _) = plant();
    w.send(asset_at("md-3", S1, "PRESS-8", 2));
    w.send(asset_at("md-4", S1, "PRESS-6", 1));
    w.settle();
    let p = w
        .engine()
        .registry()
        .placement(&StationId::new(S1).unwrap())
        .unwrap();
    assert_eq!(p.asset.as_str(), "PRESS-8");
}

// ---- W6 -------------------------------------------------------------------------------------------

#[test]
fn w6_confirmations_of_held_serials_wait_for_the_release() {
    let (mut w, mark) = plant();
    w.send(confirmation("c-1", "O-1", S1, 1, 10));
    w.settle();
    w.send(nc("nc-1", "NC-1", S1, 12, 15));
    w.settle();
    w.send(confirmation("c-2", "O-1", S1, 11, 20)); // overlaps the hold 12..=100
    w.send(confirmation("c-3", "O-1", S2, 5, 9)); // does not
    w.settle();
    let confirmed = |w: &World| -> Vec<String> {
        w.erp()
            .keys()
            .into_iter()
            .filter(|k| k.starts_with("w6/"))
            .collect()
    };
    assert_eq!(
        confirmed(&w),
        ["w6/O-1/P1-L1-S1/1..=10", "w6/O-1/P1-L1-S2/5..=9"]
    );
    assert_eq!(w.engine().stats().confirmations_parked, 1);
    assert!(
        since(&w, mark)
            .iter()
            .all(|c| c.key.as_str() != "w6/O-1/P1-L1-S1/11..=20")
    );

    w.send(completed("wo-1", "WO-NC-1", S1, None, vec![], vec![]));
    w.send(disposition("d-1", "NC-1", DispositionDecision::Release));
    w.settle();
    assert_eq!(
        confirmed(&w),
        [
            "w6/O-1/P1-L1-S1/1..=10",
            "w6/O-1/P1-L1-S2/5..=9",
            "w6/O-1/P1-L1-S1/11..=20"
        ]
    );
    let (release, conf) = (
        w.erp().position("w3/NC-1/release").unwrap(),
        w.erp().position("w6/O-1/P1-L1-S1/11..=20").unwrap(),
    );
    assert!(release < conf);
    let Request::ConfirmProduction(c) = &w.erp().ledger[conf].request else {
        panic!()
    };
    assert_eq!((c.good, c.scrap), (10, 0));
}

#[test]
fn w6_a_scrap_disposition_confirms_held_units_as_scrap() {
    let (mut w, _) = plant();
    w.send(nc("nc-1", "NC-1", S1, 12, 15));
    w.settle();
    w.send(confirmation("c-2", "O-1", S1, 11, 20));
    w.send(completed("wo-1", "WO-NC-1", S1, None, vec![], vec![]));
    w.send(disposition("d-1", "NC-1", DispositionDecision::Scrap));
    w.settle();
    let Request::ConfirmProduction(c) = &w.erp().find("w6/O-1/P1-L1-S1/11..=20").unwrap().request
    else {
        panic!()
    };
    assert_eq!((c.good, c.scrap), (0, 10));
}

#[test]
fn w6_a_confirmation_under_two_holds_waits_for_both_releases() {
    for (first, second) in [("1", "2"), ("2", "1")] {
        let (mut w, _) = plant();
        w.send(nc("nc-1", "NC-1", S1, 40, 45));
        w.send(nc("nc-2", "NC-2", S2, 50, 55));
        w.settle();
        w.send(confirmation("c-1", "O-1", S1, 41, 60)); // under both holds (40.. and 50..)
        let release = |w: &mut World, n: &str| {
            let st = if n == "1" { S1 } else { S2 };
            w.send(completed(
                &format!("wo-{n}"),
                &format!("WO-NC-{n}"),
                st,
                None,
                vec![],
                vec![],
            ));
            w.send(disposition(
                &format!("d-{n}"),
                &format!("NC-{n}"),
                DispositionDecision::Release,
            ));
            w.settle();
            assert!(w.erp().find(&format!("w3/NC-{n}/release")).is_some());
        };
        release(&mut w, first);
        assert!(
            w.erp().find("w6/O-1/P1-L1-S1/41..=60").is_none(),
            "confirmed while NC-{second} still holds its serials"
        );
        release(&mut w, second);
        let (release2, conf) = (
            w.erp()
                .position(&format!("w3/NC-{second}/release"))
                .unwrap(),
            w.erp().position("w6/O-1/P1-L1-S1/41..=60").unwrap(),
        );
        assert!(release2 < conf);
    }
}

#[test]
fn the_closed_loop_posts_every_step_exactly_once() {
    let mut w = World::new(Config::default(), 3);
    closed_loop(&mut w);
    w.settle();
    assert_eq!(w.all_postings(), closed_loop_keys());
    check_ledgers(&w);
    assert!(w.engine().is_idle());
    assert!(w.engine().dead_letters().next().is_none());
}
