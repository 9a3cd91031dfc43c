//! Events from the systems of record, in the CloudEvents 1.0 JSON format, and ingress parsing.
//!
//! `type` carries the schema version (`com.plantloop.qms.nonconformance.created.v2`). Older versions
//! that are still accepted are upcast here, at ingress, so that the engine only sees current ones.
//! Extensions: `correlationid`, `causationid`, `traceparent`, `plant`, `latencyclass`.

use crate::call::EventRef;
use crate::model::*;
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
        EventRef {
            source: self.source.clone(),
            id: self.id.clone(),
        }
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
    #[error("data.{field}: {reason}")]
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
    serde_path_to_error::deserialize(data).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        IngressError::InvalidData {
            field: if path == "." { String::new() } else { path },
            reason: inner,
        }
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
    let data = parse_data(t, version, data)?;
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

fn valid_traceparent(tp: &str) -> bool {
    let parts: Vec<&str> = tp.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    parts.len() == 4
        && hex(parts[0], 2)
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
}

/// JSON Schemas of every event type's `data`, current and accepted older versions, keyed by the full
/// CloudEvents `type`. Checked in under `core/schemas/`; a test fails when they drift from the code.
pub fn data_schemas() -> Vec<(String, Value)> {
    use schemars::schema_for;
    let mut out = vec![];
    for t in EventType::ALL {
        let schema = match t {
            EventType::OrderReleased => schema_for!(ProductionOrder),
            EventType::NonconformanceCreated => schema_for!(Nonconformance),
            EventType::DispositionApproved => schema_for!(Disposition),
            EventType::WorkOrderCreated => schema_for!(WorkOrderCreated),
            EventType::WorkOrderCompleted => schema_for!(WorkOrderCompletion),
            EventType::DowntimeClassified => schema_for!(DowntimeEvent),
            EventType::AlarmRaised => schema_for!(Alarm),
            EventType::MachineStateChanged => schema_for!(MachineStateChanged),
            EventType::ProductionConfirmed => schema_for!(ProductionConfirmation),
            EventType::MasterDataPublished => schema_for!(MasterDataRecord),
        };
        out.push((
            t.type_string(),
            serde_json::to_value(schema).expect("schemas serialize"),
        ));
    }
    out.push((
        format!(
            "{TYPE_PREFIX}{}.v1",
            EventType::NonconformanceCreated.name()
        ),
        serde_json::to_value(schemars::schema_for!(NonconformanceV1)).expect("schemas serialize"),
    ));
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}
