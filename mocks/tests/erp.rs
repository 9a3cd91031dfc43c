//! ERP domain rules and personalities.

mod common;

use common::*;
use plantloop_core::call::{Outcome, Request};
use plantloop_core::event::EventData;
use plantloop_core::*;
use plantloop_mocks::erp::{Erp, HoldState};
use plantloop_mocks::{Personality, PostingKind, ProblemKind, Reply};

fn erp(p: Personality) -> Erp {
    let mut e = Erp::new(p);
    e.release_order(t(0), order("PO-1", 1, 100)).unwrap();
    e
}

fn post_hold(e: &mut Erp, k: &str, first: u64, last: u64) -> Reply {
    e.apply(
        t(10),
        Some(&key(k)),
        &Request::PostHold(hold("H-1", "PO-1", first, last)),
    )
}

fn release(hold: &str) -> Request {
    Request::ReleaseHold {
        hold: hold_id(hold),
        decision: DispositionDecision::Release,
    }
}

#[test]
fn releasing_a_hold_that_does_not_exist_is_409() {
    let mut e = erp(Personality::Modern);
    let r = e.apply(t(5), Some(&key("k1")), &release("H-1"));
    assert_eq!(r.status, 409);
    assert!(matches!(r.outcome(), Outcome::Conflict { .. }));
    assert_eq!(e.ledger().count(PostingKind::HoldReleased), 0);
}

#[test]
fn releasing_a_released_hold_is_409() {
    for p in Personality::ALL {
        let mut e = erp(p);
        assert_eq!(post_hold(&mut e, "hold", 10, 20).status, 201);
        assert_eq!(
            e.apply(t(20), Some(&key("rel-1")), &release("H-1")).status,
            201
        );
        let again = e.apply(t(30), Some(&key("rel-2")), &release("H-1"));
        assert_eq!(again.status, 409, "{p:?}");
        assert_eq!(e.ledger().count(PostingKind::HoldReleased), 1);
        assert_eq!(
            e.hold(&hold_id("H-1")).unwrap().state,
            HoldState::Released(DispositionDecision::Release)
        );
    }
}

#[test]
fn confirmation_on_held_serials_is_409_until_released() {
    let mut e = erp(Personality::Modern);
    post_hold(&mut e, "hold", 10, 20);
    let c = Request::ConfirmProduction(confirmation("PO-1", 18, 27));
    assert_eq!(e.apply(t(11), Some(&key("c1")), &c).status, 409);
    // Serials outside the hold go through.
    let ok = Request::ConfirmProduction(confirmation("PO-1", 21, 30));
    assert_eq!(e.apply(t(12), Some(&key("c2")), &ok).status, 201);
    e.apply(t(13), Some(&key("rel")), &release("H-1"));
    let freed = Request::ConfirmProduction(confirmation("PO-1", 10, 20));
    assert_eq!(e.apply(t(14), Some(&key("c3")), &freed).status, 201);
    assert_eq!(e.ledger().count(PostingKind::ProductionConfirmed), 2);
    assert_eq!(e.order(&order_id("PO-1")).unwrap().good, 21);
}

#[test]
fn goods_receipt_on_held_serials_is_409() {
    let mut e = erp(Personality::Modern);
    post_hold(&mut e, "hold", 10, 20);
    let receipt = |first, last| {
        Request::PostGoodsMovement(GoodsMovement {
            kind: MovementKind::GoodsReceipt,
            material: material(),
            quantity: (last - first + 1) as u32,
            order: Some(order_id("PO-1")),
            work_order: None,
            serials: Some(range(first, last)),
        })
    };
    assert_eq!(
        e.apply(t(11), Some(&key("gr1")), &receipt(20, 25)).status,
        409
    );
    assert_eq!(
        e.apply(t(11), Some(&key("gr2")), &receipt(21, 25)).status,
        201
    );
    assert_eq!(e.stock(&material()), 5);
    assert_eq!(e.ledger().count(PostingKind::GoodsMoved), 1);
}

#[test]
fn a_repeated_key_returns_the_first_reply_and_posts_once_for_modern_and_saas() {
    for p in [Personality::Modern, Personality::Saas] {
        let mut e = erp(p);
        let first = post_hold(&mut e, "W1/NC-1/hold", 10, 20);
        let again = post_hold(&mut e, "W1/NC-1/hold", 10, 20);
        assert_eq!(first, again, "{p:?}");
        assert_eq!(e.ledger().count(PostingKind::HoldPosted), 1, "{p:?}");
        // Even a 409 is replayed: the first result stands.
        let r1 = e.apply(t(11), Some(&key("rel-x")), &release("H-9"));
        let r2 = e.apply(t(12), Some(&key("rel-x")), &release("H-9"));
        assert_eq!((r1.status, r2.status), (409, 409));
        assert_eq!(r1, r2);
    }
}

#[test]
fn legacy_posts_a_repeated_key_again_and_lookup_finds_the_first() {
    let mut e = erp(Personality::Legacy);
    let k = key("W1/NC-1/hold");
    assert_eq!(
        e.apply(t(20), None, &Request::LookupPosting { key: k.clone() })
            .outcome(),
        Outcome::Found { receipt: None }
    );
    let first = post_hold(&mut e, "W1/NC-1/hold", 10, 20);
    let second = post_hold(&mut e, "W1/NC-1/hold", 10, 20);
    assert_eq!((first.status, second.status), (201, 201));
    assert_ne!(first.receipt(), second.receipt());
    assert_eq!(e.ledger().count(PostingKind::HoldPosted), 2);
    assert_eq!(e.hold(&hold_id("H-1")).unwrap().posted.len(), 2);
    assert_eq!(e.ledger().with_key(&k).count(), 2);
    let found = e.apply(t(30), Some(&k), &Request::LookupPosting { key: k.clone() });
    assert_eq!(
        found.outcome(),
        Outcome::Found {
            receipt: Some(first.receipt().unwrap().to_string())
        }
    );
    // A lookup is a read: it posts nothing.
    assert_eq!(e.ledger().len(), 3);
}

#[test]
fn modern_lookup_finds_the_posting_too() {
    let mut e = erp(Personality::Modern);
    let k = key("W1/NC-1/hold");
    let first = post_hold(&mut e, "W1/NC-1/hold", 10, 20);
    // The lookup carries the same Idempotency-Key as the post it precedes: it must not be served
    // from the key's stored reply.
    let found = e.apply(t(30), Some(&k), &Request::LookupPosting { key: k.clone() });
    assert_eq!(found, Reply::lookup(first.receipt()));
}

#[test]
fn a_key_reused_for_another_request_is_422_on_honouring_systems() {
    let mut e = erp(Personality::Modern);
    post_hold(&mut e, "k", 10, 20);
    let other = e.apply(
        t(11),
        Some(&key("k")),
        &Request::PostHold(hold("H-2", "PO-1", 30, 40)),
    );
    assert_eq!(other.status, 422);
    assert_eq!(other.problem_body().unwrap().kind, ProblemKind::KeyReuse);
    assert_eq!(e.ledger().count(PostingKind::HoldPosted), 1);
}

#[test]
fn order_status_follows_the_allowed_transitions() {
    let mut e = erp(Personality::Modern);
    let set = |s| Request::SetOrderStatus {
        order: order_id("PO-1"),
        status: s,
        reason: "test".into(),
    };
    assert_eq!(e.apply(t(1), None, &set(OrderStatus::Resumed)).status, 409);
    assert_eq!(
        e.apply(t(2), None, &set(OrderStatus::QualityInterruption))
            .status,
        201
    );
    // Setting the current status again is a no-op with the same receipt for Modern.
    let again = e.apply(t(3), None, &set(OrderStatus::QualityInterruption));
    assert_eq!(again.status, 200);
    assert_eq!(e.ledger().count(PostingKind::OrderStatusSet), 1);
    assert_eq!(
        e.apply(t(4), None, &set(OrderStatus::Completed)).status,
        409
    );
    assert_eq!(e.apply(t(5), None, &set(OrderStatus::Resumed)).status, 201);
    assert_eq!(
        e.apply(t(6), None, &set(OrderStatus::Completed)).status,
        201
    );
    assert_eq!(
        e.apply(t(7), None, &set(OrderStatus::InProgress)).status,
        409
    );
    assert_eq!(
        e.order(&order_id("PO-1")).unwrap().status,
        OrderStatus::Completed
    );
    // Unknown order.
    let unknown = Request::SetOrderStatus {
        order: order_id("PO-9"),
        status: OrderStatus::Completed,
        reason: "x".into(),
    };
    assert_eq!(e.apply(t(8), None, &unknown).status, 409);

    let mut legacy = erp(Personality::Legacy);
    legacy.apply(t(2), None, &set(OrderStatus::QualityInterruption));
    assert_eq!(
        legacy
            .apply(t(3), None, &set(OrderStatus::QualityInterruption))
            .status,
        201
    );
    assert_eq!(legacy.ledger().count(PostingKind::OrderStatusSet), 2);
}

#[test]
fn cost_postings_and_goods_issues_are_ledgered_exactly_as_posted() {
    let mut e = erp(Personality::Modern);
    let cost = CostPosting {
        work_order: wo_id("WO-1"),
        kind: CostKind::Labour,
        amount: Money::from_cents(5_667),
    };
    assert_eq!(
        e.apply(
            t(1),
            Some(&key("W2/WO-1/labour")),
            &Request::PostCost(cost.clone())
        )
        .status,
        201
    );
    let issue = GoodsMovement {
        kind: MovementKind::GoodsIssue,
        material: MaterialId::new("TORQUE-HEAD").unwrap(),
        quantity: 2,
        order: None,
        work_order: Some(wo_id("WO-1")),
        serials: None,
    };
    assert_eq!(
        e.apply(
            t(2),
            Some(&key("W2/WO-1/parts")),
            &Request::PostGoodsMovement(issue.clone())
        )
        .status,
        201
    );
    let costs: Vec<_> = e
        .ledger()
        .of_kind(PostingKind::CostPosted)
        .map(|x| x.posting.clone())
        .collect();
    assert_eq!(costs, vec![plantloop_mocks::Posting::CostPosted(cost)]);
    let moved: Vec<_> = e
        .ledger()
        .of_kind(PostingKind::GoodsMoved)
        .map(|x| x.posting.clone())
        .collect();
    assert_eq!(moved, vec![plantloop_mocks::Posting::GoodsMoved(issue)]);
    assert_eq!(e.stock(&MaterialId::new("TORQUE-HEAD").unwrap()), -2);
    let negative = CostPosting {
        work_order: wo_id("WO-1"),
        kind: CostKind::Parts,
        amount: Money::from_cents(-1),
    };
    let r = e.apply(t(3), None, &Request::PostCost(negative));
    assert_eq!(
        (r.status, r.problem_body().unwrap().field.as_deref()),
        (422, Some("amount"))
    );
}

#[test]
fn invalid_fields_are_422_and_name_the_field() {
    let mut e = erp(Personality::Modern);
    let r = e.apply(t(1), None, &Request::PostHold(hold("H-1", "PO-1", 90, 110)));
    assert_eq!(
        (r.status, r.problem_body().unwrap().field.as_deref()),
        (422, Some("serials"))
    );
    let mut c = confirmation("PO-1", 1, 10);
    c.good = 9;
    let r = e.apply(t(1), None, &Request::ConfirmProduction(c));
    assert_eq!(
        (r.status, r.problem_body().unwrap().field.as_deref()),
        (422, Some("good"))
    );
    assert_eq!(
        e.apply(t(1), None, &Request::PostHold(hold("H-1", "PO-7", 1, 2)))
            .status,
        409
    );
    assert_eq!(e.ledger().len(), 1, "only the order release");
}

#[test]
fn requests_for_other_systems_are_404() {
    let mut e = erp(Personality::Modern);
    let r = e.apply(
        t(1),
        None,
        &Request::CreateWorkOrder(work_order("WO-1", "A-1", "P1-L1-S3", None)),
    );
    assert_eq!(r.status, 404);
    assert!(matches!(r.outcome(), Outcome::Rejected { status: 404, .. }));
    assert_eq!(
        e.apply(
            t(1),
            None,
            &Request::ApplyMasterData(material_record(1, "x"))
        )
        .status,
        404
    );
}

#[test]
fn releasing_an_order_emits_order_released() {
    let mut e = Erp::new(Personality::Modern);
    e.release_order(t(0), order("PO-1", 1, 100)).unwrap();
    assert!(e.release_order(t(1), order("PO-1", 1, 100)).is_err());
    let ev = e.poll_event().unwrap();
    assert_eq!((ev.source.as_str(), ev.id.as_str()), ("/erp", "1"));
    assert_eq!(ev.correlation.as_deref(), Some("PO-1"));
    assert_eq!(ev.plant, Some(plant()));
    assert_eq!(ev.data, EventData::OrderReleased(order("PO-1", 1, 100)));
    assert!(e.poll_event().is_none());
    assert_eq!(
        e.order(&order_id("PO-1")).unwrap().status,
        OrderStatus::Released
    );
}

#[test]
fn publishing_materials_bumps_versions() {
    let mut e = Erp::new(Personality::Modern);
    let m = Material {
        id: material(),
        description: "assembly".into(),
        unit: "EA".into(),
    };
    assert_eq!(e.publish_material(t(0), m.clone()).version, 1);
    assert_eq!(e.publish_material(t(1), m).version, 2);
    let versions: Vec<u64> = std::iter::from_fn(|| e.poll_event())
        .map(|ev| match ev.data {
            EventData::MasterDataPublished(r) => r.version,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(versions, vec![1, 2]);
    assert_eq!(e.material(&material()).unwrap().record.version, 2);
}

#[test]
fn saas_is_rate_limited_with_retry_after() {
    let mut e = erp(Personality::Saas);
    e.set_rate_limit(Some(plantloop_mocks::RateLimit { per_s: 2, burst: 2 }));
    let set = Request::SetOrderStatus {
        order: order_id("PO-1"),
        status: OrderStatus::InProgress,
        reason: "x".into(),
    };
    assert!(e.apply(t(1), None, &set).is_success());
    assert!(e.apply(t(1), None, &set).is_success());
    let r = e.apply(t(1), None, &set);
    assert_eq!(r.status, 429);
    assert_eq!(
        r.outcome(),
        Outcome::Throttled {
            retry_after: plantloop_core::Duration::from_millis(500)
        }
    );
    assert!(e.apply(t(2), None, &set).is_success());
    assert!(e.webhook_only());
    assert!(!erp(Personality::Modern).webhook_only());
}
