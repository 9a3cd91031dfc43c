//! The canonical model: the business objects that cross the integration core, with ISA-95 names where
//! one exists (material, material lot, equipment, production order, …).
//!
//! Constructors validate; an invalid value is a [`ModelError`] naming the field. Deserialization goes
//! through the same checks (`#[serde(try_from)]`), so a value that exists is valid.

use crate::money::Money;
use crate::time::Instant;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// A value that breaks a model rule; `field` names it as it appears in JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ModelError {
    pub field: &'static str,
    pub reason: String,
}

impl ModelError {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        ModelError {
            field,
            reason: reason.into(),
        }
    }
}

/// The longest identifier any system may use.
pub const ID_LEN_MAX: usize = 64;
/// The characters identifiers are made of, as a JSON Schema `pattern`.
pub const ID_PATTERN: &str = "^[A-Za-z0-9._:/-]+$";

fn check_id(field: &'static str, s: &str) -> Result<(), ModelError> {
    if s.is_empty() {
        return Err(ModelError::new(field, "must not be empty"));
    }
    if s.len() > ID_LEN_MAX {
        return Err(ModelError::new(
            field,
            format!("longer than {ID_LEN_MAX} bytes"),
        ));
    }
    let allowed =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/');
    if s.bytes().all(allowed) {
        return Ok(());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/')))
    {
        return Err(ModelError::new(
            field,
            format!("character {c:?} not allowed"),
        ));
    }
    Ok(())
}

/// What [`IdVisitor`] needs of an id type.
trait IdType: Sized {
    const FIELD: &'static str;
    fn from_checked(s: Arc<str>) -> Self;
}

/// Deserializes an id from a string, with the errors `String` and the id's `TryFrom` give.
struct IdVisitor<T>(std::marker::PhantomData<T>);

impl<T: IdType> serde::de::Visitor<'_> for IdVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        check_id(T::FIELD, v).map_err(E::custom)?;
        Ok(T::from_checked(Arc::from(v)))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<T, E> {
        check_id(T::FIELD, &v).map_err(E::custom)?;
        Ok(T::from_checked(Arc::from(v)))
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<T, E> {
        match std::str::from_utf8(v) {
            Ok(s) => self.visit_str(s),
            Err(_) => Err(E::invalid_value(serde::de::Unexpected::Bytes(v), &self)),
        }
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<T, E> {
        match String::from_utf8(v) {
            Ok(s) => self.visit_string(s),
            Err(e) => Err(E::invalid_value(
                serde::de::Unexpected::Bytes(&e.into_bytes()),
                &self,
            )),
        }
    }
}

macro_rules! id_type {
    ($doc:literal, $name:ident, $field:literal) => {
        #[doc = $doc]
        ///
        /// A shared string: ids travel in every request, call and state entry that concerns
        /// them, so a clone is a reference count, not a copy.
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        /// As `#[serde(try_from = "String")]` would (same checks, same errors), but a borrowed
        /// string is validated in place and copied once, into the shared string.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_string(IdVisitor::<$name>(std::marker::PhantomData))
            }
        }

        impl IdType for $name {
            const FIELD: &'static str = $field;
            fn from_checked(s: Arc<str>) -> Self {
                $name(s)
            }
        }

        /// Looks ids up in maps by `&str` (hash, equality and order are the string's).
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            /// A string with the constructor's rules, so the schema refuses what ingress refuses.
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "description": $doc,
                    "type": "string",
                    "minLength": 1,
                    "maxLength": ID_LEN_MAX,
                    "pattern": ID_PATTERN,
                })
            }
        }

        impl $name {
            /// Validates: 1–64 bytes of `[A-Za-z0-9._:/-]`.
            pub fn new(s: impl Into<String>) -> Result<Self, ModelError> {
                let s = s.into();
                check_id($field, &s)?;
                Ok($name(s.into()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = ModelError;
            fn try_from(s: String) -> Result<Self, ModelError> {
                $name::new(s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0.as_ref().to_owned()
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!("ISA-95 site: a plant.", PlantId, "plant");
id_type!("ISA-95 production line.", LineId, "line");
id_type!(
    "ISA-95 work cell: one station of a line, as MES names it (`P1-L1-S3`).",
    StationId,
    "station"
);
id_type!(
    "Equipment as CMMS names it; master data maps it to a station.",
    AssetId,
    "asset"
);
id_type!("Material (item master) number.", MaterialId, "material");
id_type!("Material lot.", LotId, "lot");
id_type!("Production order.", OrderId, "order");
id_type!("Inspection result.", InspectionId, "inspection");
id_type!(
    "Quality characteristic, e.g. `torque`.",
    CharacteristicId,
    "characteristic"
);
id_type!("Nonconformance.", NcId, "nc");
id_type!(
    "Quality hold on inventory, as the core names it (ERP may add its own document number).",
    HoldId,
    "hold"
);
id_type!("Maintenance work order.", WorkOrderId, "work_order");
id_type!("Spare part number.", PartId, "part");
id_type!("Technician.", TechnicianId, "technician");
id_type!("Corrective and preventive action.", CapaId, "capa");
id_type!(
    "Master-data record key (material number, asset id, spec id).",
    RecordKey,
    "key"
);

/// The four systems of record the core connects.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum System {
    Erp,
    Qms,
    Cmms,
    Mes,
}

impl System {
    pub const ALL: [System; 4] = [System::Erp, System::Qms, System::Cmms, System::Mes];
    pub fn as_str(self) -> &'static str {
        match self {
            System::Erp => "erp",
            System::Qms => "qms",
            System::Cmms => "cmms",
            System::Mes => "mes",
        }
    }
    pub fn parse(s: &str) -> Option<System> {
        System::ALL.into_iter().find(|x| x.as_str() == s)
    }
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How fast an effect must land in its target (design: latency classes).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum LatencyClass {
    /// Quality hold, line stop, machine failure → work order: seconds.
    Critical,
    /// Confirmations, goods movements, completions, cost postings: minutes.
    Transactional,
    /// Master data, PM schedules: hours.
    Bulk,
}

impl LatencyClass {
    pub const ALL: [LatencyClass; 3] = [
        LatencyClass::Critical,
        LatencyClass::Transactional,
        LatencyClass::Bulk,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            LatencyClass::Critical => "critical",
            LatencyClass::Transactional => "transactional",
            LatencyClass::Bulk => "bulk",
        }
    }
    pub fn parse(s: &str) -> Option<LatencyClass> {
        LatencyClass::ALL.into_iter().find(|x| x.as_str() == s)
    }
    pub fn index(self) -> usize {
        self as usize
    }
}

/// An inclusive range of unit serial numbers.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(try_from = "SerialRangeRaw")]
pub struct SerialRange {
    first: u64,
    last: u64,
}

/// The wire form of [`SerialRange`], checked on the way in.
#[derive(Deserialize, JsonSchema)]
#[schemars(
    rename = "SerialRange",
    description = "An inclusive range of unit serial numbers: `first` ≤ `last`."
)]
struct SerialRangeRaw {
    first: u64,
    last: u64,
}

impl TryFrom<SerialRangeRaw> for SerialRange {
    type Error = ModelError;
    fn try_from(r: SerialRangeRaw) -> Result<Self, ModelError> {
        SerialRange::new(r.first, r.last)
    }
}

impl SerialRange {
    /// `first..=last`; `first` must not exceed `last`.
    pub fn new(first: u64, last: u64) -> Result<Self, ModelError> {
        if first > last {
            return Err(ModelError::new(
                "serials",
                format!("first {first} is after last {last}"),
            ));
        }
        Ok(SerialRange { first, last })
    }
    pub fn single(serial: u64) -> Self {
        SerialRange {
            first: serial,
            last: serial,
        }
    }
    pub fn first(&self) -> u64 {
        self.first
    }
    pub fn last(&self) -> u64 {
        self.last
    }
    /// The number of serials; saturates at `u64::MAX` for the one range that holds 2^64.
    pub fn len(&self) -> u64 {
        (self.last - self.first).saturating_add(1)
    }
    /// Never true: a range holds at least one serial.
    pub fn is_empty(&self) -> bool {
        false
    }
    pub fn contains(&self, serial: u64) -> bool {
        (self.first..=self.last).contains(&serial)
    }
    pub fn overlaps(&self, o: &SerialRange) -> bool {
        self.first <= o.last && o.first <= self.last
    }
    /// True when `o` lies wholly inside `self`.
    pub fn covers(&self, o: &SerialRange) -> bool {
        self.first <= o.first && o.last <= self.last
    }
}

impl fmt::Display for SerialRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..={}", self.first, self.last)
    }
}

/// ISA-95 equipment levels that the asset hierarchy uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EquipmentLevel {
    Site,
    ProductionLine,
    WorkCell,
}

/// One station's place in the hierarchy: the asset CMMS maintains, the station MES runs, its line and
/// plant. Published by CMMS as asset master data; the core enriches events with it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct AssetPlacement {
    pub asset: AssetId,
    pub station: StationId,
    pub line: LineId,
    pub plant: PlantId,
}

/// Material master record (ERP owns it).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Material {
    pub id: MaterialId,
    pub description: String,
    /// Unit of measure, e.g. `EA`.
    pub unit: String,
}

/// A material lot produced or consumed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct MaterialLot {
    pub id: LotId,
    pub material: MaterialId,
    pub quantity: u32,
}

/// Production order lifecycle in ERP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Released,
    InProgress,
    QualityInterruption,
    Resumed,
    Completed,
}

/// A production order released by ERP to one line, with the serials it will build.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct ProductionOrder {
    pub id: OrderId,
    pub material: MaterialId,
    pub line: LineId,
    pub plant: PlantId,
    pub serials: SerialRange,
}

/// One inspection of one unit for one characteristic.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct InspectionResult {
    pub id: InspectionId,
    pub station: StationId,
    pub serial: u64,
    pub characteristic: CharacteristicId,
    pub passed: bool,
}

/// Nonconformance severity, which sets work-order priority.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Minor,
    Major,
    Critical,
}

/// A nonconformance raised by QMS. `asset_related` marks a defect pattern tied to a station's
/// equipment (k failures of one characteristic at one station within a window): workflow W1.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Nonconformance {
    pub id: NcId,
    pub station: StationId,
    pub characteristic: CharacteristicId,
    /// The suspect units: from the first failing serial of the pattern to the last one seen.
    pub serials: SerialRange,
    pub failures: u32,
    pub asset_related: bool,
    pub severity: Severity,
}

/// A quality hold on inventory: the serials of one order that must not move.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Hold {
    pub id: HoldId,
    pub order: OrderId,
    pub material: MaterialId,
    pub serials: SerialRange,
    pub nc: NcId,
}

/// What QMS decided for nonconforming material.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DispositionDecision {
    /// Use as is: the held stock becomes unrestricted.
    Release,
    /// Rework, then use.
    Rework,
    /// Scrap the held stock.
    Scrap,
}

/// An approved disposition of an NC.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Disposition {
    pub nc: NcId,
    pub decision: DispositionDecision,
    pub approved_by: String,
}

/// CMMS work-order types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WorkOrderKind {
    Emergency,
    Breakdown,
    Preventive,
}

/// A maintenance work order as the core asks CMMS to create it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct MaintenanceWorkOrder {
    pub id: WorkOrderId,
    pub asset: AssetId,
    pub station: StationId,
    pub kind: WorkOrderKind,
    pub severity: Severity,
    /// Fault context for the technician: the NC, characteristic and failures, or the alarm.
    pub fault: String,
    /// The NC this work order repairs, for W1 work orders.
    pub nc: Option<NcId>,
}

/// Spare parts consumed by a repair. CMMS records the unit cost; the total is derived.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct SparePartUsage {
    pub part: PartId,
    pub quantity: u32,
    pub unit_cost: Money,
}

impl SparePartUsage {
    pub fn cost(&self) -> Money {
        self.unit_cost
            .checked_mul(self.quantity as i64)
            .unwrap_or(Money::ZERO)
    }
}

/// Labour booked on a work order. The cost is derived with [`Money::per_hour_for_minutes`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct LabourEntry {
    pub technician: TechnicianId,
    pub minutes: u32,
    pub rate_per_hour: Money,
}

impl LabourEntry {
    pub fn cost(&self) -> Money {
        self.rate_per_hour.per_hour_for_minutes(self.minutes)
    }
}

/// CMMS's record of a finished repair: workflow W2's input.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct WorkOrderCompletion {
    pub work_order: WorkOrderId,
    pub asset: AssetId,
    pub station: StationId,
    pub root_cause: String,
    pub parts: Vec<SparePartUsage>,
    pub labour: Vec<LabourEntry>,
    pub nc: Option<NcId>,
}

impl WorkOrderCompletion {
    pub fn parts_cost(&self) -> Money {
        self.parts.iter().map(SparePartUsage::cost).sum()
    }
    pub fn labour_cost(&self) -> Money {
        self.labour.iter().map(LabourEntry::cost).sum()
    }
}

/// Why a station was not producing, as CMMS classifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DowntimeClass {
    Breakdown,
    QualityStop,
    Planned,
}

/// A span during which a station did not produce.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct DowntimeEvent {
    pub station: StationId,
    pub started_at: Instant,
    pub ended_at: Option<Instant>,
    pub class: Option<DowntimeClass>,
}

/// A goods movement in ERP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MovementKind {
    /// Consumption, e.g. spare parts for a work order.
    GoodsIssue,
    /// Finished goods into stock from a production order.
    GoodsReceipt,
}

/// A goods movement: a quantity of material in or out of stock, for an order or a work order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct GoodsMovement {
    pub kind: MovementKind,
    pub material: MaterialId,
    pub quantity: u32,
    pub order: Option<OrderId>,
    pub work_order: Option<WorkOrderId>,
    pub serials: Option<SerialRange>,
}

/// What a cost posting is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CostKind {
    Parts,
    Labour,
}

/// Maintenance cost settled to ERP for one work order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct CostPosting {
    pub work_order: WorkOrderId,
    pub kind: CostKind,
    pub amount: Money,
}

/// Stop or resume one station.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LineAction {
    Stop,
    Resume,
}

/// A line-control command to MES.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct LineControl {
    pub station: StationId,
    pub action: LineAction,
    /// Free text for the people at the line.
    pub reason: String,
    /// The nonconformance this stop or resume serves, if any: the structured link that checks
    /// and reports use (the reason is never parsed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nc: Option<NcId>,
}

/// CAPA lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CapaStatus {
    Open,
    Closed,
}

/// A corrective and preventive action tied to an NC.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Capa {
    pub id: CapaId,
    pub nc: NcId,
    pub status: CapaStatus,
}

/// Units that left a station: MES's production confirmation (workflow W6).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct ProductionConfirmation {
    pub order: OrderId,
    pub station: StationId,
    pub material: MaterialId,
    pub serials: SerialRange,
    pub good: u32,
    pub scrap: u32,
}

impl ProductionConfirmation {
    /// Counts every unit as scrap (a disposition scrapped the held units).
    pub fn scrap_all(&mut self) {
        self.scrap += self.good;
        self.good = 0;
    }
}

/// The kinds of master data the core syncs (workflow W5).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum MasterDataKind {
    Material,
    Asset,
    InspectionSpec,
}

impl MasterDataKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MasterDataKind::Material => "material",
            MasterDataKind::Asset => "asset",
            MasterDataKind::InspectionSpec => "inspection-spec",
        }
    }
    /// The system of record that publishes this kind.
    pub fn owner(self) -> System {
        match self {
            MasterDataKind::Material => System::Erp,
            MasterDataKind::Asset => System::Cmms,
            MasterDataKind::InspectionSpec => System::Qms,
        }
    }
    /// The systems that consume this kind.
    pub fn consumers(self) -> &'static [System] {
        match self {
            MasterDataKind::Material => &[System::Mes, System::Qms],
            MasterDataKind::Asset => &[System::Mes, System::Qms],
            MasterDataKind::InspectionSpec => &[System::Mes],
        }
    }
}

/// An inspection specification: limits of one characteristic at one station.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct InspectionSpec {
    pub characteristic: CharacteristicId,
    pub station: StationId,
    /// Limits in thousandths of the characteristic's unit, so that they compare exactly.
    pub lower_milli: i64,
    pub upper_milli: i64,
}

/// The body of one master-data record.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MasterDataPayload {
    Material(Material),
    Asset(AssetPlacement),
    InspectionSpec(InspectionSpec),
}

impl MasterDataPayload {
    pub fn kind(&self) -> MasterDataKind {
        match self {
            MasterDataPayload::Material(_) => MasterDataKind::Material,
            MasterDataPayload::Asset(_) => MasterDataKind::Asset,
            MasterDataPayload::InspectionSpec(_) => MasterDataKind::InspectionSpec,
        }
    }
}

/// One version of one master-data record. Versions of a key only go up.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "MasterDataRecordRaw")]
pub struct MasterDataRecord {
    pub key: RecordKey,
    /// Starts at 1.
    pub version: u64,
    pub payload: MasterDataPayload,
}

/// The wire form of [`MasterDataRecord`], checked on the way in.
#[derive(Deserialize, JsonSchema)]
#[schemars(
    rename = "MasterDataRecord",
    description = "One version of one master-data record. Versions of a key only go up."
)]
struct MasterDataRecordRaw {
    key: RecordKey,
    /// Starts at 1.
    #[schemars(range(min = 1))]
    version: u64,
    payload: MasterDataPayload,
}

impl TryFrom<MasterDataRecordRaw> for MasterDataRecord {
    type Error = ModelError;
    fn try_from(r: MasterDataRecordRaw) -> Result<Self, ModelError> {
        MasterDataRecord::new(r.key, r.version, r.payload)
    }
}

impl MasterDataRecord {
    /// Validates the version (≥ 1).
    pub fn new(
        key: RecordKey,
        version: u64,
        payload: MasterDataPayload,
    ) -> Result<Self, ModelError> {
        if version == 0 {
            return Err(ModelError::new("version", "must be at least 1"));
        }
        Ok(MasterDataRecord {
            key,
            version,
            payload,
        })
    }
    pub fn kind(&self) -> MasterDataKind {
        self.payload.kind()
    }
}

/// Machine alarm severity as MES reports it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AlarmSeverity {
    Info,
    Warning,
    Fault,
}

/// A machine alarm.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Alarm {
    pub station: StationId,
    pub code: String,
    pub severity: AlarmSeverity,
}

/// Station states as MES knows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StationState {
    Running,
    /// Stopped by a line-control command.
    Stopped,
    /// Broken down.
    Down,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_validate_and_name_their_field() {
        assert!(StationId::new("P1-L1-S3").is_ok());
        let e = StationId::new("").unwrap_err();
        assert_eq!(e.field, "station");
        assert!(NcId::new("a b").is_err());
        assert!(OrderId::new("x".repeat(65)).is_err());
        let e: Result<StationId, _> = serde_json::from_str("\"bad id\"");
        assert!(e.unwrap_err().to_string().contains("station"));
    }

    #[test]
    fn serial_ranges_are_ordered() {
        assert!(SerialRange::new(5, 4).is_err());
        let r = SerialRange::new(10, 20).unwrap();
        assert_eq!(r.len(), 11);
        assert!(r.covers(&SerialRange::new(12, 20).unwrap()));
        assert!(!r.covers(&SerialRange::new(12, 21).unwrap()));
        let e: Result<SerialRange, _> = serde_json::from_str(r#"{"first":3,"last":1}"#);
        assert!(e.is_err());
    }

    #[test]
    fn completion_costs_are_exact() {
        let c = WorkOrderCompletion {
            work_order: WorkOrderId::new("WO-1").unwrap(),
            asset: AssetId::new("A-1").unwrap(),
            station: StationId::new("P1-L1-S1").unwrap(),
            root_cause: "worn torque head".into(),
            parts: vec![SparePartUsage {
                part: PartId::new("TORQUE-HEAD").unwrap(),
                quantity: 2,
                unit_cost: Money::from_cents(41_250),
            }],
            labour: vec![LabourEntry {
                technician: TechnicianId::new("T1").unwrap(),
                minutes: 40,
                rate_per_hour: Money::from_cents(8_500),
            }],
            nc: None,
        };
        assert_eq!(c.parts_cost().cents(), 82_500);
        assert_eq!(c.labour_cost().cents(), 5_667);
    }
}
