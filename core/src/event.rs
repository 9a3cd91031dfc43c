//! Events from the systems of record, in the CloudEvents 1.0 JSON format, and ingress parsing.
//!
//! `type` carries the schema version (`com.plantloop.qms.nonconformance.created.v2`). Older versions
//! that are still accepted are upcast here, at ingress, so that the engine only sees current ones.
//! Extensions: `correlationid`, `causationid`, `traceparent`, `plant`, `latencyclass`.

use crate::call::EventRef;
use crate::model::*;
use crate::money::Money;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The CloudEvents `type` prefix of every plantloop event.
pub const TYPE_PREFIX: &str = "com.plantloop.";
/// The largest event body ingress accepts.
pub const EVENT_BYTES_MAX: usize = 256 * 1024;

/// CMMS acknowledges a work order it created.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct WorkOrderCreated {
    pub work_order: WorkOrderId,
    pub asset: AssetId,
    pub station: StationId,
    pub kind: WorkOrderKind,
    pub nc: Option<NcId>,
}

/// MES reports a station changing state on its own (breakdown, back up after repair).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct MachineStateChanged {
    pub station: StationId,
    pub state: StationState,
    /// Alarm or fault code, if any.
    pub code: Option<String>,
}

/// The payload of an event, one variant per event type (current version).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventData {
    /// ERP released a production order to a line.
    OrderReleased(ProductionOrder),
    /// QMS raised a nonconformance (W1 when `asset_related`).
    NonconformanceCreated(Nonconformance),
    /// QMS approved a disposition (W3).
    DispositionApproved(Disposition),
    /// CMMS created a work order.
    WorkOrderCreated(WorkOrderCreated),
    /// CMMS completed a work order (W2).
    WorkOrderCompleted(WorkOrderCompletion),
    /// CMMS classified a downtime.
    DowntimeClassified(DowntimeEvent),
    /// MES raised a machine alarm (W4 when severity is `fault`).
    AlarmRaised(Alarm),
    /// MES reports a station state change (W4 when `down`).
    MachineStateChanged(MachineStateChanged),
    /// MES confirmed production (W6).
    ProductionConfirmed(ProductionConfirmation),
    /// A system of record published a master-data record version (W5).
    MasterDataPublished(MasterDataRecord),
}

/// Every event type the core knows, with its current version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    OrderReleased,
    NonconformanceCreated,
    DispositionApproved,
    WorkOrderCreated,
    WorkOrderCompleted,
    DowntimeClassified,
    AlarmRaised,
    MachineStateChanged,
    ProductionConfirmed,
    MasterDataPublished,
}

impl EventType {
    pub const ALL: [EventType; 10] = [
        EventType::OrderReleased,
        EventType::NonconformanceCreated,
        EventType::DispositionApproved,
        EventType::WorkOrderCreated,
        EventType::WorkOrderCompleted,
        EventType::DowntimeClassified,
        EventType::AlarmRaised,
        EventType::MachineStateChanged,
        EventType::ProductionConfirmed,
        EventType::MasterDataPublished,
    ];

    /// `<system>.<object>.<verb>` without prefix or version. Master data is published by its owner;
    /// the name is shared.
    pub fn name(self) -> &'static str {
        match self {
            EventType::OrderReleased => "erp.order.released",
            EventType::NonconformanceCreated => "qms.nonconformance.created",
            EventType::DispositionApproved => "qms.disposition.approved",
            EventType::WorkOrderCreated => "cmms.workorder.created",
            EventType::WorkOrderCompleted => "cmms.workorder.completed",
            EventType::DowntimeClassified => "cmms.downtime.classified",
            EventType::AlarmRaised => "mes.alarm.raised",
            EventType::MachineStateChanged => "mes.machine.state-changed",
            EventType::ProductionConfirmed => "mes.production.confirmed",
            EventType::MasterDataPublished => "masterdata.record.published",
        }
    }

    /// What the event says, for its JSON Schema.
    pub fn description(self) -> &'static str {
        match self {
            EventType::OrderReleased => "ERP released a production order to a line.",
            EventType::NonconformanceCreated => {
                "QMS raised a nonconformance; an asset-related one starts containment (W1)."
            }
            EventType::DispositionApproved => {
                "QMS approved a disposition; the held stock is released (W3)."
            }
            EventType::WorkOrderCreated => "CMMS created a work order.",
            EventType::WorkOrderCompleted => {
                "CMMS completed a work order with root cause, parts and labour (W2)."
            }
            EventType::DowntimeClassified => "CMMS classified a downtime.",
            EventType::AlarmRaised => "MES raised a machine alarm; a fault opens a breakdown (W4).",
            EventType::MachineStateChanged => {
                "MES reports a station state change; down opens a breakdown (W4)."
            }
            EventType::ProductionConfirmed => "MES confirmed production (W6).",
            EventType::MasterDataPublished => {
                "A system of record published a master-data record version (W5)."
            }
        }
    }

    /// The current schema version.
    pub fn version(self) -> u32 {
        match self {
            EventType::NonconformanceCreated => 2,
            _ => 1,
        }
    }

    /// Versions ingress accepts (older ones are upcast).
    pub fn accepted_versions(self) -> &'static [u32] {
        match self {
            EventType::NonconformanceCreated => &[1, 2],
            _ => &[1],
        }
    }

    /// The full CloudEvents `type` of the current version.
    pub fn type_string(self) -> String {
        format!("{TYPE_PREFIX}{}.v{}", self.name(), self.version())
    }

    /// The latency class of the effects this event causes, unless the event's `latencyclass`
    /// extension says otherwise.
    pub fn default_class(self) -> LatencyClass {
        match self {
            EventType::NonconformanceCreated
            | EventType::AlarmRaised
            | EventType::MachineStateChanged => LatencyClass::Critical,
            EventType::MasterDataPublished | EventType::DowntimeClassified => LatencyClass::Bulk,
            _ => LatencyClass::Transactional,
        }
    }

    fn from_name(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl EventData {
    pub fn event_type(&self) -> EventType {
        match self {
            EventData::OrderReleased(_) => EventType::OrderReleased,
            EventData::NonconformanceCreated(_) => EventType::NonconformanceCreated,
            EventData::DispositionApproved(_) => EventType::DispositionApproved,
            EventData::WorkOrderCreated(_) => EventType::WorkOrderCreated,
            EventData::WorkOrderCompleted(_) => EventType::WorkOrderCompleted,
            EventData::DowntimeClassified(_) => EventType::DowntimeClassified,
            EventData::AlarmRaised(_) => EventType::AlarmRaised,
            EventData::MachineStateChanged(_) => EventType::MachineStateChanged,
            EventData::ProductionConfirmed(_) => EventType::ProductionConfirmed,
            EventData::MasterDataPublished(_) => EventType::MasterDataPublished,
        }
    }

    fn to_json(&self) -> Value {
        let r = match self {
            EventData::OrderReleased(v) => serde_json::to_value(v),
            EventData::NonconformanceCreated(v) => serde_json::to_value(v),
            EventData::DispositionApproved(v) => serde_json::to_value(v),
            EventData::WorkOrderCreated(v) => serde_json::to_value(v),
            EventData::WorkOrderCompleted(v) => serde_json::to_value(v),
            EventData::DowntimeClassified(v) => serde_json::to_value(v),
            EventData::AlarmRaised(v) => serde_json::to_value(v),
            EventData::MachineStateChanged(v) => serde_json::to_value(v),
            EventData::ProductionConfirmed(v) => serde_json::to_value(v),
            EventData::MasterDataPublished(v) => serde_json::to_value(v),
        };
        r.expect("model types always serialize")
    }
}

/// A validated event from a system of record.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Event {
    /// CloudEvents `id`: unique per `source`.
    pub id: String,
    /// CloudEvents `source`, e.g. `/plants/P1/mes`.
    pub source: String,
    /// CloudEvents `time` (RFC 3339), passed through.
    pub time: Option<String>,
    pub subject: Option<String>,
    /// Extension `correlationid`: the business thread this event belongs to.
    pub correlation: Option<String>,
    /// Extension `causationid`: the event that caused this one.
    pub causation: Option<String>,
    /// Extension `traceparent` (W3C trace context).
    pub traceparent: Option<String>,
    /// Extension `plant`.
    pub plant: Option<PlantId>,
    /// Extension `latencyclass`, or the type's default.
    pub class: LatencyClass,
    pub data: EventData,
}

impl Event {
    /// An event with the type's default class and no optional attributes.
    pub fn new(source: impl Into<String>, id: impl Into<String>, data: EventData) -> Event {
        let class = data.event_type().default_class();
        Event {
            id: id.into(),
            source: source.into(),
            time: None,
            subject: None,
            correlation: None,
            causation: None,
            traceparent: None,
            plant: None,
            class,
            data,
        }
    }

    pub fn event_type(&self) -> EventType {
        self.data.event_type()
    }

    pub fn event_ref(&self) -> EventRef {
        EventRef::new(self.source.as_str(), self.id.as_str())
    }

    /// The CloudEvents 1.0 JSON form.
    pub fn to_cloudevent(&self) -> Value {
        let mut m = Map::new();
        m.insert("specversion".into(), "1.0".into());
        m.insert("id".into(), self.id.clone().into());
        m.insert("source".into(), self.source.clone().into());
        m.insert("type".into(), self.event_type().type_string().into());
        m.insert("datacontenttype".into(), "application/json".into());
        let opt = |m: &mut Map<String, Value>, k: &str, v: &Option<String>| {
            if let Some(v) = v {
                m.insert(k.into(), v.clone().into());
            }
        };
        opt(&mut m, "time", &self.time);
        opt(&mut m, "subject", &self.subject);
        opt(&mut m, "correlationid", &self.correlation);
        opt(&mut m, "causationid", &self.causation);
        opt(&mut m, "traceparent", &self.traceparent);
        if let Some(p) = &self.plant {
            m.insert("plant".into(), p.as_str().into());
        }
        m.insert("latencyclass".into(), self.class.as_str().into());
        m.insert("data".into(), self.data.to_json());
        Value::Object(m)
    }

    /// The CloudEvents JSON form as bytes.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_cloudevent()).expect("a JSON value always serializes")
    }
}

/// Why ingress refused an event. Every variant names the attribute or field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngressError {
    #[error("body is {0} bytes, more than the {EVENT_BYTES_MAX} accepted")]
    TooLarge(usize),
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    MalformedJson {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("the event must be a JSON object")]
    NotAnObject,
    #[error("missing required attribute `{0}`")]
    MissingAttribute(&'static str),
    #[error("attribute `{attribute}`: {reason}")]
    InvalidAttribute {
        attribute: &'static str,
        reason: String,
    },
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error(
        "event type {event_type:?}: schema version v{version} is not supported (accepted: {accepted})"
    )]
    UnsupportedVersion {
        event_type: String,
        version: u32,
        accepted: String,
    },
    #[error("{}: {reason}", if field.is_empty() { "data".to_owned() } else { format!("data.{field}") })]
    InvalidData { field: String, reason: String },
}

impl IngressError {
    /// The attribute or field at fault, for problem+json bodies.
    pub fn field(&self) -> String {
        match self {
            IngressError::TooLarge(_)
            | IngressError::MalformedJson { .. }
            | IngressError::NotAnObject => String::new(),
            IngressError::MissingAttribute(a) => (*a).to_owned(),
            IngressError::InvalidAttribute { attribute, .. } => (*attribute).to_owned(),
            IngressError::UnknownType(_) | IngressError::UnsupportedVersion { .. } => {
                "type".to_owned()
            }
            IngressError::InvalidData { field, .. } if field.is_empty() => "data".to_owned(),
            IngressError::InvalidData { field, .. } => format!("data.{field}"),
        }
    }
}

fn string_attr(
    m: &mut Map<String, Value>,
    key: &'static str,
    required: bool,
) -> Result<Option<String>, IngressError> {
    match m.remove(key) {
        None | Some(Value::Null) if required => Err(IngressError::MissingAttribute(key)),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() && required => Err(IngressError::InvalidAttribute {
            attribute: key,
            reason: "must not be empty".into(),
        }),
        Some(Value::String(s)) if s.len() > 512 => Err(IngressError::InvalidAttribute {
            attribute: key,
            reason: "longer than 512 bytes".into(),
        }),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(IngressError::InvalidAttribute {
            attribute: key,
            reason: "must be a string".into(),
        }),
    }
}

fn data_as<T: serde::de::DeserializeOwned>(data: Value) -> Result<T, IngressError> {
    serde_path_to_error::deserialize(&data).map_err(|e| {
        let mut field = match e.path().to_string() {
            p if p == "." => String::new(),
            p => p,
        };
        let reason = e.into_inner().to_string();
        // serde reports a missing field at its container, and a model rule that checks a whole
        // record (`version: must be at least 1`) at the record: name the field itself.
        let missing = reason
            .strip_prefix("missing field `")
            .and_then(|r| r.split_once('`'))
            .map(|(name, _)| name);
        let rule = reason
            .split_once(": ")
            .map(|(name, _)| name)
            .filter(|name| field.is_empty() && data.get(name).is_some());
        if let Some(name) = missing.or(rule) {
            if !field.is_empty() {
                field.push('.');
            }
            field.push_str(name);
        }
        IngressError::InvalidData { field, reason }
    })
}

/// Version 1 of `qms.nonconformance.created`: a flat serial range, and every v1 NC was a station
/// pattern (v2 added `asset_related` and `severity`).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NonconformanceV1 {
    pub id: NcId,
    pub station: StationId,
    pub characteristic: CharacteristicId,
    pub first_serial: u64,
    pub last_serial: u64,
    pub failures: u32,
}

impl NonconformanceV1 {
    /// Upcast to the current version.
    pub fn upcast(self) -> Result<Nonconformance, IngressError> {
        let serials = SerialRange::new(self.first_serial, self.last_serial).map_err(|e| {
            IngressError::InvalidData {
                field: "first_serial".into(),
                reason: e.reason,
            }
        })?;
        Ok(Nonconformance {
            id: self.id,
            station: self.station,
            characteristic: self.characteristic,
            serials,
            failures: self.failures,
            asset_related: true,
            severity: Severity::Major,
        })
    }
}

fn parse_data(t: EventType, version: u32, data: Value) -> Result<EventData, IngressError> {
    Ok(match (t, version) {
        (EventType::OrderReleased, _) => EventData::OrderReleased(data_as(data)?),
        (EventType::NonconformanceCreated, 1) => {
            EventData::NonconformanceCreated(data_as::<NonconformanceV1>(data)?.upcast()?)
        }
        (EventType::NonconformanceCreated, _) => EventData::NonconformanceCreated(data_as(data)?),
        (EventType::DispositionApproved, _) => EventData::DispositionApproved(data_as(data)?),
        (EventType::WorkOrderCreated, _) => EventData::WorkOrderCreated(data_as(data)?),
        (EventType::WorkOrderCompleted, _) => EventData::WorkOrderCompleted(data_as(data)?),
        (EventType::DowntimeClassified, _) => EventData::DowntimeClassified(data_as(data)?),
        (EventType::AlarmRaised, _) => EventData::AlarmRaised(data_as(data)?),
        (EventType::MachineStateChanged, _) => EventData::MachineStateChanged(data_as(data)?),
        (EventType::ProductionConfirmed, _) => EventData::ProductionConfirmed(data_as(data)?),
        (EventType::MasterDataPublished, _) => EventData::MasterDataPublished(data_as(data)?),
    })
}

/// Splits `com.plantloop.<name>.v<N>` into the event type and version.
fn parse_type(ty: &str) -> Result<(EventType, u32), IngressError> {
    let unknown = || IngressError::UnknownType(ty.to_owned());
    let rest = ty.strip_prefix(TYPE_PREFIX).ok_or_else(unknown)?;
    let (name, version) = rest.rsplit_once(".v").ok_or_else(unknown)?;
    let version: u32 = version.parse().map_err(|_| unknown())?;
    let t = EventType::from_name(name).ok_or_else(unknown)?;
    if !t.accepted_versions().contains(&version) {
        return Err(IngressError::UnsupportedVersion {
            event_type: format!("{TYPE_PREFIX}{name}"),
            version,
            accepted: t
                .accepted_versions()
                .iter()
                .map(|v| format!("v{v}"))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok((t, version))
}

/// Parses and validates one CloudEvents JSON event, upcasting older versions. Never panics.
pub fn parse_event(bytes: &[u8]) -> Result<Event, IngressError> {
    if bytes.len() > EVENT_BYTES_MAX {
        return Err(IngressError::TooLarge(bytes.len()));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| IngressError::MalformedJson {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    parse_event_value(value)
}

/// [`parse_event`] for a JSON value already parsed (a batch element, say).
pub fn parse_event_value(value: Value) -> Result<Event, IngressError> {
    let Value::Object(mut m) = value else {
        return Err(IngressError::NotAnObject);
    };
    let specversion = string_attr(&mut m, "specversion", true)?.unwrap_or_default();
    if specversion != "1.0" {
        return Err(IngressError::InvalidAttribute {
            attribute: "specversion",
            reason: format!("{specversion:?} is not \"1.0\""),
        });
    }
    let id = string_attr(&mut m, "id", true)?.unwrap_or_default();
    let source = string_attr(&mut m, "source", true)?.unwrap_or_default();
    let ty = string_attr(&mut m, "type", true)?.unwrap_or_default();
    let (t, version) = parse_type(&ty)?;
    if let Some(ct) = string_attr(&mut m, "datacontenttype", false)?
        && ct != "application/json"
    {
        return Err(IngressError::InvalidAttribute {
            attribute: "datacontenttype",
            reason: format!("{ct:?} is not application/json"),
        });
    }
    let time = string_attr(&mut m, "time", false)?;
    if let Some(t) = &time
        && !valid_rfc3339(t)
    {
        return Err(IngressError::InvalidAttribute {
            attribute: "time",
            reason: format!("{t:?} is not an RFC 3339 timestamp (2026-03-01T06:00:00Z)"),
        });
    }
    let subject = string_attr(&mut m, "subject", false)?;
    let correlation = string_attr(&mut m, "correlationid", false)?;
    let causation = string_attr(&mut m, "causationid", false)?;
    let traceparent = string_attr(&mut m, "traceparent", false)?;
    if let Some(tp) = &traceparent
        && !valid_traceparent(tp)
    {
        return Err(IngressError::InvalidAttribute {
            attribute: "traceparent",
            reason: "not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)".into(),
        });
    }
    let plant = string_attr(&mut m, "plant", false)?
        .map(|p| {
            PlantId::new(p).map_err(|e| IngressError::InvalidAttribute {
                attribute: "plant",
                reason: e.reason,
            })
        })
        .transpose()?;
    let class = match string_attr(&mut m, "latencyclass", false)? {
        None => t.default_class(),
        Some(c) => LatencyClass::parse(&c).ok_or_else(|| IngressError::InvalidAttribute {
            attribute: "latencyclass",
            reason: format!("{c:?} is not critical, transactional or bulk"),
        })?,
    };
    let data = m
        .remove("data")
        .ok_or(IngressError::MissingAttribute("data"))?;
    if !data.is_object() {
        // Every payload is a record; serde would also read one from an array, by position.
        return Err(IngressError::InvalidData {
            field: String::new(),
            reason: "must be a JSON object".into(),
        });
    }
    let data = parse_data(t, version, data)?;
    check_data(&data)?;
    Ok(Event {
        id,
        source,
        time,
        subject,
        correlation,
        causation,
        traceparent,
        plant,
        class,
        data,
    })
}

/// The most parts or labour lines one work-order completion may carry.
pub const COMPLETION_LINES_MAX: usize = 1_000;

/// Rules that span fields or need arithmetic, checked after the types' own checks, so that the
/// engine never meets a cost that overflows or a span that ends before it starts.
fn check_data(data: &EventData) -> Result<(), IngressError> {
    let bad = |field: String, reason: &str| {
        Err(IngressError::InvalidData {
            field,
            reason: reason.to_owned(),
        })
    };
    match data {
        EventData::WorkOrderCompleted(w) => {
            for (name, n) in [("parts", w.parts.len()), ("labour", w.labour.len())] {
                if n > COMPLETION_LINES_MAX {
                    return bad(
                        name.to_owned(),
                        &format!("{n} lines, more than {COMPLETION_LINES_MAX}"),
                    );
                }
            }
            let mut total = Money::ZERO;
            for (i, p) in w.parts.iter().enumerate() {
                if p.quantity == 0 {
                    return bad(format!("parts[{i}].quantity"), "must be at least 1");
                }
                if p.unit_cost < Money::ZERO {
                    return bad(format!("parts[{i}].unit_cost"), "must not be negative");
                }
                let Some(t) = p
                    .unit_cost
                    .checked_mul(p.quantity.into())
                    .and_then(|c| total.checked_add(c))
                else {
                    return bad(format!("parts[{i}].unit_cost"), "the parts cost overflows");
                };
                total = t;
            }
            let mut total = Money::ZERO;
            for (i, l) in w.labour.iter().enumerate() {
                if l.rate_per_hour < Money::ZERO {
                    return bad(format!("labour[{i}].rate_per_hour"), "must not be negative");
                }
                // `cost` saturates: a rate × minutes beyond the range shows as its bound.
                let cost = l.cost();
                let Some(t) = total.checked_add(cost).filter(|_| cost.cents() < i64::MAX) else {
                    return bad(
                        format!("labour[{i}].rate_per_hour"),
                        "the labour cost overflows",
                    );
                };
                total = t;
            }
        }
        EventData::DowntimeClassified(d) if d.ended_at.is_some_and(|end| end < d.started_at) => {
            return bad("ended_at".into(), "is before started_at");
        }
        EventData::MasterDataPublished(r) => {
            if let MasterDataPayload::InspectionSpec(s) = &r.payload
                && s.lower_milli > s.upper_milli
            {
                return bad(
                    "payload.inspection-spec.upper_milli".into(),
                    "is below lower_milli",
                );
            }
        }
        EventData::ProductionConfirmed(c) => {
            let units = u64::from(c.good) + u64::from(c.scrap);
            if units > c.serials.len() {
                return bad(
                    "good".into(),
                    &format!(
                        "good + scrap = {units} units, more than the {} serials {}",
                        c.serials.len(),
                        c.serials
                    ),
                );
            }
        }
        _ => {}
    }
    Ok(())
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, with each part in range (RFC 3339 section 5.6).
fn valid_rfc3339(t: &str) -> bool {
    let b = t.as_bytes();
    let num = |r: std::ops::Range<usize>, max: u32| -> Option<u32> {
        let s = b.get(r)?;
        if !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let v = s.iter().fold(0u32, |a, d| a * 10 + u32::from(d - b'0'));
        (v <= max).then_some(v)
    };
    let at = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    let date_time = num(0..4, 9999).is_some()
        && at(4, b"-")
        && num(5..7, 12).is_some_and(|m| m >= 1)
        && at(7, b"-")
        && num(8..10, 31).is_some_and(|d| d >= 1)
        && at(10, b"Tt ")
        && num(11..13, 23).is_some()
        && at(13, b":")
        && num(14..16, 59).is_some()
        && at(16, b":")
        && num(17..19, 60).is_some();
    if !date_time {
        return false;
    }
    let mut i = 19;
    if at(i, b".") {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match b.get(i) {
        Some(b'Z' | b'z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            i + 6 == b.len()
                && num(i + 1..i + 3, 23).is_some()
                && at(i + 3, b":")
                && num(i + 4..i + 6, 59).is_some()
        }
        _ => false,
    }
}

fn valid_traceparent(tp: &str) -> bool {
    let parts: Vec<&str> = tp.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    parts.len() == 4
        && hex(parts[0], 2)
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
}

/// The CloudEvents envelope of one event type, declared only to derive its JSON Schema: the
/// attributes ingress reads, with the limits it enforces, around the type's `data`.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct Envelope<T> {
    /// The CloudEvents version.
    #[schemars(extend("const" = "1.0"))]
    specversion: String,
    /// Unique per `source`; a repeat of `source` + `id` is acknowledged and not applied again.
    #[schemars(length(min = 1, max = 512))]
    id: String,
    /// The emitting system, e.g. `/plants/P1/mes`.
    #[schemars(length(min = 1, max = 512))]
    source: String,
    /// `com.plantloop.<system>.<object>.<verb>.v<version>`.
    #[schemars(rename = "type")]
    ty: String,
    #[schemars(extend("enum" = ["application/json", null]))]
    datacontenttype: Option<String>,
    /// RFC 3339 timestamp, passed through.
    #[schemars(extend("format" = "date-time"), length(max = 512))]
    time: Option<String>,
    #[schemars(length(max = 512))]
    subject: Option<String>,
    /// Extension: the business thread this event belongs to.
    #[schemars(length(max = 512))]
    correlationid: Option<String>,
    /// Extension: the event that caused this one.
    #[schemars(length(max = 512))]
    causationid: Option<String>,
    /// Extension: W3C trace context.
    #[schemars(pattern(r"^[0-9a-fA-F]{2}-[0-9a-fA-F]{32}-[0-9a-fA-F]{16}-[0-9a-fA-F]{2}$"))]
    traceparent: Option<String>,
    /// Extension: the plant the event comes from.
    plant: Option<PlantId>,
    /// Extension: overrides the type's default latency class.
    latencyclass: Option<LatencyClass>,
    data: T,
}

fn envelope_schema<T: JsonSchema>(type_string: String, description: &str) -> Value {
    let mut v =
        serde_json::to_value(schemars::schema_for!(Envelope<T>)).expect("schemas serialize");
    v["title"] = type_string.clone().into();
    v["description"] = description.into();
    v["properties"]["type"] = serde_json::json!({ "const": type_string });
    v
}

/// JSON Schemas of every event type, the whole CloudEvent with its `data`, for the current version
/// and each older version ingress still accepts, keyed by the full CloudEvents `type` and sorted.
/// Generated from the types; checked in under `core/schemas/`, where a test fails when they drift.
pub fn event_schemas() -> Vec<(String, Value)> {
    let mut out = vec![];
    for t in EventType::ALL {
        let (ty, d) = (t.type_string(), t.description());
        let schema = match t {
            EventType::OrderReleased => envelope_schema::<ProductionOrder>(ty.clone(), d),
            EventType::NonconformanceCreated => envelope_schema::<Nonconformance>(ty.clone(), d),
            EventType::DispositionApproved => envelope_schema::<Disposition>(ty.clone(), d),
            EventType::WorkOrderCreated => envelope_schema::<WorkOrderCreated>(ty.clone(), d),
            EventType::WorkOrderCompleted => envelope_schema::<WorkOrderCompletion>(ty.clone(), d),
            EventType::DowntimeClassified => envelope_schema::<DowntimeEvent>(ty.clone(), d),
            EventType::AlarmRaised => envelope_schema::<Alarm>(ty.clone(), d),
            EventType::MachineStateChanged => envelope_schema::<MachineStateChanged>(ty.clone(), d),
            EventType::ProductionConfirmed => {
                envelope_schema::<ProductionConfirmation>(ty.clone(), d)
            }
            EventType::MasterDataPublished => envelope_schema::<MasterDataRecord>(ty.clone(), d),
        };
        out.push((ty, schema));
    }
    let nc_v1 = format!(
        "{TYPE_PREFIX}{}.v1",
        EventType::NonconformanceCreated.name()
    );
    out.push((
        nc_v1.clone(),
        envelope_schema::<NonconformanceV1>(
            nc_v1,
            "Version 1 of the nonconformance event, upcast to the current version at ingress.",
        ),
    ));
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}
