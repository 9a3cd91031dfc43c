//! MES: line control, confirmations, machine states, alarms, dispatch, master data.

mod common;

use common::*;
use plantloop_core::call::Request;
use plantloop_core::event::{EventData, EventType};
use plantloop_core::*;
use plantloop_mocks::mes::{Mes, MesConfig};
use plantloop_mocks::{Personality, PostingKind};

fn mes(p: Personality, batch_size: u32) -> Mes {
    Mes::new(
        p,
        plant(),
        MesConfig { batch_size },
        (1..=6).map(|i| station(&format!("P1-L1-S{i}"))),
    )
}

fn control(st: &str, action: LineAction) -> Request {
    Request::ControlStation(LineControl {
        station: station(st),
        action,
        reason: "NC-000001".into(),
        nc: None,
    })
}

#[test]
fn stopping_a_stopped_station_posts_once_for_modern_and_again_for_legacy() {
    let mut m = mes(Personality::Modern, 10);
    let a = m.apply(
        t(1),
        Some(&key("W1/NC-1/stop")),
        &control("P1-L1-S3", LineAction::Stop),
    );
    let b = m.apply(
        t(2),
        Some(&key("W1/NC-2/stop")),
        &control("P1-L1-S3", LineAction::Stop),
    );
    assert_eq!((a.status, b.status), (201, 200));
    assert_eq!(a.receipt(), b.receipt());
    assert_eq!(m.ledger().count(PostingKind::StationStopped), 1);
    assert!(m.is_stopped(&station("P1-L1-S3")));
    assert!(!m.can_produce(&station("P1-L1-S3")));
    assert_eq!(
        m.station_state(&station("P1-L1-S3")),
        Some(StationState::Stopped)
    );

    let mut l = mes(Personality::Legacy, 10);
    l.apply(
        t(1),
        Some(&key("W1/NC-1/stop")),
        &control("P1-L1-S3", LineAction::Stop),
    );
    let again = l.apply(
        t(2),
        Some(&key("W1/NC-1/stop")),
        &control("P1-L1-S3", LineAction::Stop),
    );
    assert_eq!(again.status, 201);
    assert_eq!(l.ledger().count(PostingKind::StationStopped), 2);
}

#[test]
fn resume_needs_a_stop_and_unknown_stations_are_409() {
    let mut m = mes(Personality::Modern, 10);
    assert_eq!(
        m.apply(t(1), None, &control("P1-L1-S3", LineAction::Resume))
            .status,
        409
    );
    assert_eq!(
        m.apply(t(1), None, &control("P1-L9-S9", LineAction::Stop))
            .status,
        409
    );
    m.apply(t(2), None, &control("P1-L1-S3", LineAction::Stop));
    assert_eq!(
        m.apply(t(3), None, &control("P1-L1-S3", LineAction::Resume))
            .status,
        201
    );
    assert_eq!(
        m.apply(t(4), None, &control("P1-L1-S3", LineAction::Resume))
            .status,
        200
    );
    assert!(m.can_produce(&station("P1-L1-S3")));
    let kinds: Vec<_> = m
        .ledger()
        .entries()
        .iter()
        .map(|e| e.posting.kind())
        .collect();
    assert_eq!(
        kinds,
        vec![PostingKind::StationStopped, PostingKind::StationResumed]
    );
}

#[test]
fn units_are_batched_into_confirmations() {
    let mut m = mes(Personality::Modern, 3);
    let (s6, po, mat) = (station("P1-L1-S6"), order_id("PO-1"), material());
    for serial in 1..=7 {
        m.unit_completed(t(serial), &s6, serial, &po, &mat, serial != 2)
            .unwrap();
    }
    // A jump in serials closes the batch.
    m.unit_completed(t(8), &s6, 20, &po, &mat, true).unwrap();
    assert_eq!(m.end_order(t(9), &po), 1);
    assert_eq!(m.flush(t(10)), 0);
    let confirmations: Vec<(SerialRange, u32, u32)> = std::iter::from_fn(|| m.poll_event())
        .map(|e| {
            assert_eq!(e.source, "/plants/P1/mes");
            assert_eq!(e.correlation.as_deref(), Some("PO-1"));
            match e.data {
                EventData::ProductionConfirmed(c) => (c.serials, c.good, c.scrap),
                other => panic!("{other:?}"),
            }
        })
        .collect();
    assert_eq!(
        confirmations,
        vec![
            (range(1, 3), 2, 1),
            (range(4, 6), 3, 0),
            (range(7, 7), 1, 0),
            (range(20, 20), 1, 0)
        ]
    );
}

#[test]
fn a_stopped_or_down_station_does_not_produce() {
    let mut m = mes(Personality::Modern, 3);
    let (s3, po, mat) = (station("P1-L1-S3"), order_id("PO-1"), material());
    m.apply(t(1), None, &control("P1-L1-S3", LineAction::Stop));
    assert_eq!(
        m.unit_completed(t(2), &s3, 1, &po, &mat, true)
            .unwrap_err()
            .status(),
        409
    );
    m.apply(t(3), None, &control("P1-L1-S3", LineAction::Resume));
    m.machine_down(t(4), &s3, Some("E42".into())).unwrap();
    assert!(m.machine_down(t(4), &s3, None).is_err());
    assert!(m.unit_completed(t(5), &s3, 1, &po, &mat, true).is_err());
    assert_eq!(m.station_state(&s3), Some(StationState::Down));
    m.machine_up(t(6), &s3).unwrap();
    assert!(m.unit_completed(t(7), &s3, 1, &po, &mat, true).is_ok());
    assert!(
        m.unit_completed(t(7), &station("P1-L7-S1"), 1, &po, &mat, true)
            .is_err()
    );
    let states: Vec<_> = std::iter::from_fn(|| m.poll_event())
        .map(|e| match e.data {
            EventData::MachineStateChanged(s) => (s.state, s.code),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        states,
        vec![
            (StationState::Down, Some("E42".into())),
            (StationState::Running, None)
        ]
    );
}

#[test]
fn alarms_are_emitted_with_the_plant() {
    let mut m = mes(Personality::Modern, 3);
    let alarm = Alarm {
        station: station("P1-L1-S2"),
        code: "TEMP".into(),
        severity: AlarmSeverity::Warning,
    };
    m.raise_alarm(t(1), alarm.clone()).unwrap();
    assert!(
        m.raise_alarm(
            t(1),
            Alarm {
                station: station("X"),
                ..alarm.clone()
            }
        )
        .is_err()
    );
    let ev = m.poll_event().unwrap();
    assert_eq!(ev.event_type(), EventType::AlarmRaised);
    assert_eq!(ev.plant, Some(plant()));
    assert_eq!(ev.data, EventData::AlarmRaised(alarm));
    assert!(m.poll_event().is_none());
}

#[test]
fn dispatch_checks_the_plant_and_master_data_only_goes_up() {
    let mut m = mes(Personality::Modern, 3);
    assert_eq!(
        m.apply(t(1), None, &Request::DispatchOrder(order("PO-1", 1, 10)))
            .status,
        201
    );
    assert!(m.is_dispatched(&order_id("PO-1")));
    let mut other = order("PO-2", 1, 10);
    other.plant = PlantId::new("P2").unwrap();
    let r = m.apply(t(1), None, &Request::DispatchOrder(other));
    assert_eq!(
        (r.status, r.problem_body().unwrap().field.as_deref()),
        (422, Some("plant"))
    );

    assert_eq!(
        m.apply(
            t(2),
            None,
            &Request::ApplyMasterData(material_record(5, "v5"))
        )
        .status,
        201
    );
    assert_eq!(
        m.apply(
            t(3),
            None,
            &Request::ApplyMasterData(material_record(4, "v4"))
        )
        .status,
        409
    );
    let k = RecordKey::new("ASSY-100").unwrap();
    assert_eq!(
        m.master_data(MasterDataKind::Material, &k)
            .unwrap()
            .record
            .version,
        5
    );
    assert_eq!(
        m.apply(
            t(4),
            None,
            &Request::PostCost(CostPosting {
                work_order: wo_id("WO-1"),
                kind: CostKind::Parts,
                amount: Money::ZERO,
            })
        )
        .status,
        404
    );
}
