//! Operator routes: what people and the plant do in each system (release an order, record an
//! inspection, approve a disposition, complete a work order, a unit leaves a station, …).
//!
//! These call the state machines' operator APIs. [`OPERATOR_ROUTES`] describes them for the OpenAPI
//! documents; a test checks that every entry is served.

use crate::app::{Shared, json, receipt_json};
use crate::openapi::schema_of;
use crate::problem::{ApiJson, Problem};
use crate::routes::PostingReceipt;
use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use plantloop_core::*;
use plantloop_mocks::cmms::Cmms;
use plantloop_mocks::erp::Erp;
use plantloop_mocks::mes::Mes;
use plantloop_mocks::qms::Qms;
use plantloop_mocks::{OperatorError, ProblemKind, Receipt};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One operator route, as the OpenAPI document describes it.
#[derive(Clone, Copy, Debug)]
pub struct OperatorRoute {
    pub system: System,
    pub method: &'static str,
    pub path: &'static str,
    /// What `{id}` names, for routes that have one.
    pub id_of: &'static str,
    pub operation_id: &'static str,
    pub summary: &'static str,
    /// The request body's schema, if it takes one.
    pub body: Option<fn(&mut SchemaGenerator) -> Schema>,
    /// The success status and its body's schema.
    pub status: u16,
    pub response: fn(&mut SchemaGenerator) -> Schema,
}

/// Body of `POST /nonconformances/{id}/disposition`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DispositionBody {
    pub decision: DispositionDecision,
    pub approved_by: String,
}

/// Body of `POST /inspection-specs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InspectionSpecBody {
    pub key: RecordKey,
    pub spec: InspectionSpec,
}

/// Body of `POST /work-orders/{id}/complete`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CompletionBody {
    pub root_cause: String,
    #[serde(default)]
    pub parts: Vec<SparePartUsage>,
    #[serde(default)]
    pub labour: Vec<LabourEntry>,
}

/// Body of `POST /downtimes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DowntimeBody {
    pub station: StationId,
    pub started_at: Instant,
    pub ended_at: Option<Instant>,
    pub class: DowntimeClass,
}

/// Body of `POST /stations`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StationBody {
    pub station: StationId,
}

/// Body of `POST /stations/{id}/units`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UnitBody {
    pub serial: u64,
    pub order: OrderId,
    pub material: MaterialId,
    pub good: bool,
}

/// Body of `POST /stations/{id}/down`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MachineDownBody {
    #[serde(default)]
    pub code: Option<String>,
}

/// Body of `POST /stations/{id}/alarms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AlarmBody {
    pub code: String,
    pub severity: AlarmSeverity,
}

/// Answer of `POST /inspection-results`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InspectionAnswer {
    /// The NC this result raised, if it completed a defect pattern.
    pub nc: Option<NcId>,
}

/// Answer of `POST /stations`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StationAnswer {
    /// False when the station was known already.
    pub added: bool,
}

/// Answer of `POST /orders/{id}/end` and `POST /confirmations/flush`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FlushAnswer {
    /// Production confirmations emitted.
    pub confirmations: usize,
}

/// Answer of operator actions that post nothing but may emit events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Accepted {
    pub accepted: bool,
}

macro_rules! op {
    ($system:ident, $method:literal, $path:literal, $id_of:literal, $op:literal, $summary:literal, $body:expr, $status:literal, $resp:ty) => {
        OperatorRoute {
            system: System::$system,
            method: $method,
            path: $path,
            id_of: $id_of,
            operation_id: $op,
            summary: $summary,
            body: $body,
            status: $status,
            response: schema_of::<$resp>,
        }
    };
}

/// Every operator route of every system.
pub const OPERATOR_ROUTES: &[OperatorRoute] = &[
    op!(
        Erp,
        "POST",
        "/production-orders",
        "",
        "releaseProductionOrder",
        "Release a production order to its line (emits order.released).",
        Some(schema_of::<ProductionOrder>),
        201,
        PostingReceipt
    ),
    op!(
        Erp,
        "POST",
        "/materials",
        "",
        "publishMaterial",
        "Publish the next version of a material master (emits masterdata.record.published).",
        Some(schema_of::<Material>),
        201,
        MasterDataRecord
    ),
    op!(
        Qms,
        "POST",
        "/inspection-results",
        "",
        "recordInspectionResult",
        "Record an inspection result; k failures of one characteristic at one station within the window raise an NC (emits nonconformance.created).",
        Some(schema_of::<InspectionResult>),
        201,
        InspectionAnswer
    ),
    op!(
        Qms,
        "POST",
        "/nonconformances/{id}/containment",
        "nonconformance",
        "containNonconformance",
        "Confirm a nonconformance's containment.",
        None,
        201,
        PostingReceipt
    ),
    op!(
        Qms,
        "POST",
        "/nonconformances/{id}/disposition",
        "nonconformance",
        "approveDisposition",
        "Approve the disposition of a nonconformance (emits disposition.approved).",
        Some(schema_of::<DispositionBody>),
        201,
        PostingReceipt
    ),
    op!(
        Qms,
        "POST",
        "/inspection-specs",
        "",
        "publishInspectionSpec",
        "Publish the next version of an inspection spec (emits masterdata.record.published).",
        Some(schema_of::<InspectionSpecBody>),
        201,
        MasterDataRecord
    ),
    op!(
        Cmms,
        "POST",
        "/assets",
        "",
        "publishAsset",
        "Publish the next version of an asset placement (emits masterdata.record.published).",
        Some(schema_of::<AssetPlacement>),
        201,
        MasterDataRecord
    ),
    op!(
        Cmms,
        "POST",
        "/work-orders/{id}/start",
        "work order",
        "startWorkOrder",
        "A technician starts a created work order.",
        None,
        201,
        PostingReceipt
    ),
    op!(
        Cmms,
        "POST",
        "/work-orders/{id}/complete",
        "work order",
        "completeWorkOrder",
        "Complete an open work order with root cause, spare parts and labour (emits workorder.completed).",
        Some(schema_of::<CompletionBody>),
        201,
        PostingReceipt
    ),
    op!(
        Cmms,
        "POST",
        "/downtimes",
        "",
        "classifyDowntime",
        "Classify a station's downtime (emits downtime.classified).",
        Some(schema_of::<DowntimeBody>),
        201,
        PostingReceipt
    ),
    op!(
        Mes,
        "POST",
        "/stations",
        "",
        "addStation",
        "Add a running station.",
        Some(schema_of::<StationBody>),
        200,
        StationAnswer
    ),
    op!(
        Mes,
        "POST",
        "/stations/{id}/units",
        "station",
        "unitCompleted",
        "A unit left the station; batched into production confirmations (emits production.confirmed per batch). 409 if the station is stopped or down.",
        Some(schema_of::<UnitBody>),
        202,
        Accepted
    ),
    op!(
        Mes,
        "POST",
        "/stations/{id}/down",
        "station",
        "machineDown",
        "The station broke down (emits machine.state-changed).",
        Some(schema_of::<MachineDownBody>),
        202,
        Accepted
    ),
    op!(
        Mes,
        "POST",
        "/stations/{id}/up",
        "station",
        "machineUp",
        "The station is repaired (emits machine.state-changed).",
        None,
        202,
        Accepted
    ),
    op!(
        Mes,
        "POST",
        "/stations/{id}/alarms",
        "station",
        "raiseAlarm",
        "A machine alarm (emits alarm.raised).",
        Some(schema_of::<AlarmBody>),
        202,
        Accepted
    ),
    op!(
        Mes,
        "POST",
        "/orders/{id}/end",
        "production order",
        "endOrder",
        "The order ended: confirm its open batches.",
        None,
        200,
        FlushAnswer
    ),
    op!(
        Mes,
        "POST",
        "/confirmations/flush",
        "",
        "flushConfirmations",
        "Confirm every open batch.",
        None,
        200,
        FlushAnswer
    ),
];

fn operator_problem(e: OperatorError) -> Problem {
    let (kind, field) = match &e {
        OperatorError::Invalid { field, .. } => (ProblemKind::InvalidField, Some(*field)),
        _ => (ProblemKind::Conflict, None),
    };
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::CONFLICT);
    Problem {
        type_uri: kind.type_uri().to_owned(),
        title: kind.title().to_owned(),
        status: status.as_u16(),
        detail: e.to_string(),
        field: field.map(str::to_owned),
    }
}

fn receipt(r: Result<Receipt, OperatorError>) -> Response {
    match r {
        Ok(r) => receipt_json(StatusCode::CREATED, r),
        Err(e) => operator_problem(e).into_response(),
    }
}

fn accepted(r: Result<(), OperatorError>) -> Response {
    match r {
        Ok(()) => json(StatusCode::ACCEPTED, &Accepted { accepted: true }),
        Err(e) => operator_problem(e).into_response(),
    }
}

/// The path id as a model id: 422 naming the field if it is not a valid id.
fn path_id<T>(
    path: Result<Path<String>, PathRejection>,
    make: fn(String) -> Result<T, ModelError>,
) -> Result<T, Problem> {
    let Path(id) = path.map_err(|e| Problem::not_found(e.body_text()))?;
    make(id).map_err(|e| Problem::invalid(e.field, format!("path parameter: {}", e.reason)))
}

type PathArg = Result<Path<String>, PathRejection>;
type Res = Result<Response, Problem>;

/// ERP's operator routes.
pub(crate) fn erp() -> Router<Arc<Shared<Erp>>> {
    Router::new()
        .route(
            "/production-orders",
            post(|State(s): State<Arc<Shared<Erp>>>, ApiJson(order): ApiJson<ProductionOrder>| async move {
                receipt(s.act(|m, now| m.release_order(now, order)))
            }),
        )
        .route(
            "/materials",
            post(|State(s): State<Arc<Shared<Erp>>>, ApiJson(material): ApiJson<Material>| async move {
                json(StatusCode::CREATED, &s.act(|m, now| m.publish_material(now, material)))
            }),
        )
}

/// QMS's operator routes.
pub(crate) fn qms() -> Router<Arc<Shared<Qms>>> {
    Router::new()
        .route(
            "/inspection-results",
            post(|State(s): State<Arc<Shared<Qms>>>, ApiJson(result): ApiJson<InspectionResult>| async move {
                let nc = s.act(|m, now| m.record_inspection(now, &result));
                json(StatusCode::CREATED, &InspectionAnswer { nc })
            }),
        )
        .route(
            "/nonconformances/{id}/containment",
            post(|State(s): State<Arc<Shared<Qms>>>, path: PathArg| async move {
                let nc = path_id(path, NcId::new)?;
                Res::Ok(receipt(s.act(|m, now| m.contain(now, &nc))))
            }),
        )
        .route(
            "/nonconformances/{id}/disposition",
            post(|State(s): State<Arc<Shared<Qms>>>, path: PathArg, ApiJson(b): ApiJson<DispositionBody>| async move {
                let nc = path_id(path, NcId::new)?;
                Res::Ok(receipt(s.act(|m, now| m.approve_disposition(now, &nc, b.decision, &b.approved_by))))
            }),
        )
        .route(
            "/inspection-specs",
            post(|State(s): State<Arc<Shared<Qms>>>, ApiJson(b): ApiJson<InspectionSpecBody>| async move {
                json(StatusCode::CREATED, &s.act(|m, now| m.publish_inspection_spec(now, b.key, b.spec)))
            }),
        )
}

/// CMMS's operator routes.
pub(crate) fn cmms() -> Router<Arc<Shared<Cmms>>> {
    Router::new()
        .route(
            "/assets",
            post(|State(s): State<Arc<Shared<Cmms>>>, ApiJson(p): ApiJson<AssetPlacement>| async move {
                json(StatusCode::CREATED, &s.act(|m, now| m.publish_asset(now, p)))
            }),
        )
        .route(
            "/work-orders/{id}/start",
            post(|State(s): State<Arc<Shared<Cmms>>>, path: PathArg| async move {
                let wo = path_id(path, WorkOrderId::new)?;
                Res::Ok(receipt(s.act(|m, now| m.start_work(now, &wo))))
            }),
        )
        .route(
            "/work-orders/{id}/complete",
            post(|State(s): State<Arc<Shared<Cmms>>>, path: PathArg, ApiJson(b): ApiJson<CompletionBody>| async move {
                let wo = path_id(path, WorkOrderId::new)?;
                Res::Ok(receipt(s.act(|m, now| m.complete_work(now, &wo, &b.root_cause, b.parts, b.labour))))
            }),
        )
        .route(
            "/downtimes",
            post(|State(s): State<Arc<Shared<Cmms>>>, ApiJson(b): ApiJson<DowntimeBody>| async move {
                receipt(s.act(|m, now| m.classify_downtime(now, &b.station, b.started_at, b.ended_at, b.class)))
            }),
        )
}

/// MES's operator routes.
pub(crate) fn mes() -> Router<Arc<Shared<Mes>>> {
    Router::new()
        .route(
            "/stations",
            post(
                |State(s): State<Arc<Shared<Mes>>>, ApiJson(b): ApiJson<StationBody>| async move {
                    let added = s.act(|m, _| m.add_station(b.station));
                    json(StatusCode::OK, &StationAnswer { added })
                },
            ),
        )
        .route(
            "/stations/{id}/units",
            post(
                |State(s): State<Arc<Shared<Mes>>>,
                 path: PathArg,
                 ApiJson(b): ApiJson<UnitBody>| async move {
                    let station = path_id(path, StationId::new)?;
                    Res::Ok(accepted(s.act(|m, now| {
                        m.unit_completed(now, &station, b.serial, &b.order, &b.material, b.good)
                    })))
                },
            ),
        )
        .route(
            "/stations/{id}/down",
            post(
                |State(s): State<Arc<Shared<Mes>>>,
                 path: PathArg,
                 ApiJson(b): ApiJson<MachineDownBody>| async move {
                    let station = path_id(path, StationId::new)?;
                    Res::Ok(accepted(
                        s.act(|m, now| m.machine_down(now, &station, b.code)),
                    ))
                },
            ),
        )
        .route(
            "/stations/{id}/up",
            post(
                |State(s): State<Arc<Shared<Mes>>>, path: PathArg| async move {
                    let station = path_id(path, StationId::new)?;
                    Res::Ok(accepted(s.act(|m, now| m.machine_up(now, &station))))
                },
            ),
        )
        .route(
            "/stations/{id}/alarms",
            post(
                |State(s): State<Arc<Shared<Mes>>>,
                 path: PathArg,
                 ApiJson(b): ApiJson<AlarmBody>| async move {
                    let station = path_id(path, StationId::new)?;
                    let alarm = Alarm {
                        station,
                        code: b.code,
                        severity: b.severity,
                    };
                    Res::Ok(accepted(s.act(|m, now| m.raise_alarm(now, alarm))))
                },
            ),
        )
        .route(
            "/orders/{id}/end",
            post(
                |State(s): State<Arc<Shared<Mes>>>, path: PathArg| async move {
                    let order = path_id(path, OrderId::new)?;
                    let confirmations = s.act(|m, now| m.end_order(now, &order));
                    Res::Ok(json(StatusCode::OK, &FlushAnswer { confirmations }))
                },
            ),
        )
        .route(
            "/confirmations/flush",
            post(|State(s): State<Arc<Shared<Mes>>>| async move {
                let confirmations = s.act(|m, now| m.flush(now));
                json(StatusCode::OK, &FlushAnswer { confirmations })
            }),
        )
}
