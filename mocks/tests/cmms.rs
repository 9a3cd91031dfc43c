//! CMMS: asset hierarchy, work-order lifecycle, completion facts, downtime.

mod common;

use common::*;
use plantloop_core::call::Request;
use plantloop_core::event::EventData;
use plantloop_core::*;
use plantloop_mocks::cmms::{Cmms, WorkOrderStatus};
use plantloop_mocks::{Personality, PostingKind};

fn cmms(p: Personality) -> Cmms {
    let mut c = Cmms::new(p);
    c.publish_assets(
        t(0),
        [placement("A-S3", "P1-L1-S3"), placement("A-S4", "P1-L1-S4")],
    );
    while c.poll_event().is_some() {}
    c
}

fn create(c: &mut Cmms, k: &str, id: &str) -> plantloop_mocks::Reply {
    c.apply(
        t(10),
        Some(&key(k)),
        &Request::CreateWorkOrder(work_order(id, "A-S3", "P1-L1-S3", Some("NC-000001"))),
    )
}

#[test]
fn completing_a_work_order_that_is_not_open_is_409() {
    let mut c = cmms(Personality::Modern);
    let e = c
        .complete_work(t(1), &wo_id("WO-1"), "x", vec![], vec![])
        .unwrap_err();
    assert_eq!(e.status(), 409);
    create(&mut c, "W1/NC-1/wo", "WO-1");
    c.complete_work(
        t(20),
        &wo_id("WO-1"),
        "worn head",
        vec![part(41_250, 1)],
        vec![labour(40, 8_500)],
    )
    .unwrap();
    let e = c
        .complete_work(t(21), &wo_id("WO-1"), "again", vec![], vec![])
        .unwrap_err();
    assert_eq!(e.status(), 409);
    assert_eq!(c.ledger().count(PostingKind::WorkOrderCompleted), 1);
    assert!(c.start_work(t(22), &wo_id("WO-1")).is_err());
}

#[test]
fn the_lifecycle_is_created_in_progress_completed() {
    let mut c = cmms(Personality::Modern);
    assert_eq!(create(&mut c, "k", "WO-1").status, 201);
    assert_eq!(
        c.work_order(&wo_id("WO-1")).unwrap().status,
        WorkOrderStatus::Created
    );
    c.start_work(t(11), &wo_id("WO-1")).unwrap();
    assert!(c.start_work(t(12), &wo_id("WO-1")).is_err());
    assert_eq!(
        c.work_order(&wo_id("WO-1")).unwrap().status,
        WorkOrderStatus::InProgress
    );
    assert_eq!(
        c.open_work_orders(&AssetId::new("A-S3").unwrap()).count(),
        1
    );
    c.complete_work(t(13), &wo_id("WO-1"), "worn head", vec![], vec![])
        .unwrap();
    assert_eq!(
        c.work_order(&wo_id("WO-1")).unwrap().status,
        WorkOrderStatus::Completed
    );
    assert_eq!(
        c.open_work_orders(&AssetId::new("A-S3").unwrap()).count(),
        0
    );
}

#[test]
fn completion_records_and_emits_exactly_the_parts_and_labour() {
    let mut c = cmms(Personality::Modern);
    create(&mut c, "k", "WO-1");
    let created = c.poll_event().unwrap();
    assert!(
        matches!(created.data, EventData::WorkOrderCreated(ref w) if w.work_order == wo_id("WO-1"))
    );
    assert_eq!(created.correlation.as_deref(), Some("NC-000001"));
    assert_eq!(created.plant, Some(plant()));
    let parts = vec![part(41_250, 2)];
    let labour = vec![labour(40, 8_500), labour(25, 9_000)];
    c.complete_work(
        t(20),
        &wo_id("WO-1"),
        "worn head",
        parts.clone(),
        labour.clone(),
    )
    .unwrap();
    let done = c.poll_event().unwrap();
    let EventData::WorkOrderCompleted(comp) = done.data else {
        panic!("{:?}", done.data)
    };
    assert_eq!((comp.parts.clone(), comp.labour.clone()), (parts, labour));
    assert_eq!(comp.parts_cost(), Money::from_cents(82_500));
    assert_eq!(comp.labour_cost(), Money::from_cents(5_667 + 3_750));
    assert_eq!(comp.nc, Some(nc_id("NC-000001")));
    assert_eq!(done.correlation.as_deref(), Some("NC-000001"));
    assert_eq!(c.completions().next(), Some(&comp));
}

#[test]
fn work_orders_need_a_known_asset_at_the_right_station() {
    let mut c = cmms(Personality::Modern);
    let unknown = Request::CreateWorkOrder(work_order("WO-1", "A-S9", "P1-L1-S9", None));
    assert_eq!(c.apply(t(1), None, &unknown).status, 409);
    let wrong = Request::CreateWorkOrder(work_order("WO-1", "A-S3", "P1-L1-S4", None));
    let r = c.apply(t(1), None, &wrong);
    assert_eq!(
        (r.status, r.problem_body().unwrap().field.as_deref()),
        (422, Some("station"))
    );
    assert_eq!(c.ledger().count(PostingKind::WorkOrderCreated), 0);
}

#[test]
fn repeated_keys_and_duplicate_documents() {
    for p in [Personality::Modern, Personality::Saas] {
        let mut c = cmms(p);
        let a = create(&mut c, "k", "WO-1");
        let b = create(&mut c, "k", "WO-1");
        assert_eq!(a, b);
        assert_eq!(c.ledger().count(PostingKind::WorkOrderCreated), 1);
        assert_eq!(c.pending_events(), 1);
    }
    let mut c = cmms(Personality::Legacy);
    create(&mut c, "k", "WO-1");
    create(&mut c, "k", "WO-1");
    assert_eq!(c.ledger().count(PostingKind::WorkOrderCreated), 2);
    assert_eq!(c.work_order(&wo_id("WO-1")).unwrap().created.len(), 2);
    // A fresh key for the same work order id is a second document under any personality.
    let mut c = cmms(Personality::Modern);
    create(&mut c, "k1", "WO-1");
    create(&mut c, "k2", "WO-1");
    assert_eq!(c.ledger().count(PostingKind::WorkOrderCreated), 2);
}

#[test]
fn downtime_classification_is_emitted() {
    let mut c = cmms(Personality::Modern);
    c.classify_downtime(
        t(100),
        &station("P1-L1-S3"),
        t(10),
        Some(t(90)),
        DowntimeClass::Breakdown,
    )
    .unwrap();
    assert!(
        c.classify_downtime(
            t(100),
            &station("P1-L1-S3"),
            t(10),
            Some(t(9)),
            DowntimeClass::Planned
        )
        .is_err()
    );
    let ev = c.poll_event().unwrap();
    assert_eq!(ev.plant, Some(plant()));
    let EventData::DowntimeClassified(d) = ev.data else {
        panic!()
    };
    assert_eq!(
        (d.started_at, d.ended_at, d.class),
        (t(10), Some(t(90)), Some(DowntimeClass::Breakdown))
    );
    assert_eq!(c.downtimes().len(), 1);
}

#[test]
fn assets_are_published_with_versions() {
    let mut c = Cmms::new(Personality::Modern);
    assert_eq!(
        c.publish_asset(t(0), placement("A-S3", "P1-L1-S3")).version,
        1
    );
    assert_eq!(
        c.publish_asset(t(1), placement("A-S3", "P1-L1-S5")).version,
        2
    );
    assert_eq!(
        c.asset_at(&station("P1-L1-S5")),
        Some(&AssetId::new("A-S3").unwrap())
    );
    assert_eq!(c.asset_at(&station("P1-L1-S3")), None);
    assert_eq!(c.assets().count(), 1);
    assert_eq!(c.ledger().count(PostingKind::MasterDataPublished), 2);
    assert_eq!(c.pending_events(), 2);
}
