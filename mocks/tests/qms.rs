//! QMS: NC detection, NC lifecycle, disposition, CAPA, master data.

mod common;

use common::*;
use plantloop_core::call::Request;
use plantloop_core::event::EventData;
use plantloop_core::*;
use plantloop_mocks::qms::{NcRule, NcStatus, Qms};
use plantloop_mocks::{Personality, PostingKind, ProblemKind};

fn qms() -> Qms {
    Qms::new(
        Personality::Modern,
        NcRule {
            failures: 3,
            window: secs(600),
            severity: Severity::Major,
        },
    )
}

/// Failures at the given seconds, serials 100, 101, …; returns the NCs raised and at which failure.
fn fail_at(q: &mut Qms, st: &str, times: &[u64]) -> Vec<(usize, NcId)> {
    times
        .iter()
        .enumerate()
        .filter_map(|(i, &s)| {
            q.record_inspection(t(s), &inspection(i as u64, st, 100 + i as u64, false))
                .map(|nc| (i, nc))
        })
        .collect()
}

#[test]
fn an_nc_is_raised_exactly_at_the_kth_failure_within_the_window() {
    let mut q = qms();
    // Passes in between do not matter.
    assert!(
        q.record_inspection(t(0), &inspection(0, "P1-L1-S3", 1, true))
            .is_none()
    );
    let raised = fail_at(&mut q, "P1-L1-S3", &[10, 300, 610]);
    assert_eq!(raised.len(), 1);
    assert_eq!(raised[0].0, 2, "raised at the third failure");
    let nc = q.nc(&raised[0].1).unwrap();
    assert_eq!(nc.nc.serials, range(100, 102));
    assert_eq!(nc.nc.failures, 3);
    assert!(nc.nc.asset_related);
    assert_eq!(nc.status(), NcStatus::Open);
    let ev = q.poll_event().unwrap();
    assert_eq!(ev.source, "/qms");
    assert_eq!(ev.correlation.as_deref(), Some(raised[0].1.as_str()));
    assert!(matches!(ev.data, EventData::NonconformanceCreated(ref n) if n.id == raised[0].1));
    assert_eq!(q.ledger().count(PostingKind::NcCreated), 1);
}

#[test]
fn failures_spread_beyond_the_window_raise_nothing() {
    let mut q = qms();
    // Every three consecutive failures span more than 600 s.
    assert!(fail_at(&mut q, "P1-L1-S3", &[0, 400, 601, 1002, 1203, 1604]).is_empty());
    // Failures of one characteristic at different stations do not add up.
    let mut q = qms();
    for (i, st) in ["P1-L1-S1", "P1-L1-S2", "P1-L1-S3", "P1-L1-S4"]
        .iter()
        .enumerate()
    {
        assert!(
            q.record_inspection(t(i as u64), &inspection(i as u64, st, i as u64, false))
                .is_none()
        );
    }
    assert_eq!(q.ledger().len(), 0);
}

#[test]
fn no_second_nc_while_one_is_open_and_a_new_one_after_it_closed() {
    let mut q = qms();
    let first = fail_at(&mut q, "P1-L1-S3", &[1, 2, 3]);
    assert_eq!(first.len(), 1);
    let nc = first[0].1.clone();
    assert!(fail_at(&mut q, "P1-L1-S3", &[4, 5, 6, 7, 8, 9]).is_empty());
    assert_eq!(q.nc(&nc).unwrap().failures_while_open, 6);
    assert_eq!(
        q.open_nc(
            &station("P1-L1-S3"),
            &CharacteristicId::new("torque").unwrap()
        ),
        Some(&nc)
    );
    // Close it: maintenance recorded and disposition approved.
    let rm = Request::RecordMaintenance {
        nc: nc.clone(),
        work_order: wo_id("WO-1"),
        root_cause: "worn head".into(),
    };
    assert_eq!(q.apply(t(20), Some(&key("W2/WO-1/qms")), &rm).status, 201);
    q.approve_disposition(t(30), &nc, DispositionDecision::Release, "qe")
        .unwrap();
    assert_eq!(q.nc(&nc).unwrap().status(), NcStatus::Closed);
    let second = fail_at(&mut q, "P1-L1-S3", &[40, 41, 42]);
    assert_eq!(second.len(), 1);
    assert_ne!(second[0].1, nc);
}

#[test]
fn the_nc_lifecycle_closes_deviation_capa_and_nc_in_order() {
    let mut q = qms();
    let nc = fail_at(&mut q, "P1-L1-S3", &[1, 2, 3]).remove(0).1;
    let rec = q.nc(&nc).unwrap();
    let (dev, capa) = (rec.deviation.clone().unwrap(), rec.capa.clone().unwrap());
    q.contain(t(4), &nc).unwrap();
    assert_eq!(q.nc(&nc).unwrap().status(), NcStatus::Contained);
    // Disposition before maintenance: the NC stays open (asset-related).
    q.approve_disposition(t(5), &nc, DispositionDecision::Rework, "qe")
        .unwrap();
    assert_eq!(q.nc(&nc).unwrap().status(), NcStatus::Dispositioned);
    assert!(q.capa(&capa).unwrap().closed_at.is_none());
    let rm = Request::RecordMaintenance {
        nc: nc.clone(),
        work_order: wo_id("WO-1"),
        root_cause: "worn head".into(),
    };
    q.apply(t(6), Some(&key("rm")), &rm);
    assert_eq!(q.deviation(&dev).unwrap().closed_at, Some(t(6)));
    assert_eq!(q.capa(&capa).unwrap().closed_at, Some(t(6)));
    assert_eq!(q.nc(&nc).unwrap().closed_at, Some(t(6)));
    let kinds: Vec<PostingKind> = q
        .ledger()
        .entries()
        .iter()
        .map(|e| e.posting.kind())
        .collect();
    use PostingKind::*;
    assert_eq!(
        kinds,
        vec![
            NcCreated,
            DeviationOpened,
            CapaOpened,
            NcContained,
            DispositionApproved,
            MaintenanceRecorded,
            DeviationClosed,
            CapaClosed,
            NcClosed
        ]
    );
    let types: Vec<_> = std::iter::from_fn(|| q.poll_event())
        .map(|e| e.event_type())
        .collect();
    use plantloop_core::event::EventType;
    assert_eq!(
        types,
        vec![
            EventType::NonconformanceCreated,
            EventType::DispositionApproved
        ]
    );
}

#[test]
fn approving_an_unknown_or_dispositioned_nc_is_409() {
    let mut q = qms();
    let e = q
        .approve_disposition(t(1), &nc_id("NC-999"), DispositionDecision::Scrap, "qe")
        .unwrap_err();
    assert_eq!(e.status(), 409);
    let nc = fail_at(&mut q, "P1-L1-S3", &[1, 2, 3]).remove(0).1;
    q.approve_disposition(t(4), &nc, DispositionDecision::Scrap, "qe")
        .unwrap();
    let e = q
        .approve_disposition(t(5), &nc, DispositionDecision::Release, "qe")
        .unwrap_err();
    assert_eq!(e.status(), 409);
    assert_eq!(q.ledger().count(PostingKind::DispositionApproved), 1);
}

#[test]
fn maintenance_for_an_unknown_nc_is_409() {
    let mut q = qms();
    let rm = Request::RecordMaintenance {
        nc: nc_id("NC-7"),
        work_order: wo_id("WO-1"),
        root_cause: "x".into(),
    };
    assert_eq!(q.apply(t(1), None, &rm).status, 409);
    assert!(q.ledger().is_empty());
}

#[test]
fn an_older_master_data_version_is_never_applied() {
    let mut q = qms();
    let k = RecordKey::new("ASSY-100").unwrap();
    assert_eq!(
        q.apply(
            t(1),
            None,
            &Request::ApplyMasterData(material_record(2, "v2"))
        )
        .status,
        201
    );
    let older = q.apply(
        t(2),
        None,
        &Request::ApplyMasterData(material_record(1, "v1")),
    );
    assert_eq!(older.status, 409);
    assert_eq!(
        older.problem_body().unwrap().kind,
        ProblemKind::StaleVersion
    );
    // The same version again: a no-op with the first receipt.
    let same = q.apply(
        t(3),
        None,
        &Request::ApplyMasterData(material_record(2, "v2")),
    );
    assert_eq!(same.status, 200);
    // The same version with other content is refused.
    assert_eq!(
        q.apply(
            t(4),
            None,
            &Request::ApplyMasterData(material_record(2, "other"))
        )
        .status,
        409
    );
    assert_eq!(
        q.master_data(MasterDataKind::Material, &k)
            .unwrap()
            .record
            .version,
        2
    );
    assert_eq!(
        q.apply(
            t(5),
            None,
            &Request::ApplyMasterData(material_record(3, "v3"))
        )
        .status,
        201
    );
    let versions: Vec<u64> = q
        .ledger()
        .of_kind(PostingKind::MasterDataApplied)
        .map(|e| match &e.posting {
            plantloop_mocks::Posting::MasterDataApplied { version, .. } => *version,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(versions, vec![2, 3]);
}

#[test]
fn qms_owns_inspection_specs() {
    let mut q = qms();
    let spec = InspectionSpec {
        characteristic: CharacteristicId::new("torque").unwrap(),
        station: station("P1-L1-S3"),
        lower_milli: 11_500,
        upper_milli: 12_500,
    };
    let k = RecordKey::new("SPEC-S3-torque").unwrap();
    assert_eq!(
        q.publish_inspection_spec(t(1), k.clone(), spec.clone())
            .version,
        1
    );
    assert_eq!(
        q.publish_inspection_spec(t(2), k.clone(), spec.clone())
            .version,
        2
    );
    let rec = MasterDataRecord::new(k, 3, MasterDataPayload::InspectionSpec(spec)).unwrap();
    let r = q.apply(t(3), None, &Request::ApplyMasterData(rec));
    assert_eq!(
        (r.status, r.problem_body().unwrap().field.as_deref()),
        (422, Some("payload"))
    );
}

#[test]
fn applied_asset_placements_give_events_their_plant() {
    let mut q = qms();
    let rec = MasterDataRecord::new(
        RecordKey::new("A-S3").unwrap(),
        1,
        MasterDataPayload::Asset(placement("A-S3", "P1-L1-S3")),
    )
    .unwrap();
    assert_eq!(
        q.apply(t(0), None, &Request::ApplyMasterData(rec)).status,
        201
    );
    fail_at(&mut q, "P1-L1-S3", &[1, 2, 3]);
    assert_eq!(q.poll_event().unwrap().plant, Some(plant()));
}
