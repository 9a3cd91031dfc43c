//! Fixtures shared by the mock tests.
#![allow(dead_code)]

use plantloop_core::call::IdempotencyKey;
use plantloop_core::time::{Duration, Instant};
use plantloop_core::*;

pub fn t(secs: u64) -> Instant {
    Instant::from_secs(secs)
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn key(s: &str) -> IdempotencyKey {
    IdempotencyKey(s.into())
}

pub fn station(s: &str) -> StationId {
    StationId::new(s).unwrap()
}

pub fn order_id(s: &str) -> OrderId {
    OrderId::new(s).unwrap()
}

pub fn hold_id(s: &str) -> HoldId {
    HoldId::new(s).unwrap()
}

pub fn nc_id(s: &str) -> NcId {
    NcId::new(s).unwrap()
}

pub fn wo_id(s: &str) -> WorkOrderId {
    WorkOrderId::new(s).unwrap()
}

pub fn material() -> MaterialId {
    MaterialId::new("ASSY-100").unwrap()
}

pub fn plant() -> PlantId {
    PlantId::new("P1").unwrap()
}

pub fn range(first: u64, last: u64) -> SerialRange {
    SerialRange::new(first, last).unwrap()
}

/// Order `id` for serials `first..=last` of ASSY-100 on P1-L1.
pub fn order(id: &str, first: u64, last: u64) -> ProductionOrder {
    ProductionOrder {
        id: order_id(id),
        material: material(),
        line: LineId::new("P1-L1").unwrap(),
        plant: plant(),
        serials: range(first, last),
    }
}

pub fn hold(id: &str, order: &str, first: u64, last: u64) -> Hold {
    Hold {
        id: hold_id(id),
        order: order_id(order),
        material: material(),
        serials: range(first, last),
        nc: nc_id("NC-000001"),
    }
}

pub fn confirmation(order: &str, first: u64, last: u64) -> ProductionConfirmation {
    ProductionConfirmation {
        order: order_id(order),
        station: station("P1-L1-S6"),
        material: material(),
        serials: range(first, last),
        good: (last - first + 1) as u32,
        scrap: 0,
    }
}

pub fn placement(asset: &str, st: &str) -> AssetPlacement {
    AssetPlacement {
        asset: AssetId::new(asset).unwrap(),
        station: station(st),
        line: LineId::new("P1-L1").unwrap(),
        plant: plant(),
    }
}

pub fn work_order(id: &str, asset: &str, st: &str, nc: Option<&str>) -> MaintenanceWorkOrder {
    MaintenanceWorkOrder {
        id: wo_id(id),
        asset: AssetId::new(asset).unwrap(),
        station: station(st),
        kind: WorkOrderKind::Emergency,
        severity: Severity::Major,
        fault: "torque failures".into(),
        nc: nc.map(nc_id),
    }
}

pub fn inspection(n: u64, st: &str, serial: u64, passed: bool) -> InspectionResult {
    InspectionResult {
        id: InspectionId::new(format!("I-{n}")).unwrap(),
        station: station(st),
        serial,
        characteristic: CharacteristicId::new("torque").unwrap(),
        passed,
    }
}

pub fn part(cents: i64, quantity: u32) -> SparePartUsage {
    SparePartUsage {
        part: PartId::new("TORQUE-HEAD").unwrap(),
        quantity,
        unit_cost: Money::from_cents(cents),
    }
}

pub fn labour(minutes: u32, rate_cents: i64) -> LabourEntry {
    LabourEntry {
        technician: TechnicianId::new("T1").unwrap(),
        minutes,
        rate_per_hour: Money::from_cents(rate_cents),
    }
}

pub fn material_record(version: u64, description: &str) -> MasterDataRecord {
    MasterDataRecord::new(
        RecordKey::new("ASSY-100").unwrap(),
        version,
        MasterDataPayload::Material(Material {
            id: material(),
            description: description.into(),
            unit: "EA".into(),
        }),
    )
    .unwrap()
}
