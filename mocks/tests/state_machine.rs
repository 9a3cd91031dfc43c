//! Property tests: random sequences of calls (with randomly repeated idempotency keys) never yield a
//! ledger the rules forbid. The checks replay the ledger on their own, as the invariant checker
//! will, instead of trusting the mock's state.

mod common;

use common::*;
use plantloop_core::call::{IdempotencyKey, Request};
use plantloop_core::time::Instant;
use plantloop_core::*;
use plantloop_mocks::cmms::Cmms;
use plantloop_mocks::erp::{Erp, transition_allowed};
use plantloop_mocks::mes::{Mes, MesConfig};
use plantloop_mocks::qms::{NcRule, Qms};
use plantloop_mocks::{Ledger, Origin, Personality, Posting, Reply, ReplyBody};
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};

fn personality() -> impl Strategy<Value = Personality> {
    prop_oneof![
        Just(Personality::Modern),
        Just(Personality::Legacy),
        Just(Personality::Saas)
    ]
}

/// A key from a small pool, so that keys repeat, sometimes for other requests.
fn maybe_key() -> impl Strategy<Value = Option<u8>> {
    prop::option::weighted(0.85, 0u8..6)
}

fn k(i: u8) -> IdempotencyKey {
    key(&format!("K{i}"))
}

/// Checks that hold for every ledger: sequence numbers, receipts and time.
fn check_ledger_shape(l: &Ledger) {
    let mut last = Instant::ZERO;
    for (i, e) in l.entries().iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
        assert_eq!(e.receipt.number, e.seq);
        assert_eq!(e.receipt.system, l.system());
        assert!(e.at >= last, "time went backwards at seq {}", e.seq);
        last = e.at;
        assert_eq!(l.by_receipt(e.receipt), Some(e));
    }
}

/// For a personality that honours keys: no two integration postings share a key, and every
/// repeated key got the first reply (or 422 for another request).
fn check_keys(p: Personality, l: &Ledger, calls: &[(Option<IdempotencyKey>, Request, Reply)]) {
    if !p.honours_keys() {
        return;
    }
    let mut seen = HashSet::new();
    for e in l.integration() {
        if let Some(key) = &e.key {
            assert!(
                seen.insert(key.clone()),
                "{p:?}: two postings with key {key}"
            );
        }
    }
    let mut first: HashMap<&IdempotencyKey, (&Request, &Reply)> = HashMap::new();
    for (key, req, reply) in calls {
        let Some(key) = key else { continue };
        if matches!(req, Request::LookupPosting { .. }) || reply.status == 429 {
            continue;
        }
        match first.get(key) {
            // A key is bound by its first success; a refusal leaves it free.
            None => {
                if reply.is_success() {
                    first.insert(key, (req, reply));
                }
            }
            Some((r0, reply0)) if *r0 == req => {
                assert_eq!(reply, *reply0, "{p:?}: key {key} replayed differently")
            }
            Some(_) => assert_eq!(
                reply.status, 422,
                "{p:?}: key {key} reused for another request"
            ),
        }
    }
}

/// Lookups find exactly the first accepted request with the key.
fn check_lookups(calls: &[(Option<IdempotencyKey>, Request, Reply)]) {
    let mut accepted: HashMap<&IdempotencyKey, plantloop_mocks::Receipt> = HashMap::new();
    for (key, req, reply) in calls {
        if reply.status == 429 {
            continue;
        }
        if let Request::LookupPosting { key: wanted } = req {
            assert_eq!(reply.status, 200);
            assert_eq!(
                reply.body,
                ReplyBody::Lookup(accepted.get(wanted).copied()),
                "lookup {wanted}"
            );
        } else if let (Some(key), true) = (key, reply.is_success()) {
            accepted.entry(key).or_insert(reply.receipt().unwrap());
        }
    }
}

// ---------------------------------------------------------------- ERP

#[derive(Clone, Debug)]
enum ErpOp {
    PostHold {
        hold: u8,
        order: u8,
        first: u64,
        len: u64,
    },
    Release {
        hold: u8,
    },
    Confirm {
        order: u8,
        first: u64,
        len: u64,
    },
    Receipt {
        order: u8,
        first: u64,
        len: u64,
    },
    Status {
        order: u8,
        status: u8,
    },
    Cost {
        cents: i64,
    },
    Lookup {
        key: u8,
    },
}

fn erp_op() -> impl Strategy<Value = ErpOp> {
    prop_oneof![
        3 => (0u8..3, 0u8..2, 0u64..90, 1u64..12).prop_map(|(hold, order, first, len)| ErpOp::PostHold { hold, order, first, len }),
        3 => (0u8..4).prop_map(|hold| ErpOp::Release { hold }),
        4 => (0u8..2, 0u64..90, 1u64..12).prop_map(|(order, first, len)| ErpOp::Confirm { order, first, len }),
        2 => (0u8..2, 0u64..90, 1u64..12).prop_map(|(order, first, len)| ErpOp::Receipt { order, first, len }),
        2 => (0u8..3, 0u8..5).prop_map(|(order, status)| ErpOp::Status { order, status }),
        1 => (-5i64..100_000).prop_map(|cents| ErpOp::Cost { cents }),
        1 => (0u8..6).prop_map(|key| ErpOp::Lookup { key }),
    ]
}

const STATUSES: [OrderStatus; 5] = [
    OrderStatus::Released,
    OrderStatus::InProgress,
    OrderStatus::QualityInterruption,
    OrderStatus::Resumed,
    OrderStatus::Completed,
];

fn erp_request(op: &ErpOp) -> Request {
    let base = |o: u8| 1 + 100 * u64::from(o);
    let oid = |o: u8| format!("PO-{o}");
    match *op {
        ErpOp::PostHold {
            hold: h,
            order: o,
            first,
            len,
        } => {
            let mut hd = hold(
                &format!("H-{h}"),
                &oid(o),
                base(o) + first,
                base(o) + first + len - 1,
            );
            hd.nc = nc_id(&format!("NC-{h}"));
            Request::PostHold(hd)
        }
        ErpOp::Release { hold } => Request::ReleaseHold {
            hold: hold_id(&format!("H-{hold}")),
            decision: DispositionDecision::Release,
        },
        ErpOp::Confirm {
            order: o,
            first,
            len,
        } => Request::ConfirmProduction(confirmation(
            &oid(o),
            base(o) + first,
            base(o) + first + len - 1,
        )),
        ErpOp::Receipt {
            order: o,
            first,
            len,
        } => Request::PostGoodsMovement(GoodsMovement {
            kind: MovementKind::GoodsReceipt,
            material: material(),
            quantity: len as u32,
            order: Some(order_id(&oid(o))),
            work_order: None,
            serials: Some(range(base(o) + first, base(o) + first + len - 1)),
        }),
        ErpOp::Status { order, status } => Request::SetOrderStatus {
            order: order_id(&oid(order)),
            status: STATUSES[status as usize],
            reason: "prop".into(),
        },
        ErpOp::Cost { cents } => Request::PostCost(CostPosting {
            work_order: wo_id("WO-1"),
            kind: CostKind::Parts,
            amount: Money::from_cents(cents),
        }),
        ErpOp::Lookup { key } => Request::LookupPosting { key: k(key) },
    }
}

/// Replays an ERP ledger and checks the hold and status rules.
fn check_erp_ledger(p: Personality, l: &Ledger) {
    let mut active: HashMap<HoldId, SerialRange> = HashMap::new();
    let mut status: HashMap<OrderId, OrderStatus> = HashMap::new();
    let blocked = |active: &HashMap<HoldId, SerialRange>, s: &SerialRange| {
        active.values().any(|h| h.overlaps(s))
    };
    for e in l.entries() {
        match &e.posting {
            Posting::OrderReleased(o) => {
                assert!(status.insert(o.id.clone(), OrderStatus::Released).is_none());
            }
            Posting::HoldPosted(h) => {
                active.insert(h.id.clone(), h.serials);
            }
            Posting::HoldReleased { hold, serials, .. } => {
                let held = active.remove(hold);
                assert_eq!(
                    held,
                    Some(*serials),
                    "seq {}: release of {hold} without an active hold",
                    e.seq
                );
            }
            Posting::ProductionConfirmed(c) => {
                assert!(
                    !blocked(&active, &c.serials),
                    "seq {}: confirmation on held serials {}",
                    e.seq,
                    c.serials
                );
                let s = status.get_mut(&c.order).expect("confirmed order exists");
                assert_ne!(*s, OrderStatus::Completed);
                if *s == OrderStatus::Released {
                    *s = OrderStatus::InProgress;
                }
            }
            Posting::GoodsMoved(m) => {
                if let (MovementKind::GoodsReceipt, Some(serials)) = (m.kind, &m.serials) {
                    assert!(
                        !blocked(&active, serials),
                        "seq {}: receipt on held serials {serials}",
                        e.seq
                    );
                }
            }
            Posting::OrderStatusSet {
                order, from, to, ..
            } => {
                let s = status.get_mut(order).expect("order exists");
                assert_eq!(
                    s, from,
                    "seq {}: status posted from a state the order was not in",
                    e.seq
                );
                assert!(
                    transition_allowed(*from, *to) || (from == to && p.reposts_state()),
                    "seq {}: {from:?} → {to:?}",
                    e.seq
                );
                *s = *to;
            }
            Posting::CostPosted(c) => assert!(c.amount >= Money::ZERO),
            other => panic!("ERP posted {other:?}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn erp_ledgers_obey_the_rules(
        p in personality(),
        ops in prop::collection::vec((erp_op(), maybe_key(), 0u64..3), 1..80),
    ) {
        let mut erp = Erp::new(p);
        erp.set_rate_limit(None);
        erp.release_order(t(0), order("PO-0", 1, 100)).unwrap();
        erp.release_order(t(0), order("PO-1", 101, 200)).unwrap();
        let mut now = t(1);
        let mut calls: Vec<(Option<IdempotencyKey>, Request, Reply)> = Vec::new();
        for (op, key, dt) in &ops {
            now += secs(*dt);
            let key = key.map(k);
            let req = erp_request(op);
            let before = erp.ledger().len();
            let reply = erp.apply(now, key.as_ref(), &req);
            let grew = erp.ledger().len() - before;
            // A new posting is a 201; a 201 that posts nothing is the replay of a repeated key.
            let replayed = p.honours_keys() && key.as_ref().is_some_and(|k| calls.iter().any(|(k0, _, _)| k0.as_ref() == Some(k)));
            prop_assert!(grew <= 1);
            prop_assert!(grew == 0 || reply.status == 201, "{:?} → {:?}", req, reply);
            prop_assert!(grew == 1 || reply.status != 201 || replayed, "{:?} → {:?}", req, reply);
            calls.push((key, req, reply));
        }
        check_ledger_shape(erp.ledger());
        check_erp_ledger(p, erp.ledger());
        check_keys(p, erp.ledger(), &calls);
        check_lookups(&calls);
        // The mock's own view agrees with the replay.
        for h in erp.holds() {
            let active = matches!(h.state, plantloop_mocks::erp::HoldState::Active);
            prop_assert_eq!(active, erp.active_hold_on(&h.hold.serials).is_some() && h.released.is_none());
        }
    }
}

// ---------------------------------------------------------------- MES

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn mes_ledgers_never_resume_what_was_not_stopped(
        p in personality(),
        ops in prop::collection::vec((0u8..3, any::<bool>(), maybe_key(), 0u64..3), 1..60),
    ) {
        let stations: Vec<StationId> = (1..=3).map(|i| station(&format!("P1-L1-S{i}"))).collect();
        let mut mes = Mes::new(p, plant(), MesConfig::default(), stations.clone());
        mes.set_rate_limit(None);
        let mut now = t(1);
        let mut calls = Vec::new();
        for (s, stop, key, dt) in &ops {
            now += secs(*dt);
            let action = if *stop { LineAction::Stop } else { LineAction::Resume };
            let req = Request::ControlStation(LineControl { station: stations[*s as usize].clone(), action, reason: "prop".into(), nc: None });
            let key = key.map(k);
            let reply = mes.apply(now, key.as_ref(), &req);
            calls.push((key, req, reply));
        }
        check_ledger_shape(mes.ledger());
        check_keys(p, mes.ledger(), &calls);
        let mut stopped: HashMap<&StationId, bool> = HashMap::new();
        for e in mes.ledger().entries() {
            match &e.posting {
                Posting::StationStopped { station, .. } => {
                    let was = stopped.insert(station, true).unwrap_or(false);
                    prop_assert!(!was || p.reposts_state(), "{:?}: second stop of {} without a resume", p, station);
                }
                Posting::StationResumed { station, .. } => {
                    let was = stopped.insert(station, false);
                    prop_assert!(was.is_some(), "resume of {} that was never stopped", station);
                    prop_assert!(was == Some(true) || p.reposts_state(), "{:?}: second resume of {}", p, station);
                }
                other => prop_assert!(false, "MES posted {:?}", other),
            }
        }
        for s in &stations {
            prop_assert_eq!(mes.is_stopped(s), stopped.get(s).copied().unwrap_or(false));
        }
    }
}

// ---------------------------------------------------------------- QMS

#[derive(Clone, Debug)]
enum QmsOp {
    Inspect { station: u8, passed: bool, dt: u64 },
    Approve { nc: u8 },
    Maintain { nc: u8, key: Option<u8> },
}

fn qms_op() -> impl Strategy<Value = QmsOp> {
    prop_oneof![
        8 => (0u8..2, prop::bool::weighted(0.4), 0u64..400).prop_map(|(station, passed, dt)| QmsOp::Inspect { station, passed, dt }),
        1 => (1u8..5).prop_map(|nc| QmsOp::Approve { nc }),
        1 => (1u8..5, maybe_key()).prop_map(|(nc, key)| QmsOp::Maintain { nc, key }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn qms_raises_ncs_only_from_k_failures_and_never_two_open_per_pair(
        p in personality(),
        k_failures in 1u32..4,
        ops in prop::collection::vec(qms_op(), 1..120),
    ) {
        let rule = NcRule { failures: k_failures, window: secs(600), severity: Severity::Major };
        let mut qms = Qms::new(p, rule);
        qms.set_rate_limit(None);
        let mut now = t(1);
        let mut failures: Vec<(Instant, StationId)> = Vec::new();
        let mut calls = Vec::new();
        for (n, op) in ops.iter().enumerate() {
            match op {
                QmsOp::Inspect { station: s, passed, dt } => {
                    now += secs(*dt);
                    let st = format!("P1-L1-S{s}");
                    if !passed {
                        failures.push((now, station(&st)));
                    }
                    qms.record_inspection(now, &inspection(n as u64, &st, n as u64, *passed));
                }
                QmsOp::Approve { nc } => {
                    let _ = qms.approve_disposition(now, &nc_id(&format!("NC-{nc:06}")), DispositionDecision::Release, "qe");
                }
                QmsOp::Maintain { nc, key } => {
                    let req = Request::RecordMaintenance { nc: nc_id(&format!("NC-{nc:06}")), work_order: wo_id("WO-1"), root_cause: "x".into() };
                    let key = key.map(k);
                    let reply = qms.apply(now, key.as_ref(), &req);
                    calls.push((key, req, reply));
                }
            }
        }
        check_ledger_shape(qms.ledger());
        check_keys(p, qms.ledger(), &calls);
        let mut open: HashMap<StationId, NcId> = HashMap::new();
        let mut station_of: HashMap<NcId, StationId> = HashMap::new();
        let mut dispositioned = HashSet::new();
        let mut maintained = HashSet::new();
        let mut last_nc_at: HashMap<StationId, Instant> = HashMap::new();
        for e in qms.ledger().entries() {
            match &e.posting {
                Posting::NcCreated(nc) => {
                    prop_assert!(!open.contains_key(&nc.station), "second open NC at {}", nc.station);
                    prop_assert_eq!(nc.failures, k_failures);
                    // k failures of this station within the window, none counted twice.
                    let since = last_nc_at.get(&nc.station).copied();
                    let recent = failures
                        .iter()
                        .filter(|(at, s)| s == &nc.station && *at <= e.at && e.at.saturating_since(*at) <= secs(600))
                        .filter(|(at, _)| since.is_none_or(|t0| *at > t0))
                        .count();
                    prop_assert!(recent >= k_failures as usize, "NC {} from {} failures", nc.id, recent);
                    last_nc_at.insert(nc.station.clone(), e.at);
                    open.insert(nc.station.clone(), nc.id.clone());
                    station_of.insert(nc.id.clone(), nc.station.clone());
                }
                Posting::DispositionApproved(d) => prop_assert!(dispositioned.insert(d.nc.clone()), "second disposition"),
                Posting::MaintenanceRecorded { nc, .. } => {
                    prop_assert!(station_of.contains_key(nc));
                    prop_assert_eq!(e.origin, Origin::Integration);
                    maintained.insert(nc.clone());
                }
                Posting::CapaClosed { nc, .. } | Posting::NcClosed { nc } => {
                    prop_assert!(dispositioned.contains(nc) && maintained.contains(nc), "{:?} too early", e.posting);
                    if matches!(e.posting, Posting::NcClosed { .. }) {
                        let st = &station_of[nc];
                        let removed = open.remove(st);
                        prop_assert_eq!(removed.as_ref(), Some(nc));
                    }
                }
                Posting::DeviationClosed { nc, .. } => prop_assert!(maintained.contains(nc)),
                Posting::DeviationOpened { .. } | Posting::CapaOpened { .. } => {}
                other => prop_assert!(false, "QMS posted {:?}", other),
            }
        }
    }
}

// ---------------------------------------------------------------- CMMS

#[derive(Clone, Debug)]
enum CmmsOp {
    Create { wo: u8, key: Option<u8> },
    Start { wo: u8 },
    Complete { wo: u8 },
}

fn cmms_op() -> impl Strategy<Value = CmmsOp> {
    prop_oneof![
        (0u8..4, maybe_key()).prop_map(|(wo, key)| CmmsOp::Create { wo, key }),
        (0u8..4).prop_map(|wo| CmmsOp::Start { wo }),
        (0u8..4).prop_map(|wo| CmmsOp::Complete { wo }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn cmms_completes_each_work_order_at_most_once_after_creating_it(
        p in personality(),
        ops in prop::collection::vec(cmms_op(), 1..60),
    ) {
        let mut cmms = Cmms::new(p);
        cmms.set_rate_limit(None);
        cmms.publish_asset(t(0), placement("A-S3", "P1-L1-S3"));
        let mut calls = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let now = t(1 + i as u64);
            match op {
                CmmsOp::Create { wo, key } => {
                    let req = Request::CreateWorkOrder(work_order(&format!("WO-{wo}"), "A-S3", "P1-L1-S3", None));
                    let key = key.map(k);
                    let reply = cmms.apply(now, key.as_ref(), &req);
                    calls.push((key, req, reply));
                }
                CmmsOp::Start { wo } => {
                    let _ = cmms.start_work(now, &wo_id(&format!("WO-{wo}")));
                }
                CmmsOp::Complete { wo } => {
                    let _ = cmms.complete_work(now, &wo_id(&format!("WO-{wo}")), "x", vec![part(100, 1)], vec![labour(30, 6_000)]);
                }
            }
        }
        check_ledger_shape(cmms.ledger());
        check_keys(p, cmms.ledger(), &calls);
        check_lookups(&calls);
        let mut created = HashSet::new();
        let mut started = HashSet::new();
        let mut completed = HashSet::new();
        for e in cmms.ledger().entries() {
            match &e.posting {
                Posting::WorkOrderCreated(w) => { created.insert(w.id.clone()); }
                Posting::WorkOrderStarted { work_order } => {
                    prop_assert!(created.contains(work_order) && !completed.contains(work_order));
                    prop_assert!(started.insert(work_order.clone()), "started twice");
                }
                Posting::WorkOrderCompleted(c) => {
                    prop_assert!(created.contains(&c.work_order));
                    prop_assert!(completed.insert(c.work_order.clone()), "completed twice");
                    let rec = cmms.work_order(&c.work_order).unwrap();
                    prop_assert_eq!(rec.completion.as_ref(), Some(&**c));
                }
                Posting::MasterDataPublished { .. } => {}
                other => prop_assert!(false, "CMMS posted {:?}", other),
            }
        }
    }
}
